"""Bin every run's loss curve of one figure into one tidy table."""

from nmrnn.pipeline import curves_table, log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    runs = [tuple(r) for r in sm.params.runs]
    curves_table(list(sm.input), runs, sm.output[0], sm.params.bins, sm.params.steps)

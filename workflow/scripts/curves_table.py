"""Bin every run's loss curve of one figure into one tidy table."""

from nmrnn.runtime import log_to
from nmrnn.steps import curves_table

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    runs = [tuple(r) for r in sm.params.runs]
    curves_table(list(sm.input), runs, sm.output[0], sm.params.bins, sm.params.steps)

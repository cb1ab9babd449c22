"""Run one figure's analysis on the files its rule declares."""

from nmrnn.figures import analyse_figure
from nmrnn.runtime import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    analyse_figure(
        sm.wildcards.figure,
        sm.params.experiments,
        sm.params.runs,
        sm.input,
        sm.params.data_runs,
        list(sm.input.data),
        sm.output[0],
        threads=sm.threads,
    )

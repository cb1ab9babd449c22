"""Score one trained seed."""

from nmrnn.runtime import log_to
from nmrnn.steps import evaluate_seed

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    evaluate_seed(
        sm.params.experiments,
        sm.wildcards.experiment,
        sm.wildcards.arch,
        int(sm.wildcards.seed),
        sm.input.params,
        sm.input.data,
        sm.output[0],
        sm.params.reference_testset,
        sm.params.compilation_cache,
        threads=sm.threads,
    )

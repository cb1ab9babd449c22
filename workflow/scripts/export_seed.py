"""Split one seed's parameters, losses and metadata out of its training block."""

from nmrnn.pipeline import export_seed, log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    export_seed(
        sm.input[0], int(sm.wildcards.seed), sm.output.params, sm.output.meta, sm.output.losses
    )

"""Split one seed's parameters, losses and metadata out of its training block."""

from nmrnn.runtime import log_to
from nmrnn.steps import export_seed

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    export_seed(
        sm.input[0], int(sm.wildcards.seed), sm.output.params, sm.output.meta, sm.output.losses
    )

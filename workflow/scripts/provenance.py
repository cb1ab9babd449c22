"""Record what produced figures/."""

from nmrnn.runtime import log_to
from nmrnn.steps import write_provenance

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    write_provenance(
        sm.params.config, list(sm.input.blocks), sm.output[0], invocations=sm.params.invocations
    )

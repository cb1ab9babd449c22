"""Compare the claim tests under each protocol variant."""

from nmrnn.pipeline import log_to
from nmrnn.protocols import write_protocols

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    write_protocols(
        list(sm.input.metrics),
        dict(sm.params.tables),
        list(sm.params.comparisons),
        sm.output.csv,
        sm.output.png,
    )

"""Compare the claim tests under each protocol variant."""

from nmrnn.protocols import write_protocols
from nmrnn.runtime import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    write_protocols(
        list(sm.input.metrics),
        dict(sm.params.tables),
        list(sm.params.comparisons),
        sm.output.csv,
        sm.output.png,
        meta_files=list(sm.input.metas),
        provenance_out=sm.output.provenance,
        seeds_out=sm.output.seeds,
    )

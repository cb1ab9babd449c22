"""Check every claim of the paper on this run's metrics."""

from nmrnn.claims import write_claims
from nmrnn.figures import CLAIMS_BY_TABLE
from nmrnn.io import atomic_paths
from nmrnn.runtime import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    with atomic_paths(sm.output.csv, sm.output.md) as (csv, md):
        write_claims(list(sm.input), CLAIMS_BY_TABLE, csv, md)

"""Check every claim of the paper on this run's metrics."""

from nmrnn.claims import write_claims
from nmrnn.pipeline import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    write_claims(list(sm.input), sm.output.csv, sm.output.md)

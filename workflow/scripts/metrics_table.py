"""Concatenate per-seed metrics into one tidy table."""

from nmrnn.runtime import log_to
from nmrnn.steps import collect_tables

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    collect_tables(list(sm.input), sm.output[0], sm.params.expected)

"""Concatenate per-seed metrics into one tidy table."""

from nmrnn.pipeline import collect_tables, log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    collect_tables(list(sm.input), sm.output[0], sm.params.expected)

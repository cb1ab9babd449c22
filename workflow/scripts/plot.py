"""Render one figure."""

import importlib

import pandas as pd

from nmrnn.io import load_tree
from nmrnn.pipeline import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    module = importlib.import_module(f"nmrnn.plots.{sm.wildcards.figure}")
    module.plot(
        load_tree(sm.input.analysis), pd.read_csv(sm.input.metrics), sm.output.png, sm.output.pdf
    )

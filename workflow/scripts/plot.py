"""Render one figure."""

import importlib

import pandas as pd

from nmrnn.io import atomic_paths, load_tree
from nmrnn.runtime import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    module = importlib.import_module(f"nmrnn.plots.{sm.wildcards.figure}")
    analysis, metrics = load_tree(sm.input.analysis), pd.read_csv(sm.input.metrics)
    with atomic_paths(sm.output.png, sm.output.pdf) as (png, pdf):
        module.plot(analysis, metrics, str(png), str(pdf))

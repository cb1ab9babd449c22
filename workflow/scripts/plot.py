"""Render one figure."""

import pandas as pd

from nmrnn.figures import REGISTRY
from nmrnn.io import atomic_paths, load_tree
from nmrnn.runtime import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    figure = REGISTRY[sm.wildcards.figure]
    analysis, metrics = load_tree(sm.input.analysis), pd.read_csv(sm.input.metrics)
    with atomic_paths(sm.output.png, sm.output.pdf) as (png, pdf):
        figure.plot(analysis, metrics, str(png), str(pdf))

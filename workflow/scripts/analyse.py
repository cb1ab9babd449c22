"""Run one figure's analyses on the trained networks."""

import importlib

from nmrnn.io import save_tree
from nmrnn.runtime import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    module = importlib.import_module(f"nmrnn.analysis.{sm.wildcards.figure}")
    save_tree(sm.output[0], module.analyse(sm.params.experiments, sm.params.results_dir))

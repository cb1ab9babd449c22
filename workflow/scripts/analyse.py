"""Run one figure's analysis on the files its rule declares."""

from nmrnn.figures import REGISTRY
from nmrnn.figures.common import RunFiles
from nmrnn.io import save_tree
from nmrnn.runtime import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    figure = REGISTRY[sm.wildcards.figure]
    files = RunFiles.from_lists(
        sm.params.runs,
        {kind: list(sm.input[kind]) for kind in figure.run_files},
        sm.params.data_runs,
        list(sm.input.data),
    )
    analysis = figure.analyse(sm.params.experiments, files)
    save_tree(sm.output[0], analysis, identity={"figure": sm.wildcards.figure})

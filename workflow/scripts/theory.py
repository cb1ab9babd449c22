"""Figure 2: the theory, computed and drawn."""

from nmrnn.io import atomic_paths
from nmrnn.plots.fig2 import make_figure2
from nmrnn.runtime import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    with atomic_paths(sm.output.png, sm.output.pdf, sm.output.metrics) as (png, pdf, metrics):
        make_figure2(str(png), str(pdf), str(metrics))

"""Figure 2: the theory, computed and drawn."""

from nmrnn.pipeline import log_to
from nmrnn.plots.fig2 import make_figure2

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    make_figure2(sm.output.png, sm.output.pdf, sm.output.metrics)

"""The paper's figures and the registry the workflow reads.

Each figure is a package ``nmrnn.figures.figN`` of three modules, run in this order by the
workflow (``rule analyse`` → ``rule plot``; ``rule claims_table`` for the claims):

- ``analyse.py``: ``analyse(experiments, files) -> dict of arrays`` (saved as
  ``analysis/figN.npz``), from the trained networks whose files the rule gives
  (:class:`~nmrnn.figures.common.RunFiles`); Figure 2 computes its theory here.
- ``claims.py``: ``claims(metrics) -> list of claim rows`` from the figure's metrics table (the
  statistics and the table format are :mod:`nmrnn.claims`).
- ``plot.py``: ``plot(analysis, metrics, out_png, out_pdf)`` draws the figure, nothing else.

Shared helpers: :mod:`nmrnn.figures.common` (analysis) and :mod:`nmrnn.figures.style` (drawing).
:data:`REGISTRY` names, per figure, the experiments it draws, its metrics table and its three
functions; the workflow derives its figure names, inputs and wildcard constraints from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nmrnn.figures.fig2 import analyse as fig2_analyse
from nmrnn.figures.fig2 import claims as fig2_claims
from nmrnn.figures.fig2 import plot as fig2_plot
from nmrnn.figures.fig3 import analyse as fig3_analyse
from nmrnn.figures.fig3 import claims as fig3_claims
from nmrnn.figures.fig3 import plot as fig3_plot
from nmrnn.figures.fig4 import analyse as fig4_analyse
from nmrnn.figures.fig4 import claims as fig4_claims
from nmrnn.figures.fig4 import plot as fig4_plot
from nmrnn.figures.fig5 import analyse as fig5_analyse
from nmrnn.figures.fig5 import claims as fig5_claims
from nmrnn.figures.fig5 import plot as fig5_plot


@dataclass(frozen=True)
class Figure:
    """One figure of the paper, as the workflow runs it.

    ``experiments``: the trained experiments it draws (none: computed from theory alone);
    ``table``: its tidy metrics table, ``figures/metrics/<table>.csv`` (made from the per-seed
    metrics of its experiments, or by ``write_table`` from its analysis); ``run_files``: the
    per-seed files of each trained network its analysis reads (outputs of ``export_seed``:
    ``params``, ``losses``, ``meta``), besides the task data of each seed.
    """

    name: str
    experiments: tuple[str, ...]
    table: str
    run_files: tuple[str, ...]
    analyse: Callable
    claims: Callable
    plot: Callable
    write_table: Callable | None = None


REGISTRY: dict[str, Figure] = {
    figure.name: figure
    for figure in (
        Figure(
            name="fig2",
            experiments=(),
            table="theory",
            run_files=(),
            analyse=fig2_analyse.analyse,
            claims=fig2_claims.claims,
            plot=fig2_plot.plot,
            write_table=fig2_analyse.write_table,
        ),
        Figure(
            name="fig3",
            experiments=("mwg",),
            table="mwg",
            run_files=("params",),
            analyse=fig3_analyse.analyse,
            claims=fig3_claims.claims,
            plot=fig3_plot.plot,
        ),
        Figure(
            name="fig4",
            experiments=("multitask", "multitask_transfer"),
            table="multitask",
            run_files=("params",),
            analyse=fig4_analyse.analyse,
            claims=fig4_claims.claims,
            plot=fig4_plot.plot,
        ),
        Figure(
            name="fig5",
            experiments=("eft",),
            table="eft",
            run_files=("params", "losses", "meta"),
            analyse=fig5_analyse.analyse,
            claims=fig5_claims.claims,
            plot=fig5_plot.plot,
        ),
    )
}

# Each metrics table's claim checks (what nmrnn.claims.write_claims is given).
CLAIMS_BY_TABLE: dict[str, Callable] = {f.table: f.claims for f in REGISTRY.values()}

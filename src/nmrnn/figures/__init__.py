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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nmrnn.figures.common import RunFiles
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
from nmrnn.io import save_tree
from nmrnn.runtime import limit_cpu_threads, tune_cpu_codegen


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


def _figure(analyse, claims, plot, experiments, table, run_files, write_table=None) -> Figure:
    """A figure from its package's three modules (``analyse``, ``claims``, ``plot``; the
    package's name is the figure's) and where its data come from (see :class:`Figure`)."""
    name = analyse.__name__.split(".")[-2]
    fns = {"analyse": analyse.analyse, "claims": claims.claims, "plot": plot.plot}
    return Figure(name, tuple(experiments), table, tuple(run_files), **fns, write_table=write_table)


REGISTRY: dict[str, Figure] = {
    figure.name: figure
    for figure in (
        _figure(fig2_analyse, fig2_claims, fig2_plot, (), "theory", (), fig2_analyse.write_table),
        _figure(fig3_analyse, fig3_claims, fig3_plot, ["mwg"], "mwg", ["params"]),
        _figure(
            fig4_analyse,
            fig4_claims,
            fig4_plot,
            ["multitask", "multitask_transfer"],
            "multitask",
            ["params"],
        ),
        _figure(fig5_analyse, fig5_claims, fig5_plot, ["eft"], "eft", ["params", "losses", "meta"]),
    )
}

# Each metrics table's claim checks (what nmrnn.claims.write_claims is given).
CLAIMS_BY_TABLE: dict[str, Callable] = {f.table: f.claims for f in REGISTRY.values()}


def analyse_figure(
    figure: str,
    experiments: Mapping[str, Any],
    runs: Sequence[Any],
    run_files: Mapping[str, Sequence[str]],
    data_runs: Sequence[Any],
    data_files: Sequence[str],
    output: str,
    threads: int | None = None,
) -> None:
    """Run one figure's analysis on the files its rule gives and save it (``rule analyse``).

    ``threads``: as for :func:`nmrnn.steps.train_block`. Like training and evaluation, the
    analysis sizes XLA's thread pool and sets its vector width before JAX's backend starts, so
    its float32 results do not depend on the XLA flags of the shell that started the job."""
    limit_cpu_threads(threads)
    tune_cpu_codegen()
    spec = REGISTRY[figure]
    files = RunFiles.from_lists(
        runs, {kind: list(run_files[kind]) for kind in spec.run_files}, data_runs, data_files
    )
    save_tree(output, spec.analyse(experiments, files), identity={"figure": figure})

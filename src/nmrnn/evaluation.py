"""Scores of trained networks: one seed's tidy metrics rows (one per experiment, arch, seed,
condition) as a pandas DataFrame, from its task's ``evaluation_rows`` (MWG extrapolation,
multitask percent correct, EFT final-step MSE, ...: :mod:`nmrnn.tasks`), checked against the
rows and columns the task declares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from nmrnn.experiments import Experiment
from nmrnn.io import tree_taskdata
from nmrnn.tasks import TASKS
from nmrnn.tasks.common import TaskData

# The columns of one seed's metrics rows, by task, in order (each task's ``columns``). Those in
# its ``may_be_empty`` are NaN (written empty) for a network whose output diverges or never
# rises; every other one always has a value, so an empty one means a cut file.
COLUMNS = {name: task.columns for name, task in TASKS.items()}
MAY_BE_EMPTY = frozenset().union(*(task.may_be_empty for task in TASKS.values()))


def columns_of(exp: Experiment) -> tuple[str, ...]:
    """The metrics columns of one experiment: :data:`COLUMNS` of its task, with ``checkpoint``
    (final / selected) after ``seed`` when the experiment has checkpoint selection (EFT always
    has the column)."""
    return exp.task.metric_columns(exp.settings)


def expected_rows(exp: Experiment, arch: str, reference: bool = False) -> int:
    """The number of rows :func:`evaluate` gives for one seed (checked there), as its task
    declares (``Task.expected_rows``): MWG one per test interval; multitask one per task of the
    generated test set, plus one per task of the authors' frozen set when it is scored
    (``reference``); EFT one for the final parameters and, with checkpoint selection
    (``select_best``), one for the selected ones."""
    exp.arch(arch)  # one of its architectures
    return exp.task.expected_rows(exp.settings, reference)


def expected_table(exp: Experiment, arch: str) -> dict:
    """What one seed's ``metrics.csv`` must hold, for :func:`nmrnn.steps.collect_tables`:
    ``columns`` in order, the ``required`` ones (never empty) and the allowed row counts
    (``rows``: the multitask ones with and without the optional authors' frozen test set)."""
    columns = columns_of(exp)
    may_be_empty = exp.task.may_be_empty
    counts = {expected_rows(exp, arch, ref) for ref in (False, True)}
    return {
        "columns": list(columns),
        "required": [c for c in columns if c not in may_be_empty],
        "rows": sorted(counts),
    }


def evaluate(
    exp: Experiment,
    arch: str,
    seed: int,
    variables: Mapping[str, Any],
    data_tree: Mapping[str, Any],
    reference_testset: str | None = None,
) -> pd.DataFrame:
    """Tidy scores of one trained seed on its experiment's test set(s).

    ``data_tree``: the seed's task data, as a tree (:func:`nmrnn.io.load_tree`) or as TaskData
    per split (:func:`nmrnn.io.load_task_data`). The rows are checked against
    :func:`expected_rows` and :data:`COLUMNS`, which the metrics tables are checked with."""
    spec = exp.arch(arch)
    test = data_tree["test"]
    test = test if isinstance(test, TaskData) else tree_taskdata(test)
    task = exp.task
    ref = task.reference_set(exp.settings, reference_testset) if reference_testset else None
    frame = task.evaluation_rows(
        exp.settings,
        spec.model,
        variables,
        test,
        where=f"{exp.name}/{arch} seed {seed}",
        reference=ref,
        n_trainable=lambda: spec.n_trainable_last_stage,
    )
    frame.insert(0, "seed", seed)
    frame.insert(0, "arch", arch)
    frame.insert(0, "experiment", exp.name)
    frame["n_parameters"] = spec.n_parameters
    rows = expected_rows(exp, arch, reference=ref is not None)
    columns = columns_of(exp)
    if set(frame.columns) == set(columns):
        frame = frame[list(columns)]
    if len(frame) != rows or tuple(frame.columns) != columns:
        raise RuntimeError(
            f"evaluation of {exp.name}/{arch} seed {seed} gave {len(frame)} rows with columns "
            f"{list(frame.columns)}; expected_rows and columns_of say {rows} with {columns}"
        )
    return frame

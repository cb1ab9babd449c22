"""Scores of trained networks: MWG extrapolation, multitask percent correct, EFT final-step MSE.

Each scorer returns tidy rows (one per experiment, arch, seed, condition) as a pandas DataFrame.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
import pandas as pd

from nmrnn import experiments as ex
from nmrnn.architectures import build_model
from nmrnn.io import tree_taskdata
from nmrnn.tasks import multitask, mwg
from nmrnn.tasks.common import TaskData

RAMP_LEVEL = 0.9  # produced interval: first crossing of this fraction of the rise after go

# The columns of one seed's metrics rows, by task, in order. Those in MAY_BE_EMPTY are NaN
# (written empty) for a network whose output diverges or never rises; every other one always
# has a value, so an empty one means a cut file.
COLUMNS = {
    "mwg": ("experiment", "arch", "seed", "interval", "group", "mse", "produced_interval",
            "n_parameters"),
    "multitask": ("experiment", "arch", "seed", "stage", "testset", "task", "trials",
                  "percent_correct", "percent_correct_arctan", "loss", "n_trainable",
                  "n_parameters"),
    "eft": ("experiment", "arch", "seed", "checkpoint", "mse", "n_parameters"),
}  # fmt: skip
COLUMNS["multitask_transfer"] = COLUMNS["multitask"]


def columns_of(exp: Mapping[str, Any]) -> tuple[str, ...]:
    """The metrics columns of one experiment: :data:`COLUMNS` of its task, with ``checkpoint``
    (final / selected) after ``seed`` for an MWG or multitask experiment with checkpoint
    selection (EFT always has the column)."""
    columns = COLUMNS[exp["task"]]
    if exp["task"] != "eft" and "select_best" in exp:
        return columns[:3] + ("checkpoint",) + columns[3:]
    return columns


MAY_BE_EMPTY = frozenset({"mse", "produced_interval", "loss"})
# Tasks in the part of the authors' frozen test set each multitask experiment is scored on.
REFERENCE_TASKS = {"multitask": 3, "multitask_transfer": 1}


def selected_variables(variables: Mapping[str, Any]) -> dict | None:
    """The selected (lowest validation loss) variables of a seed's ``params.npz`` tree, or None
    when its run had no checkpoint selection."""
    if "selected_params" not in variables:
        return None
    return {"params": variables["selected_params"], "constants": variables["constants"]}


def run(model, variables: Mapping[str, Any], inputs) -> dict[str, np.ndarray]:
    """Trajectories of one trained network (no seed axis) on inputs (batch, time, U)."""
    variables = {k: {n: jnp.asarray(a) for n, a in v.items()} for k, v in variables.items()}
    return {k: np.asarray(v) for k, v in model.apply(variables, jnp.asarray(inputs)).items()}


def produced_interval(y: np.ndarray, t_go: np.ndarray, level: float = RAMP_LEVEL) -> np.ndarray:
    """Interval a network produced on MWG trials.

    y: (batch, time) output; t_go: (batch,). The output's first crossing of ``level`` of its rise
    after go (from y at go to its maximum after go), divided by ``level``, so a perfect ramp of
    length I gives I. NaN if the output never rises after go.
    """
    out = np.full(y.shape[0], np.nan)
    for b in range(y.shape[0]):
        after = y[b, int(t_go[b]) :]
        rise = after.max() - after[0]
        if rise <= 0:
            continue
        crossing = np.argmax(after >= after[0] + level * rise)
        out[b] = crossing / level
    return out


def trial_mse(y: np.ndarray, data: TaskData) -> np.ndarray:
    """Masked MSE of each trial: (batch,)."""
    mask = np.asarray(data.mask)
    err = mask * (y - np.asarray(data.targets)) ** 2
    return err.sum(axis=(1, 2)) / mask.sum(axis=(1, 2))


def mwg_rows(model, variables, test: TaskData) -> pd.DataFrame:
    """Per-interval MSE, group (shorter/trained/longer) and produced interval on the test set."""
    y = run(model, variables, test.inputs)["y"]
    intervals = np.asarray(test.events["interval"]).astype(int)
    return pd.DataFrame(
        {
            "interval": intervals,
            "group": [mwg.interval_group(int(i)) for i in intervals],
            "mse": trial_mse(y, test),
            "produced_interval": produced_interval(y[..., 0], np.asarray(test.events["t_go"])),
        }
    )


def multitask_rows(model, variables, test: TaskData, testset: str) -> pd.DataFrame:
    """Percent correct (atan2 and the authors' arctan rule) and loss per task."""
    y = run(model, variables, test.inputs)["y"]
    tasks = np.asarray(test.events["task"]).astype(int)
    ok_atan2 = np.asarray(multitask.correct_trials(jnp.asarray(y), test, "atan2"))
    ok_arctan = np.asarray(multitask.correct_trials(jnp.asarray(y), test, "arctan"))
    losses = trial_mse(y, test)
    rows = []
    for t in np.unique(tasks):
        sel = tasks == t
        rows.append(
            {
                "testset": testset,
                "task": multitask.TASK_NAMES[t],
                "trials": int(sel.sum()),
                "percent_correct": 100.0 * ok_atan2[sel].mean(),
                "percent_correct_arctan": 100.0 * ok_arctan[sel].mean(),
                "loss": losses[sel].mean(),
            }
        )
    return pd.DataFrame(rows)


def eft_rows(model, variables, test: TaskData) -> pd.DataFrame:
    """Test MSE of the final parameters and, with checkpoint selection, of the selected ones
    (column ``checkpoint``: ``final`` / ``selected``)."""
    rows = []
    candidates = {"final": variables, "selected": selected_variables(variables)}
    for name, chosen in candidates.items():
        if chosen is not None:
            y = run(model, chosen, test.inputs)["y"]
            rows.append({"checkpoint": name, "mse": float(trial_mse(y, test).mean())})
    return pd.DataFrame(rows)


def reference_subset(folder: str | Path, experiment_task: str) -> TaskData | None:
    """The authors' frozen test set restricted as they used it: trials 0–74 with input rows 0–5
    for the three training tasks, trials 75–99 with all 7 rows for Memory Anti. None if absent."""
    folder = Path(folder)
    if not all((folder / f).exists() for f in multitask.REFERENCE_FILES):
        return None
    ref = multitask.load_reference_testset(folder)
    if experiment_task == "multitask":
        sub = TaskData(
            *(np.asarray(a)[:75] for a in ref[:3]),
            {k: np.asarray(v)[:75] for k, v in ref.events.items()},
        )
        return sub._replace(inputs=sub.inputs[..., :6])
    return TaskData(
        *(np.asarray(a)[75:] for a in ref[:3]),
        {k: np.asarray(v)[75:] for k, v in ref.events.items()},
    )


def expected_rows(
    experiments: Mapping[str, Any], experiment: str, arch: str, reference: bool = False
) -> int:
    """The number of rows :func:`evaluate` gives for one seed (checked there): MWG one per test
    interval; multitask one per task of the generated test set, plus one per task of the authors'
    frozen set when it is scored (``reference``); EFT one for the final parameters and, with
    checkpoint selection (``select_best``), one for the selected ones."""
    exp = experiments[experiment]
    if arch not in exp["archs"]:
        raise ValueError(f"experiment {experiment!r} has no architecture {arch!r}")
    task = exp["task"]
    if task == "mwg":
        return len(mwg.TEST_INTERVALS) * (2 if "select_best" in exp else 1)
    if task in REFERENCE_TASKS:
        generated = len(set(exp.get("tasks", (0, 1, 2)))) if task == "multitask" else 1
        per_checkpoint = generated + (REFERENCE_TASKS[task] if reference else 0)
        return per_checkpoint * (2 if "select_best" in exp else 1)
    if task == "eft":
        return 2 if "select_best" in exp else 1
    raise ValueError(f"unknown task {task!r}")


def expected_table(experiments: Mapping[str, Any], experiment: str, arch: str) -> dict:
    """What one seed's ``metrics.csv`` must hold, for :func:`nmrnn.steps.collect_tables`:
    ``columns`` in order, the ``required`` ones (never empty) and the allowed row counts
    (``rows``: the multitask ones with and without the optional authors' frozen test set)."""
    columns = columns_of(experiments[experiment])
    counts = {expected_rows(experiments, experiment, arch, ref) for ref in (False, True)}
    return {
        "columns": list(columns),
        "required": [c for c in columns if c not in MAY_BE_EMPTY],
        "rows": sorted(counts),
    }


def _per_checkpoint(exp: Mapping[str, Any], variables, rows, where: str) -> pd.DataFrame:
    """``rows(variables)`` of the final parameters; with checkpoint selection (``select_best``)
    also of the selected ones, under a ``checkpoint`` column (``final`` / ``selected``)."""
    if "select_best" not in exp:
        return rows(variables)
    selected = selected_variables(variables)
    if selected is None:
        raise ValueError(f"{where}: select_best is set but its parameters hold no selection")
    frames = []
    for name, chosen in (("final", variables), ("selected", selected)):
        frame = rows(chosen)
        frame.insert(0, "checkpoint", name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def evaluate(
    experiments: Mapping[str, Any],
    experiment: str,
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
    exp = experiments[experiment]
    model = build_model(ex.model_settings(experiments, experiment, arch))
    test = data_tree["test"]
    test = test if isinstance(test, TaskData) else tree_taskdata(test)
    task = exp["task"]
    ref = None
    where = f"{experiment}/{arch} seed {seed}"
    if task == "mwg":
        frame = _per_checkpoint(exp, variables, lambda v: mwg_rows(model, v, test), where)
    elif task in ("multitask", "multitask_transfer"):
        ref = reference_subset(reference_testset, task) if reference_testset else None

        def rows(chosen):
            part = [multitask_rows(model, chosen, test, "generated")]
            if ref is not None:
                part.append(multitask_rows(model, chosen, ref, "authors_frozen"))
            return pd.concat(part, ignore_index=True)

        frame = _per_checkpoint(exp, variables, rows, where)
        frame.insert(0, "stage", "transfer" if task == "multitask_transfer" else "train_tasks")
        frame["n_trainable"] = ex.n_trainable(experiments, experiment, arch)
    elif task == "eft":
        frame = eft_rows(model, variables, test)
    else:
        raise ValueError(f"unknown task {task!r}")
    frame.insert(0, "seed", seed)
    frame.insert(0, "arch", arch)
    frame.insert(0, "experiment", experiment)
    frame["n_parameters"] = ex.n_parameters(experiments, experiment, arch)
    rows = expected_rows(experiments, experiment, arch, reference=ref is not None)
    columns = columns_of(exp)
    if set(frame.columns) == set(columns):
        frame = frame[list(columns)]
    if len(frame) != rows or tuple(frame.columns) != columns:
        raise RuntimeError(
            f"evaluation of {experiment}/{arch} seed {seed} gave {len(frame)} rows with columns "
            f"{list(frame.columns)}; expected_rows and columns_of say {rows} with {columns}"
        )
    return frame

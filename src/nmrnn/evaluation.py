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


def evaluate(
    experiments: Mapping[str, Any],
    experiment: str,
    arch: str,
    seed: int,
    variables: Mapping[str, Any],
    data_tree: Mapping[str, Any],
    reference_testset: str | None = None,
) -> pd.DataFrame:
    """Tidy scores of one trained seed on its experiment's test set(s)."""
    exp = experiments[experiment]
    model = build_model(ex.model_settings(experiments, experiment, arch))
    test = tree_taskdata(data_tree["test"])
    task = exp["task"]
    if task == "mwg":
        frame = mwg_rows(model, variables, test)
    elif task in ("multitask", "multitask_transfer"):
        frames = [multitask_rows(model, variables, test, "generated")]
        ref = reference_subset(reference_testset, task) if reference_testset else None
        if ref is not None:
            frames.append(multitask_rows(model, variables, ref, "authors_frozen"))
        frame = pd.concat(frames, ignore_index=True)
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
    return frame

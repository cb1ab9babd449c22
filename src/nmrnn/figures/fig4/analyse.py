"""Figure 4 analyses (the four-task set and transfer to Memory Anti) and the claims of SPEC §6.3.

``analyse`` runs the trained networks of the ``multitask`` (stage 1: Delay Pro, Delay Anti,
Memory Pro) and ``multitask_transfer`` (stage 2: Memory Anti from a new context column)
experiments and returns what the figure draws besides the metrics table: one example trial per
task, the NM-RNN's gains s(t) per task, a PCA of the NM-RNN's fast state x across tasks, and the
outputs of the transferred networks on Memory Anti, from the files the workflow rule gives
(:class:`RunFiles`). Claim 3 is checked in :mod:`nmrnn.figures.fig4.claims`; the figure is drawn
by :mod:`nmrnn.figures.fig4.plot`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nmrnn.experiments import Experiment, parse
from nmrnn.figures.common import RunFiles, jnp_tree, pca, runner
from nmrnn.io import load_tree, tree_taskdata
from nmrnn.tasks import multitask as mt
from nmrnn.tasks.common import TaskData

STAGE1, TRANSFER = "multitask", "multitask_transfer"
ARCH_ORDER = ("nmrnn", "lrrnn", "vanilla", "lstm")
OUTPUT_ARCHS = ("nmrnn", "lrrnn")  # panel F
N_PCS = 6
EXAMPLE_KEY = 4  # PRNG key of panel A's example trials (one θ shared by the four tasks)
EPOCHS = ("pre_go", "response")  # PCA time points: last step before go, last step of the trial


# ----------------------------------------------------------------------------- pure helpers


def separation(scores: np.ndarray, group_a: np.ndarray, group_b: np.ndarray) -> np.ndarray:
    """|mean_a - mean_b| / pooled standard deviation, per column of scores (n, P): (P,).

    group_a, group_b: (n,) bool masks. NaN where a group has fewer than 2 rows or the pooled
    standard deviation is 0.
    """
    scores = np.asarray(scores, np.float64)
    a, b = scores[np.asarray(group_a, bool)], scores[np.asarray(group_b, bool)]
    if len(a) < 2 or len(b) < 2:
        return np.full(scores.shape[1], np.nan)
    pooled = ((len(a) - 1) * a.var(0, ddof=1) + (len(b) - 1) * b.var(0, ddof=1)) / (
        len(a) + len(b) - 2
    )
    sd = np.sqrt(pooled)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, np.abs(a.mean(0) - b.mean(0)) / sd, np.nan)


def angle_r2(scores: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Fraction of each column's variance explained by a linear fit on [1, cos angle, sin angle].

    scores: (n, P); angle: (n,) radians. Returns (P,) in [0, 1] (NaN for a constant column).
    """
    scores = np.asarray(scores, np.float64)
    angle = np.asarray(angle, np.float64)
    design = np.stack([np.ones_like(angle), np.cos(angle), np.sin(angle)], 1)
    coef, *_ = np.linalg.lstsq(design, scores, rcond=None)
    resid = scores - design @ coef
    total = ((scores - scores.mean(0)) ** 2).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 1.0 - (resid**2).sum(0) / total, np.nan)


def median_index(values: Sequence[float]) -> int:
    """Index of the lower median of values (NaNs rank lowest): the representative seed."""
    v = np.asarray(values, np.float64)
    order = np.argsort(np.where(np.isfinite(v), v, -np.inf), kind="stable")
    return int(order[(len(v) - 1) // 2])


def typical_trial(t_go: np.ndarray, tasks: np.ndarray, task: int) -> int:
    """Index of the trial of ``task`` whose go time is closest to the task's median (-1: none)."""
    idx = np.flatnonzero(np.asarray(tasks) == task)
    if len(idx) == 0:
        return -1
    go = np.asarray(t_go)[idx]
    return int(idx[np.argmin(np.abs(go - np.median(go)))])


def decoded_angle(y: np.ndarray) -> np.ndarray:
    """Angle read out by atan2(sin output, cos output) in [0, 2π). y: (..., 3) → (...)."""
    return np.mod(np.arctan2(y[..., 1], y[..., 2]), 2 * np.pi)


def example_trials(key: int = EXAMPLE_KEY) -> TaskData:
    """One trial of each of the four tasks, 4 context channels, the same stimulus angle θ."""
    trials = [mt.sample_trials(jax.random.key(key), jnp.asarray([t]), n_contexts=4)
              for t in range(4)]  # fmt: skip
    return jax.tree.map(lambda *a: np.concatenate([np.asarray(x) for x in a]), *trials)


# ----------------------------------------------------------------------------- loading


def _experiment_names(experiments: Mapping[str, Any]) -> tuple[str | None, str | None]:
    stage1 = STAGE1 if STAGE1 in experiments else None
    transfer = TRANSFER if TRANSFER in experiments else None
    return stage1, transfer


def _ordered(archs) -> list[str]:
    archs = list(archs)
    return [a for a in ARCH_ORDER if a in archs] + sorted(a for a in archs if a not in ARCH_ORDER)


class _Run:
    """Trained networks and task data of one experiment, loaded lazily."""

    def __init__(self, experiments, experiment, files: RunFiles, parsed: dict[str, Experiment]):
        self.experiments, self.experiment, self.files = experiments, experiment, files
        self.parsed = parsed  # shared by the runs of one analysis: a source is read once
        self.seeds = list(range(int(experiments[experiment]["seeds"])))
        self.archs = _ordered(experiments[experiment]["archs"])
        self._data, self._runs, self._apply = {}, {}, {}

    def model(self, arch):
        # Read when a network is first needed.
        return parse(self.experiments, self.experiment, self.parsed).arch(arch).model

    def variables(self, arch, seed):
        return load_tree(self.files.file(self.experiment, arch, seed, "params"))

    def test(self, seed) -> TaskData:
        if seed not in self._data:
            tree = load_tree(self.files.task_data(self.experiment, seed))
            self._data[seed] = tree_taskdata(tree["test"])
        return self._data[seed]

    def trajectories(self, arch, seed) -> dict[str, np.ndarray]:
        """Trajectories (y, x, ...) of one network on its seed's whole test set (cached)."""
        if (arch, seed) not in self._runs:
            if arch not in self._apply:  # one compilation per architecture, shared by seeds
                self._apply[arch] = runner(self.model(arch))
            variables = jnp_tree(self.variables(arch, seed))
            out = self._apply[arch](variables, jnp.asarray(self.test(seed).inputs))
            self._runs[arch, seed] = {k: np.asarray(v) for k, v in out.items()}
        return self._runs[arch, seed]

    def percent_correct(self, arch, seed) -> float:
        """Percent correct (atan2 rule) over the whole test set; NaN if the files are missing."""
        try:
            y = self.trajectories(arch, seed)["y"]
        except FileNotFoundError:
            return np.nan
        test = self.test(seed)
        return 100.0 * float(mt.percent_correct(jnp.asarray(y), _jnp_events(test)))

    def representative_seed(self, arch) -> int:
        return self.seeds[median_index([self.percent_correct(arch, s) for s in self.seeds])]


def _jnp_events(data: TaskData) -> TaskData:
    events = {k: jnp.asarray(v) for k, v in data.events.items()}
    return data._replace(targets=jnp.asarray(data.targets), events=events)


def _events(data: TaskData, idx) -> dict[str, np.ndarray]:
    keys = ("task", "theta", "answer", "t_stim_on", "t_stim_off", "t_go")
    return {k: np.asarray(data.events[k])[idx] for k in keys}


# ----------------------------------------------------------------------------- panels


def _panel_tasks() -> dict:
    data = example_trials()
    return {"inputs": data.inputs, "targets": data.targets, **_events(data, slice(None))}


def _panel_gains(stage1: _Run | None, transfer: _Run | None, seed: int) -> dict:
    """s(t) of one typical trial of each task (tasks 0-2: stage-1 network; 3: transferred)."""
    rows = []
    for run_, tasks in ((stage1, (0, 1, 2)), (transfer, (mt.MEMORY_ANTI,))):
        if run_ is None or "nmrnn" not in run_.archs or seed not in run_.seeds:
            continue
        test = run_.test(seed)
        picks = [typical_trial(test.events["t_go"], test.events["task"], t) for t in tasks]
        picks = [p for p in picks if p >= 0]
        if not picks:
            continue
        out = run_.trajectories("nmrnn", seed)
        for p in picks:
            rows.append({"s": out["s"][p], "y": out["y"][p], "targets": test.targets[p],
                         "trial": p, **_events(test, p)})  # fmt: skip
    if not rows:
        return {}
    return {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}


def _pca_epoch(x: np.ndarray, ev: dict, steps: np.ndarray) -> dict:
    states = x[np.arange(x.shape[0]), steps]
    fit = pca(states, N_PCS)
    task = ev["task"]
    pro, anti = ~mt.is_anti(task), mt.is_anti(task)
    r2_theta = angle_r2(fit["scores"], ev["theta"])
    ring = np.sort(np.argsort(-np.nan_to_num(r2_theta, nan=-1.0), kind="stable")[:2])
    return {
        "scores": fit["scores"],
        "explained": fit["explained"],
        "step": steps,
        "separation_pro_anti": separation(fit["scores"], pro, anti),
        "separation_dp_da": separation(fit["scores"], task == mt.DELAY_PRO, task == mt.DELAY_ANTI),
        "separation_delay_memory": separation(
            fit["scores"], ~mt.is_memory(task), mt.is_memory(task)
        ),
        "angle_r2_theta": r2_theta,
        "angle_r2_answer": angle_r2(fit["scores"], ev["answer"]),
        "ring_pcs": ring,
    }


def _panel_pca(stage1: _Run | None, seed: int) -> dict:
    """PCA of the stage-1 NM-RNN's x on its test trials, at the last step before go and at the
    last step of the response; per-PC Pro/Anti separation and angle tuning."""
    if stage1 is None or "nmrnn" not in stage1.archs:
        return {}
    test = stage1.test(seed)
    x = stage1.trajectories("nmrnn", seed)["x"]
    ev = _events(test, slice(None))
    T = x.shape[1]
    steps = {
        "pre_go": np.clip(ev["t_go"] - 1, 0, T - 1),
        "response": np.full(len(ev["t_go"]), T - 1),
    }
    return {**ev, **{epoch: _pca_epoch(x, ev, steps[epoch]) for epoch in EPOCHS}}


def _panel_outputs(transfer: _Run | None) -> dict:
    """Per architecture of panel F, its representative seed's outputs on the transfer test set."""
    if transfer is None:
        return {}
    out = {}
    archs = [a for a in OUTPUT_ARCHS if a in transfer.archs] or transfer.archs[:2]
    for arch in archs:
        seed = transfer.representative_seed(arch)
        try:
            y = transfer.trajectories(arch, seed)["y"]
        except FileNotFoundError:
            continue
        test = transfer.test(seed)
        ok = np.asarray(mt.correct_trials(jnp.asarray(y), _jnp_events(test)))
        p = typical_trial(test.events["t_go"], test.events["task"], mt.MEMORY_ANTI)
        out[arch] = {
            "seed": np.asarray(seed),
            "trial": np.asarray(p),
            "y": y[p],
            "targets": np.asarray(test.targets[p]),
            **{k: np.asarray(v) for k, v in _events(test, p).items()},
            "decoded_last": decoded_angle(y[:, -1]),
            "answer_all": np.asarray(test.events["answer"]),
            "correct": ok,
            "percent_correct": np.asarray(100.0 * ok.mean()),
        }
    return out


def analyse(experiments: Mapping[str, Any], files: RunFiles) -> dict:
    """Everything Figure 4 draws besides the metrics table (a nested dict of numpy arrays).

    Keys: ``tasks`` (panel A: one trial per task), ``gains`` (D: NM-RNN s(t), one typical trial
    per task), ``pca`` (E: the stage-1 NM-RNN's x at the last step before go and at the end of
    the response, PCs, explained variance, per-PC Pro/Anti separation and angle tuning),
    ``outputs`` (F: per architecture, Memory Anti outputs after transfer), ``nmrnn_seed`` (the
    NM-RNN seed of D and E: the one with the median Memory Anti accuracy after transfer, or the
    median stage-1 accuracy without a transfer run). Panels whose networks are absent are empty.
    ``files``: the parameters of every (experiment, arch, seed) and the task data of every seed.
    """
    name1, name2 = _experiment_names(experiments)
    parsed: dict[str, Experiment] = {}
    stage1 = _Run(experiments, name1, files, parsed) if name1 else None
    transfer = _Run(experiments, name2, files, parsed) if name2 else None
    chooser = transfer if transfer and "nmrnn" in transfer.archs else stage1
    seed = chooser.representative_seed("nmrnn") if chooser and "nmrnn" in chooser.archs else -1
    return {
        "tasks": _panel_tasks(),
        "task_names": np.asarray(mt.TASK_NAMES),
        "nmrnn_seed": np.asarray(seed),
        "gains": _panel_gains(stage1, transfer, seed) if seed >= 0 else {},
        "pca": _panel_pca(stage1, seed) if seed >= 0 else {},
        "outputs": _panel_outputs(transfer),
    }

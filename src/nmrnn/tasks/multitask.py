"""The four-task set (Delay Pro, Delay Anti, Memory Pro, Memory Anti; Duncker et al. 2020):
vectorised trial sampling, training and transfer pools, accuracy, and the authors' test set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from nmrnn.errors import ConfigError
from nmrnn.tasks.common import Task, TaskData, per_checkpoint, run, trial_mse

TASK_NAMES = ("delay_pro", "delay_anti", "memory_pro", "memory_anti")
DELAY_PRO, DELAY_ANTI, MEMORY_PRO, MEMORY_ANTI = range(4)
T = 100
N_SENSORY = 3  # input channels: fixation, sin(theta), cos(theta); context one-hots follow
SENSORY_NAMES = ("fixation", "sin_theta", "cos_theta")
OUTPUT_NAMES = ("fixation", "sin_answer", "cos_answer")
FIXATION_TARGET = 0.8
TOLERANCE = jnp.pi / 10  # angular error allowed for a correct trial

# Epoch durations in abstract units, (low, high) of a uniform draw, before rescaling to T steps.
FIXATION_RANGE = (0.3, 0.7)
DELAY_TASK_STIMULUS_RANGE = (0.2, 1.5)  # stimulus-only period before go (stimulus stays on)
MEMORY_STIMULUS_RANGE = (0.2, 1.6)
MEMORY_DELAY_RANGE = (0.2, 1.6)
RESPONSE_RANGE = (0.3, 0.7)


def is_memory(task_ids: jax.Array) -> jax.Array:
    """True for Memory Pro / Memory Anti. task_ids: (batch,) ints."""
    return task_ids >= MEMORY_PRO


def is_anti(task_ids: jax.Array) -> jax.Array:
    """True for the Anti tasks. task_ids: (batch,) ints."""
    return task_ids % 2 == 1


def _uniform(key, shape, bounds_low, bounds_high):
    return bounds_low + (bounds_high - bounds_low) * jax.random.uniform(key, shape)


def sample_trials(
    key: jax.Array,
    task_ids,
    n_contexts: int = 4,
    T: int = T,
    noise_std: float = 0.0,
) -> TaskData:
    """Sample one trial of the given task for each entry of task_ids (vectorised over trials).

    task_ids: (batch,) ints in [0, n_contexts). Epoch durations are drawn in abstract units and
    each boundary c is placed at step ceil(c / total * T), so the epochs exactly tile T steps.
    Returns inputs (batch, T, 3 + n_contexts) = [fixation, sin theta, cos theta, one-hot context],
    with N(0, noise_std^2) added to the 3 sensory channels; targets (batch, T, 3) = [0.8 before
    go / 0 after, sin and cos of the answer from go on]; mask of ones. events (batch,): task,
    theta, answer (in [0, 2 pi)), t_stim_on, t_stim_off (T for delay tasks), t_go, and the
    abstract durations dur_fixation, dur_stimulus, dur_delay (0 for delay tasks), dur_response.
    """
    _check_trial_settings(task_ids, n_contexts, noise_std)
    return _sample_trials(key, task_ids, n_contexts, T, noise_std)


@partial(jax.jit, static_argnames=("n_contexts", "T"))
def _sample_trials(
    key: jax.Array,
    task_ids,
    n_contexts: int = 4,
    T: int = T,
    noise_std: float = 0.0,
) -> TaskData:
    """The jitted body of :func:`sample_trials` (arguments checked there)."""
    task_ids = jnp.atleast_1d(jnp.asarray(task_ids, dtype=jnp.int32))
    n = task_ids.shape[0]
    k_theta, k_fix, k_stim, k_delay, k_resp, k_noise = jax.random.split(key, 6)
    memory, anti = is_memory(task_ids), is_anti(task_ids)

    theta = jax.random.uniform(k_theta, (n,), maxval=2 * jnp.pi)
    answer = jnp.mod(theta + jnp.pi * anti, 2 * jnp.pi)

    dur_fix = _uniform(k_fix, (n,), *FIXATION_RANGE)
    stim_high = jnp.where(memory, MEMORY_STIMULUS_RANGE[1], DELAY_TASK_STIMULUS_RANGE[1])
    dur_stim = _uniform(k_stim, (n,), MEMORY_STIMULUS_RANGE[0], stim_high)
    dur_delay = jnp.where(memory, _uniform(k_delay, (n,), *MEMORY_DELAY_RANGE), 0.0)
    dur_resp = _uniform(k_resp, (n,), *RESPONSE_RANGE)
    total = dur_fix + dur_stim + dur_delay + dur_resp

    def boundary(c):  # first step at or after the rescaled boundary c / total * T
        return jnp.clip(jnp.ceil(c / total * T), 0, T).astype(jnp.int32)

    t_stim_on = boundary(dur_fix)
    t_stim_off = jnp.where(memory, boundary(dur_fix + dur_stim), T).astype(jnp.int32)
    t_go = boundary(dur_fix + dur_stim + dur_delay)

    t = jnp.arange(T)[None, :]
    before_go = (t < t_go[:, None]).astype(jnp.float32)
    stim_on = ((t >= t_stim_on[:, None]) & (t < t_stim_off[:, None])).astype(jnp.float32)
    sensory = jnp.stack(
        [before_go, stim_on * jnp.sin(theta)[:, None], stim_on * jnp.cos(theta)[:, None]], -1
    )
    sensory = sensory + noise_std * jax.random.normal(k_noise, sensory.shape)
    context = jnp.broadcast_to(jax.nn.one_hot(task_ids, n_contexts)[:, None, :], (n, T, n_contexts))
    inputs = jnp.concatenate([sensory, context], axis=-1).astype(jnp.float32)

    after_go = 1.0 - before_go
    targets = jnp.stack(
        [
            FIXATION_TARGET * before_go,
            after_go * jnp.sin(answer)[:, None],
            after_go * jnp.cos(answer)[:, None],
        ],
        -1,
    ).astype(jnp.float32)
    events = {
        "task": task_ids,
        "theta": theta,
        "answer": answer,
        "t_stim_on": t_stim_on,
        "t_stim_off": t_stim_off,
        "t_go": t_go,
        "dur_fixation": dur_fix,
        "dur_stimulus": dur_stim,
        "dur_delay": dur_delay,
        "dur_response": dur_resp,
    }
    return TaskData(inputs, targets, jnp.ones_like(targets), events)


def _check_trial_settings(task_ids, n_contexts, noise_std) -> None:
    """Concrete task ids are contexts 0..n_contexts-1 (another id gives a trial of no task: an
    all-zero or missing context column); the noise level is a finite number >= 0."""
    if isinstance(n_contexts, bool) or not isinstance(n_contexts, int | np.integer):
        raise ValueError(f"multitask: n_contexts must be a whole number, got {n_contexts!r}")
    if not isinstance(task_ids, jax.core.Tracer):
        ids = np.atleast_1d(np.asarray(task_ids))
        bad = (ids < 0) | (ids >= n_contexts) | (ids != np.round(ids))
        if ids.size == 0 or np.any(bad):
            shown = ids[bad][:3].tolist() if ids.size else "none"
            raise ValueError(
                f"multitask: task ids must be whole numbers 0..{n_contexts - 1} (one per "
                f"context), got {shown}"
            )
    if not isinstance(noise_std, jax.core.Tracer) and not (
        np.ndim(noise_std) == 0 and np.isfinite(noise_std) and noise_std >= 0
    ):
        raise ValueError(f"multitask: noise_std must be a finite number >= 0, got {noise_std!r}")


def training_pool(
    key: jax.Array,
    n_per_task: int,
    tasks: Sequence[int] = (DELAY_PRO, DELAY_ANTI, MEMORY_PRO),
    n_contexts: int = 3,
    T: int = T,
    noise_std: float = 0.0,
) -> TaskData:
    """A fixed pool of n_per_task trials of each task in `tasks`, shuffled.

    Returns TaskData with batch = n_per_task * len(tasks) and 3 + n_contexts input channels.
    """
    if (
        isinstance(n_per_task, bool)
        or not isinstance(n_per_task, int | np.integer)
        or n_per_task < 1
    ):
        raise ValueError(f"multitask: n_per_task must be a whole number >= 1, got {n_per_task!r}")
    k_order, k_trials = jax.random.split(key)
    task_ids = jnp.asarray(np.repeat(np.asarray(tasks, dtype=np.int32), n_per_task))
    task_ids = jax.random.permutation(k_order, task_ids)
    return sample_trials(k_trials, task_ids, n_contexts, T, noise_std)


@partial(jax.jit, static_argnames=("n", "n_contexts", "T"))
def transfer_pool(
    key: jax.Array,
    n: int = 1000,
    n_contexts: int = 4,
    T: int = T,
    noise_std: float = 0.0,
) -> TaskData:
    """n Memory Anti trials cued by the new context column (index 3 + MEMORY_ANTI = 6).

    Returns TaskData with inputs (n, T, 3 + n_contexts). Pass the result's inputs through
    `noisy_old_contexts` to reproduce the retraining inputs.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:  # static: checked when traced
        raise ValueError(f"multitask: n must be a whole number of trials >= 1, got {n!r}")
    return sample_trials(key, jnp.full((n,), MEMORY_ANTI, jnp.int32), n_contexts, T, noise_std)


def noisy_old_contexts(
    key: jax.Array, inputs: jax.Array, old_channels: Sequence[int], std: float = 0.1
) -> jax.Array:
    """Replace the listed (absolute) input channels by i.i.d. N(0, std^2) noise.

    inputs: (batch, T, U); old_channels: e.g. (3, 4, 5) for the three training contexts.
    Returns an array of the same shape.
    """
    idx = jnp.asarray(old_channels, dtype=jnp.int32)
    noise = std * jax.random.normal(key, inputs.shape[:-1] + (idx.shape[0],), inputs.dtype)
    return inputs.at[..., idx].set(noise)


def _circular_distance(a: jax.Array, b: jax.Array, period: float) -> jax.Array:
    d = jnp.mod(a - b, period)
    return jnp.minimum(d, period - d)


@partial(jax.jit, static_argnames=("decoder",))
def correct_trials(outputs: jax.Array, data: TaskData, decoder: str = "atan2") -> jax.Array:
    """Per-trial correctness: fixation output > 0.5 at every step before go AND the angle decoded
    at the last step within pi/10 of the answer.

    outputs: (batch, T, 3) = [fixation, sin, cos]; data: TaskData with events["t_go"] and targets
    (the answer is read from the targets' last step). decoder: 'atan2' (full circle);
    'arctan', the authors' rule: |arctan(s/c)_answer - arctan(s/c)_output| < pi/10 (no wrap at
    +-pi/2, so Pro and Anti answers are indistinguishable); 'arctan_mod_pi', the same with the
    difference taken circularly modulo pi. Returns (batch,) bool.
    """
    T_ = outputs.shape[1]
    before_go = jnp.arange(T_)[None, :] < data.events["t_go"][:, None]
    fixating = jnp.all(jnp.where(before_go, outputs[..., 0] > 0.5, True), axis=1)

    s_out, c_out = outputs[:, -1, 1], outputs[:, -1, 2]
    s_ans, c_ans = data.targets[:, -1, 1], data.targets[:, -1, 2]
    if decoder == "atan2":
        err = _circular_distance(jnp.arctan2(s_out, c_out), jnp.arctan2(s_ans, c_ans), 2 * jnp.pi)
    elif decoder == "arctan":
        d = jnp.abs(jnp.arctan(s_ans / c_ans) - jnp.arctan(s_out / c_out))
        err = jnp.minimum(d, 2 * jnp.pi - d)
    elif decoder == "arctan_mod_pi":
        err = _circular_distance(jnp.arctan(s_out / c_out), jnp.arctan(s_ans / c_ans), jnp.pi)
    else:
        raise ValueError(f"unknown decoder {decoder!r}: use 'atan2', 'arctan' or 'arctan_mod_pi'")
    return fixating & (err < TOLERANCE)


def percent_correct(outputs: jax.Array, data: TaskData, decoder: str = "atan2") -> jax.Array:
    """Fraction of correct trials in [0, 1] (see `correct_trials`). outputs: (batch, T, 3)."""
    return jnp.mean(correct_trials(outputs, data, decoder).astype(jnp.float32))


REFERENCE_FILES = ("test_inputs.npy", "test_outputs.npy", "test_labels.npy")


def load_reference_testset(folder) -> TaskData:
    """The authors' frozen 100-trial test set (25 trials per task, in task order), noise-free.

    folder: directory holding test_inputs.npy (100, 7, 100), test_outputs.npy (100, 3, 100) and
    test_labels.npy (100,), channels-first. Returns inputs (100, 100, 7), targets (100, 100, 3),
    mask of ones, and events task, theta, answer, t_stim_on, t_stim_off, t_go, derived from the
    arrays (go: first step whose fixation target is off; answer: target angle at the last step).
    """
    folder = Path(folder)
    inputs, targets, labels = (np.load(folder / f, allow_pickle=False) for f in REFERENCE_FILES)
    inputs = np.transpose(inputs, (0, 2, 1)).astype(np.float32)
    targets = np.transpose(targets, (0, 2, 1)).astype(np.float32)
    n, T_, _ = inputs.shape

    fixation_off = targets[..., 0] < FIXATION_TARGET / 2
    t_go = np.where(fixation_off.any(axis=1), np.argmax(fixation_off, axis=1), T_)
    stim = (np.abs(inputs[..., 1]) + np.abs(inputs[..., 2])) > 0
    t_stim_on = np.argmax(stim, axis=1)
    t_stim_off = T_ - np.argmax(stim[:, ::-1], axis=1)
    rows = np.arange(n)
    theta = np.arctan2(inputs[rows, t_stim_on, 1], inputs[rows, t_stim_on, 2])
    answer = np.arctan2(targets[:, -1, 1], targets[:, -1, 2])
    events = {
        "task": jnp.asarray(labels, dtype=jnp.int32),
        "theta": jnp.asarray(np.mod(theta, 2 * np.pi), dtype=jnp.float32),
        "answer": jnp.asarray(np.mod(answer, 2 * np.pi), dtype=jnp.float32),
        "t_stim_on": jnp.asarray(t_stim_on, dtype=jnp.int32),
        "t_stim_off": jnp.asarray(t_stim_off, dtype=jnp.int32),
        "t_go": jnp.asarray(t_go, dtype=jnp.int32),
    }
    targets = jnp.asarray(targets)
    return TaskData(jnp.asarray(inputs), targets, jnp.ones_like(targets), events)


# ----------------------------------------------------------------------------- the pipeline's tasks

# How an architecture draws its training batches from a multitask pool (its ``data`` settings).
DATA_PROTOCOL = {
    "pool_trials": None,  # use only the first n trials of the seed's (shuffled) pool
    "noise": "fresh",  # input noise: a fresh draw per batch, one draw kept all run, or none
    "noise_channels": "sensory",  # which input rows get it: the sensory ones or all
    "context_noise": "fresh",  # transfer: the old contexts' noise, fresh or one draw kept
    "batch": None,  # trials per step (None: the experiment's batch) or "full": the whole pool
}


def data_protocol(exp: Mapping[str, Any], arch: str | None = None) -> dict:
    """How one architecture of a multitask experiment draws its batches: :data:`DATA_PROTOCOL`
    with the experiment's batch size, overridden by the architecture's ``data`` settings (the
    authors gave their NM-RNN and their baselines different trial counts and noise)."""
    out = dict(DATA_PROTOCOL, batch=exp.get("batch", 100))
    if arch is not None:
        out.update(exp["archs"].get(arch, {}).get("data", {}))
    return out


def needs_fixed_key(proto: Mapping[str, Any]) -> bool:
    return proto["noise"] == "fixed" or proto["context_noise"] == "fixed"


def _fixed_key(data, which: int) -> jax.Array:
    """A key of the seed kept for the whole run (fixed noise draws), from its data."""
    return jax.random.fold_in(jax.random.wrap_key_data(data["fixed_key"]), which)


def _with_sensory_noise(batch: TaskData, key: jax.Array, std: float) -> TaskData:
    if not std:
        return batch
    noise = std * jax.random.normal(key, batch.inputs.shape[:-1] + (N_SENSORY,))
    return batch._replace(inputs=batch.inputs.at[..., :N_SENSORY].add(noise))


def _with_noise(batch: TaskData, key: jax.Array, std: float, channels: str) -> TaskData:
    if channels == "sensory":
        return _with_sensory_noise(batch, key, std)
    if not std:
        return batch
    return batch._replace(inputs=batch.inputs + std * jax.random.normal(key, batch.inputs.shape))


def _draw(pool: TaskData, key: jax.Array, size) -> TaskData:
    if size == "full":
        return pool
    idx = jax.random.randint(key, (int(size),), 0, pool.inputs.shape[0])
    return jax.tree.map(lambda a: a[idx], pool)


def _pool(data, proto: Mapping[str, Any], std: float) -> TaskData:
    """The seed's pool as the architecture sees it: its first ``pool_trials`` trials, with the
    run's one noise draw added if ``noise`` is ``fixed``."""
    pool = data["train"]
    if proto["pool_trials"]:
        pool = jax.tree.map(lambda a: a[: int(proto["pool_trials"])], pool)
    if proto["noise"] == "fixed":
        pool = _with_noise(pool, _fixed_key(data, 0), std, proto["noise_channels"])
    return pool


def multitask_rows(model, variables, test: TaskData, testset: str) -> pd.DataFrame:
    """Percent correct (atan2 and the authors' arctan rule) and loss per task."""
    y = run(model, variables, test.inputs)["y"]
    tasks = np.asarray(test.events["task"]).astype(int)
    ok_atan2 = np.asarray(correct_trials(jnp.asarray(y), test, "atan2"))
    ok_arctan = np.asarray(correct_trials(jnp.asarray(y), test, "arctan"))
    losses = trial_mse(y, test)
    rows = []
    for t in np.unique(tasks):
        sel = tasks == t
        rows.append(
            {
                "testset": testset,
                "task": TASK_NAMES[t],
                "trials": int(sel.sum()),
                "percent_correct": 100.0 * ok_atan2[sel].mean(),
                "percent_correct_arctan": 100.0 * ok_arctan[sel].mean(),
                "loss": losses[sel].mean(),
            }
        )
    return pd.DataFrame(rows)


def reference_subset(folder: str | Path, experiment_task: str) -> TaskData | None:
    """The authors' frozen test set restricted as they used it: trials 0–74 with input rows 0–5
    for the three training tasks (``experiment_task`` "multitask"), trials 75–99 with all 7 rows
    for Memory Anti (the transfer). None if absent."""
    folder = Path(folder)
    if not all((folder / f).exists() for f in REFERENCE_FILES):
        return None
    ref = load_reference_testset(folder)
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


class _FourTaskSet(Task):
    """What the training tasks (``multitask``) and the transfer (``multitask_transfer``) share:
    batches drawn from a fixed pool by each architecture's :func:`data_protocol`, the authors'
    frozen test set as an optional reference, percent correct per task."""

    columns = ("experiment", "arch", "seed", "stage", "testset", "task", "trials",
               "percent_correct", "percent_correct_arctan", "loss", "n_trainable",
               "n_parameters")  # fmt: skip
    may_be_empty = frozenset({"loss"})
    stage = ""  # the metrics' stage column
    reference_tasks = 0  # tasks of the authors' frozen set scored with it

    def x_inputs(self, exp):
        return N_SENSORY

    def needs_fixed_key(self, exp, arch):
        return needs_fixed_key(data_protocol(exp, arch))

    def pool_size(self, exp) -> int:
        raise NotImplementedError

    def trials_per_step(self, exp, arch=None):
        proto = data_protocol(exp, arch)
        if proto["batch"] == "full":  # the whole pool the architecture sees
            return int(proto["pool_trials"] or self.pool_size(exp))
        return int(proto["batch"])

    def check_data_protocol(self, exp, data, where):
        """No more trials than the pool."""
        pool = self.pool_size(exp)
        trials = data.get("pool_trials")
        if trials and trials > pool:
            raise ConfigError(f"{where}.pool_trials: {trials} exceeds the pool of {pool} trials")

    def generated_tasks(self, exp) -> int:
        raise NotImplementedError

    def expected_rows(self, exp, reference=False):
        per_checkpoint = self.generated_tasks(exp) + (self.reference_tasks if reference else 0)
        return per_checkpoint * (2 if "select_best" in exp else 1)

    def reference_set(self, exp, folder):
        return reference_subset(folder, self.name)

    def evaluation_rows(
        self, exp, model, variables, test, *, where, reference=None, n_trainable=lambda: 0
    ):
        def rows(chosen):
            part = [multitask_rows(model, chosen, test, "generated")]
            if reference is not None:
                part.append(multitask_rows(model, chosen, reference, "authors_frozen"))
            return pd.concat(part, ignore_index=True)

        frame = per_checkpoint(exp, variables, rows, where)
        frame.insert(0, "stage", self.stage)
        frame["n_trainable"] = n_trainable()
        return frame


class FourTaskTraining(_FourTaskSet):
    """Stage 1: Delay Pro, Delay Anti and Memory Pro (``tasks``) from a fixed pool of
    ``pool_per_task`` trials per task, with fresh sensory noise (``input_noise_std``)."""

    name = "multitask"
    label = "multitask"
    stage = "train_tasks"
    reference_tasks = 3

    def _tasks(self, exp) -> tuple[int, ...]:
        return tuple(exp.get("tasks", (0, 1, 2)))

    def dimensions(self, exp):
        return N_SENSORY + len(self._tasks(exp)), 3

    def make_data(self, exp, key):
        k_train, k_test = jax.random.split(key)
        tasks = self._tasks(exp)
        return {
            "train": training_pool(k_train, exp["pool_per_task"], tasks, len(tasks)),
            "test": training_pool(k_test, exp["test_per_task"], tasks, len(tasks)),
        }

    def batch_function(self, exp, arch=None):
        noise = exp.get("input_noise_std", 0.0)
        proto = data_protocol(exp, arch)

        def multitask_batch(data, key):
            k_idx, k_noise = jax.random.split(key)
            batch = _draw(_pool(data, proto, noise), k_idx, proto["batch"])
            if proto["noise"] == "fresh":
                batch = _with_noise(batch, k_noise, noise, proto["noise_channels"])
            return batch

        return multitask_batch

    def pool_size(self, exp):
        return exp.get("pool_per_task", 1000) * len(self._tasks(exp))

    def generated_tasks(self, exp):
        return len(set(self._tasks(exp)))


class FourTaskTransfer(_FourTaskSet):
    """Stage 2: Memory Anti, cued by a new context column, from the parameters trained on
    ``pretrained`` (a ``multitask`` experiment); the old contexts carry noise."""

    name = "multitask_transfer"
    label = "multitask transfer"
    stage = "transfer"
    reference_tasks = 1
    pretrained = True
    comparable = True  # claim 3 (protocol comparisons): Memory Anti after transfer

    def dimensions(self, exp):
        return N_SENSORY + 4, 3

    def make_data(self, exp, key):
        k_train, k_test = jax.random.split(key)
        return {
            "train": transfer_pool(k_train, exp["pool"], 4),
            "test": transfer_pool(k_test, exp["test_trials"], 4),
        }

    def batch_function(self, exp, arch=None):
        noise = exp.get("input_noise_std", 0.0)
        ctx_std = exp.get("context_noise_std", 0.1)
        old = tuple(range(N_SENSORY, N_SENSORY + 3))
        proto = data_protocol(exp, arch)

        def transfer_batch(data, key):
            k_idx, k_noise, k_ctx = jax.random.split(key, 3)
            pool = _pool(data, proto, noise)
            if proto["context_noise"] == "fixed":
                inputs = noisy_old_contexts(_fixed_key(data, 1), pool.inputs, old, ctx_std)
                pool = pool._replace(inputs=inputs)
            batch = _draw(pool, k_idx, proto["batch"])
            if proto["noise"] == "fresh":
                batch = _with_noise(batch, k_noise, noise, proto["noise_channels"])
            if proto["context_noise"] == "fresh":
                inputs = noisy_old_contexts(k_ctx, batch.inputs, old, ctx_std)
                batch = batch._replace(inputs=inputs)
            return batch

        return transfer_batch

    def pool_size(self, exp):
        return exp.get("pool", 1000)

    def generated_tasks(self, exp):
        return 1

    def check(self, experiments, name):
        """The source experiment exists, has every architecture and at least as many seeds."""
        exp = experiments[name]
        where = f"experiments.{name}"
        src = exp.get("pretrained")
        if src not in experiments:
            raise ConfigError(f"{where}.pretrained: {src!r} is not an experiment")
        if "pretrained" in experiments[src]:
            # A transfer starts from a trained multitask experiment (its own models), never from
            # itself or another transfer: those give no model to build.
            raise ConfigError(
                f"{where}.pretrained: {src!r} is itself a transfer (pretrained: "
                f"{experiments[src]['pretrained']!r}); name the multitask experiment it starts from"
            )
        for arch in exp["archs"]:
            if arch not in experiments[src]["archs"]:
                raise ConfigError(
                    f"{where}.archs.{arch}: not an architecture of pretrained experiment {src}"
                )
        if experiments[src]["seeds"] < exp["seeds"]:
            raise ConfigError(
                f"{where}.seeds: {exp['seeds']} exceeds the {experiments[src]['seeds']} seeds "
                f"of {src}"
            )
        super().check(experiments, name)


TASKS = (FourTaskTraining(), FourTaskTransfer())

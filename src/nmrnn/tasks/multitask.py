"""The four-task set (Delay Pro, Delay Anti, Memory Pro, Memory Anti; Duncker et al. 2020):
vectorised trial sampling, training and transfer pools, accuracy, and the authors' test set."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from nmrnn.tasks.common import TaskData

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


@partial(jax.jit, static_argnames=("n_contexts", "T"))
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

"""Measure-Wait-Go (after Beiran et al. 2023): three input pulses, then a ramp lasting the measured
interval I; the trained intervals and the shorter/longer extrapolation test set of the paper."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from nmrnn.tasks.common import TaskData

T = 110
PULSE_HEIGHT = 10.0
GO_DELAY = 15  # steps from the "wait" pulse to the "go" pulse
OUTPUT_MIN, OUTPUT_MAX = -0.5, 0.5
INPUT_NAMES = ("measure", "wait", "go")

TRAINED_INTERVALS = (12, 14, 16, 18)
TRAINING_T_MEASURE = tuple(range(10, 20))
TEST_INTERVALS = tuple(range(4, 27, 2))
TEST_T_MEASURE = 15


@partial(jax.jit, static_argnames=("T",))
def trials(t_measure, interval, T: int = T) -> TaskData:
    """Measure-Wait-Go trials for given measure times and intervals (vectorised over trials).

    t_measure, interval: (batch,) ints (scalars broadcast). Pulses of height 10 at t_m (measure),
    t_m + I (wait) and t_m + I + 15 (go); target y*(t) = -0.5 + clip((t - t_go) / I, 0, 1).
    Returns inputs (batch, T, 3), targets (batch, T, 1), mask of ones (batch, T, 1), and events
    t_measure, t_wait, t_go, interval: (batch,) int32.
    """
    t_measure, interval = jnp.broadcast_arrays(
        jnp.atleast_1d(jnp.asarray(t_measure, dtype=jnp.int32)),
        jnp.atleast_1d(jnp.asarray(interval, dtype=jnp.int32)),
    )
    t_wait = t_measure + interval
    t_go = t_wait + GO_DELAY
    t = jnp.arange(T)[None, :]
    pulses = jnp.stack([t == t_measure[:, None], t == t_wait[:, None], t == t_go[:, None]], -1)
    inputs = PULSE_HEIGHT * pulses.astype(jnp.float32)
    ramp = jnp.clip((t - t_go[:, None]) / interval[:, None], 0.0, 1.0)
    targets = (OUTPUT_MIN + (OUTPUT_MAX - OUTPUT_MIN) * ramp)[..., None].astype(jnp.float32)
    events = {"t_measure": t_measure, "t_wait": t_wait, "t_go": t_go, "interval": interval}
    return TaskData(inputs, targets, jnp.ones_like(targets), events)


def training_set(T: int = T) -> TaskData:
    """The 40-trial full-batch training set: every I in {12,14,16,18} x t_m in {10,...,19}.

    Trials are ordered interval-major (all t_m for I=12, then I=14, ...).
    """
    interval, t_measure = np.meshgrid(TRAINED_INTERVALS, TRAINING_T_MEASURE, indexing="ij")
    return trials(t_measure.ravel(), interval.ravel(), T)


def test_set(T: int = T) -> TaskData:
    """The 12-trial test set: t_m = 15 and I in {4, 6, ..., 26}, in increasing I."""
    interval = np.asarray(TEST_INTERVALS)
    return trials(np.full_like(interval, TEST_T_MEASURE), interval, T)


def interval_group(interval) -> str:
    """'shorter' (I < 12), 'trained' (12 <= I <= 18) or 'longer' (I > 18) for one interval."""
    interval = int(interval)
    if interval < min(TRAINED_INTERVALS):
        return "shorter"
    if interval <= max(TRAINED_INTERVALS):
        return "trained"
    return "longer"

"""Measure-Wait-Go (after Beiran et al. 2023): three input pulses, then a ramp lasting the measured
interval I; the trained intervals and the shorter/longer extrapolation test set of the paper."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from nmrnn.tasks.common import Task, TaskData, per_checkpoint, run, trial_mse

T = 110
PULSE_HEIGHT = 10.0
GO_DELAY = 15  # steps from the "wait" pulse to the "go" pulse
OUTPUT_MIN, OUTPUT_MAX = -0.5, 0.5
INPUT_NAMES = ("measure", "wait", "go")

TRAINED_INTERVALS = (12, 14, 16, 18)
TRAINING_T_MEASURE = tuple(range(10, 20))
TEST_INTERVALS = tuple(range(4, 27, 2))
TEST_T_MEASURE = 15


def trials(t_measure, interval, T: int = T) -> TaskData:
    """Measure-Wait-Go trials (:func:`_trials`), their times checked first when they are
    concrete: t_m >= 0, I >= 1 and the ramp ending inside the trial (t_m + I + 15 + I < T), as
    a trial cut off at T would train and score a ramp that never ends."""
    if isinstance(T, bool) or not isinstance(T, int | np.integer) or T < 1:
        raise ValueError(f"mwg.trials: T must be a whole number of steps >= 1, got {T!r}")
    if not any(isinstance(a, jax.core.Tracer) for a in (t_measure, interval)):
        t_m, i = np.broadcast_arrays(np.atleast_1d(t_measure), np.atleast_1d(interval))
        end = t_m + 2 * i + GO_DELAY
        bad = (t_m < 0) | (i < 1) | (end >= T) | (t_m != np.round(t_m)) | (i != np.round(i))
        if np.any(bad):
            k = int(np.argmax(bad))
            raise ValueError(
                f"mwg.trials: trial {k} (t_measure {t_m[k]}, interval {i[k]}) needs whole "
                f"t_measure >= 0 and interval >= 1 whose ramp ends inside T = {T} steps "
                f"(t_measure + 2 interval + {GO_DELAY} < T; here {end[k]})"
            )
    return _trials(t_measure, interval, T)


@partial(jax.jit, static_argnames=("T",))
def _trials(t_measure, interval, T: int = T) -> TaskData:
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
    if isinstance(interval, bool | str) or not float(interval).is_integer():
        # int() would truncate 18.5 into the trained group, and fails on NaN with a bare message.
        raise ValueError(
            f"interval_group: interval must be a whole number of steps, got {interval!r}"
        )
    interval = int(interval)
    if interval < min(TRAINED_INTERVALS):
        return "shorter"
    if interval <= max(TRAINED_INTERVALS):
        return "trained"
    return "longer"


# ----------------------------------------------------------------------------- the pipeline's task

RAMP_LEVEL = 0.9  # produced interval: first crossing of this fraction of the rise after go


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


def mwg_rows(model, variables, test: TaskData) -> pd.DataFrame:
    """Per-interval MSE, group (shorter/trained/longer) and produced interval on the test set."""
    y = run(model, variables, test.inputs)["y"]
    intervals = np.asarray(test.events["interval"]).astype(int)
    return pd.DataFrame(
        {
            "interval": intervals,
            "group": [interval_group(int(i)) for i in intervals],
            "mse": trial_mse(y, test),
            "produced_interval": produced_interval(y[..., 0], np.asarray(test.events["t_go"])),
        }
    )


class MeasureWaitGo(Task):
    """Trained on the fixed training set every step (no sampling); scored per test interval."""

    name = "mwg"
    label = "MWG"
    columns = ("experiment", "arch", "seed", "interval", "group", "mse", "produced_interval",
               "n_parameters")  # fmt: skip
    may_be_empty = frozenset({"mse", "produced_interval"})
    comparable = True

    def dimensions(self, exp):
        return len(INPUT_NAMES), 1

    def make_data(self, exp, key):
        return {"train": training_set(), "test": test_set()}

    def batch_function(self, exp, arch=None):
        return lambda data, key: data["train"]

    def expected_rows(self, exp, reference=False):
        return len(TEST_INTERVALS) * (2 if "select_best" in exp else 1)

    def evaluation_rows(self, exp, model, variables, test, *, where, reference=None, **_):
        return per_checkpoint(exp, variables, lambda v: mwg_rows(model, v, test), where)


TASKS = (MeasureWaitGo(),)

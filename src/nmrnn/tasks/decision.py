"""A perceptual decision with a delay: an example of a task added as one module (not in the paper).

It shows what a new task needs (see :class:`nmrnn.tasks.common.Task`); it is the classic
random-dots-like two-alternative forced choice of e.g. Mante et al. 2013 and Song et al. 2016,
kept small. Nothing of the paper's reproduction uses it.

Trial structure (T = 60 steps; fixed epochs):

====================  ==============  ====================================================
epoch                 steps           inputs
====================  ==============  ====================================================
fixation              0 .. 9          u_fix = 1, u_ev = 0
stimulus              10 .. 29        u_fix = 1, u_ev(t) = d c + sigma eps_t
delay                 30 .. 39        u_fix = 1, u_ev = 0
response (after go)   40 .. 59        u_fix = 0 (the go cue), u_ev = 0
====================  ==============  ====================================================

with the choice d in {-1, +1} and the coherence c drawn uniformly from ``coherences`` per trial,
and eps_t ~ N(0, 1) i.i.d. (noise std sigma = ``noise_std``). Inputs (batch, T, 2) =
[u_ev, u_fix]. The target y*(t) is 0 before go (the network must not answer early) and d after
go; the mask (batch, T, 1) counts every step except the first ``GRACE`` steps after go (time to
move the output). A trial is correct when the sign of the mean output over the counted response
steps equals d. The evidence's mean over the stimulus, d c + sigma / sqrt(20) N(0, 1), is in
``events["evidence"]``; the ideal observer is right with probability Phi(c sqrt(20) / sigma).

Config (an experiment with ``task: decision``): ``batch`` fresh trials per step; the seed's test
set holds ``test_per_coherence`` trials per coherence, half of each choice; ``select_best`` on
validation trials (fresh held-out ones) or on training batches. ``task_settings``:
``coherences``, ``noise_std``, ``test_per_coherence`` (defaults in :data:`SETTINGS`). The
metrics rows are one per coherence: trials, percent correct, MSE. See ``examples/decision.yaml``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from nmrnn.errors import ConfigError
from nmrnn.tasks.common import Task, TaskData, per_checkpoint, run, selects_on, trial_mse

T_FIXATION, T_STIMULUS, T_DELAY, T_RESPONSE = 10, 20, 10, 20
T_STIM_ON = T_FIXATION
T_STIM_OFF = T_STIM_ON + T_STIMULUS
T_GO = T_STIM_OFF + T_DELAY
T = T_GO + T_RESPONSE
GRACE = 5  # steps after go not counted in the loss
INPUT_NAMES = ("evidence", "fixation")
SETTINGS = {"coherences": (0.1, 0.2, 0.4, 0.8), "noise_std": 1.0, "test_per_coherence": 200}


@jax.jit
def trials(key: jax.Array, choice, coherence, noise_std: float = 1.0) -> TaskData:
    """Trials of given choices (batch,) in {-1, +1} and coherences (batch,) >= 0.

    Returns inputs (batch, T, 2) = [evidence, fixation], targets (batch, T, 1) = 0 before go and
    the choice after, mask (batch, T, 1) = 0 on the GRACE steps after go and 1 elsewhere; events
    choice, coherence, evidence (the mean evidence input over the stimulus), t_go: (batch,).
    """
    choice = jnp.asarray(choice, jnp.float32)
    coherence = jnp.asarray(coherence, jnp.float32)
    n = choice.shape[0]
    t = jnp.arange(T)
    stim = ((t >= T_STIM_ON) & (t < T_STIM_OFF)).astype(jnp.float32)[None, :]
    noise = noise_std * jax.random.normal(key, (n, T))
    evidence = stim * ((choice * coherence)[:, None] + noise)
    fixation = jnp.broadcast_to((t < T_GO).astype(jnp.float32), (n, T))
    inputs = jnp.stack([evidence, fixation], -1)
    after_go = (t >= T_GO).astype(jnp.float32)
    targets = (after_go[None, :] * choice[:, None])[..., None]
    counted = 1.0 - ((t >= T_GO) & (t < T_GO + GRACE)).astype(jnp.float32)
    mask = jnp.broadcast_to(counted[None, :, None], (n, T, 1))
    events = {
        "choice": choice.astype(jnp.int32),
        "coherence": coherence,
        "evidence": evidence.sum(1) / T_STIMULUS,
        "t_go": jnp.full((n,), T_GO, jnp.int32),
    }
    return TaskData(inputs, targets, mask, events)


@partial(jax.jit, static_argnames=("batch",))
def sample_batch(
    key: jax.Array, batch: int, coherences=SETTINGS["coherences"], noise_std: float = 1.0
) -> TaskData:
    """``batch`` fresh trials: the choice and the coherence (one of ``coherences``) uniform."""
    k_choice, k_coherence, k_noise = jax.random.split(key, 3)
    choice = jnp.where(jax.random.bernoulli(k_choice, 0.5, (batch,)), 1.0, -1.0)
    coherences = jnp.asarray(coherences, jnp.float32)
    coherence = coherences[jax.random.randint(k_coherence, (batch,), 0, coherences.shape[0])]
    return trials(k_noise, choice, coherence, noise_std)


def test_set(key: jax.Array, per_coherence: int, coherences, noise_std: float = 1.0) -> TaskData:
    """``per_coherence`` trials of each coherence (in order), alternating choices +1, -1."""
    coherence = np.repeat(np.asarray(coherences, np.float32), per_coherence)
    choice = np.tile(np.where(np.arange(per_coherence) % 2 == 0, 1.0, -1.0), len(coherences))
    return trials(key, choice, coherence, noise_std)


def correct_trials(y: np.ndarray, data: TaskData) -> np.ndarray:
    """(batch,) bool: the sign of the mean output over the counted response steps is the
    choice. y: (batch, T, 1)."""
    response = (np.arange(y.shape[1]) >= T_GO)[None, :] * np.asarray(data.mask)[..., 0]
    mean = (y[..., 0] * response).sum(1) / response.sum(1)
    return np.sign(mean) == np.asarray(data.events["choice"])


def decision_rows(model, variables, test: TaskData) -> pd.DataFrame:
    """Trials, percent correct and masked MSE per coherence of the test set."""
    y = run(model, variables, test.inputs)["y"]
    coherence = np.asarray(test.events["coherence"])
    ok, mse = correct_trials(y, test), trial_mse(y, test)
    rows = []
    for c in np.unique(coherence):
        sel = coherence == c
        rows.append(
            {
                "coherence": round(float(c), 6),  # 0.1, not float32's 0.10000000149011612
                "trials": int(sel.sum()),
                "percent_correct": 100.0 * ok[sel].mean(),
                "mse": float(mse[sel].mean()),
            }
        )
    return pd.DataFrame(rows)


class Decision(Task):
    """The pipeline's view of the decision task (see the module's docstring)."""

    name = "decision"
    label = "decision"
    columns = ("experiment", "arch", "seed", "coherence", "trials", "percent_correct", "mse",
               "n_parameters")  # fmt: skip
    may_be_empty = frozenset({"mse"})
    select_on = ("validation", "train")
    settings = SETTINGS

    def _settings(self, exp) -> tuple[tuple[float, ...], float, int]:
        s = self.task_settings(exp)
        return (
            tuple(float(c) for c in s["coherences"]),
            float(s["noise_std"]),
            s["test_per_coherence"],
        )

    def dimensions(self, exp):
        return len(INPUT_NAMES), 1

    def make_data(self, exp, key):
        coherences, noise_std, per_coherence = self._settings(exp)
        _, k_test = jax.random.split(key)
        data = {"test": test_set(k_test, per_coherence, coherences, noise_std)}
        if selects_on(exp) == "validation":  # held out from training and test: its own key
            trials_ = int(exp["select_best"]["trials"])
            data["validation"] = sample_batch(
                jax.random.fold_in(key, 2), trials_, coherences, noise_std
            )
        return data

    def batch_function(self, exp, arch=None):
        coherences, noise_std, _ = self._settings(exp)
        size = int(exp.get("batch", 100))
        return lambda data, key: sample_batch(key, size, coherences, noise_std)

    def check(self, experiments, name):
        super().check(experiments, name)
        where = f"experiments.{name}.task_settings"
        s = self.task_settings(experiments[name])
        coherences = s["coherences"]
        if (
            not isinstance(coherences, list | tuple)
            or not coherences
            or not all(isinstance(c, int | float) and c > 0 for c in coherences)
            or len(set(coherences)) != len(coherences)
        ):
            raise ConfigError(f"{where}.coherences: a list of distinct positive numbers")
        if not isinstance(s["noise_std"], int | float) or s["noise_std"] < 0:
            raise ConfigError(f"{where}.noise_std: a number >= 0")
        per = s["test_per_coherence"]
        if not isinstance(per, int) or isinstance(per, bool) or per < 2 or per % 2:
            raise ConfigError(f"{where}.test_per_coherence: an even integer >= 2")

    def expected_rows(self, exp, reference=False):
        return len(self._settings(exp)[0]) * (2 if "select_best" in exp else 1)

    def evaluation_rows(self, exp, model, variables, test, *, where, reference=None, **_):
        return per_checkpoint(exp, variables, lambda v: decision_rows(model, v, test), where)


TASKS = (Decision(),)

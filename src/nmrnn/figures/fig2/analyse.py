"""Figure 2's data: a mode's timescale set by its gain (A) and the linear symmetric NM-RNN run
next to the LSTM constructed from it (B), computed from fixed seeds with :mod:`nmrnn.theory`
(no trained model), and the theory checks of the ``theory`` metrics table.

``analyse`` returns a nested dict of numpy arrays (saved to ``analysis/fig2.npz``)::

    decay/           s (T, 5), w0, w_sim, w_discrete, w_continuous (T, 5): panel A
    correspondence/  w_nmrnn, c_lstm_rescaled, w_exact (1, T, K), y_nmrnn, y_lstm (1, T, O): B
    checks/          check (names), value, tolerance, passed: the rows of the metrics table
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nmrnn import theory
from nmrnn.figures.common import RunFiles
from nmrnn.lowrank import low_rank_factors
from nmrnn.models import LinearNMRNN

CONSTANT_GAINS = (0.0, 0.5, 0.8, 0.95)
DECAY_TAU_X = 10.0
DECAY_T = 80
LSTM_T = 500
TOLERANCES = {
    "decay_max_abs_error_discrete": 1e-5,
    "decay_max_abs_error_continuous_tau1000": 1e-3,
    "lstm_cell_max_rel_error": 1e-5,
    "lstm_cell_vs_exact_recursion_max_rel_error": 1e-6,
    "lstm_readout_max_rel_error": 1e-5,
}
METRIC_COLUMNS = ("experiment", "check", "value", "tolerance", "passed")


def time_varying_gain(T: int = DECAY_T) -> np.ndarray:
    """Hold, then release: s = 0.98 for 40 steps (memory), then 0.2 (fast decay). (T,)"""
    return np.where(np.arange(1, T + 1) <= 40, 0.98, 0.2)


def mode_decay_data(tau_x: float = DECAY_TAU_X, T: int = DECAY_T, seed: int = 0) -> dict:
    """Simulate K = 5 modes of a linear symmetric NM-RNN, four constant gains and one time-varying,
    from w_0 = 1, with zero input. Returns s (T, 5), w_sim, w_discrete, w_continuous (T, 5)."""
    K = len(CONSTANT_GAINS) + 1
    model = LinearNMRNN(N=20, M=2, K=K, O=1, tau_x=tau_x)
    variables = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, 2, 3)))
    Q = low_rank_factors(variables["params"]["L"], "qr")
    x0 = Q @ jnp.ones(K) + 0.5 * jax.random.normal(jax.random.PRNGKey(seed + 1), (20,))
    variables = {**variables, "constants": {**variables["constants"], "x0": x0}}
    s = np.concatenate(
        [np.broadcast_to(CONSTANT_GAINS, (T, K - 1)), time_varying_gain(T)[:, None]], axis=1
    )
    w, w0 = theory.simulate_mode_decay(model, variables, s[None])
    w0 = np.asarray(w0, np.float64)
    return {
        "s": s,
        "w0": w0,
        "w_sim": np.asarray(w[0], np.float64) / w0,
        "w_discrete": theory.mode_decay_discrete(w0, s, tau_x) / w0,
        "w_continuous": theory.mode_decay_continuous(w0, s, tau_x) / w0,
    }


def continuous_limit_error(tau_x: float = 1000.0, seed: int = 0) -> float:
    """Max |simulation - continuous closed form| / |w_0| over 3 τx steps at a large τx."""
    model = LinearNMRNN(N=20, M=2, K=2, O=1, tau_x=tau_x)
    variables = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, 2, 3)))
    s = np.broadcast_to([0.0, 0.8], (1, int(3 * tau_x), 2))
    w, w0 = theory.simulate_mode_decay(model, variables, s)
    continuous = theory.mode_decay_continuous(w0, s, tau_x)
    return float(np.abs(np.asarray(w) - continuous).max() / np.abs(np.asarray(w0)).max())


def lstm_correspondence_data(T: int = LSTM_T, seed: int = 0) -> theory.LSTMCorrespondence:
    """A τx = 1 linear symmetric NM-RNN (N = 20, M = 4, K = 3) with neuromodulatory weights scaled
    up so the gains sweep (0, 1), run with its constructed LSTM on T steps of N(0, 1) input."""
    model = LinearNMRNN(N=20, M=4, K=3, O=1, tau_x=1.0, tau_z=5.0)
    inputs = jax.random.normal(jax.random.PRNGKey(seed + 7), (1, T, 3))
    variables = model.init(jax.random.PRNGKey(seed), inputs[:, :2])
    keys = jax.random.split(jax.random.PRNGKey(seed + 100), 3)
    params = dict(variables["params"])
    for key, (name, scale) in zip(keys, (("W_z", 1.5), ("A_z", 2.0), ("b_z", 1.5)), strict=True):
        params[name] = scale * jax.random.normal(key, params[name].shape)
    return theory.run_nmrnn_and_lstm(model, {**variables, "params": params}, inputs)


def theory_metrics(decay: dict, corr: theory.LSTMCorrespondence, continuous_err: float) -> list:
    """Tidy rows (experiment='theory', check, value, tolerance, passed).

    ``decay_*``: max |simulated - closed form| with w_0 = 1 (so absolute = relative);
    ``lstm_*``: max absolute error divided by the scale max|w| (max|y| for the readout);
    ``lstm_sequence_length``: T, which must be at least 500.
    """
    w, c = np.asarray(corr.w_nmrnn), np.asarray(corr.c_lstm_rescaled)
    scale = np.abs(corr.w_exact).max()
    y, y_lstm = np.asarray(corr.y_nmrnn), np.asarray(corr.y_lstm)
    values = {
        "decay_max_abs_error_discrete": np.abs(decay["w_sim"] - decay["w_discrete"]).max(),
        "decay_max_abs_error_continuous_tau1000": continuous_err,
        "lstm_cell_max_rel_error": np.abs(w - c).max() / scale,
        "lstm_cell_vs_exact_recursion_max_rel_error": np.abs(c - corr.w_exact).max() / scale,
        "lstm_readout_max_rel_error": np.abs(y - y_lstm).max() / np.abs(y).max(),
    }
    rows = [
        {
            "experiment": "theory",
            "check": check,
            "value": float(value),
            "tolerance": TOLERANCES[check],
            "passed": bool(value < TOLERANCES[check]),
        }
        for check, value in values.items()
    ]
    T = w.shape[1]
    rows.append(
        {
            "experiment": "theory",
            "check": "lstm_sequence_length",
            "value": float(T),
            "tolerance": float(LSTM_T),
            "passed": bool(T >= LSTM_T),
        }
    )
    return rows


CORRESPONDENCE = ("w_nmrnn", "c_lstm_rescaled", "w_exact", "y_nmrnn", "y_lstm")


def analyse(experiments: Mapping[str, Any] | None = None, files: RunFiles | None = None) -> dict:
    """Everything Figure 2 draws and its theory checks (see module doc). Figure 2 needs no trained
    network: ``experiments`` and ``files`` are accepted for the common signature and unused."""
    decay = mode_decay_data()
    corr = lstm_correspondence_data()
    rows = theory_metrics(decay, corr, continuous_limit_error())
    return {
        "decay": decay,
        "correspondence": {name: np.asarray(getattr(corr, name)) for name in CORRESPONDENCE},
        "checks": {
            "check": np.asarray([row["check"] for row in rows]),
            "value": np.asarray([row["value"] for row in rows], np.float64),
            "tolerance": np.asarray([row["tolerance"] for row in rows], np.float64),
            "passed": np.asarray([row["passed"] for row in rows]),
        },
    }


def write_table(analysis: Mapping[str, Any], path: str | Path) -> None:
    """The tidy ``theory`` metrics table (columns experiment, check, value, tolerance, passed)
    from the analysis' checks."""
    checks = analysis["checks"]
    rows = [
        {
            "experiment": "theory",
            "check": str(check),
            "value": float(value),
            "tolerance": float(tol),
            "passed": bool(passed),
        }
        for check, value, tol, passed in zip(
            checks["check"], checks["value"], checks["tolerance"], checks["passed"], strict=True
        )
    ]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

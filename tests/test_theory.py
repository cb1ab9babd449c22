"""The theory of Section 3 against the package's models: mode decay, the LSTM construction, and the
optimal gain of a rank-1 network."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nmrnn import theory
from nmrnn.models import NMRNN, LinearNMRNN

SCALES = {"L": 1.0, "R": 1.0, "W_z": 0.1, "A_z": 0.1, "b_z": 0.1}


def _variables(model, U=3, seed=0, **scales):
    """Random variables with the model's structure (from eval_shape: no compile of a full init).

    Entries ~ N(0, scale²): 1 for L, R; 1/√U for B_x, B_z; 1/√N for C, d; 0.1 (or ``scales``) for
    the neuromodulatory weights; x0 = z0 = 0.1·1.
    """
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 2, U)))
    rng = np.random.default_rng(seed)
    default = {**SCALES, "B_x": U**-0.5, "B_z": U**-0.5, "C": model.N**-0.5, "d": model.N**-0.5}
    default.update(scales)
    params = {
        k: jnp.asarray(default[k] * rng.standard_normal(v.shape), jnp.float32)
        for k, v in shapes["params"].items()
    }
    constants = {k: jnp.full(v.shape, 0.1, jnp.float32) for k, v in shapes["constants"].items()}
    return {"params": params, "constants": constants}


def _linear_model(tau_x, N=20, M=4, K=3, n_out=1, U=3, seed=0, scales=None, **kw):
    model = LinearNMRNN(N=N, M=M, K=K, O=n_out, tau_x=tau_x, **kw)
    return model, _variables(model, U=U, seed=seed, **(scales or {}))


# --- (1) mode decay --------------------------------------------------------------------------


def test_decay_with_constant_gains_matches_discrete_closed_form():
    model, variables = _linear_model(tau_x=10.0)
    s = jnp.broadcast_to(jnp.array([0.0, 0.5, 0.95]), (1, 200, 3))
    w, w0 = theory.simulate_mode_decay(model, variables, s)
    expected = theory.mode_decay_discrete(w0, s, 10.0)
    scale = np.abs(np.asarray(w0)).max()
    np.testing.assert_allclose(np.asarray(w), expected, rtol=0, atol=1e-5 * scale)
    # s = 0 decays at rate 1/τx, s = 0.95 twenty times slower: the amplitudes really differ.
    assert abs(expected[0, -1, 0]) < 1e-8 * scale < 1e-2 * scale < abs(expected[0, -1, 2])


def test_decay_with_time_varying_gains_matches_discrete_closed_form():
    model, variables = _linear_model(tau_x=5.0, K=2, seed=1)
    t = jnp.arange(300)[:, None]
    s = jnp.concatenate([0.5 + 0.45 * jnp.sin(t / 15.0), jnp.where(t < 100, 0.99, 0.2)], axis=1)
    w, w0 = theory.simulate_mode_decay(model, variables, s[None])
    expected = theory.mode_decay_discrete(w0, s[None], 5.0)
    np.testing.assert_allclose(np.asarray(w), expected, rtol=0, atol=1e-5 * np.abs(w0).max())


def test_simulation_approaches_continuous_form_for_large_tau():
    errors = []
    for tau_x in (10.0, 100.0, 1000.0):
        model, variables = _linear_model(tau_x=tau_x, K=2, seed=2)
        T = int(3 * tau_x)
        s = jnp.broadcast_to(jnp.array([0.0, 0.6]), (1, T, 2))
        w, w0 = theory.simulate_mode_decay(model, variables, s)
        continuous = theory.mode_decay_continuous(w0, s, tau_x)
        errors.append(np.abs(np.asarray(w) - continuous).max() / np.abs(w0).max())
    assert errors[0] > 5 * errors[1] > 25 * errors[2]
    assert errors[2] < 1e-3


def test_effective_timescale():
    np.testing.assert_allclose(theory.effective_timescale([0.0, 0.5, 0.9], 10.0), [10, 20, 100])
    assert np.isinf(theory.effective_timescale(1.0, 10.0))


def test_theory_refuses_the_nonlinear_model():
    model = NMRNN(N=8, M=2, K=1, O=1)
    variables = _variables(model)
    with pytest.raises(ValueError, match="linear symmetric"):
        theory.simulate_mode_decay(model, variables, jnp.ones((1, 3, 1)))


# --- (2) the LSTM construction ---------------------------------------------------------------


def _random_linear_nmrnn(seed, N=20, M=4, K=3, n_out=2, U=3, **kw):
    """A linear symmetric NM-RNN with τx = 1 and gains spread over (0, 1), near 0 and 1 included."""
    scales = {"W_z": 1.5, "A_z": 2.0, "b_z": 1.5}
    return _linear_model(
        1.0, N=N, M=M, K=K, n_out=n_out, U=U, seed=seed, scales=scales, tau_z=5.0, **kw
    )


def _check_correspondence(out, T, K):
    w, c, exact = np.asarray(out.w_nmrnn), np.asarray(out.c_lstm_rescaled), out.w_exact
    assert w.shape == c.shape == exact.shape and w.shape[1:] == (T, K)
    s = np.asarray(out.s)
    assert s.min() < 0.05 and s.max() > 0.95  # the forget gates really act
    scale = np.abs(exact).max()
    # The construction is exact: the cell state is the float64 mode recursion to float32 rounding.
    assert np.abs(c - exact).max() < 1e-6 * scale
    # The float32 NM-RNN itself drifts from that recursion: QᵀQ = I only to float32 rounding, and a
    # mode with s ≈ 1 integrates that error over T steps (up to ~T·eps relative when s rounds to 1).
    assert np.abs(w - c).max() < 1e-5 * scale
    y, y_lstm = np.asarray(out.y_nmrnn), np.asarray(out.y_lstm)
    assert np.abs(y - y_lstm).max() < 1e-5 * np.abs(y).max()


@pytest.mark.parametrize("seed", [0, 1])
def test_constructed_lstm_cell_state_equals_nmrnn_modes(seed):
    model, variables = _random_linear_nmrnn(seed)
    T = 600
    inputs = jax.random.normal(jax.random.PRNGKey(7 + seed), (2, T, 3))
    _check_correspondence(theory.run_nmrnn_and_lstm(model, variables, inputs), T, 3)


def test_lstm_construction_with_context_routing():
    model, variables = _random_linear_nmrnn(5, U=5, x_inputs=3)
    inputs = jax.random.normal(jax.random.PRNGKey(12), (1, 500, 5))
    _check_correspondence(theory.run_nmrnn_and_lstm(model, variables, inputs), 500, 3)


def test_lstm_construction_fails_visibly_with_wrong_gate():
    """The check can fail: a forget gate off by one bias unit breaks the match."""
    model, variables = _random_linear_nmrnn(0)
    inputs = jax.random.normal(jax.random.PRNGKey(7), (1, 500, 3))
    lstm, lstm_vars, eps = theory.nmrnn_to_lstm(variables, model)
    lstm_vars["params"]["b_f"] = lstm_vars["params"]["b_f"].at[0].add(1.0)
    z = theory._apply(model, variables, inputs)["z"]
    c = np.asarray(theory._apply(lstm, lstm_vars, jnp.concatenate([inputs, z], -1))["c"]) / eps
    c = c[..., :3]
    w = np.asarray(theory.run_nmrnn_and_lstm(model, variables, inputs).w_nmrnn)
    assert np.abs(w - c).max() > 1e-2 * np.abs(w).max()


def test_lstm_construction_needs_tau_one():
    model, variables = _linear_model(tau_x=10.0)
    with pytest.raises(ValueError, match="tau_x = 1"):
        theory.nmrnn_to_lstm(variables, model)


# --- (3) optimal gain of a rank-1 network ----------------------------------------------------


def _ramp(y_go, T=40, interval=16, height=1.0):
    t = np.arange(1, T + 1)
    return y_go + height * np.clip(t / interval, 0, 1)


def _run_with_gain(model, variables, x_go, s):
    """The package model from x_go under imposed gains s (T,), zero input: y (T,)."""
    out = theory.run_with_gains(model, variables, np.asarray(s)[None, :, None], x0=x_go)
    return np.asarray(out["y"][0, :, 0])


@pytest.mark.parametrize("linear", [True, False])
def test_exact_optimal_gain_reproduces_the_target(linear):
    model = NMRNN(N=30, M=3, K=1, O=1, tau_x=10.0, linear=linear)
    variables = _variables(model, seed=4)
    params = theory.rank1_parameters(variables, model)
    noise = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (30,)), np.float64)
    x_go = params.ell / (params.c @ params.ell) + 0.5 * noise  # off the manifold too
    target = _ramp(x_go @ params.c + params.d, height=0.5)
    phi = "linear" if linear else "tanh"
    s = theory.optimal_gain_exact(params, x_go, target, tau_x=10.0, phi=phi)
    assert s.shape == target.shape and np.all(np.isfinite(s))
    _, y = theory.rank1_rollout(params, x_go, s, tau_x=10.0, phi=phi)
    np.testing.assert_allclose(y, target, rtol=0, atol=1e-10)
    np.testing.assert_allclose(_run_with_gain(model, variables, x_go, s), target, rtol=0, atol=1e-5)
    # A constant gain does not produce the ramp: the test can fail.
    y_const = _run_with_gain(model, variables, x_go, np.full_like(s, s.mean()))
    assert np.abs(y_const - target).max() > 1e-2


def test_exact_gain_accounts_for_input_after_go():
    model = LinearNMRNN(N=12, M=2, K=1, O=1, tau_x=5.0)
    variables = _variables(model, seed=6)
    params = theory.rank1_parameters(variables, model)
    x_go = params.ell * 2.0
    target = _ramp(x_go @ params.c + params.d, T=20, interval=10)
    drive = np.zeros((20, 12))
    drive[3] = np.asarray(jax.random.normal(jax.random.PRNGKey(8), (12,)))
    s = theory.optimal_gain_exact(params, x_go, target, tau_x=5.0, phi="linear", drive=drive)
    _, y = theory.rank1_rollout(params, x_go, s, tau_x=5.0, phi="linear", drive=drive)
    np.testing.assert_allclose(y, target, atol=1e-10)
    _, y_wrong = theory.rank1_rollout(params, x_go, s, tau_x=5.0, phi="linear")
    assert np.abs(y_wrong - target).max() > 1e-3


def _symmetric_rank1(tau_x, seed=9, N=30):
    model = LinearNMRNN(N=N, M=2, K=1, O=1, tau_x=tau_x)
    variables = _variables(model, seed=seed)
    params = theory.rank1_parameters(variables, model)
    off = np.array(jax.random.normal(jax.random.PRNGKey(seed + 1), (N,)), np.float64)
    off -= params.ell * (params.ell @ off)  # an off-manifold direction, x_⊥
    return params, off / np.linalg.norm(off)


def test_approximate_gain_is_exact_on_the_manifold_and_close_off_it():
    tau_x = 10.0
    params, off = _symmetric_rank1(tau_x)
    x_on = params.ell / (params.c @ params.ell)  # on the manifold, f - d = c·x = 1 at go
    target = _ramp(x_on @ params.c + params.d, interval=12, height=0.5)
    approx = theory.optimal_gain_approx(params, x_on, target, tau_x=tau_x)
    exact = theory.optimal_gain_exact(params, x_on, target, tau_x=tau_x, phi="linear")
    np.testing.assert_allclose(approx, exact, rtol=0, atol=1e-10)
    gaps = []
    for size in (1e-3, 1.0):
        x_go = x_on + size * off
        tgt = _ramp(x_go @ params.c + params.d, interval=12, height=0.5)
        ex = theory.optimal_gain_exact(params, x_go, tgt, tau_x=tau_x, phi="linear")
        gaps.append(np.abs(theory.optimal_gain_approx(params, x_go, tgt, tau_x=tau_x) - ex).max())
    assert gaps[0] < 1e-2 < gaps[1]


def test_continuous_approximation_is_the_large_tau_limit():
    gaps = []
    for tau_x in (10.0, 100.0, 1000.0):
        params, _ = _symmetric_rank1(tau_x)
        x_go = params.ell / (params.c @ params.ell)
        y_go = x_go @ params.c + params.d
        t = np.arange(1, int(2 * tau_x) + 1)
        target = params.d + (y_go - params.d) * np.exp(-0.5 * t / tau_x)  # smooth: s ≡ 0.5
        exact = theory.optimal_gain_exact(params, x_go, target, tau_x=tau_x, phi="linear")
        cont = theory.optimal_gain_approx(params, x_go, target, tau_x=tau_x, continuous=True)
        gaps.append(np.abs(cont[1:] - exact[1:]).max())
    assert gaps[0] > 5 * gaps[1] > 25 * gaps[2]
    assert gaps[2] < 1e-3

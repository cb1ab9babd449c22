"""The theory of Section 3 (SPEC §4) as executable code: mode decay of the linear symmetric NM-RNN,
an LSTM that reproduces it exactly, and the optimal gain s(t) of a rank-1 NM-RNN for a target ramp.

Symbols: Q (N×K) the orthonormal left factor (Q of QR(L)), w = Qᵀx the K mode amplitudes, s (K) the
gains, z (M) the neuromodulatory state, τx the time constant, a = 1/τx the Euler step (dt = 1).
Closed forms are evaluated in float64 numpy (they are references); the package models run in
float32.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nmrnn.lowrank import low_rank_factors, recurrence_gain
from nmrnn.models import LSTM, NMRNN

# A pre-activation this large saturates the logistic to exactly 1 (or 0) in float32.
SATURATED = 100.0
# Below this magnitude float32 tanh(a) = a (tanh(a)/a - 1 ≈ a²/3 < float32 eps).
LINEAR_TANH = 3e-4


@partial(jax.jit, static_argnums=0)
def _apply(module, variables, inputs, s_override=None, s_override_mask=None):
    """``module.apply`` compiled once per (module, shapes), with exact float32 matmuls (no TF32)."""
    with jax.default_matmul_precision("highest"):
        if s_override is None:
            return module.apply(variables, inputs)
        return module.apply(
            variables, inputs, s_override=s_override, s_override_mask=s_override_mask
        )


# ---------------------------------------------------------------------------------------------
# (1) Mode decay of the linear symmetric NM-RNN with no input
# ---------------------------------------------------------------------------------------------


def mode_recursion(w0, s, tau_x: float, drive=None) -> np.ndarray:
    """Exact Euler (dt = 1) mode dynamics: w_t = (1 - (1 - s_t)/τx) w_{t-1} + (1/τx) QᵀB_x u_t.

    What the dt = 1 simulation of the linear symmetric NM-RNN follows exactly (QᵀQ = I makes the K
    modes decouple); with τx = 1 it is the LSTM cell update w_t = s_t ⊙ w_{t-1} + QᵀB_x u_t.

    Args:
        w0: (..., K) mode amplitudes at t = 0.
        s: (..., T, K) gains at steps 1..T.
        tau_x: time constant τx in steps.
        drive: optional (..., T, K) projected input QᵀB_x u_t; zero if omitted.

    Returns:
        (..., T, K) float64 amplitudes w_1..w_T.
    """
    if drive is None:
        return mode_decay_discrete(w0, s, tau_x)
    factor = 1.0 - (1.0 - np.asarray(s, np.float64)) / tau_x
    drive = np.asarray(drive, np.float64) / tau_x
    factor, drive = np.broadcast_arrays(factor, drive)
    w = np.broadcast_to(np.asarray(w0, np.float64), factor.shape[:-2] + factor.shape[-1:])
    out = np.empty(factor.shape)
    for t in range(factor.shape[-2]):
        w = factor[..., t, :] * w + drive[..., t, :]
        out[..., t, :] = w
    return out


def mode_decay_discrete(w0, s, tau_x: float) -> np.ndarray:
    """Exact Euler (dt = 1) decay with no input: w_t = (1 - (1 - s_t)/τx) w_{t-1}, t = 1..T.

    Args:
        w0: (..., K) mode amplitudes at t = 0.
        s: (..., T, K) gains at steps 1..T (broadcast against w0).
        tau_x: time constant τx in steps.

    Returns:
        (..., T, K) float64 amplitudes w_1..w_T.
    """
    w0 = np.asarray(w0, np.float64)
    s = np.asarray(s, np.float64)
    return w0[..., None, :] * np.cumprod(1.0 - (1.0 - s) / tau_x, axis=-2)


def mode_decay_continuous(w0, s, tau_x: float) -> np.ndarray:
    """Continuous-time decay w(t) = w(0) exp(-∫₀ᵗ (1 - s_k)/τx), s piecewise constant per step.

    The limit of :func:`mode_decay_discrete` for τx ≫ 1 (relative gap ≈ t (1 - s)² / (2 τx²)).
    Shapes as in :func:`mode_decay_discrete`.
    """
    w0 = np.asarray(w0, np.float64)
    s = np.asarray(s, np.float64)
    return w0[..., None, :] * np.exp(-np.cumsum(1.0 - s, axis=-2) / tau_x)


def effective_timescale(s, tau_x: float) -> np.ndarray:
    """Timescale of a mode under a constant gain s: τx / (1 - s) (infinite at s = 1: memory)."""
    s = np.asarray(s, np.float64)
    with np.errstate(divide="ignore"):
        return tau_x / (1.0 - s)


def mode_amplitudes(model: NMRNN, variables, x) -> jax.Array:
    """w = Qᵀx for a linear symmetric NM-RNN; x: (..., N) → (..., K)."""
    _check_linear(model)
    Q = low_rank_factors(variables["params"]["L"], "qr")
    with jax.default_matmul_precision("highest"):
        return x @ Q


def run_with_gains(model: NMRNN, variables, s, *, inputs=None, x0=None) -> dict[str, jax.Array]:
    """Run a package NM-RNN with every gain imposed: s_t replaces σ(A_z z_t + b_z).

    Args:
        model, variables: any :class:`nmrnn.models.NMRNN` and its variables.
        s: (batch, T, K) gains at steps 1..T.
        inputs: (batch, T, U); zero if omitted.
        x0: (N,) initial state replacing ``constants/x0`` (e.g. the state at go).

    Returns:
        the model's output dict (y, x, z, s), each (batch, T, ·).
    """
    s = jnp.asarray(s, jnp.float32)
    if inputs is None:
        n_inputs = variables["params"]["B_z"].shape[1]
        inputs = jnp.zeros(s.shape[:2] + (n_inputs,), jnp.float32)
    if x0 is not None:
        constants = {**variables["constants"], "x0": jnp.asarray(x0, jnp.float32)}
        variables = {**variables, "constants": constants}
    return _apply(model, variables, inputs, s, jnp.ones((model.K,), bool))


def simulate_mode_decay(model: NMRNN, variables, s) -> tuple[jax.Array, jax.Array]:
    """Run the package's linear symmetric NM-RNN with zero input and the gains s imposed.

    Args:
        model: a :func:`nmrnn.models.LinearNMRNN` (``linear=True``).
        variables: its variables; x_0 = ``constants/x0``.
        s: (batch, T, K) gains, imposed on every mode through ``s_override``.

    Returns:
        (w, w0): w (batch, T, K) = Qᵀx_t for t = 1..T and w0 (K,) = Qᵀx_0.
    """
    _check_linear(model)
    out = run_with_gains(model, variables, s)
    x0 = variables["constants"]["x0"]
    return mode_amplitudes(model, variables, out["x"]), mode_amplitudes(model, variables, x0)


def _check_linear(model: NMRNN) -> None:
    if not (isinstance(model, NMRNN) and model.linear):
        raise ValueError("the theory needs the linear symmetric NM-RNN (LinearNMRNN, linear=True)")


# ---------------------------------------------------------------------------------------------
# (2) An LSTM whose cell state is the linear symmetric NM-RNN's w = Qᵀx (τx = 1)
# ---------------------------------------------------------------------------------------------


def nmrnn_to_lstm(variables, model: NMRNN, *, eps: float = 1e-6) -> tuple[LSTM, dict, float]:
    """Variables of the package's :class:`nmrnn.models.LSTM` reproducing a linear symmetric NM-RNN.

    With τx = 1 the NM-RNN's mode amplitudes follow w_t = s_t ⊙ w_{t-1} + QᵀB_x u_t (and
    x_⊥ = (I - QQᵀ)x is memoryless: x_⊥,t = (I - QQᵀ)B_x u_t), which is the LSTM cell update
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t. The returned LSTM has K + O units and takes the input
    **[u_t, z_t]** (U + M channels):

    * units 1..K (modes): f = σ(A_z z_t + b_z) = s_t exactly (Wx_f = [0, A_z], b_f = b_z);
      i = σ(+100) = 1 exactly in float32; g = tanh(ε QᵀB_x u_t) = ε QᵀB_x u_t to float32
      precision (ε small enough that |ε QᵀB_x u| < 3e-4, where float32 tanh is the identity);
      c_0 = ε Qᵀx_0. Hence c_t = ε w_t.
    * units K+1..K+O (readout of the memoryless part): f = σ(-100) = 0, i = 1,
      g = tanh(ε (C(I - QQᵀ)B_x u_t + d)), so c_t = ε (C x_⊥,t + d).
    * o = σ(+100) = 1, h = tanh(c) = c to float32 precision; readout C_lstm = [C Q, I_O] / ε gives
      y_t = C Q w_t + C x_⊥,t + d = C x_t + d, the NM-RNN's output.
    * Wh = 0: h plays no role in the dynamics.

    Assumptions (stated, not hidden): τx = 1 (otherwise the forget factor 1 - (1 - s)/τx is not a
    logistic of an affine function of z); the neuromodulatory state z_t is *given to the LSTM as an
    input* (its own tanh RNN is not emulated: a gate sees h_{t-1}, not z_t); the tanh input path is
    run in its linear range through the scale ε, so the cell holds ε·w and c/ε is compared with w.
    Under these assumptions the package's own LSTM expresses the construction (no augmented LSTM).

    Args:
        variables: the NM-RNN's variables (``params`` L, B_x, C, d, A_z, b_z; ``constants`` x0).
        model: the :func:`nmrnn.models.LinearNMRNN` module (``linear=True``, ``tau_x=1``).
        eps: the scale ε of the cell state.

    Returns:
        (lstm, lstm_variables, eps): ``lstm.apply(lstm_variables, concat([u, z], -1))["c"][..., :K]
        / eps`` equals w = Qᵀx. See :func:`run_nmrnn_and_lstm`.
    """
    _check_linear(model)
    if model.tau_x != 1.0:
        raise ValueError(
            f"the LSTM construction needs tau_x = 1 (Euler step = τx), got {model.tau_x}"
        )
    p = {k: np.asarray(v, np.float64) for k, v in variables["params"].items()}
    x0 = np.asarray(variables["constants"]["x0"], np.float64)
    Q = np.asarray(low_rank_factors(jnp.asarray(p["L"]), "qr"), np.float64)
    N, K = Q.shape
    B_x, C, A_z, b_z = p["B_x"], p["C"], p["A_z"], p["b_z"]
    d = p.get("d", np.zeros(C.shape[0]))
    n_out, M, U = C.shape[0], A_z.shape[1], p["B_z"].shape[1]
    Ux = B_x.shape[1]  # context routing: x sees the first Ux input channels only
    perp = np.eye(N) - Q @ Q.T
    n_units, n_in = K + n_out, U + M

    Wx = {g: np.zeros((n_units, n_in)) for g in "ifgo"}
    Wh = {g: np.zeros((n_units, n_units)) for g in "ifgo"}
    b = {g: np.zeros(n_units) for g in "ifgo"}
    Wx["f"][:K, U:] = A_z
    b["f"][:K] = b_z
    b["f"][K:] = -SATURATED
    b["i"][:] = SATURATED
    b["o"][:] = SATURATED
    Wx["g"][:K, :Ux] = eps * (Q.T @ B_x)
    Wx["g"][K:, :Ux] = eps * (C @ perp @ B_x)
    b["g"][K:] = eps * d
    c0 = eps * np.concatenate([Q.T @ x0, C @ perp @ x0 + d])
    C_lstm = np.concatenate([C @ Q, np.eye(n_out)], axis=1) / eps

    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    params = {f"Wx_{g}": f32(Wx[g]) for g in "ifgo"}
    params |= {f"Wh_{g}": f32(Wh[g]) for g in "ifgo"}
    params |= {f"b_{g}": f32(b[g]) for g in "ifgo"}
    params["C"] = f32(C_lstm)
    constants = {"h0": f32(np.tanh(c0)), "c0": f32(c0)}
    return LSTM(N=n_units, O=n_out), {"params": params, "constants": constants}, eps


class LSTMCorrespondence(NamedTuple):
    """Trajectories of an NM-RNN and its constructed LSTM, each (batch, T, ·)."""

    w_nmrnn: jax.Array  # Qᵀx_t, (batch, T, K)
    c_lstm_rescaled: jax.Array  # c_t[:K] / ε, (batch, T, K)
    y_nmrnn: jax.Array  # C x_t + d, (batch, T, O)
    y_lstm: jax.Array  # C_lstm h_t, (batch, T, O)
    s: jax.Array  # the NM-RNN's gains = the LSTM's forget gates of the mode units, (batch, T, K)
    w_exact: (
        np.ndarray
    )  # float64 :func:`mode_recursion` under those gains and inputs, (batch, T, K)


def run_nmrnn_and_lstm(model: NMRNN, variables, inputs, *, eps: float = 1e-6) -> LSTMCorrespondence:
    """Run a linear symmetric NM-RNN (τx = 1) and the LSTM of :func:`nmrnn_to_lstm` on one input.

    Args:
        model, variables: the NM-RNN (``LinearNMRNN(..., tau_x=1)``) and its variables.
        inputs: (batch, T, U).
        eps: cell-state scale; keep |ε QᵀB_x u| below ~3e-4.

    Returns:
        :class:`LSTMCorrespondence`; its first two fields are (w_nmrnn, c_lstm_rescaled).
    """
    lstm, lstm_vars, eps = nmrnn_to_lstm(variables, model, eps=eps)
    inputs = jnp.asarray(inputs, jnp.float32)
    out = _apply(model, variables, inputs)
    lstm_out = _apply(lstm, lstm_vars, jnp.concatenate([inputs, out["z"]], axis=-1))
    p = variables["params"]
    Q = np.asarray(low_rank_factors(p["L"], "qr"), np.float64)
    B_x = np.asarray(p["B_x"], np.float64)
    drive = np.asarray(inputs, np.float64)[..., : B_x.shape[1]] @ B_x.T @ Q
    w0 = np.asarray(variables["constants"]["x0"], np.float64) @ Q
    largest = eps * float(np.abs(drive).max(initial=0.0))
    if largest > LINEAR_TANH:
        warnings.warn(
            f"eps·QᵀB_x u reaches {largest:.2g} > {LINEAR_TANH}: the LSTM's tanh input path is no "
            "longer linear to float32 precision; pass a smaller eps",
            stacklevel=2,
        )
    return LSTMCorrespondence(
        w_nmrnn=mode_amplitudes(model, variables, out["x"]),
        c_lstm_rescaled=lstm_out["c"][..., : model.K] / eps,
        y_nmrnn=out["y"],
        y_lstm=lstm_out["y"],
        s=out["s"],
        w_exact=mode_recursion(w0, out["s"], model.tau_x, drive=drive),
    )


# ---------------------------------------------------------------------------------------------
# (3) Optimal gain of a rank-1 NM-RNN that produces a target f(t) after go
# ---------------------------------------------------------------------------------------------


class Rank1(NamedTuple):
    """A rank-1 output network x_t = (1-1/τ)x + (1/τ)(s_t ℓ rᵀφ(x) + B u_t), y_t = c·x_t + d.

    ``ell`` (N,) already includes the normalisation gain g (Q for ``qr``, L/N for ``inv_n``).
    """

    ell: np.ndarray
    r: np.ndarray
    c: np.ndarray
    d: float


def rank1_parameters(variables, model: NMRNN, output: int = 0) -> Rank1:
    """The (ℓ, r, c, d) of a K = 1 NM-RNN's output network, readout channel ``output``.

    For ``linear=True`` (the linear symmetric model) r = ℓ = Q.
    """
    if model.K != 1:
        raise ValueError(f"rank1_parameters needs K = 1, got K = {model.K}")
    p = variables["params"]
    if model.linear:
        ell = r = np.asarray(low_rank_factors(p["L"], "qr"), np.float64)[:, 0]
    else:
        gain = recurrence_gain(model.normalisation, model.N)
        left = low_rank_factors(p["L"], model.normalisation, model.qr_sign)
        ell = gain * np.asarray(left, np.float64)[:, 0]
        r = np.asarray(p["R"], np.float64)[:, 0]
    c = np.asarray(p["C"], np.float64)[output]
    d = float(np.asarray(p["d"])[output]) if "d" in p else 0.0
    return Rank1(ell=ell, r=r, c=c, d=d)


def _phi(phi: str | Callable) -> Callable:
    if callable(phi):
        return phi
    if phi == "tanh":
        return np.tanh
    if phi == "linear":
        return lambda v: v
    raise ValueError(f"unknown phi {phi!r}; use 'tanh', 'linear' or a callable")


def optimal_gain_exact(
    params_rank1: Rank1,
    x_go,
    target,
    *,
    tau_x: float,
    phi: str | Callable = "tanh",
    drive=None,
) -> np.ndarray:
    """The gain sequence that makes a rank-1 network output the target exactly, step by step.

    Given x_{t-1}, the output y_t = c·[(1-a)x_{t-1} + a B u_t] + d + s_t · a (c·ℓ)(rᵀφ(x_{t-1})) is
    affine in s_t (a = 1/τx), so y_t = f_t is solved for s_t, x_t is advanced with it, and so on.
    This keeps the off-manifold part x_⊥ that the approximation drops, and holds for any φ (the
    nonlinearity only enters through the known x_{t-1}). s_t is not confined to (0, 1): a target a
    σ-gated network cannot follow shows up as s outside that range. Fails (inf/nan) where
    (c·ℓ)(rᵀφ(x_{t-1})) = 0.

    Args:
        params_rank1: :class:`Rank1` (see :func:`rank1_parameters`).
        x_go: (..., N) state at go (the last step before the target starts).
        target: (..., T) desired outputs f at steps 1..T after x_go.
        tau_x: time constant τx.
        phi: ``"tanh"`` (the trained NM-RNN), ``"linear"`` (the theory's model) or a callable.
        drive: optional (..., T, N) input drive B_x u_t at those steps. Zero by default: if any
            input pulse arrives after go it must be passed here, or the solution is wrong.

    Returns:
        s: (..., T) float64.
    """
    s, _ = _solve_rank1(params_rank1, x_go, target, tau_x, _phi(phi), drive)
    return s


def rank1_rollout(
    params_rank1: Rank1, x_go, s, *, tau_x: float, phi: str | Callable = "tanh", drive=None
) -> tuple[np.ndarray, np.ndarray]:
    """Run a rank-1 network from x_go under gains s: x_go (..., N), s (..., T) → (x (..., T, N),
    y (..., T)), float64."""
    ell, r, c, d = params_rank1
    phi = _phi(phi)
    a = 1.0 / tau_x
    x = np.asarray(x_go, np.float64)
    s = np.asarray(s, np.float64)
    xs, ys = [], []
    for t in range(s.shape[-1]):
        dx = 0.0 if drive is None else np.asarray(drive, np.float64)[..., t, :]
        kappa = phi(x) @ r
        x = (1 - a) * x + a * ((s[..., t] * kappa)[..., None] * ell + dx)
        xs.append(x)
        ys.append(x @ c + d)
    return np.stack(xs, axis=-2), np.stack(ys, axis=-1)


def _solve_rank1(params, x_go, target, tau_x, phi, drive):
    ell, r, c, d = params
    a = 1.0 / tau_x
    c_ell = float(c @ ell)
    x = np.asarray(x_go, np.float64)
    target = np.asarray(target, np.float64)
    ss, xs = [], []
    with np.errstate(divide="ignore", invalid="ignore"):
        for t in range(target.shape[-1]):
            dx = 0.0 if drive is None else np.asarray(drive, np.float64)[..., t, :]
            base = (1 - a) * x + a * dx
            kappa = phi(x) @ r
            s_t = (target[..., t] - (base @ c + d)) / (a * c_ell * kappa)
            x = base + a * (s_t * kappa)[..., None] * ell
            ss.append(s_t)
            xs.append(x)
    return np.stack(ss, axis=-1), np.stack(xs, axis=-2)


def optimal_gain_approx(
    params_rank1: Rank1, x_go, target, *, tau_x: float, continuous: bool = False
) -> np.ndarray:
    """The paper's approximate optimal gain: valid when x lies on ℓ (x_⊥ negligible), φ linear.

    With x = ℓ w, the output is y - d = (c·ℓ) w and w_t = (1 - a + a s_t rᵀℓ) w_{t-1}, so

        discrete (default):  s_t = (1/rᵀℓ) (1 + τx (f_t - f_{t-1}) / (f_{t-1} - d)),
                             with f_0 = c·x_go + d
        continuous:          s(t) = (1/rᵀℓ) (1 + τx f'(t) / (f(t) - d))      (SPEC §4)

    The discrete form equals :func:`optimal_gain_exact` (φ linear) when x_go lies exactly on ℓ; the
    continuous form is its τx ≫ 1 limit, with f' from central differences of the target.

    Args:
        params_rank1: :class:`Rank1`.
        x_go: (..., N) state at go (only its output c·x_go + d is used).
        target: (..., T) desired outputs at steps 1..T.
        tau_x: time constant τx.
        continuous: use the continuous-time formula.

    Returns:
        s: (..., T) float64.
    """
    ell, r, c, d = params_rank1
    r_ell = float(r @ ell)
    f = np.asarray(target, np.float64)
    y_go = np.asarray(x_go, np.float64) @ c + d
    f_all = np.concatenate([np.asarray(y_go)[..., None], f], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if continuous:
            slope = np.gradient(f_all, axis=-1)[..., 1:]
            return (1.0 + tau_x * slope / (f - d)) / r_ell
        prev = f_all[..., :-1]
        return (1.0 + tau_x * (f - prev) / (prev - d)) / r_ell

"""The low-rank RNN (LR-RNN), the NM-RNN with s ≡ 1 and no z: the flax module, its parameter
groups and its time loop with a hand-written reverse pass.

x_t = (1 - a_x) x_{t-1} + a_x [g · left rightᵀ tanh(x_{t-1}) + B u_t],  y_t = C x_t + d
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from nmrnn.lowrank import low_rank_factors, recurrence_gain
from nmrnn.models.common import (
    Array,
    Model,
    Recurrence,
    RecurrentModel,
    at,
    gradient_field,
    initial_state,
    input_drive,
    is_zero,
    leaky_custom_vjp,
    leaky_rollout,
    leaky_scan,
    leaky_trajectories,
    normal,
    put_all,
    readout,
    readout_gradients,
    small_matmul,
    state_adjoint,
    sum_outer_t,
    transposed,
)


class LRRNN(RecurrentModel):
    """Low-rank RNN: the NM-RNN with s ≡ 1 and no z.

    x_t = (1 - 1/τ) x_{t-1} + (1/τ)[g L Rᵀ φ(x_{t-1}) + B u_t],  y_t = C x_t + d
    """

    N: int
    K: int
    O: int
    tau_x: float = 10.0
    normalisation: str = "qr"
    qr_sign: str = "positive"
    readout_bias: bool = True
    init_scheme: str = "default"
    gradient: str = gradient_field()

    PARAM_GROUPS = {"lowrank": ("L", "R", "B", "C", "d"), "inputs": ("B",)}

    @nn.compact
    def __call__(self, inputs: Array) -> dict[str, Array]:
        """Run a batch of trials.

        inputs: (batch, time, U), batch-major (trials first, not time-major) → dict with
        y (batch, time, O), x (batch, time, N).
        """
        N, K, O = self.N, self.K, self.O
        U = inputs.shape[-1]
        eft = self.init_scheme == "eft"
        lr_scale = 1.0 / jnp.sqrt(K) if eft else 1.0
        L = self.param("L", normal(lr_scale), (N, K))
        R = self.param("R", normal(lr_scale), (N, K))
        B = self.param("B", normal(1.0 / jnp.sqrt(U)), (N, U))
        C, d = readout(self, N, O)
        x0 = initial_state(self, "x0", N, random=eft)
        left = low_rank_factors(L, self.normalisation, self.qr_sign)
        gain = recurrence_gain(self.normalisation, N)
        # The time loop, input projection and readout included (:func:`rollout` below): the
        # equation above, with a hand-written reverse pass unless gradient="autodiff".
        weights = LRRNNWeights(left, R, B, C, d)
        return leaky_trajectories(
            rollout, weights, x0, inputs, gain=gain, ax=1.0 / self.tau_x, gradient=self.gradient
        )


MODELS = (Model("lrrnn", LRRNN),)


# ----------------------------------------------------------------------------- time loop


class LRRNNWeights(NamedTuple):
    """The arrays of one LR-RNN that the time loop reads."""

    left: Array  # (N, K), already normalised
    right: Array  # (N, K)
    B: Array  # (N, U)
    C: Array  # (O, N)
    d: Array  # (O,)


def _forward(rec: Recurrence, w: LRRNNWeights, x0, inputs, residuals):
    """Returns time-major (ys, xs) and, with ``residuals``, φ(x_{t-1}) and r_t = Rᵀφ(x_{t-1})."""
    T, (B, N), K = inputs.shape[0], x0.shape, w.left.shape[-1]
    drive = input_drive(inputs, w.B)
    (left_T,) = transposed(w.left)

    def body(t, carry):
        x, bufs = carry
        phi_x = jnp.tanh(x)
        r = phi_x @ w.right
        x = (1.0 - rec.ax) * x + rec.ax * (rec.gain * small_matmul(r, left_T) + drive(t))
        new = (x,) + ((phi_x, r) if residuals else ())
        return x, put_all(bufs, new, t)

    shapes = [(T, B, N)] + ([(T, B, N), (T, B, K)] if residuals else [])
    bufs = tuple(jnp.zeros(shape, x0.dtype) for shape in shapes)
    xs, *res = jax.lax.fori_loop(0, T, body, (x0, bufs))[1]
    return (xs @ w.C.T + w.d, xs, *res)


def _reverse(rec: Recurrence, saved, cotangents):
    w, x0, inputs, xs, phi_prev, r = saved
    gys, gxs = (None if is_zero(c) else c for c in cotangents)
    T, (B, N), K = xs.shape[0], x0.shape, w.left.shape[-1]
    c_left = rec.ax * rec.gain
    (right_T,) = transposed(w.right)

    def body(i, carry):
        px, bufs = carry
        t = T - 1 - i
        lam_x = state_adjoint(px, gys, gxs, w.C, t)
        e = c_left * (lam_x @ w.left)  # adjoint of r_t
        phi_t = at(phi_prev, t)
        px = (1.0 - rec.ax) * lam_x + (1.0 - phi_t**2) * small_matmul(e, right_T)
        return px, put_all(bufs, (lam_x, e), t)

    bufs = (jnp.zeros((T, B, N), xs.dtype), jnp.zeros((T, B, K), xs.dtype))
    g_x0, (lam_x, e) = jax.lax.fori_loop(0, T, body, (jnp.zeros_like(x0), bufs))
    by_lam_x = sum_outer_t(jnp.concatenate([c_left * r, rec.ax * inputs], -1), lam_x)
    g_C, g_d = readout_gradients(gys, xs, w.C, w.d)
    g_w = LRRNNWeights(
        left=by_lam_x[:K].T, right=sum_outer_t(e, phi_prev).T, B=by_lam_x[K:].T, C=g_C, d=g_d
    )
    return g_w, g_x0, rec.ax * (lam_x @ w.B)


_custom = leaky_custom_vjp(_forward, _reverse)


def _autodiff(rec: Recurrence, w: LRRNNWeights, x0, inputs):
    """The same equation as a plain ``lax.scan``, differentiated by JAX (any mode)."""
    return leaky_scan(rec, w, x0, inputs, lambda x: rec.gain * (jnp.tanh(x) @ w.right) @ w.left.T)


def rollout(
    weights: LRRNNWeights,
    x0: Array,
    inputs: Array,
    *,
    gain: float,
    ax: float,
    gradient: str = "custom",
) -> tuple[Array, Array]:
    """Run the LR-RNN over a batch of trials (the equation of the module docstring).

    Args:
        weights: :class:`LRRNNWeights` (left already normalised).
        x0: (B, N) initial state. inputs: (T, B, U), time-major. gain: g. ax: 1/τ.
        gradient: ``"custom"`` (hand-written reverse pass) or ``"autodiff"`` (plain scan).

    Returns:
        ys (T, B, O), xs (T, B, N), time-major.
    """
    return leaky_rollout(_custom, _autodiff, weights, x0, inputs, gain, ax, gradient)

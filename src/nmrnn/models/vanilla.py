"""The leaky vanilla RNN: the flax module, its parameter groups and its time loop with a
hand-written reverse pass (the LR-RNN's treatment with a full W (N×N) in place of the low-rank
product).

x_t = (1 - a_x) x_{t-1} + a_x [g · W tanh(x_{t-1}) + B u_t],  y_t = C x_t + d
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

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
    put,
    put_all,
    readout,
    readout_gradients,
    state_adjoint,
    sum_outer_t,
    transposed,
)


class VanillaRNN(RecurrentModel):
    """Leaky vanilla RNN.

    x_t = (1 - 1/τ) x_{t-1} + (1/τ)[(1/N) W φ(x_{t-1}) + B u_t], y = C x + d.
    """

    N: int
    O: int
    tau_x: float = 10.0
    readout_bias: bool = True
    init_scheme: str = "default"
    gradient: str = gradient_field()

    PARAM_GROUPS = {"inputs": ("B",)}

    @nn.compact
    def __call__(self, inputs: Array) -> dict[str, Array]:
        """Run a batch of trials.

        inputs: (batch, time, U), batch-major (trials first, not time-major) → dict with
        y (batch, time, O), x (batch, time, N).
        """
        N, O = self.N, self.O
        U = inputs.shape[-1]
        W = self.param("W", normal(1.0), (N, N))
        B = self.param("B", normal(1.0 / jnp.sqrt(U)), (N, U))
        C, d = readout(self, N, O)
        x0 = initial_state(self, "x0", N, random=self.init_scheme == "eft")
        # The time loop, input projection and readout included (:func:`rollout` below): the
        # equation above, with a hand-written reverse pass unless gradient="autodiff".
        weights = VanillaWeights(W, B, C, d)
        return leaky_trajectories(
            rollout, weights, x0, inputs, gain=1.0 / N, ax=1.0 / self.tau_x, gradient=self.gradient
        )


MODELS = (Model("vanilla", VanillaRNN),)


# ----------------------------------------------------------------------------- time loop


class VanillaWeights(NamedTuple):
    """The arrays of one vanilla RNN that the time loop reads."""

    W: Array  # (N, N)
    B: Array  # (N, U)
    C: Array  # (O, N)
    d: Array  # (O,)


def _forward(rec: Recurrence, w: VanillaWeights, x0, inputs, residuals):
    """Returns time-major (ys, xs) and, with ``residuals``, φ(x_{t-1})."""
    T, (B, N) = inputs.shape[0], x0.shape
    drive = input_drive(inputs, w.B)
    (W_T,) = transposed(w.W)
    scale = rec.gain

    def body(t, carry):
        x, bufs = carry
        phi_x = jnp.tanh(x)
        x = (1.0 - rec.ax) * x + rec.ax * (scale * (phi_x @ W_T) + drive(t))
        new = (x,) + ((phi_x,) if residuals else ())
        return x, put_all(bufs, new, t)

    bufs = tuple(jnp.zeros((T, B, N), x0.dtype) for _ in range(2 if residuals else 1))
    xs, *res = jax.lax.fori_loop(0, T, body, (x0, bufs))[1]
    return (xs @ w.C.T + w.d, xs, *res)


def _reverse(rec: Recurrence, saved, cotangents):
    w, x0, inputs, xs, phi_prev = saved
    gys, gxs = (None if is_zero(c) else c for c in cotangents)
    T = xs.shape[0]
    c_w = rec.ax * rec.gain

    def body(i, carry):
        px, buf = carry
        t = T - 1 - i
        lam_x = state_adjoint(px, gys, gxs, w.C, t)
        phi_t = at(phi_prev, t)
        px = (1.0 - rec.ax) * lam_x + (1.0 - phi_t**2) * (c_w * (lam_x @ w.W))
        return px, put(buf, lam_x, t)

    g_x0, lam_x = jax.lax.fori_loop(0, T, body, (jnp.zeros_like(x0), jnp.zeros_like(xs)))
    g_C, g_d = readout_gradients(gys, xs, w.C, w.d)
    g_W = c_w * sum_outer_t(phi_prev, lam_x).T
    g_w = VanillaWeights(W=g_W, B=rec.ax * sum_outer_t(inputs, lam_x).T, C=g_C, d=g_d)
    return g_w, g_x0, rec.ax * (lam_x @ w.B)


_custom = leaky_custom_vjp(_forward, _reverse)


def _autodiff(rec: Recurrence, w: VanillaWeights, x0, inputs):
    """The same equation as a plain ``lax.scan``, differentiated by JAX (any mode)."""
    return leaky_scan(rec, w, x0, inputs, lambda x: rec.gain * (jnp.tanh(x) @ w.W.T))


def rollout(
    weights: VanillaWeights,
    x0: Array,
    inputs: Array,
    *,
    gain: float,
    ax: float,
    gradient: str = "custom",
) -> tuple[Array, Array]:
    """Run the leaky vanilla RNN over a batch of trials (the equation of the module docstring).

    Args:
        weights: :class:`VanillaWeights`. x0: (B, N) initial state.
        inputs: (T, B, U), time-major. gain: g (1/N in :class:`nmrnn.models.VanillaRNN`).
        ax: 1/τ.
        gradient: ``"custom"`` (hand-written reverse pass) or ``"autodiff"`` (plain scan).

    Returns:
        ys (T, B, O), xs (T, B, N), time-major.
    """
    return leaky_rollout(_custom, _autodiff, weights, x0, inputs, gain, ax, gradient)

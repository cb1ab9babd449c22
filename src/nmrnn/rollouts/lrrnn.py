"""The LR-RNN's time loop, with its hand-written reverse pass: the NM-RNN's loop with s ≡ 1 and
no z.

x_t = (1 - a_x) x_{t-1} + a_x [g · left rightᵀ tanh(x_{t-1}) + B u_t],  y_t = C x_t + d
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from nmrnn.rollouts.common import (
    Array,
    Recurrence,
    at,
    check_gradient,
    is_zero,
    put,
    small_matmul,
    state_adjoint,
    sum_outer_t,
    transposed,
)


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
    drive = inputs @ w.B.T
    (left_T,) = transposed(w.left)

    def body(t, carry):
        x, bufs = carry
        phi_x = jnp.tanh(x)
        r = phi_x @ w.right
        x = (1.0 - rec.ax) * x + rec.ax * (rec.gain * small_matmul(r, left_T) + at(drive, t))
        new = (x,) + ((phi_x, r) if residuals else ())
        return x, tuple(put(b, v, t) for b, v in zip(bufs, new, strict=True))

    shapes = [(T, B, N)] + ([(T, B, N), (T, B, K)] if residuals else [])
    bufs = tuple(jnp.zeros(shape, x0.dtype) for shape in shapes)
    xs, *res = jax.lax.fori_loop(0, T, body, (x0, bufs))[1]
    return (xs @ w.C.T + w.d, xs, *res)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _custom(rec: Recurrence, w: LRRNNWeights, x0, inputs):
    return _forward(rec, w, x0, inputs, residuals=False)


def _custom_fwd(rec, w, x0, inputs):
    w, x0, inputs = jax.tree.map(lambda p: p.value, (w, x0, inputs))
    ys, xs, phi_prev, r = _forward(rec, w, x0, inputs, residuals=True)
    return (ys, xs), (w, x0, inputs, xs, phi_prev, r)


def _custom_bwd(rec, saved, cotangents):
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
        return px, tuple(put(b, v, t) for b, v in zip(bufs, (lam_x, e), strict=True))

    bufs = (jnp.zeros((T, B, N), xs.dtype), jnp.zeros((T, B, K), xs.dtype))
    g_x0, (lam_x, e) = jax.lax.fori_loop(0, T, body, (jnp.zeros_like(x0), bufs))
    by_lam_x = sum_outer_t(jnp.concatenate([c_left * r, rec.ax * inputs], -1), lam_x)
    g_w = LRRNNWeights(
        left=by_lam_x[:K].T,
        right=sum_outer_t(e, phi_prev).T,
        B=by_lam_x[K:].T,
        C=jnp.zeros_like(w.C) if gys is None else sum_outer_t(gys, xs),
        d=jnp.zeros_like(w.d) if gys is None else gys.sum(axis=(0, 1)),
    )
    return g_w, g_x0, rec.ax * (lam_x @ w.B)


_custom.defvjp(_custom_fwd, _custom_bwd, symbolic_zeros=True)


def _autodiff(rec: Recurrence, w: LRRNNWeights, x0, inputs):
    """The same equation as a plain ``lax.scan``, differentiated by JAX (any mode)."""
    drive = inputs @ w.B.T

    def step(x, dx):
        x = (1.0 - rec.ax) * x + rec.ax * (rec.gain * (jnp.tanh(x) @ w.right) @ w.left.T + dx)
        return x, x

    xs = jax.lax.scan(step, x0, drive)[1]
    return xs @ w.C.T + w.d, xs


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
    run = _custom if check_gradient(gradient) == "custom" else _autodiff
    return run(Recurrence(float(gain), float(ax)), weights, x0, inputs)

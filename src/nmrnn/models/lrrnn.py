"""The low-rank RNN (LR-RNN), the NM-RNN with s ≡ 1 and no z: the flax module, its parameter
groups and its time loop with a hand-written reverse pass.

x_t = (1 - a_x) x_{t-1} + a_x [g · left rightᵀ tanh(x_{t-1}) + B u_t],  y_t = C x_t + d
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from nmrnn.lowrank import low_rank_factors, recurrence_gain
from nmrnn.models.common import (
    Array,
    Model,
    Recurrence,
    at,
    batch_major,
    check_gradient,
    check_gradient_setting,
    check_low_rank_options,
    check_rank,
    check_size,
    check_time_constant,
    gradient_field,
    initial_state,
    is_zero,
    normal,
    put,
    readout,
    small_matmul,
    state_adjoint,
    sum_outer_t,
    time_major,
    transposed,
)


class LRRNN(nn.Module):
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

    def __post_init__(self):
        for name in ("N", "K", "O"):
            check_size("LRRNN", name, getattr(self, name))
        check_rank("LRRNN", self.N, self.K)
        check_time_constant("LRRNN", "tau_x", self.tau_x)
        check_low_rank_options("LRRNN", self.normalisation, self.qr_sign)
        check_gradient_setting("LRRNN", self.gradient)
        super().__post_init__()

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
        ys, xs = rollout(
            LRRNNWeights(left, R, B, C, d),
            jnp.broadcast_to(x0, (inputs.shape[0], N)),
            time_major(inputs),
            gain=gain,
            ax=1.0 / self.tau_x,
            gradient=self.gradient,
        )
        ys, xs = batch_major((ys, xs))
        return {"y": ys, "x": xs}


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

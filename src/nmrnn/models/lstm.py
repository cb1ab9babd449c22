"""The LSTM (no peepholes): the flax module, its parameter groups and its time loop with a
hand-written reverse pass.

pre_t = drive_t + Wh h_{t-1}, split into the gates (i, f, g, o) in that order;
i, f, o = σ(·), g = tanh(·); c_t = f ⊙ c_{t-1} + i ⊙ g; h_t = o ⊙ tanh(c_t).

The time loop runs the recurrence only: the input drive (u Wxᵀ + b, every step at once, with
the reverse pass of :func:`~nmrnn.models.common.project_inputs`) and the readout are single
large products outside it. The reverse loop carries (λh, λc) and stores the adjoint of the gate
pre-activations, from which dWh is one product afterwards.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from nmrnn.models.common import (
    Array,
    Model,
    RecurrentModel,
    at,
    batch_major,
    check_gradient,
    gradient_field,
    initial_state,
    is_zero,
    normal,
    project_inputs,
    put,
    put_all,
    sum_outer_t,
    time_major,
    transposed,
)

LSTM_GATES = ("i", "f", "g", "o")


class LSTM(RecurrentModel):
    """Standard LSTM without peepholes; readout y = C h (no bias).

    i, f, o = σ(Wx_· u + Wh_· h + b_·), g = tanh(Wx_g u + Wh_g h + b_g),
    c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c').
    """

    N: int
    O: int
    init_scheme: str = "default"
    gradient: str = gradient_field()

    PARAM_GROUPS = {"inputs": tuple(f"Wx_{g}" for g in LSTM_GATES)}

    @nn.compact
    def __call__(self, inputs: Array) -> dict[str, Array]:
        """Run a batch of trials.

        inputs: (batch, time, U), batch-major (trials first, not time-major) → dict with
        y (batch, time, O), h and c (batch, time, N).
        """
        N, O = self.N, self.O
        U = inputs.shape[-1]
        Wx = {g: self.param(f"Wx_{g}", normal(1.0 / jnp.sqrt(U)), (N, U)) for g in LSTM_GATES}
        Wh = {g: self.param(f"Wh_{g}", normal(1.0 / jnp.sqrt(N)), (N, N)) for g in LSTM_GATES}
        b = {g: self.param(f"b_{g}", normal(1.0 / jnp.sqrt(N)), (N,)) for g in LSTM_GATES}
        C = self.param("C", normal(1.0 / jnp.sqrt(N)), (O, N))
        random = self.init_scheme == "eft"
        h0 = initial_state(self, "h0", N, random=random)
        c0 = initial_state(self, "c0", N, random=random)

        # One stacked matrix per path keeps the time loop to a single product per step.
        Wx_all = jnp.concatenate([Wx[g] for g in LSTM_GATES], axis=0)  # (4N, U)
        Wh_all = jnp.concatenate([Wh[g] for g in LSTM_GATES], axis=0)  # (4N, N)
        b_all = jnp.concatenate([b[g] for g in LSTM_GATES])
        # Time-major from the start: the U-wide inputs are transposed, not the 4N-wide drive,
        # and the readout transposes only the O-wide y (training reads nothing else).
        custom = check_gradient(self.gradient) == "custom"
        drive = project_inputs(time_major(inputs), Wx_all, b_all, custom=custom)
        # The time loop (:func:`rollout` below), with a hand-written reverse pass unless
        # gradient="autodiff".
        batch = inputs.shape[0]
        hs, cs = rollout(
            LSTMWeights(Wh_all),
            jnp.broadcast_to(h0, (batch, N)),
            jnp.broadcast_to(c0, (batch, N)),
            drive,
            gradient=self.gradient,
        )
        ys, hs, cs = batch_major((hs @ C.T, hs, cs))
        return {"y": ys, "h": hs, "c": cs}


MODELS = (Model("lstm", LSTM),)


# ----------------------------------------------------------------------------- time loop


class LSTMWeights(NamedTuple):
    """The arrays of one LSTM that the time loop reads."""

    Wh: Array  # (4N, N): the stacked recurrent weights of the gates i, f, g, o


def _forward(Wh_T: Array, h0: Array, c0: Array, drive: Array, residuals: bool):
    """Returns time-major (hs, cs) and, with ``residuals``, the local derivatives the reverse
    loop needs: ∂c_t/∂pre and ∂h_t/∂pre_o per gate (T, B, 4N), ∂h_t/∂c_t (T, B, N), f (T, B, N)."""
    T, (B, N) = drive.shape[0], h0.shape

    def body(t, carry):
        h, c, bufs = carry
        pre = at(drive, t) + h @ Wh_T
        sig = jax.nn.sigmoid(pre)
        g = jnp.tanh(pre[:, 2 * N : 3 * N])
        i, f, o = sig[:, :N], sig[:, N : 2 * N], sig[:, 3 * N :]
        c_prev, c = c, f * c + i * g
        tc = jnp.tanh(c)
        h = o * tc
        new = (h, c)
        if residuals:
            local = jnp.concatenate(
                [g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g**2), tc * o * (1.0 - o)],
                axis=-1,
            )
            new += (local, o * (1.0 - tc**2), f)
        return h, c, put_all(bufs, new, t)

    shapes = [(T, B, N), (T, B, N)]
    if residuals:
        shapes += [(T, B, 4 * N), (T, B, N), (T, B, N)]
    bufs = tuple(jnp.zeros(shape, h0.dtype) for shape in shapes)
    return jax.lax.fori_loop(0, T, body, (h0, c0, bufs))[2]


@jax.custom_vjp
def _custom(Wh: Array, h0: Array, c0: Array, drive: Array):
    (Wh_T,) = transposed(Wh)
    return _forward(Wh_T, h0, c0, drive, residuals=False)


def _custom_fwd(Wh, h0, c0, drive):
    Wh, h0, c0, drive = (a.value for a in (Wh, h0, c0, drive))
    (Wh_T,) = transposed(Wh)
    hs, cs, *local = _forward(Wh_T, h0, c0, drive, residuals=True)
    return (hs, cs), (Wh, h0, hs, *local)


def _custom_bwd(saved, cotangents):
    Wh, h0, hs, d_gates, dh_dc, forget = saved
    ghs, gcs = (None if is_zero(c) else c for c in cotangents)
    T = hs.shape[0]

    def body(k, carry):
        lam_h, lam_c, buf = carry
        t = T - 1 - k
        if ghs is not None:
            lam_h = lam_h + at(ghs, t)
        if gcs is not None:
            lam_c = lam_c + at(gcs, t)
        lam_c = lam_c + lam_h * at(dh_dc, t)
        d_pre = jnp.concatenate([lam_c, lam_c, lam_c, lam_h], axis=-1) * at(d_gates, t)
        return d_pre @ Wh, lam_c * at(forget, t), put(buf, d_pre, t)

    zeros = jnp.zeros_like(h0)
    g_h0, g_c0, d_pre = jax.lax.fori_loop(0, T, body, (zeros, zeros, jnp.zeros_like(d_gates)))
    h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
    return sum_outer_t(d_pre, h_prev), g_h0, g_c0, d_pre


_custom.defvjp(_custom_fwd, _custom_bwd, symbolic_zeros=True)


def _autodiff(Wh: Array, h0: Array, c0: Array, drive: Array):
    """The same equations as a plain ``lax.scan``, differentiated by JAX (any mode)."""
    N = h0.shape[-1]

    def step(carry, pre_in):
        h, c = carry
        pre = pre_in + h @ Wh.T
        i, f, o = (jax.nn.sigmoid(pre[:, j * N : (j + 1) * N]) for j in (0, 1, 3))
        c = f * c + i * jnp.tanh(pre[:, 2 * N : 3 * N])
        h = o * jnp.tanh(c)
        return (h, c), (h, c)

    return jax.lax.scan(step, (h0, c0), drive)[1]


def rollout(
    weights: LSTMWeights, h0: Array, c0: Array, drive: Array, *, gradient: str = "custom"
) -> tuple[Array, Array]:
    """Run the LSTM's time loop over a batch of trials (the equations of the module docstring).

    Args:
        weights: :class:`LSTMWeights`.
        h0, c0: (B, N) initial states. drive: (T, B, 4N), time-major: the input projection
            plus the gate biases.
        gradient: ``"custom"`` (hand-written reverse pass) or ``"autodiff"`` (plain scan).

    Returns:
        hs (T, B, N), cs (T, B, N), time-major.
    """
    run = _custom if check_gradient(gradient) == "custom" else _autodiff
    return run(weights.Wh, h0, c0, drive)

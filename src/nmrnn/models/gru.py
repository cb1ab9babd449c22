"""The gated recurrent unit (GRU; Cho et al., 2014), not in the paper: a gated RNN without
neuromodulation, as a further baseline. The flax module, its parameter groups and its time loop,
a plain ``lax.scan`` differentiated by JAX (no hand-written reverse pass).

r_t = σ(Wx_r u_t + Wh_r h_{t-1} + b_r),  a_t = σ(Wx_a u_t + Wh_a h_{t-1} + b_a)   (reset, update)
n_t = tanh(Wx_n u_t + b_n + r_t ⊙ (Wh_n h_{t-1}))                              (candidate)
h_t = (1 - a_t) ⊙ n_t + a_t ⊙ h_{t-1},  y_t = C h_t + d
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
    batch_major,
    check_gradient,
    gradient_field,
    initial_state,
    normal,
    readout,
    time_major,
)

GRU_GATES = ("r", "a", "n")  # reset, update, candidate


class GRU(RecurrentModel):
    """GRU with a linear readout (the equations of the module docstring).

    Attributes:
        N, O: sizes of h and y.
        readout_bias: include d (an EFT experiment turns it off, as for the paper's models).
        init_scheme: ``"default"`` or ``"eft"`` (h_0 drawn at random once per run, as the
            other models do there); the weights are drawn as the LSTM's: Wx ~ N(0, 1/U),
            Wh and b ~ N(0, 1/N).
        gradient: accepted for every model; both values run the same ``lax.scan``.
    """

    N: int
    O: int
    readout_bias: bool = True
    init_scheme: str = "default"
    gradient: str = gradient_field()

    PARAM_GROUPS = {"inputs": tuple(f"Wx_{g}" for g in GRU_GATES)}

    @nn.compact
    def __call__(self, inputs: Array) -> dict[str, Array]:
        """inputs: (batch, time, U), batch-major → dict with y (batch, time, O), h (batch,
        time, N)."""
        N, O = self.N, self.O
        U = inputs.shape[-1]
        Wx = {g: self.param(f"Wx_{g}", normal(1.0 / jnp.sqrt(U)), (N, U)) for g in GRU_GATES}
        Wh = {g: self.param(f"Wh_{g}", normal(1.0 / jnp.sqrt(N)), (N, N)) for g in GRU_GATES}
        b = {g: self.param(f"b_{g}", normal(1.0 / jnp.sqrt(N)), (N,)) for g in GRU_GATES}
        C, d = readout(self, N, O)
        h0 = initial_state(self, "h0", N, random=self.init_scheme == "eft")
        # The input drive of every step at once: (batch, time, 3N), gates r, a, n.
        drive = inputs @ jnp.concatenate([Wx[g] for g in GRU_GATES]).T
        drive = drive + jnp.concatenate([b[g] for g in GRU_GATES])
        weights = GRUWeights(jnp.concatenate([Wh[g] for g in GRU_GATES]))
        h0 = jnp.broadcast_to(h0, (inputs.shape[0], N))
        hs = batch_major(rollout(weights, h0, time_major(drive), gradient=self.gradient))
        return {"y": hs @ C.T + d, "h": hs}


MODELS = (Model("gru", GRU),)


# ----------------------------------------------------------------------------- time loop


class GRUWeights(NamedTuple):
    """The arrays of one GRU that the time loop reads."""

    Wh: Array  # (3N, N): the stacked recurrent weights of r, a, n


def rollout(weights: GRUWeights, h0: Array, drive: Array, *, gradient: str = "custom") -> Array:
    """The GRU's time loop: h0 (B, N), drive (T, B, 3N) time-major (input projections plus
    biases) → hs (T, B, N). ``gradient`` is checked but not used: JAX differentiates the scan."""
    check_gradient(gradient)
    N = h0.shape[-1]

    def step(h, drive_t):
        recurrent = h @ weights.Wh.T
        r = jax.nn.sigmoid(drive_t[:, :N] + recurrent[:, :N])
        a = jax.nn.sigmoid(drive_t[:, N : 2 * N] + recurrent[:, N : 2 * N])
        n = jnp.tanh(drive_t[:, 2 * N :] + r * recurrent[:, 2 * N :])
        h = (1.0 - a) * n + a * h
        return h, h

    return jax.lax.scan(step, h0, drive)[1]

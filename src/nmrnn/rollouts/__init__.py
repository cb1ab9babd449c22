"""The time loops of the four recurrent models, each with a hand-written reverse pass
(``jax.custom_vjp``) for fast training, and the plain ``lax.scan`` of the same equations
differentiated by JAX as the reference: ``gradient="custom"`` (default) or ``"autodiff"``.

One module per model, each with its weights as a NamedTuple and a ``rollout`` function
(time-major arrays ``(time, batch, ·)``; a_x = 1/τx, a_z = 1/τz, g the recurrence gain):

- :mod:`~nmrnn.rollouts.nmrnn`, NM-RNN (and the linear symmetric NM-RNN, φ(x) = x, R = L = Q):
  z_t = (1 - a_z) z_{t-1} + a_z [W_z tanh(z_{t-1}) + B_z u_t (+ W_zx tanh(x_{t-1}) + b_zx)],
  s_t = σ(A_z z_t + b_z), x_t = (1 - a_x) x_{t-1} + a_x [g L diag(s_t) Rᵀ φ(x_{t-1}) + B_x u_t],
  y_t = C x_t + d;
- :mod:`~nmrnn.rollouts.lrrnn`, LR-RNN (the NM-RNN with s ≡ 1 and no z):
  x_t = (1 - a_x) x_{t-1} + a_x [g L Rᵀ tanh(x_{t-1}) + B u_t], y_t = C x_t + d;
- :mod:`~nmrnn.rollouts.vanilla`, leaky vanilla RNN:
  x_t = (1 - a_x) x_{t-1} + a_x [g W tanh(x_{t-1}) + B u_t], y_t = C x_t + d;
- :mod:`~nmrnn.rollouts.lstm`, LSTM (the loop only; input drive and readout outside):
  i, f, o = σ(pre), g = tanh(pre) with pre_t = drive_t + Wh h_{t-1},
  c_t = f ⊙ c_{t-1} + i ⊙ g, h_t = o ⊙ tanh(c_t).

Why hand-written: autodiff of a ``lax.scan`` accumulates every parameter gradient inside the
reverse loop: each step adds a few small (N×B)·(B×K) products to carried sums, so the loop does
several times the work of the forward pass in many tiny matrix products. Here the reverse loop
carries only the state adjoints (λx, λz; λh, λc for the LSTM); the parameter gradients are formed
afterwards as a handful of large products over all steps and trials, and the Q of the QR
normalisation is differentiated once, outside the loop, by ordinary autodiff of the caller.

On CPU the layout matters as much as the arithmetic, so:

- the loops write their trajectories into buffers carried through ``fori_loop`` (not ``scan``
  outputs): under ``jax.vmap`` over seeds every (time, batch, ·) array then stays seed-major and
  the products over all steps need no transposed copies;
- products with a contraction over the K gains or the M neuromodulatory units (≤ 16) are written
  as sums of scaled rows, which XLA fuses into the elementwise update of the step;
- the readout y = C x + d is part of the NM-RNN, LR-RNN and vanilla loops, so the reverse loop
  forms Cᵀ∂y itself and no (time, batch, N) cotangent of x is ever stored;
- cotangents of unused outputs (x, z, s during training) are symbolic zeros and cost nothing.

The custom forward values equal those of the plain scan up to float32 rounding (the order of a
few K- and M-term sums). ``gradient="custom"`` is reverse-mode only (``jax.grad``, ``jax.vjp``):
forward mode (``jax.jvp``, ``jax.jacfwd``) of a ``custom_vjp`` function is not defined; use
``gradient="autodiff"`` for that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nmrnn.rollouts import lrrnn, lstm, nmrnn, vanilla
from nmrnn.rollouts.common import GRADIENTS, check_gradient
from nmrnn.rollouts.lrrnn import LRRNNWeights
from nmrnn.rollouts.lstm import LSTMWeights
from nmrnn.rollouts.nmrnn import NMRNNWeights
from nmrnn.rollouts.vanilla import VanillaWeights

ROLLOUTS: dict[str, Callable[..., tuple]] = {
    "nmrnn": nmrnn.rollout,
    "lrrnn": lrrnn.rollout,
    "vanilla": vanilla.rollout,
    "lstm": lstm.rollout,
}

__all__ = [
    "GRADIENTS",
    "LRRNNWeights",
    "LSTMWeights",
    "NMRNNWeights",
    "ROLLOUTS",
    "VanillaWeights",
    "check_gradient",
    "rollout",
]


def rollout(model_kind: str, weights: Any, *arrays: Any, gradient: str = "custom", **options):
    """``ROLLOUTS[model_kind](weights, *arrays, gradient=gradient, **options)``: the time loop of
    one model kind (``"nmrnn"``, ``"lrrnn"``, ``"vanilla"`` or ``"lstm"``); ``arrays`` are its
    initial states and time-major inputs, ``options`` its constants (see each module's
    ``rollout``)."""
    if model_kind not in ROLLOUTS:
        raise ValueError(f"unknown model kind {model_kind!r}; choose one of {sorted(ROLLOUTS)}")
    return ROLLOUTS[model_kind](weights, *arrays, gradient=gradient, **options)

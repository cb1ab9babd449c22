"""The recurrent models: the NM-RNN and linear symmetric NM-RNN of the paper, the LR-RNN, the
vanilla RNN and the LSTM, one module each; :data:`MODELS` lists them by the name a config gives
as ``model:``.

A model module holds everything about its model: the flax module (its settings are the
module's fields, checked at construction: sizes positive integers, time constants positive, a
low-rank model's K <= N; a bad value raises a ValueError naming the field), its parameter groups
(``PARAM_GROUPS``, what staged and transfer training may train), its time loop (``rollout``) and
its entries of the registry (``MODELS``, :class:`~nmrnn.models.common.Model`). Its parameter
count, for size matching, is read from the module's own initialisation
(:func:`nmrnn.architectures.parameter_count`), so a new model is size-matched with nothing
written for it. A new model is one module plus its name in the import line below.

Each flax module declares its parameters (collection ``params``) and its fixed initial state
(collection ``constants``; never trained) with the initialisations of SPEC §1, and runs a trial
batch ``inputs: (batch, time, U)`` -- batch-major, trials first; time-major arrays cannot be told
apart by shape and must be transposed first. ``apply`` returns a dict of trajectories, each
``(batch, time, ·)``: always ``y`` (outputs), plus the model's states (``x``, ``z``, ``s`` of an
NM-RNN; ``x`` of the low-rank and vanilla RNNs; ``h``, ``c`` of the LSTM). Symbols follow the
paper: L, R (N×K) the low-rank factors, s (K) the neuromodulatory gains, z (M) the
neuromodulatory state, τx and τz the time constants, φ = tanh; Euler steps of dt = 1.

The time loops are ``fori_loop``\\ s with a hand-written reverse pass (``jax.custom_vjp``, reverse
mode only) by default, or, with ``gradient="autodiff"``, a plain ``lax.scan`` of the same
equations differentiated by JAX (any mode; the reference of the tests and the baseline of
``python -m nmrnn.bench --compare``). A new model may have the plain scan alone.

Why hand-written: autodiff of a ``lax.scan`` accumulates every parameter gradient inside the
reverse loop: each step adds a few small (N×B)·(B×K) products to carried sums, so the loop does
several times the work of the forward pass in many tiny matrix products. The hand-written reverse
loop carries only the state adjoints (λx, λz; λh, λc for the LSTM); the parameter gradients are
formed afterwards as a handful of large products over all steps and trials, and the Q of the QR
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
few K- and M-term sums).
"""

from __future__ import annotations

from nmrnn.models import gru, lrrnn, lstm, nmrnn, vanilla
from nmrnn.models.common import GRADIENTS, Model
from nmrnn.models.lrrnn import LRRNN
from nmrnn.models.lstm import LSTM
from nmrnn.models.nmrnn import NMRNN, LinearNMRNN
from nmrnn.models.vanilla import VanillaRNN

# The model modules, in the order the registry lists them.
MODULES = (nmrnn, lrrnn, vanilla, lstm, gru)

MODELS: dict[str, Model] = {}
for _module in MODULES:
    for _model in _module.MODELS:
        if _model.name in MODELS:
            raise RuntimeError(f"model {_model.name!r} is registered twice ({_module.__name__})")
        MODELS[_model.name] = _model

__all__ = [
    "GRADIENTS",
    "LSTM",
    "LRRNN",
    "MODELS",
    "MODULES",
    "NMRNN",
    "LinearNMRNN",
    "Model",
    "VanillaRNN",
]

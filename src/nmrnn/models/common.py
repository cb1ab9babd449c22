"""What the models share: their registry entry (:class:`Model`), the initialisers, initial
states, readout and setting checks of the flax modules, and the pieces of the time loops (the
static constants of a recurrence, the choice of gradient, and the helpers that keep the CPU layout
fast; see :mod:`nmrnn.models`)."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from nmrnn.lowrank import check_options

Array = jax.Array

# How a rollout is differentiated: its hand-written reverse pass (``jax.custom_vjp``, reverse mode
# only) or JAX's autodiff of the plain ``lax.scan`` of the same equations (any mode; the reference
# of the tests and the baseline of ``python -m nmrnn.bench --compare``).
GRADIENTS = ("custom", "autodiff")

# Contractions over at most this many terms (K gains, M units, O outputs) are fused sums of rows.
SMALL_CONTRACTION = 16

# ----------------------------------------------------------------------------- registry entry


@dataclasses.dataclass(frozen=True)
class Model:
    """A model kind of the registry (:data:`nmrnn.models.MODELS`): the name a config gives as
    ``model:``, its flax module class, and the settings the kind fixes itself (``fixed``; e.g.
    the linear symmetric NM-RNN is the NM-RNN with ``linear=True``)."""

    name: str
    module: type[nn.Module]
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def settings(self) -> frozenset[str]:
        """The settings a config may give: the module's fields, less flax's own (``parent``,
        ``name``), ``gradient`` (how the time loop is differentiated, not a setting: it does not
        show in a run's fingerprint) and those the kind fixes."""
        hidden = {"parent", "name", "gradient", *self.fixed}
        return frozenset(f.name for f in dataclasses.fields(self.module) if f.name not in hidden)

    @property
    def required(self) -> frozenset[str]:
        """The settings a config must give (the module's fields without a default)."""
        return frozenset(
            f.name
            for f in dataclasses.fields(self.module)
            if f.name in self.settings
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        )

    def build(self, **settings: Any) -> nn.Module:
        """The flax module with these settings (and the fixed ones)."""
        return self.module(**settings, **self.fixed)


# ----------------------------------------------------------------------------- modules


def normal(scale: float):
    """Initialiser drawing N(0, scale²) entries."""

    def init(key, shape, dtype=jnp.float32):
        return scale * jax.random.normal(key, shape, dtype)

    return init


def initial_state(module: nn.Module, name: str, size: int, random: bool) -> Array:
    """Fixed initial state: 0.1·1, or N(0, I/size) drawn once per run (EFT)."""
    if random:
        var = module.variable(
            "constants",
            name,
            lambda: jax.random.normal(module.make_rng("params"), (size,)) / jnp.sqrt(size),
        )
    else:
        var = module.variable("constants", name, lambda: jnp.full((size,), 0.1, jnp.float32))
    return var.value


def readout(module: nn.Module, N: int, O: int) -> tuple[Array, Array]:
    """Readout y = C x + d with C, d ~ N(0, 1/N); d is zero (not a parameter) without a bias."""
    C = module.param("C", normal(1.0 / jnp.sqrt(N)), (O, N))
    if module.readout_bias:
        return C, module.param("d", normal(1.0 / jnp.sqrt(N)), (O,))
    return C, jnp.zeros((O,), jnp.float32)


def check_size(owner: str, name: str, value: Any) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")


def _is_number(value: Any) -> bool:
    """A real number (Python or numpy, or a 0-d numeric array), not a bool or a text."""
    if isinstance(value, bool | np.bool_ | str | bytes):
        return False
    if isinstance(value, numbers.Real):
        return True
    return np.ndim(value) == 0 and np.asarray(value).dtype.kind in "iuf"


def check_time_constant(owner: str, name: str, value: Any) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a finite positive number (in
    steps): a text ('10') would fail later inside the time loop, an infinite one freezes the
    state."""
    if isinstance(value, jax.core.Tracer):
        return
    if not (_is_number(value) and math.isfinite(float(value)) and float(value) > 0):
        raise ValueError(
            f"{owner}: {name} must be a positive number of steps (finite), got {value!r}"
        )
    if float(value) < 1:
        # The Euler step moves the state by 1/tau of the way: past its target for tau < 1.
        raise ValueError(
            f"{owner}: {name} must be a positive number of steps of at least 1 (a step moves "
            f"the state 1/{name} of the way to its target, past it below 1), got {value!r}"
        )


# The other settings' types, by the annotation of the model's field (sizes and time constants
# have their own checks): a wrong type is refused where it enters, not deep in the time loop.
_FIELD_TYPES = {
    "bool": ("True or False", lambda v: isinstance(v, bool | np.bool_)),
    "str": ("a text", lambda v: isinstance(v, str)),
    "int | None": (
        "a positive integer or None",
        lambda v: (
            v is None
            or (isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_) and v >= 1)
        ),
    ),
}


def check_field_types(module: nn.Module, owner: str) -> None:
    """Raise a ValueError naming the field of ``module`` whose value is not of its annotated
    kind (:data:`_FIELD_TYPES`)."""
    for field in dataclasses.fields(module):
        kind = _FIELD_TYPES.get(str(field.type))
        if kind is None or field.name in ("parent", "name"):
            continue
        value = getattr(module, field.name)
        if not kind[1](value):
            raise ValueError(f"{owner}: {field.name} must be {kind[0]}, got {value!r}")


def check_low_rank_options(owner: str, normalisation: str, qr_sign: str) -> None:
    try:
        check_options(normalisation, qr_sign)
    except ValueError as error:
        raise ValueError(f"{owner}: {error}") from None


def check_rank(owner: str, N: int, K: int) -> None:
    if K > N:
        raise ValueError(f"{owner}: K={K} exceeds N={N}: a rank-K recurrence needs K <= N")


def gradient_field() -> Any:
    """The ``gradient`` attribute: how the time loop is differentiated, ``"custom"`` (the
    hand-written reverse pass) or ``"autodiff"`` (JAX's autodiff of a plain ``lax.scan``, the
    baseline of ``python -m nmrnn.bench --compare``). An implementation choice, not a setting of
    the model: left out of the repr (and so of a run's fingerprint) and of the settings that
    :func:`nmrnn.architectures.build_model` accepts."""
    return dataclasses.field(default="custom", repr=False)


def check_gradient_setting(owner: str, gradient: Any) -> None:
    try:
        check_gradient(gradient)
    except ValueError as error:
        raise ValueError(f"{owner}: {error}") from None


def check_settings(module: nn.Module, owner: str | None = None) -> None:
    """The checks of a model's settings at construction, for those of its fields it has: the
    sizes N, M, K, O positive integers, K <= N, the time constants τx, τz positive, the low-rank
    options known, and ``gradient``. Raises a ValueError naming ``owner`` (the class name unless
    given) and the field."""
    owner = owner or type(module).__name__
    fields = {f.name for f in dataclasses.fields(module)}
    for name in ("N", "M", "K", "O"):
        if name in fields:
            check_size(owner, name, getattr(module, name))
    if "K" in fields:
        check_rank(owner, module.N, module.K)
    for name in ("tau_x", "tau_z"):
        if name in fields:
            check_time_constant(owner, name, getattr(module, name))
    check_field_types(module, owner)
    if "normalisation" in fields:
        check_low_rank_options(owner, module.normalisation, module.qr_sign)
    check_gradient_setting(owner, module.gradient)


class RecurrentModel(nn.Module):
    """The base of the models' flax modules: their settings are checked at construction
    (:func:`check_settings`), errors naming :meth:`owner`."""

    def __post_init__(self):
        check_settings(self, self.owner())
        super().__post_init__()

    def owner(self) -> str:
        """The model's name in error messages: its class name."""
        return type(self).__name__


def time_major(a: Array) -> Array:
    return jnp.swapaxes(a, 0, 1)


def batch_major(tree):
    return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), tree)


# ----------------------------------------------------------------------------- time loops


def check_gradient(gradient: str) -> str:
    """``gradient`` if it is one of :data:`GRADIENTS`, else a ValueError naming the choices."""
    if gradient not in GRADIENTS:
        raise ValueError(f"unknown gradient {gradient!r}; choose one of {GRADIENTS}")
    return gradient


class Recurrence(NamedTuple):
    """The static constants of the recurrence (hashable: they select a compiled program).

    gain: g multiplying the recurrent product. ax, az: 1/τx, 1/τz. linear: φ(x) = x in the x
    update (the NM-RNN's feedback path always uses tanh).
    """

    gain: float
    ax: float
    az: float = 0.0
    linear: bool = False


def phi(x: Array, linear: bool) -> Array:
    return x if linear else jnp.tanh(x)


def at(a: Array | None, t) -> Array | None:
    """Step ``t`` of a time-major array (None stays None)."""
    return None if a is None else jax.lax.dynamic_index_in_dim(a, t, 0, keepdims=False)


def put(buffer: Array, value: Array, t) -> Array:
    """``buffer`` with step ``t`` set to ``value``."""
    return jax.lax.dynamic_update_index_in_dim(buffer, value, t, 0)


def put_all(buffers: tuple, values: tuple, t) -> tuple:
    """Each buffer with step ``t`` set to its value."""
    return tuple(put(b, v, t) for b, v in zip(buffers, values, strict=True))


def small_matmul(a: Array, w: Array) -> Array:
    """a (B, J) @ w (J, P). For J ≤ SMALL_CONTRACTION as a sum of J scaled rows of w: XLA fuses
    it into the surrounding elementwise update, where a matrix-product call per step would cost
    more than its arithmetic."""
    J = w.shape[0]
    if J > SMALL_CONTRACTION:
        return a @ w
    out = a[:, 0:1] * w[0]
    for j in range(1, J):
        out = out + a[:, j : j + 1] * w[j]
    return out


def state_adjoint(carried: Array, gys: Array | None, gxs: Array | None, C: Array, t) -> Array:
    """λ_t, the adjoint of the state x_t in a reverse pass: what flows back from step t + 1
    (``carried``) plus what the output y_t = C x_t + d and the returned state x_t receive at t
    (``gys``, ``gxs``: None when their cotangent is zero)."""
    lam_x = carried
    if gys is not None:
        lam_x = lam_x + small_matmul(at(gys, t), C)
    if gxs is not None:
        lam_x = lam_x + at(gxs, t)
    return lam_x


def transposed(*matrices):
    """Transposes computed once, outside a loop. Without the barrier XLA folds a transpose into
    the product that uses it and, under ``vmap``, re-transposes the weight at every step."""
    return jax.lax.optimization_barrier(tuple(None if w is None else w.T for w in matrices))


def input_drive(inputs: Array, W: Array) -> Callable:
    """The input drive W u_t of a time loop, as ``drive(t)`` (B, P), from time-major inputs
    (T, B, U) and W (P, U). Narrow inputs (U ≤ SMALL_CONTRACTION) are projected inside the
    step, where the product fuses into the state update; wider ones for all steps at once
    before the loop. For narrow inputs the (T, B, P) array of all steps' drives costs more to
    write and read back than its few multiply-adds per element (docs/runtime.md)."""
    if inputs.shape[-1] <= SMALL_CONTRACTION:
        (W_T,) = transposed(W)
        return lambda t: small_matmul(at(inputs, t), W_T)
    drive = inputs @ W.T
    return lambda t: at(drive, t)


def sum_outer_t(a: Array, b: Array) -> Array:
    """Σ over (time, batch) of aᵀ b: a (T, B, Q), b (T, B, P) → (Q, P).

    One matrix product in which only the narrower operand is transposed: a transposed copy of a
    (T·B, N) trajectory costs more than the product itself on CPU (for Q > P the product is
    bᵀa and its small (P, Q) result is transposed). The barriers keep XLA from folding a
    transpose into the product: the one of the narrow operand (XLA would transpose the wide one
    instead) and any its caller applies to the result (e.g. ∂R = (Σ …)ᵀ): folded, that one turns
    the product into wideᵀ narrow, which XLA's CPU backend runs as a generic product contracting
    the wide operand's leading axis instead of through its fast small-matrix library
    (docs/runtime.md, "Transposes and input drives").
    """
    a = a.reshape(-1, a.shape[-1])
    b = b.reshape(-1, b.shape[-1])
    if a.shape[-1] > b.shape[-1]:
        return jax.lax.optimization_barrier(jax.lax.optimization_barrier(b.T) @ a).T
    return jax.lax.optimization_barrier(jax.lax.optimization_barrier(a.T) @ b)


def project_inputs(inputs: Array, W: Array, b: Array, custom: bool = True) -> Array:
    """inputs (T, B, U) @ Wᵀ + b → (T, B, P), with W (P, U): the input drive of every step at
    once. ``custom``: its reverse pass forms ∂W with :func:`sum_outer_t` (transposing the U-wide
    inputs, not the P-wide cotangent, as JAX's own transpose of the product would); reverse mode
    only, so ``custom=False`` (a model's ``gradient="autodiff"``) leaves it to JAX."""
    return _project(inputs, W, b) if custom else _affine(inputs, W, b)


def _affine(inputs, W, b):
    return inputs @ W.T + b


_project = jax.custom_vjp(_affine)


def _project_fwd(inputs, W, b):
    return _affine(inputs, W, b), (inputs, W)


def _project_bwd(saved, g):
    inputs, W = saved
    return g @ W, sum_outer_t(g, inputs), g.sum(axis=(0, 1))


_project.defvjp(_project_fwd, _project_bwd)


def is_zero(ct) -> bool:
    """Whether a cotangent is absent or a symbolic zero (an output nothing depends on)."""
    return ct is None or isinstance(ct, SymbolicZero)


def readout_gradients(gys: Array | None, xs: Array, C: Array, d: Array) -> tuple[Array, Array]:
    """(∂C, ∂d) of the readout y_t = C x_t + d over all steps and trials (zeros when nothing
    depends on y)."""
    if gys is None:
        return jnp.zeros_like(C), jnp.zeros_like(d)
    return sum_outer_t(gys, xs), gys.sum(axis=(0, 1))


# ----------------------------------------------------------------------------- leaky RNNs
# What the LR-RNN and the vanilla RNN share: x_t = (1 - a_x) x_{t-1} + a_x [g·W φ(x_{t-1}) + B u_t],
# y_t = C x_t + d, with W = L Rᵀ or a full matrix. Their weights have fields B, C, d.


def leaky_custom_vjp(forward: Callable, backward: Callable) -> Callable:
    """The time loop ``loop(rec, w, x0, inputs) -> (ys, xs)`` of a leaky RNN with a hand-written
    reverse pass: ``forward(rec, w, x0, inputs, residuals)`` returns (ys, xs, *residuals) (only
    (ys, xs) without ``residuals``); ``backward(rec, (w, x0, inputs, xs, *residuals),
    cotangents)`` returns the cotangents of (w, x0, inputs)."""

    @partial(jax.custom_vjp, nondiff_argnums=(0,))
    def loop(rec: Recurrence, w, x0, inputs):
        return forward(rec, w, x0, inputs, residuals=False)

    def loop_fwd(rec, w, x0, inputs):
        # symbolic_zeros=True: the primal arguments arrive wrapped (value, perturbed).
        w, x0, inputs = jax.tree.map(lambda p: p.value, (w, x0, inputs))
        ys, xs, *residuals = forward(rec, w, x0, inputs, residuals=True)
        return (ys, xs), (w, x0, inputs, xs, *residuals)

    loop.defvjp(loop_fwd, backward, symbolic_zeros=True)
    return loop


def leaky_scan(rec: Recurrence, w, x0: Array, inputs: Array, recurrent: Callable):
    """The same equations as a plain ``lax.scan``, differentiated by JAX (any mode):
    ``recurrent(x_{t-1})`` is the recurrent term g·W φ(x_{t-1}). Returns time-major (ys, xs)."""
    drive = inputs @ w.B.T

    def step(x, dx):
        x = (1.0 - rec.ax) * x + rec.ax * (recurrent(x) + dx)
        return x, x

    xs = jax.lax.scan(step, x0, drive)[1]
    return xs @ w.C.T + w.d, xs


def leaky_rollout(custom: Callable, autodiff: Callable, weights, x0, inputs, gain, ax, gradient):
    """Run a leaky RNN's loop (``custom`` or ``autodiff`` as ``gradient`` says) over a batch."""
    run = custom if check_gradient(gradient) == "custom" else autodiff
    return run(Recurrence(float(gain), float(ax)), weights, x0, inputs)


def leaky_trajectories(rollout: Callable, weights, x0: Array, inputs: Array, **constants):
    """A leaky RNN module's outputs: its ``rollout`` from the fixed initial state x0 (N,) over
    batch-major ``inputs`` (batch, time, U) → {"y": (batch, time, O), "x": (batch, time, N)}."""
    x0 = jnp.broadcast_to(x0, (inputs.shape[0], x0.shape[-1]))
    ys, xs = rollout(weights, x0, time_major(inputs), **constants)
    ys, xs = batch_major((ys, xs))
    return {"y": ys, "x": xs}

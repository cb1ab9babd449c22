"""What the rollouts share: the static constants of a recurrence, the choice of gradient, and the
helpers that keep the CPU layout fast (see the package docstring)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

Array = jax.Array

# How a rollout is differentiated: its hand-written reverse pass (``jax.custom_vjp``, reverse mode
# only) or JAX's autodiff of the plain ``lax.scan`` of the same equations (any mode; the reference
# of the tests and the baseline of ``python -m nmrnn.bench --compare``).
GRADIENTS = ("custom", "autodiff")

# Contractions over at most this many terms (K gains, M units, O outputs) are fused sums of rows.
SMALL_CONTRACTION = 16


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


def sum_outer_t(narrow: Array, wide: Array) -> Array:
    """Σ over (time, batch) of narrowᵀ wide: narrow (T, B, Q), wide (T, B, P) → (Q, P).

    One matrix product with only the narrow operand transposed: a transposed copy of a
    (T·B, N) trajectory costs more than the product itself on CPU. The barrier keeps XLA from
    folding the transpose into the product (which would transpose the wide operand instead).
    """
    narrow = narrow.reshape(-1, narrow.shape[-1])
    wide = wide.reshape(-1, wide.shape[-1])
    return jax.lax.optimization_barrier(narrow.T) @ wide


def is_zero(ct) -> bool:
    """Whether a cotangent is absent or a symbolic zero (an output nothing depends on)."""
    return ct is None or isinstance(ct, SymbolicZero)

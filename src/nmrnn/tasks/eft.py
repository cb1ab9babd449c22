"""Element Finder Task: a query index q followed by 25 random integers; the network must report
the q-th integer at the final step."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from nmrnn.tasks.common import TaskData

N_ELEMENTS = 25
T = N_ELEMENTS + 1  # step 0 carries the query, steps 1..25 the elements
VALUE_MIN, VALUE_MAX = -10, 10
# Loss of always predicting 0: E[v^2] = Var(U{-10..10}) = ((21^2 - 1) / 12) = 110/3.
CHANCE_MSE = ((VALUE_MAX - VALUE_MIN + 1) ** 2 - 1) / 12.0


def _assemble(query: jax.Array, elements: jax.Array) -> TaskData:
    """Build a batch from queries (batch,) and elements (batch, 25)."""
    batch = query.shape[0]
    inputs = jnp.concatenate([query[:, None], elements], axis=1).astype(jnp.float32)[..., None]
    value = elements[jnp.arange(batch), query]
    last = (jnp.arange(T) == T - 1).astype(jnp.float32)[None, :, None]
    targets = last * value.astype(jnp.float32)[:, None, None]
    mask = jnp.broadcast_to(last, (batch, T, 1))
    events = {"query": query.astype(jnp.int32), "value": value.astype(jnp.int32)}
    return TaskData(inputs, targets, mask, events)


def _elements(key: jax.Array, n: int) -> jax.Array:
    return jax.random.randint(key, (n, N_ELEMENTS), VALUE_MIN, VALUE_MAX + 1, dtype=jnp.int32)


@partial(jax.jit, static_argnames=("batch",))
def sample_batch(key: jax.Array, batch: int = 128) -> TaskData:
    """A fresh batch: q ~ U{0..24} at t=0, elements ~ U{-10..10} at t=1..25.

    Returns inputs (batch, 26, 1), targets (batch, 26, 1) holding inputs[q + 1] at the last step
    (0 elsewhere), mask (batch, 26, 1) equal to 1 only at the last step; events query, value.
    """
    k_query, k_elements = jax.random.split(key)
    query = jax.random.randint(k_query, (batch,), 0, N_ELEMENTS, dtype=jnp.int32)
    return _assemble(query, _elements(k_elements, batch))


@partial(jax.jit, static_argnames=("n",))
def fixed_query_set(key: jax.Array, query: int, n: int) -> TaskData:
    """n trials that all query index `query` (0..24); elements random. Shapes as `sample_batch`."""
    query = jnp.full((n,), query, dtype=jnp.int32)
    return _assemble(query, _elements(key, n))


@partial(jax.jit, static_argnames=("n",))
def fixed_query_value_set(key: jax.Array, query: int, value: int, n: int) -> TaskData:
    """n trials querying index `query` whose queried element is forced to `value`; the other
    elements are random. Shapes as `sample_batch`."""
    elements = _elements(key, n).at[:, query].set(value)
    return _assemble(jnp.full((n,), query, dtype=jnp.int32), elements)

"""Shared containers and helpers for the task generators: the `TaskData` pytree, the masked
loss, and trial selection."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class TaskData(NamedTuple):
    """A batch of trials, laid out (batch, time, channel); a pytree, so it jits, vmaps and indexes.

    inputs: (batch, time, U) float32.
    targets: (batch, time, O) float32.
    mask: (batch, time, O) float32 in {0, 1}: which target entries count in the loss.
    events: dict name -> (batch,) array of the trial's events (times, angles, labels).
    """

    inputs: jax.Array
    targets: jax.Array
    mask: jax.Array
    events: dict

    @property
    def batch_size(self) -> int:
        """Number of trials."""
        return self.inputs.shape[0]


def masked_mse(outputs: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean squared error over the masked entries: sum(mask (y - y*)^2) / sum(mask).

    outputs, targets, mask: (batch, time, O). Returns a scalar.
    """
    mask = jnp.asarray(mask, dtype=outputs.dtype)
    return jnp.sum(mask * (outputs - targets) ** 2) / jnp.sum(mask)


def take(data: TaskData, idx) -> TaskData:
    """Select trials (batch axis) of every field, events included.

    idx: anything numpy-style indexing accepts on the leading axis (int array, slice, bool mask).
    """
    return jax.tree.map(lambda a: a[idx], data)


def concatenate(datas) -> TaskData:
    """Stack several `TaskData` with the same fields along the batch axis."""
    return jax.tree.map(lambda *a: jnp.concatenate(a, axis=0), *datas)

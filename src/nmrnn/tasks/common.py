"""Shared containers and helpers for the task generators: the `TaskData` pytree, the masked
loss, and trial selection."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class TaskData(NamedTuple):
    """A batch of trials, laid out (batch, time, channel); a pytree, so it jits, vmaps and indexes.

    Every array is batch-major (trials first, then time), the layout the models' ``__call__``
    takes; a time-major array cannot be told apart by shape, so it must be transposed first.

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

    outputs, targets, mask: (batch, time, O), all of the same shape. Returns a scalar.

    Raises:
        ValueError: the shapes differ (the message names the argument that is off), or the mask is
            a concrete array with no nonzero entry (the mean over no entries is undefined). A traced
            mask (inside jit/vmap/grad) cannot be checked by value and is not.
    """
    shapes = {"outputs": jnp.shape(outputs), "targets": jnp.shape(targets), "mask": jnp.shape(mask)}
    if len(set(shapes.values())) > 1:
        # Name the odd one out; if all three differ, outputs is taken as the reference.
        if shapes["targets"] == shapes["mask"]:
            off = "outputs"
        elif shapes["targets"] != shapes["outputs"]:
            off = "targets"
        else:
            off = "mask"
        others = ", ".join(f"{n} {shapes[n]}" for n in shapes if n != off)
        raise ValueError(
            f"masked_mse: {off} has shape {shapes[off]}, which does not match {others}; "
            "outputs, targets and mask must all be (batch, time, O)"
        )
    # numpy, not jnp: under jit a jnp reduction of even a concrete mask would be traced.
    if not isinstance(mask, jax.core.Tracer) and not np.any(np.asarray(mask) != 0):
        raise ValueError(
            "masked_mse: mask has no nonzero entry, so the masked mean is undefined (0/0); "
            "at least one target entry must count in the loss"
        )
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

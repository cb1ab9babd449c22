"""The left factor of a low-rank recurrence under the two normalisations of the authors' code."""

from __future__ import annotations

import jax
import jax.numpy as jnp

NORMALISATIONS = ("qr", "inv_n")


def orthonormal_columns(L: jax.Array) -> jax.Array:
    """Q of the reduced QR decomposition of L (N, K) with a positive diagonal in R.

    Computed by modified Gram–Schmidt over the K columns: for the small K of this paper (1–12) it
    is cheaper than a Householder QR, and fixing diag(R) > 0 makes Q a smooth function of L
    (LAPACK's Householder sign convention flips a column of Q whenever a pivot of L changes sign).
    """
    cols = []
    for k in range(L.shape[1]):
        v = L[:, k]
        for q in cols:
            v = v - jnp.dot(q, v) * q
        cols.append(v / jnp.linalg.norm(v))
    return jnp.stack(cols, axis=1)


def low_rank_factors(L: jax.Array, normalisation: str) -> jax.Array:
    """The left factor used in the recurrence: Q of QR(L) for ``"qr"``, raw L for ``"inv_n"``.

    The matching gain g is 1 for ``"qr"`` and 1/N for ``"inv_n"`` (applied by the caller).
    """
    if normalisation == "qr":
        return orthonormal_columns(L)
    if normalisation == "inv_n":
        return L
    raise ValueError(f"unknown normalisation {normalisation!r}; choose one of {NORMALISATIONS}")

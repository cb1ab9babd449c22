"""The left factor and gain of a low-rank recurrence g · L' diag(s) Rᵀ φ(x), under the three
normalisations found in the authors' code.

============  =====================  ==========  =============================================
name          left factor L'         gain g      where the authors use it
============  =====================  ==========  =============================================
``qr``        Q of the QR of L       1           their NM-RNN (MWG, multitask)
``inv_n``     L itself               1/N         their EFT models
``qr_inv_n``  Q of the QR of L       1/N         their LR-RNN (MWG, multitask)
============  =====================  ==========  =============================================

The sign convention of Q (``qr_sign``): ``"positive"`` makes diag(R) > 0, so Q is a smooth
function of L (this project's default); ``"householder"`` is LAPACK's, which
``jnp.linalg.qr`` returns (the authors' code): a column of Q flips whenever the corresponding
pivot of the Householder reflection changes sign.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NORMALISATIONS = ("qr", "inv_n", "qr_inv_n")
QR_SIGNS = ("positive", "householder")


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


def check_options(normalisation: str, qr_sign: str = "positive") -> None:
    """ValueError naming the option if either is not one of the known values."""
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {normalisation!r}; choose one of {NORMALISATIONS}")
    if qr_sign not in QR_SIGNS:
        raise ValueError(f"unknown qr_sign {qr_sign!r}; choose one of {QR_SIGNS}")


def low_rank_factors(L: jax.Array, normalisation: str, qr_sign: str = "positive") -> jax.Array:
    """The left factor used in the recurrence: Q of QR(L) for ``"qr"`` and ``"qr_inv_n"``, raw L
    for ``"inv_n"``. The matching gain is :func:`recurrence_gain`."""
    check_options(normalisation, qr_sign)
    if normalisation == "inv_n":
        return L
    if qr_sign == "householder":
        return jnp.linalg.qr(L)[0]
    return orthonormal_columns(L)


def recurrence_gain(normalisation: str, N: int) -> float:
    """g: 1/N for ``"inv_n"`` and ``"qr_inv_n"``, 1 for ``"qr"``."""
    check_options(normalisation)
    return 1.0 / N if normalisation in ("inv_n", "qr_inv_n") else 1.0

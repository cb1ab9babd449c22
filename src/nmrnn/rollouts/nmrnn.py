"""The NM-RNN's time loop (the linear symmetric NM-RNN too: ``linear=True``), with its
hand-written reverse pass.

z_t = (1 - a_z) z_{t-1} + a_z [W_z tanh(z_{t-1}) + B_z u_t (+ W_zx tanh(x_{t-1}) + b_zx)]
s_t = σ(A_z z_t + b_z), replaced by s_fix_t where s_mask
x_t = (1 - a_x) x_{t-1} + a_x [g · left diag(s_t) rightᵀ φ(x_{t-1}) + B_x u_t]
y_t = C x_t + d

The reverse loop carries only λx, λz; e.g. dR = Σ_t φ(x_{t-1})ᵀ((λx_t L) ⊙ s_t)·g/τx is formed
after it, as one product over all steps and trials.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from nmrnn.rollouts.common import (
    Array,
    Recurrence,
    at,
    check_gradient,
    is_zero,
    phi,
    put,
    small_matmul,
    state_adjoint,
    sum_outer_t,
    transposed,
)


class NMRNNWeights(NamedTuple):
    """The arrays of one NM-RNN that the time loop reads (W_zx, b_zx None without feedback)."""

    left: Array  # (N, K), already normalised (e.g. the Q of QR(L))
    right: Array  # (N, K) (= left in the linear symmetric model)
    W_z: Array  # (M, M)
    A_z: Array  # (K, M)
    b_z: Array  # (K,)
    B_x: Array  # (N, Ux)
    B_z: Array  # (M, U)
    C: Array  # (O, N)
    d: Array  # (O,)
    W_zx: Array | None = None  # (M, N)
    b_zx: Array | None = None  # (M,)


# ----------------------------------------------------------------------------- forward


def _forward(
    rec: Recurrence, w: NMRNNWeights, x0, z0, inputs_x, inputs_z, s_fix, s_mask, residuals
):
    """The forward loop. Returns time-major (ys, xs, zs, ss) and, with ``residuals``, also
    φ(x_{t-1}) (T, B, N), tanh(z_{t-1}) (T, B, M) and r_t = Rᵀφ(x_{t-1}) (T, B, K): what the
    reverse pass needs and the loop computes anyway."""
    ax, az, K = rec.ax, rec.az, w.left.shape[-1]
    T, (B, N), M = inputs_x.shape[0], x0.shape, z0.shape[-1]
    # Input drives do not depend on the state: all steps at once.
    drive_x = inputs_x @ w.B_x.T
    drive_z = inputs_z @ w.B_z.T
    if w.b_zx is not None:
        drive_z = drive_z + w.b_zx
    left_T, W_z_T, A_z_T, W_zx_T = transposed(w.left, w.W_z, w.A_z, w.W_zx)
    # With φ = tanh the feedback path reads the same φ(x) as the recurrence: one product.
    fused_feedback = w.W_zx is not None and not rec.linear
    right = jnp.concatenate([w.right, W_zx_T], axis=1) if fused_feedback else w.right

    def body(t, carry):
        x, z, bufs = carry
        phi_x = phi(x, rec.linear)
        tz = jnp.tanh(z)
        r = phi_x @ right
        rec_z = small_matmul(tz, W_z_T) + at(drive_z, t)
        if fused_feedback:
            r, feedback = r[:, :K], r[:, K:]
            rec_z = rec_z + feedback
        elif w.W_zx is not None:
            rec_z = rec_z + jnp.tanh(x) @ W_zx_T
        z = (1.0 - az) * z + az * rec_z
        s = jax.nn.sigmoid(small_matmul(z, A_z_T) + w.b_z)
        if s_fix is not None:
            s = jnp.where(s_mask != 0, at(s_fix, t), s)
        x = (1.0 - ax) * x + ax * (rec.gain * small_matmul(r * s, left_T) + at(drive_x, t))
        new = (x, z, s) + ((phi_x, tz, r) if residuals else ())
        return x, z, tuple(put(b, v, t) for b, v in zip(bufs, new, strict=True))

    shapes = [(T, B, N), (T, B, M), (T, B, K)]
    if residuals:
        shapes += [(T, B, N), (T, B, M), (T, B, K)]
    bufs = tuple(jnp.zeros(shape, x0.dtype) for shape in shapes)
    xs, zs, ss, *res = jax.lax.fori_loop(0, T, body, (x0, z0, bufs))[2]
    ys = xs @ w.C.T + w.d
    return (ys, xs, zs, ss, *res)


# ----------------------------------------------------------------------------- reverse


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _custom(rec: Recurrence, w: NMRNNWeights, x0, z0, inputs_x, inputs_z, s_fix, s_mask):
    return _forward(rec, w, x0, z0, inputs_x, inputs_z, s_fix, s_mask, residuals=False)


def _custom_fwd(rec, w, x0, z0, inputs_x, inputs_z, s_fix, s_mask):
    # symbolic_zeros=True: the primal arguments arrive wrapped (value, perturbed).
    w, x0, z0, inputs_x, inputs_z, s_fix, s_mask = jax.tree.map(
        lambda p: p.value, (w, x0, z0, inputs_x, inputs_z, s_fix, s_mask)
    )
    ys, xs, zs, ss, phi_prev, tz_prev, r = _forward(
        rec, w, x0, z0, inputs_x, inputs_z, s_fix, s_mask, residuals=True
    )
    saved = (w, x0, inputs_x, inputs_z, s_fix, s_mask, xs, zs, ss, phi_prev, tz_prev, r)
    return (ys, xs, zs, ss), saved


def _custom_bwd(rec, saved, cotangents):
    w, x0, inputs_x, inputs_z, s_fix, s_mask, xs, zs, ss, phi_prev, tz_prev, r = saved
    gys, gxs, gzs, gss = (None if is_zero(c) else c for c in cotangents)
    ax, az, linear = rec.ax, rec.az, rec.linear
    feedback, masked = w.W_zx is not None, s_fix is not None
    T, (B, N), M, K = xs.shape[0], x0.shape, zs.shape[-1], w.left.shape[-1]
    c_left = ax * rec.gain

    sig = jax.nn.sigmoid(zs @ w.A_z.T + w.b_z) if masked else ss  # σ before any override
    if feedback and linear:
        tx_prev = jnp.tanh(jnp.concatenate([x0[None], xs[:-1]], axis=0))
    else:
        tx_prev = phi_prev if feedback else None
    mask = s_mask != 0 if masked else None
    (right_T,) = transposed(w.right)

    def body(i, carry):
        px, pz, bufs = carry
        t = T - 1 - i
        lam_x = state_adjoint(px, gys, gxs, w.C, t)
        r_t, s_t, sig_t, phi_t, tz_t = (at(a, t) for a in (r, ss, sig, phi_prev, tz_prev))
        e = c_left * (lam_x @ w.left)  # adjoint of h_t = r_t ⊙ s_t
        gs = e * r_t if gss is None else at(gss, t) + e * r_t
        if masked:
            gsf = jnp.where(mask, gs, 0.0)
            gs = jnp.where(mask, 0.0, gs)
        ga = gs * sig_t * (1.0 - sig_t)  # adjoint of A_z z_t + b_z
        lam_z = pz + small_matmul(ga, w.A_z)
        if gzs is not None:
            lam_z = lam_z + at(gzs, t)
        az_lam_z = az * lam_z
        g_phi = small_matmul(e * s_t, right_T)
        px = (1.0 - ax) * lam_x + (g_phi if linear else (1.0 - phi_t**2) * g_phi)
        if feedback:
            tx_t = at(tx_prev, t)
            px = px + (1.0 - tx_t**2) * small_matmul(az_lam_z, w.W_zx)
        pz = (1.0 - az) * lam_z + (1.0 - tz_t**2) * small_matmul(az_lam_z, w.W_z)
        new = (lam_x, lam_z, e, ga) + ((gsf,) if masked else ())
        return px, pz, tuple(put(b, v, t) for b, v in zip(bufs, new, strict=True))

    shapes = [(T, B, N), (T, B, M), (T, B, K), (T, B, K)] + ([(T, B, K)] if masked else [])
    bufs = tuple(jnp.zeros(shape, xs.dtype) for shape in shapes)
    init = (jnp.zeros_like(x0), jnp.zeros(zs.shape[1:], zs.dtype), bufs)
    g_x0, g_z0, (lam_x, lam_z, e, ga, *rest) = jax.lax.fori_loop(0, T, body, init)

    # Parameter gradients: one pass over each (T, B, N) array, the narrow factors side by side.
    Ux = inputs_x.shape[-1]
    by_lam_x = sum_outer_t(jnp.concatenate([c_left * r * ss, ax * inputs_x], -1), lam_x)
    narrow_phi = [e * ss] + ([az * lam_z] if feedback and not linear else [])
    by_phi = sum_outer_t(jnp.concatenate(narrow_phi, -1), phi_prev)
    if feedback:
        g_W_zx = by_phi[K:] if not linear else sum_outer_t(az * lam_z, tx_prev)
    zero = jnp.zeros_like
    g_w = NMRNNWeights(
        left=by_lam_x[:K].T,
        right=by_phi[:K].T,
        W_z=az * sum_outer_t(lam_z, tz_prev),
        A_z=sum_outer_t(ga, zs),
        b_z=ga.sum(axis=(0, 1)),
        B_x=by_lam_x[K : K + Ux].T,
        B_z=az * sum_outer_t(lam_z, inputs_z),
        C=zero(w.C) if gys is None else sum_outer_t(gys, xs),
        d=zero(w.d) if gys is None else gys.sum(axis=(0, 1)),
        W_zx=g_W_zx if feedback else None,
        b_zx=az * lam_z.sum(axis=(0, 1)) if w.b_zx is not None else None,
    )
    g_inputs_x = ax * (lam_x @ w.B_x)  # dead code unless the inputs are differentiated
    g_inputs_z = az * (lam_z @ w.B_z)
    g_s_fix = rest[0] if masked else None
    return g_w, g_x0, g_z0, g_inputs_x, g_inputs_z, g_s_fix, None


_custom.defvjp(_custom_fwd, _custom_bwd, symbolic_zeros=True)


# ----------------------------------------------------------------------------- autodiff


def _autodiff(rec: Recurrence, w: NMRNNWeights, x0, z0, inputs_x, inputs_z, s_fix, s_mask):
    """The same equations as a plain ``lax.scan``, differentiated by JAX (any mode)."""
    drive_x = inputs_x @ w.B_x.T
    drive_z = inputs_z @ w.B_z.T
    if w.b_zx is not None:
        drive_z = drive_z + w.b_zx

    def step(carry, drives):
        x, z = carry
        dx, dz, sf = drives
        rec_z = jnp.tanh(z) @ w.W_z.T + dz
        if w.W_zx is not None:
            rec_z = rec_z + jnp.tanh(x) @ w.W_zx.T
        z = (1.0 - rec.az) * z + rec.az * rec_z
        s = jax.nn.sigmoid(z @ w.A_z.T + w.b_z)
        if sf is not None:
            s = jnp.where(s_mask != 0, sf, s)
        x = (1.0 - rec.ax) * x + rec.ax * (
            rec.gain * ((phi(x, rec.linear) @ w.right) * s) @ w.left.T + dx
        )
        return (x, z), (x, z, s)

    xs, zs, ss = jax.lax.scan(step, (x0, z0), (drive_x, drive_z, s_fix))[1]
    return xs @ w.C.T + w.d, xs, zs, ss


# ----------------------------------------------------------------------------- public


def rollout(
    weights: NMRNNWeights,
    x0: Array,
    z0: Array,
    inputs_x: Array,
    inputs_z: Array,
    *,
    gain: float,
    ax: float,
    az: float,
    linear: bool = False,
    s_fix: Array | None = None,
    s_mask: Array | None = None,
    gradient: str = "custom",
) -> tuple[Array, Array, Array, Array]:
    """Run the NM-RNN over a batch of trials (the equations of the module docstring).

    Args:
        weights: the arrays of the recurrence and readout (:class:`NMRNNWeights`).
        x0: (B, N), z0: (B, M) initial states.
        inputs_x: (T, B, Ux) the inputs that drive x; inputs_z: (T, B, U) those that drive z.
        gain: g. ax, az: 1/τx, 1/τz. linear: φ(x) = x in the x update.
        s_fix: optional (T, B, K) gains imposed where s_mask (K,) is true.
        gradient: ``"custom"`` (the hand-written reverse pass; reverse mode only) or
            ``"autodiff"`` (JAX's autodiff of a plain ``lax.scan``; any mode).

    Returns:
        ys (T, B, O), xs (T, B, N), zs (T, B, M), ss (T, B, K), time-major.
    """
    run = _custom if check_gradient(gradient) == "custom" else _autodiff
    if (weights.W_zx is None) != (weights.b_zx is None):
        raise ValueError("the feedback path needs both W_zx and b_zx (or neither)")
    rec = Recurrence(float(gain), float(ax), float(az), bool(linear))
    if s_fix is None:
        return run(rec, weights, x0, z0, inputs_x, inputs_z, None, None)
    if s_mask is None:
        raise ValueError("s_fix needs s_mask (K,) saying which gains it replaces")
    # A float mask: a bool primal input would need a float0 cotangent.
    mask = jnp.asarray(s_mask, jnp.float32)
    return run(rec, weights, x0, z0, inputs_x, inputs_z, s_fix, mask)

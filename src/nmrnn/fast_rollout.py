"""The NM-RNN, LR-RNN and vanilla RNN time loops with hand-written reverse passes
(``jax.custom_vjp``), for fast training.

Autodiff of a ``lax.scan`` accumulates every parameter gradient inside the reverse loop: each step
adds a few small (N×B)·(B×K) products to carried sums, so the loop does several times the work of
the forward pass in many tiny matrix products. Here the reverse loop carries only the state
adjoints λx, λz; the parameter gradients are formed afterwards as a handful of large products over
all steps and trials (e.g. dR = Σ_t φ(x_{t-1})ᵀ((λx_t L) ⊙ s_t)·g/τx), and the Q of the QR
normalisation is differentiated once, outside the loop, by ordinary autodiff of the caller.

On CPU the layout matters as much as the arithmetic, so:

- the loops write their trajectories into buffers carried through ``fori_loop`` (not ``scan``
  outputs): under ``jax.vmap`` over seeds every (time, batch, ·) array then stays seed-major and
  the products over all steps need no transposed copies;
- products with a contraction over the K gains or the M neuromodulatory units (≤ 16) are written
  as sums of scaled rows, which XLA fuses into the elementwise update of the step;
- the readout y = C x + d is part of the function, so the reverse loop forms C ᵀ∂y itself and no
  (time, batch, N) cotangent of x is ever stored;
- cotangents of unused outputs (x, z, s during training) are symbolic zeros and cost nothing.

The LR-RNN (s ≡ 1, no z) has the same treatment in :func:`lrrnn_rollout`, and the leaky vanilla
RNN (a full N×N W) in :func:`vanilla_rollout`.

Symbols follow :class:`nmrnn.models.NMRNN`: x (N) fast state, z (M) neuromodulatory state, s (K)
gains, L/R the (already normalised) left and right factors, g the gain, a_x = 1/τx, a_z = 1/τz.
Arrays are time-major: ``(time, batch, ·)``. The forward values equal those of the plain scan
(:func:`nmrnn_rollout_scan`) up to float32 rounding (the order of a few K- and M-term sums).

The functions are reverse-mode only (``jax.grad``, ``jax.vjp``): forward-mode (``jax.jvp``,
``jax.jacfwd``) of a ``custom_vjp`` function is not defined; use :func:`nmrnn_rollout_scan` /
:func:`lrrnn_rollout_scan`, plain ``lax.scan`` with the same arguments and outputs, for that.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

Array = jax.Array

# Contractions over at most this many terms (K gains, M units, O outputs) are fused sums of rows.
SMALL_CONTRACTION = 16


class Recurrence(NamedTuple):
    """The static constants of the recurrence (hashable: they select a compiled program).

    gain: g multiplying L diag(s) Rᵀ φ(x). ax, az: 1/τx, 1/τz. linear: φ(x) = x in the x update
    (the feedback path always uses tanh).
    """

    gain: float
    ax: float
    az: float
    linear: bool = False


class Weights(NamedTuple):
    """The arrays of one NM-RNN that the time loop reads (W_zx, b_zx None without feedback)."""

    left: Array  # (N, K), already normalised
    right: Array  # (N, K)
    W_z: Array  # (M, M)
    A_z: Array  # (K, M)
    b_z: Array  # (K,)
    B_x: Array  # (N, Ux)
    B_z: Array  # (M, U)
    C: Array  # (O, N)
    d: Array  # (O,)
    W_zx: Array | None  # (M, N)
    b_zx: Array | None  # (M,)


# ----------------------------------------------------------------------------- helpers


def _phi(x: Array, linear: bool) -> Array:
    return x if linear else jnp.tanh(x)


def _at(a: Array | None, t) -> Array | None:
    return None if a is None else jax.lax.dynamic_index_in_dim(a, t, 0, keepdims=False)


def _put(buffer: Array, value: Array, t) -> Array:
    return jax.lax.dynamic_update_index_in_dim(buffer, value, t, 0)


def _small_matmul(a: Array, w: Array) -> Array:
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


def _transposed(*matrices):
    """Transposes computed once, outside a loop. Without the barrier XLA folds a transpose into
    the product that uses it and, under ``vmap``, re-transposes the weight at every step."""
    return jax.lax.optimization_barrier(tuple(None if w is None else w.T for w in matrices))


def _sum_outer_t(narrow: Array, wide: Array) -> Array:
    """Σ over (time, batch) of narrowᵀ wide: narrow (T, B, Q), wide (T, B, P) → (Q, P).

    One matrix product with only the narrow operand transposed: a transposed copy of a
    (T·B, N) trajectory costs more than the product itself on CPU. The barrier keeps XLA from
    folding the transpose into the product (which would transpose the wide operand instead).
    """
    narrow = narrow.reshape(-1, narrow.shape[-1])
    wide = wide.reshape(-1, wide.shape[-1])
    return jax.lax.optimization_barrier(narrow.T) @ wide


def _is_zero(ct) -> bool:
    return ct is None or isinstance(ct, SymbolicZero)


# ----------------------------------------------------------------------------- forward


def _forward(rec: Recurrence, w: Weights, x0, z0, inputs_x, inputs_z, s_fix, s_mask, residuals):
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
    left_T, W_z_T, A_z_T, W_zx_T = _transposed(w.left, w.W_z, w.A_z, w.W_zx)
    # With φ = tanh the feedback path reads the same φ(x) as the recurrence: one product.
    fused_feedback = w.W_zx is not None and not rec.linear
    right = jnp.concatenate([w.right, W_zx_T], axis=1) if fused_feedback else w.right

    def body(t, carry):
        x, z, bufs = carry
        phi_x = _phi(x, rec.linear)
        tz = jnp.tanh(z)
        r = phi_x @ right
        rec_z = _small_matmul(tz, W_z_T) + _at(drive_z, t)
        if fused_feedback:
            r, feedback = r[:, :K], r[:, K:]
            rec_z = rec_z + feedback
        elif w.W_zx is not None:
            rec_z = rec_z + jnp.tanh(x) @ W_zx_T
        z = (1.0 - az) * z + az * rec_z
        s = jax.nn.sigmoid(_small_matmul(z, A_z_T) + w.b_z)
        if s_fix is not None:
            s = jnp.where(s_mask != 0, _at(s_fix, t), s)
        x = (1.0 - ax) * x + ax * (rec.gain * _small_matmul(r * s, left_T) + _at(drive_x, t))
        new = (x, z, s) + ((phi_x, tz, r) if residuals else ())
        return x, z, tuple(_put(b, v, t) for b, v in zip(bufs, new, strict=True))

    shapes = [(T, B, N), (T, B, M), (T, B, K)]
    if residuals:
        shapes += [(T, B, N), (T, B, M), (T, B, K)]
    bufs = tuple(jnp.zeros(shape, x0.dtype) for shape in shapes)
    xs, zs, ss, *res = jax.lax.fori_loop(0, T, body, (x0, z0, bufs))[2]
    ys = xs @ w.C.T + w.d
    return (ys, xs, zs, ss, *res)


# ----------------------------------------------------------------------------- reverse


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _rollout(rec: Recurrence, w: Weights, x0, z0, inputs_x, inputs_z, s_fix, s_mask):
    return _forward(rec, w, x0, z0, inputs_x, inputs_z, s_fix, s_mask, residuals=False)


def _rollout_fwd(rec, w, x0, z0, inputs_x, inputs_z, s_fix, s_mask):
    # symbolic_zeros=True: the primal arguments arrive wrapped (value, perturbed).
    w, x0, z0, inputs_x, inputs_z, s_fix, s_mask = jax.tree.map(
        lambda p: p.value, (w, x0, z0, inputs_x, inputs_z, s_fix, s_mask)
    )
    ys, xs, zs, ss, phi_prev, tz_prev, r = _forward(
        rec, w, x0, z0, inputs_x, inputs_z, s_fix, s_mask, residuals=True
    )
    saved = (w, x0, inputs_x, inputs_z, s_fix, s_mask, xs, zs, ss, phi_prev, tz_prev, r)
    return (ys, xs, zs, ss), saved


def _rollout_bwd(rec, saved, cotangents):
    w, x0, inputs_x, inputs_z, s_fix, s_mask, xs, zs, ss, phi_prev, tz_prev, r = saved
    gys, gxs, gzs, gss = (None if _is_zero(c) else c for c in cotangents)
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
    (right_T,) = _transposed(w.right)

    def body(i, carry):
        px, pz, bufs = carry
        t = T - 1 - i
        lam_x = px
        if gys is not None:
            lam_x = lam_x + _small_matmul(_at(gys, t), w.C)
        if gxs is not None:
            lam_x = lam_x + _at(gxs, t)
        r_t, s_t, sig_t, phi_t, tz_t = (_at(a, t) for a in (r, ss, sig, phi_prev, tz_prev))
        e = c_left * (lam_x @ w.left)  # adjoint of h_t = r_t ⊙ s_t
        gs = e * r_t if gss is None else _at(gss, t) + e * r_t
        if masked:
            gsf = jnp.where(mask, gs, 0.0)
            gs = jnp.where(mask, 0.0, gs)
        ga = gs * sig_t * (1.0 - sig_t)  # adjoint of A_z z_t + b_z
        lam_z = pz + _small_matmul(ga, w.A_z)
        if gzs is not None:
            lam_z = lam_z + _at(gzs, t)
        az_lam_z = az * lam_z
        g_phi = _small_matmul(e * s_t, right_T)
        px = (1.0 - ax) * lam_x + (g_phi if linear else (1.0 - phi_t**2) * g_phi)
        if feedback:
            tx_t = _at(tx_prev, t)
            px = px + (1.0 - tx_t**2) * _small_matmul(az_lam_z, w.W_zx)
        pz = (1.0 - az) * lam_z + (1.0 - tz_t**2) * _small_matmul(az_lam_z, w.W_z)
        new = (lam_x, lam_z, e, ga) + ((gsf,) if masked else ())
        return px, pz, tuple(_put(b, v, t) for b, v in zip(bufs, new, strict=True))

    shapes = [(T, B, N), (T, B, M), (T, B, K), (T, B, K)] + ([(T, B, K)] if masked else [])
    bufs = tuple(jnp.zeros(shape, xs.dtype) for shape in shapes)
    init = (jnp.zeros_like(x0), jnp.zeros(zs.shape[1:], zs.dtype), bufs)
    g_x0, g_z0, (lam_x, lam_z, e, ga, *rest) = jax.lax.fori_loop(0, T, body, init)

    # Parameter gradients: one pass over each (T, B, N) array, the narrow factors side by side.
    Ux = inputs_x.shape[-1]
    by_lam_x = _sum_outer_t(jnp.concatenate([c_left * r * ss, ax * inputs_x], -1), lam_x)
    narrow_phi = [e * ss] + ([az * lam_z] if feedback and not linear else [])
    by_phi = _sum_outer_t(jnp.concatenate(narrow_phi, -1), phi_prev)
    if feedback:
        g_W_zx = by_phi[K:] if not linear else _sum_outer_t(az * lam_z, tx_prev)
    zero = jnp.zeros_like
    g_w = Weights(
        left=by_lam_x[:K].T,
        right=by_phi[:K].T,
        W_z=az * _sum_outer_t(lam_z, tz_prev),
        A_z=_sum_outer_t(ga, zs),
        b_z=ga.sum(axis=(0, 1)),
        B_x=by_lam_x[K : K + Ux].T,
        B_z=az * _sum_outer_t(lam_z, inputs_z),
        C=zero(w.C) if gys is None else _sum_outer_t(gys, xs),
        d=zero(w.d) if gys is None else gys.sum(axis=(0, 1)),
        W_zx=g_W_zx if feedback else None,
        b_zx=az * lam_z.sum(axis=(0, 1)) if w.b_zx is not None else None,
    )
    g_inputs_x = ax * (lam_x @ w.B_x)  # dead code unless the inputs are differentiated
    g_inputs_z = az * (lam_z @ w.B_z)
    g_s_fix = rest[0] if masked else None
    return g_w, g_x0, g_z0, g_inputs_x, g_inputs_z, g_s_fix, None


_rollout.defvjp(_rollout_fwd, _rollout_bwd, symbolic_zeros=True)


# ----------------------------------------------------------------------------- public


def _arguments(
    left, right, W_z, A_z, b_z, B_x, B_z, C, d, gain, ax, az, W_zx, b_zx, s_fix, s_mask, linear
):
    rec = Recurrence(float(gain), float(ax), float(az), bool(linear))
    w = Weights(left, right, W_z, A_z, b_z, B_x, B_z, C, d, W_zx, b_zx)
    if (W_zx is None) != (b_zx is None):
        raise ValueError("the feedback path needs both W_zx and b_zx (or neither)")
    if s_fix is None:
        return rec, w, None, None
    if s_mask is None:
        raise ValueError("s_fix needs s_mask (K,) saying which gains it replaces")
    # A float mask: a bool primal input would need a float0 cotangent.
    return rec, w, s_fix, jnp.asarray(s_mask, jnp.float32)


def nmrnn_rollout(
    left: Array,
    right: Array,
    W_z: Array,
    A_z: Array,
    b_z: Array,
    B_x: Array,
    B_z: Array,
    C: Array,
    d: Array,
    x0: Array,
    z0: Array,
    inputs_x: Array,
    inputs_z: Array,
    *,
    gain: float,
    ax: float,
    az: float,
    W_zx: Array | None = None,
    b_zx: Array | None = None,
    s_fix: Array | None = None,
    s_mask: Array | None = None,
    linear: bool = False,
) -> tuple[Array, Array, Array, Array]:
    """Run the NM-RNN over a batch of trials, with the fast reverse pass.

    z_t = (1 - a_z) z_{t-1} + a_z [W_z tanh(z_{t-1}) + B_z u_t (+ W_zx tanh(x_{t-1}) + b_zx)]
    s_t = σ(A_z z_t + b_z), replaced by s_fix_t where s_mask
    x_t = (1 - a_x) x_{t-1} + a_x [g · left diag(s_t) rightᵀ φ(x_{t-1}) + B_x u_t]
    y_t = C x_t + d

    Args:
        left, right: (N, K) factors (left already normalised, e.g. the Q of QR(L)).
        W_z: (M, M). A_z: (K, M). b_z: (K,). B_x: (N, Ux). B_z: (M, U). C: (O, N). d: (O,).
        x0: (B, N), z0: (B, M) initial states.
        inputs_x: (T, B, Ux) the inputs that drive x; inputs_z: (T, B, U) those that drive z.
        gain: g. ax, az: 1/τx, 1/τz. linear: φ(x) = x in the x update.
        W_zx: (M, N), b_zx: (M,): the x→z feedback path, or None.
        s_fix: optional (T, B, K) gains imposed where s_mask (K,) is true.

    Returns:
        ys (T, B, O), xs (T, B, N), zs (T, B, M), ss (T, B, K), time-major.
    """
    rec, w, s_fix, mask = _arguments(
        left,
        right,
        W_z,
        A_z,
        b_z,
        B_x,
        B_z,
        C,
        d,
        gain,
        ax,
        az,
        W_zx,
        b_zx,
        s_fix,
        s_mask,
        linear,
    )
    return _rollout(rec, w, x0, z0, inputs_x, inputs_z, s_fix, mask)


def nmrnn_rollout_scan(
    left,
    right,
    W_z,
    A_z,
    b_z,
    B_x,
    B_z,
    C,
    d,
    x0,
    z0,
    inputs_x,
    inputs_z,
    *,
    gain,
    ax,
    az,
    W_zx=None,
    b_zx=None,
    s_fix=None,
    s_mask=None,
    linear=False,
):
    """:func:`nmrnn_rollout` as a plain ``lax.scan`` of the model's equations, differentiated by
    JAX (any mode): the reference for tests and the baseline of ``python -m nmrnn.bench``."""
    rec, w, s_fix, mask = _arguments(
        left,
        right,
        W_z,
        A_z,
        b_z,
        B_x,
        B_z,
        C,
        d,
        gain,
        ax,
        az,
        W_zx,
        b_zx,
        s_fix,
        s_mask,
        linear,
    )
    drive_x = inputs_x @ B_x.T
    drive_z = inputs_z @ B_z.T
    if b_zx is not None:
        drive_z = drive_z + b_zx
    phi = (lambda v: v) if linear else jnp.tanh

    def step(carry, drives):
        x, z = carry
        dx, dz, sf = drives
        rec_z = jnp.tanh(z) @ W_z.T + dz
        if W_zx is not None:
            rec_z = rec_z + jnp.tanh(x) @ W_zx.T
        z = (1.0 - rec.az) * z + rec.az * rec_z
        s = jax.nn.sigmoid(z @ A_z.T + b_z)
        if sf is not None:
            s = jnp.where(mask != 0, sf, s)
        x = (1.0 - rec.ax) * x + rec.ax * (rec.gain * ((phi(x) @ right) * s) @ left.T + dx)
        return (x, z), (x, z, s)

    xs, zs, ss = jax.lax.scan(step, (x0, z0), (drive_x, drive_z, s_fix))[1]
    return xs @ C.T + d, xs, zs, ss


# ----------------------------------------------------------------------------- LR-RNN
# The low-rank RNN is the NM-RNN with s ≡ 1 and no z: the same loop without the z path.


class LowRankWeights(NamedTuple):
    """The arrays of one LR-RNN that the time loop reads."""

    left: Array  # (N, K), already normalised
    right: Array  # (N, K)
    B: Array  # (N, U)
    C: Array  # (O, N)
    d: Array  # (O,)


def _lr_forward(rec: Recurrence, w: LowRankWeights, x0, inputs, residuals):
    """Returns time-major (ys, xs) and, with ``residuals``, φ(x_{t-1}) and r_t = Rᵀφ(x_{t-1})."""
    T, (B, N), K = inputs.shape[0], x0.shape, w.left.shape[-1]
    drive = inputs @ w.B.T
    (left_T,) = _transposed(w.left)

    def body(t, carry):
        x, bufs = carry
        phi_x = jnp.tanh(x)
        r = phi_x @ w.right
        x = (1.0 - rec.ax) * x + rec.ax * (rec.gain * _small_matmul(r, left_T) + _at(drive, t))
        new = (x,) + ((phi_x, r) if residuals else ())
        return x, tuple(_put(b, v, t) for b, v in zip(bufs, new, strict=True))

    shapes = [(T, B, N)] + ([(T, B, N), (T, B, K)] if residuals else [])
    bufs = tuple(jnp.zeros(shape, x0.dtype) for shape in shapes)
    xs, *res = jax.lax.fori_loop(0, T, body, (x0, bufs))[1]
    return (xs @ w.C.T + w.d, xs, *res)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _lr_rollout(rec: Recurrence, w: LowRankWeights, x0, inputs):
    return _lr_forward(rec, w, x0, inputs, residuals=False)


def _lr_rollout_fwd(rec, w, x0, inputs):
    w, x0, inputs = jax.tree.map(lambda p: p.value, (w, x0, inputs))
    ys, xs, phi_prev, r = _lr_forward(rec, w, x0, inputs, residuals=True)
    return (ys, xs), (w, x0, inputs, xs, phi_prev, r)


def _lr_rollout_bwd(rec, saved, cotangents):
    w, x0, inputs, xs, phi_prev, r = saved
    gys, gxs = (None if _is_zero(c) else c for c in cotangents)
    T, (B, N), K = xs.shape[0], x0.shape, w.left.shape[-1]
    c_left = rec.ax * rec.gain
    (right_T,) = _transposed(w.right)

    def body(i, carry):
        px, bufs = carry
        t = T - 1 - i
        lam_x = px
        if gys is not None:
            lam_x = lam_x + _small_matmul(_at(gys, t), w.C)
        if gxs is not None:
            lam_x = lam_x + _at(gxs, t)
        e = c_left * (lam_x @ w.left)  # adjoint of r_t
        phi_t = _at(phi_prev, t)
        px = (1.0 - rec.ax) * lam_x + (1.0 - phi_t**2) * _small_matmul(e, right_T)
        return px, tuple(_put(b, v, t) for b, v in zip(bufs, (lam_x, e), strict=True))

    bufs = (jnp.zeros((T, B, N), xs.dtype), jnp.zeros((T, B, K), xs.dtype))
    g_x0, (lam_x, e) = jax.lax.fori_loop(0, T, body, (jnp.zeros_like(x0), bufs))
    by_lam_x = _sum_outer_t(jnp.concatenate([c_left * r, rec.ax * inputs], -1), lam_x)
    g_w = LowRankWeights(
        left=by_lam_x[:K].T,
        right=_sum_outer_t(e, phi_prev).T,
        B=by_lam_x[K:].T,
        C=jnp.zeros_like(w.C) if gys is None else _sum_outer_t(gys, xs),
        d=jnp.zeros_like(w.d) if gys is None else gys.sum(axis=(0, 1)),
    )
    return g_w, g_x0, rec.ax * (lam_x @ w.B)


_lr_rollout.defvjp(_lr_rollout_fwd, _lr_rollout_bwd, symbolic_zeros=True)


def lrrnn_rollout(
    left: Array,
    right: Array,
    B: Array,
    C: Array,
    d: Array,
    x0: Array,
    inputs: Array,
    *,
    gain: float,
    ax: float,
) -> tuple[Array, Array]:
    """Run the LR-RNN over a batch of trials, with the fast reverse pass.

    x_t = (1 - a_x) x_{t-1} + a_x [g · left rightᵀ tanh(x_{t-1}) + B u_t],  y_t = C x_t + d

    Args:
        left, right: (N, K) factors (left already normalised). B: (N, U). C: (O, N). d: (O,).
        x0: (B, N) initial state. inputs: (T, B, U), time-major. gain: g. ax: 1/τ.

    Returns:
        ys (T, B, O), xs (T, B, N), time-major.
    """
    rec = Recurrence(float(gain), float(ax), 0.0, False)
    return _lr_rollout(rec, LowRankWeights(left, right, B, C, d), x0, inputs)


def lrrnn_rollout_scan(left, right, B, C, d, x0, inputs, *, gain, ax):
    """:func:`lrrnn_rollout` as a plain ``lax.scan`` differentiated by JAX (the reference)."""
    drive = inputs @ B.T

    def step(x, dx):
        x = (1.0 - ax) * x + ax * (gain * (jnp.tanh(x) @ right) @ left.T + dx)
        return x, x

    xs = jax.lax.scan(step, x0, drive)[1]
    return xs @ C.T + d, xs


# ----------------------------------------------------------------------------- vanilla RNN
# The full-rank leaky RNN: the same treatment, with W (N, N) in place of the low-rank product.


class DenseWeights(NamedTuple):
    """The arrays of one vanilla RNN that the time loop reads."""

    W: Array  # (N, N)
    B: Array  # (N, U)
    C: Array  # (O, N)
    d: Array  # (O,)


def _dense_forward(rec: Recurrence, w: DenseWeights, x0, inputs, residuals):
    """Returns time-major (ys, xs) and, with ``residuals``, φ(x_{t-1})."""
    T, (B, N) = inputs.shape[0], x0.shape
    drive = inputs @ w.B.T
    (W_T,) = _transposed(w.W)
    scale = rec.gain

    def body(t, carry):
        x, bufs = carry
        phi_x = jnp.tanh(x)
        x = (1.0 - rec.ax) * x + rec.ax * (scale * (phi_x @ W_T) + _at(drive, t))
        new = (x,) + ((phi_x,) if residuals else ())
        return x, tuple(_put(b, v, t) for b, v in zip(bufs, new, strict=True))

    bufs = tuple(jnp.zeros((T, B, N), x0.dtype) for _ in range(2 if residuals else 1))
    xs, *res = jax.lax.fori_loop(0, T, body, (x0, bufs))[1]
    return (xs @ w.C.T + w.d, xs, *res)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _dense_rollout(rec: Recurrence, w: DenseWeights, x0, inputs):
    return _dense_forward(rec, w, x0, inputs, residuals=False)


def _dense_rollout_fwd(rec, w, x0, inputs):
    w, x0, inputs = jax.tree.map(lambda p: p.value, (w, x0, inputs))
    ys, xs, phi_prev = _dense_forward(rec, w, x0, inputs, residuals=True)
    return (ys, xs), (w, x0, inputs, xs, phi_prev)


def _dense_rollout_bwd(rec, saved, cotangents):
    w, x0, inputs, xs, phi_prev = saved
    gys, gxs = (None if _is_zero(c) else c for c in cotangents)
    T = xs.shape[0]
    c_w = rec.ax * rec.gain

    def body(i, carry):
        px, buf = carry
        t = T - 1 - i
        lam_x = px
        if gys is not None:
            lam_x = lam_x + _small_matmul(_at(gys, t), w.C)
        if gxs is not None:
            lam_x = lam_x + _at(gxs, t)
        phi_t = _at(phi_prev, t)
        px = (1.0 - rec.ax) * lam_x + (1.0 - phi_t**2) * (c_w * (lam_x @ w.W))
        return px, _put(buf, lam_x, t)

    g_x0, lam_x = jax.lax.fori_loop(0, T, body, (jnp.zeros_like(x0), jnp.zeros_like(xs)))
    g_w = DenseWeights(
        W=c_w * _sum_outer_t(phi_prev, lam_x).T,
        B=rec.ax * _sum_outer_t(inputs, lam_x).T,
        C=jnp.zeros_like(w.C) if gys is None else _sum_outer_t(gys, xs),
        d=jnp.zeros_like(w.d) if gys is None else gys.sum(axis=(0, 1)),
    )
    return g_w, g_x0, rec.ax * (lam_x @ w.B)


_dense_rollout.defvjp(_dense_rollout_fwd, _dense_rollout_bwd, symbolic_zeros=True)


def vanilla_rollout(
    W: Array, B: Array, C: Array, d: Array, x0: Array, inputs: Array, *, gain: float, ax: float
) -> tuple[Array, Array]:
    """Run the leaky vanilla RNN over a batch of trials, with the fast reverse pass.

    x_t = (1 - a_x) x_{t-1} + a_x [g · W tanh(x_{t-1}) + B u_t],  y_t = C x_t + d

    Args:
        W: (N, N). B: (N, U). C: (O, N). d: (O,). x0: (B, N) initial state.
        inputs: (T, B, U), time-major. gain: g (1/N in :class:`nmrnn.models.VanillaRNN`).
        ax: 1/τ.

    Returns:
        ys (T, B, O), xs (T, B, N), time-major.
    """
    rec = Recurrence(float(gain), float(ax), 0.0, False)
    return _dense_rollout(rec, DenseWeights(W, B, C, d), x0, inputs)


def vanilla_rollout_scan(W, B, C, d, x0, inputs, *, gain, ax):
    """:func:`vanilla_rollout` as a plain ``lax.scan`` differentiated by JAX (the reference)."""
    drive = inputs @ B.T

    def step(x, dx):
        x = (1.0 - ax) * x + ax * (gain * (jnp.tanh(x) @ W.T) + dx)
        return x, x

    xs = jax.lax.scan(step, x0, drive)[1]
    return xs @ C.T + d, xs


# ----------------------------------------------------------------------------- LSTM
# The LSTM's time loop only: the input drive (u Wxᵀ + b, every step at once) and the readout are
# single large products outside it, differentiated by JAX. The reverse loop carries (λh, λc) and
# stores the adjoint of the gate pre-activations, from which dWh is one product afterwards.


def _lstm_forward(Wh_T: Array, h0: Array, c0: Array, drive: Array, residuals: bool):
    """Returns time-major (hs, cs) and, with ``residuals``, the local derivatives the reverse
    loop needs: ∂c_t/∂pre and ∂h_t/∂pre_o per gate (T, B, 4N), ∂h_t/∂c_t (T, B, N), f (T, B, N)."""
    T, (B, N) = drive.shape[0], h0.shape

    def body(t, carry):
        h, c, bufs = carry
        pre = _at(drive, t) + h @ Wh_T
        sig = jax.nn.sigmoid(pre)
        g = jnp.tanh(pre[:, 2 * N : 3 * N])
        i, f, o = sig[:, :N], sig[:, N : 2 * N], sig[:, 3 * N :]
        c_prev, c = c, f * c + i * g
        tc = jnp.tanh(c)
        h = o * tc
        new = (h, c)
        if residuals:
            local = jnp.concatenate(
                [g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g**2), tc * o * (1.0 - o)],
                axis=-1,
            )
            new += (local, o * (1.0 - tc**2), f)
        return h, c, tuple(_put(b, v, t) for b, v in zip(bufs, new, strict=True))

    shapes = [(T, B, N), (T, B, N)]
    if residuals:
        shapes += [(T, B, 4 * N), (T, B, N), (T, B, N)]
    bufs = tuple(jnp.zeros(shape, h0.dtype) for shape in shapes)
    return jax.lax.fori_loop(0, T, body, (h0, c0, bufs))[2]


@jax.custom_vjp
def _lstm_rollout(Wh: Array, h0: Array, c0: Array, drive: Array):
    (Wh_T,) = _transposed(Wh)
    return _lstm_forward(Wh_T, h0, c0, drive, residuals=False)


def _lstm_rollout_fwd(Wh, h0, c0, drive):
    Wh, h0, c0, drive = (a.value for a in (Wh, h0, c0, drive))
    (Wh_T,) = _transposed(Wh)
    hs, cs, *local = _lstm_forward(Wh_T, h0, c0, drive, residuals=True)
    return (hs, cs), (Wh, h0, hs, *local)


def _lstm_rollout_bwd(saved, cotangents):
    Wh, h0, hs, d_gates, dh_dc, forget = saved
    ghs, gcs = (None if _is_zero(c) else c for c in cotangents)
    T = hs.shape[0]

    def body(k, carry):
        lam_h, lam_c, buf = carry
        t = T - 1 - k
        if ghs is not None:
            lam_h = lam_h + _at(ghs, t)
        if gcs is not None:
            lam_c = lam_c + _at(gcs, t)
        lam_c = lam_c + lam_h * _at(dh_dc, t)
        d_pre = jnp.concatenate([lam_c, lam_c, lam_c, lam_h], axis=-1) * _at(d_gates, t)
        return d_pre @ Wh, lam_c * _at(forget, t), _put(buf, d_pre, t)

    zeros = jnp.zeros_like(h0)
    g_h0, g_c0, d_pre = jax.lax.fori_loop(0, T, body, (zeros, zeros, jnp.zeros_like(d_gates)))
    h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
    return _sum_outer_t(d_pre, h_prev), g_h0, g_c0, d_pre


_lstm_rollout.defvjp(_lstm_rollout_fwd, _lstm_rollout_bwd, symbolic_zeros=True)


def lstm_rollout(Wh: Array, h0: Array, c0: Array, drive: Array) -> tuple[Array, Array]:
    """Run the LSTM's time loop over a batch of trials, with the fast reverse pass.

    pre_t = drive_t + Wh h_{t-1}, split into the gates (i, f, g, o) in that order;
    i, f, o = σ(·), g = tanh(·); c_t = f ⊙ c_{t-1} + i ⊙ g; h_t = o ⊙ tanh(c_t).

    Args:
        Wh: (4N, N), the stacked recurrent weights of the gates i, f, g, o.
        h0, c0: (B, N) initial states. drive: (T, B, 4N), time-major: the input projection
            plus the gate biases.

    Returns:
        hs (T, B, N), cs (T, B, N), time-major.
    """
    return _lstm_rollout(Wh, h0, c0, drive)


def lstm_rollout_scan(Wh, h0, c0, drive):
    """:func:`lstm_rollout` as a plain ``lax.scan`` differentiated by JAX (the reference)."""
    N = h0.shape[-1]

    def step(carry, pre_in):
        h, c = carry
        pre = pre_in + h @ Wh.T
        i, f, o = (jax.nn.sigmoid(pre[:, j * N : (j + 1) * N]) for j in (0, 1, 3))
        c = f * c + i * jnp.tanh(pre[:, 2 * N : 3 * N])
        h = o * jnp.tanh(c)
        return (h, c), (h, c)

    return jax.lax.scan(step, (h0, c0), drive)[1]

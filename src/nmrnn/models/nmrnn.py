"""The neuromodulated low-rank RNN (NM-RNN) of the paper and its linear symmetric variant
(``linear_nmrnn``: φ(x) = x, R = L = Q): the flax module, its parameter groups and its time loop
with a hand-written reverse pass.

z_t = (1 - a_z) z_{t-1} + a_z [W_z tanh(z_{t-1}) + B_z u_t (+ W_zx tanh(x_{t-1}) + b_zx)]
s_t = σ(A_z z_t + b_z), replaced by s_fix_t where s_mask
x_t = (1 - a_x) x_{t-1} + a_x [g · left diag(s_t) rightᵀ φ(x_{t-1}) + B_x u_t]
y_t = C x_t + d

The reverse loop carries only λx, λz; e.g. dR = Σ_t φ(x_{t-1})ᵀ((λx_t L) ⊙ s_t)·g/τx is formed
after it, as one product over all steps and trials.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from nmrnn.lowrank import low_rank_factors, recurrence_gain
from nmrnn.models.common import (
    Array,
    Model,
    Recurrence,
    RecurrentModel,
    at,
    batch_major,
    check_gradient,
    gradient_field,
    initial_state,
    input_drive,
    is_zero,
    normal,
    phi,
    put_all,
    readout,
    readout_gradients,
    small_matmul,
    state_adjoint,
    sum_outer_t,
    time_major,
    transposed,
)


class NMRNN(RecurrentModel):
    """Neuromodulated low-rank RNN (SPEC §1).

    z_t = (1 - 1/τz) z_{t-1} + (1/τz)[W_z φ(z_{t-1}) + B_z u_t (+ W_zx φ(x_{t-1}) + b_zx)]
    s_t = σ(A_z z_t + b_z)
    x_t = (1 - 1/τx) x_{t-1} + (1/τx)[g L diag(s_t) Rᵀ φ(x_{t-1}) + B_x u_t]
    y_t = C x_t + d

    Attributes:
        N, M, K, O: sizes of x, z, s and y.
        tau_x, tau_z: time constants, in steps.
        normalisation: ``"qr"`` (L → orthonormal Q of its reduced QR, g = 1), ``"inv_n"``
            (raw L, g = 1/N) or ``"qr_inv_n"`` (Q and g = 1/N, the authors' LR-RNN); see
            :mod:`nmrnn.lowrank`.
        qr_sign: sign convention of Q: ``"positive"`` (diag R > 0) or ``"householder"``
            (LAPACK's, as ``jnp.linalg.qr``).
        x_inputs: if set, only the first ``x_inputs`` input channels drive x (context routing:
            the remaining channels reach z only). ``None``: every channel drives x and z.
        feedback: add the x→z path W_zx φ(x) + b_zx (Element Finder Task).
        readout_bias: include d.
        init_scheme: ``"default"`` (MWG, multitask) or ``"eft"`` (the feedback model's scaling,
            SPEC §1); ``"eft"`` also draws x_0, z_0 at random once per run.
        linear: use φ(x) = x and R = L = Q in the x update (the linear symmetric NM-RNN of the
            theory).
        gradient: ``"custom"`` (default) or ``"autodiff"``: how the time loop is
            differentiated (see :func:`~nmrnn.models.common.gradient_field`; every model has it).
    """

    N: int
    M: int
    K: int
    O: int
    tau_x: float = 10.0
    tau_z: float = 100.0
    normalisation: str = "qr"
    qr_sign: str = "positive"
    x_inputs: int | None = None
    feedback: bool = False
    readout_bias: bool = True
    init_scheme: str = "default"
    linear: bool = False
    gradient: str = gradient_field()

    PARAM_GROUPS = {
        "lowrank": ("L", "R", "B_x", "C", "d"),
        "neuromod": ("W_z", "B_z", "A_z", "b_z", "W_zx", "b_zx"),
        "inputs": ("B_x", "B_z"),
    }

    def owner(self) -> str:
        return "LinearNMRNN" if self.linear else "NMRNN"

    @nn.compact
    def __call__(
        self,
        inputs: Array,
        s_override: Array | None = None,
        s_override_mask: Array | None = None,
    ) -> dict[str, Array]:
        """Run a batch of trials.

        Args:
            inputs: (batch, time, U), batch-major (the leading axis is trials, not time; a
                time-major array cannot be told apart by shape, so it must not be passed).
            s_override: optional (batch, time, K) gains that replace s_k wherever
                ``s_override_mask[k]`` is true (ablations of Fig. 3F).
            s_override_mask: (K,) bool.

        Returns:
            dict with y (batch, time, O), x (batch, time, N), z (batch, time, M),
            s (batch, time, K).
        """
        N, M, K, O = self.N, self.M, self.K, self.O
        U = inputs.shape[-1]
        Ux = U if self.x_inputs is None else self.x_inputs
        eft = self.init_scheme == "eft"
        if self.init_scheme not in ("default", "eft"):
            raise ValueError(f"unknown init_scheme {self.init_scheme!r} (use 'default' or 'eft')")

        lr_scale = 1.0 / jnp.sqrt(K) if eft else 1.0
        nm_scale_w = 1.0 / jnp.sqrt(M) if eft else 0.1
        nm_scale_b = 1.0 / jnp.sqrt(K) if eft else 0.1
        L = self.param("L", normal(lr_scale), (N, K))
        R = self.param("R", normal(lr_scale), (N, K))
        B_x = self.param("B_x", normal(1.0 / jnp.sqrt(Ux)), (N, Ux))
        B_z = self.param("B_z", normal(1.0 / jnp.sqrt(U)), (M, U))
        C, d = readout(self, N, O)
        W_z = self.param("W_z", normal(nm_scale_w), (M, M))
        A_z = self.param("A_z", normal(nm_scale_w), (K, M))
        b_z = self.param("b_z", normal(nm_scale_b), (K,))
        if self.feedback:
            W_zx = self.param("W_zx", normal(1.0 / jnp.sqrt(N)), (M, N))
            b_zx = self.param("b_zx", normal(1.0 / jnp.sqrt(M)), (M,))
        x0 = initial_state(self, "x0", N, random=eft)
        z0 = initial_state(self, "z0", M, random=eft)

        if self.linear:
            Q = low_rank_factors(L, "qr")
            left, right, gain = Q, Q, 1.0
        else:
            left = low_rank_factors(L, self.normalisation, self.qr_sign)
            right = R
            gain = recurrence_gain(self.normalisation, N)

        batch = inputs.shape[0]
        u = time_major(inputs)
        if s_override is None:
            s_fix, omask = None, None
        else:
            s_fix = time_major(s_override)
            omask = jnp.asarray(s_override_mask, bool)

        # The time loop, input projections and readout included (:func:`rollout` below): the
        # equations above, with a hand-written reverse pass unless gradient="autodiff".
        weights = NMRNNWeights(
            left,
            right,
            W_z,
            A_z,
            b_z,
            B_x,
            B_z,
            C,
            d,
            W_zx=W_zx if self.feedback else None,
            b_zx=b_zx if self.feedback else None,
        )
        ys, xs, zs, ss = rollout(
            weights,
            jnp.broadcast_to(x0, (batch, N)),
            jnp.broadcast_to(z0, (batch, M)),
            u[..., :Ux],
            u,
            gain=gain,
            ax=1.0 / self.tau_x,
            az=1.0 / self.tau_z,
            linear=self.linear,
            s_fix=s_fix,
            s_mask=omask,
            gradient=self.gradient,
        )
        ys, xs, zs, ss = batch_major((ys, xs, zs, ss))
        return {"y": ys, "x": xs, "z": zs, "s": ss}


def LinearNMRNN(N: int, M: int, K: int, O: int, **kwargs: Any) -> NMRNN:
    """The linear symmetric NM-RNN of Section 3: φ(x) = x in the x update, R = L = QR(L)."""
    return NMRNN(N=N, M=M, K=K, O=O, linear=True, **kwargs)


MODELS = (Model("nmrnn", NMRNN), Model("linear_nmrnn", NMRNN, {"linear": True}))


# ----------------------------------------------------------------------------- time loop


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
    # Input drives do not depend on the state: z's for all steps at once, x's as
    # :func:`~nmrnn.models.common.input_drive` decides (inside the step for narrow inputs).
    drive_x = input_drive(inputs_x, w.B_x)
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
        x = (1.0 - ax) * x + ax * (rec.gain * small_matmul(r * s, left_T) + drive_x(t))
        new = (x, z, s) + ((phi_x, tz, r) if residuals else ())
        return x, z, put_all(bufs, new, t)

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
        return px, pz, put_all(bufs, new, t)

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
    g_C, g_d = readout_gradients(gys, xs, w.C, w.d)
    g_w = NMRNNWeights(
        left=by_lam_x[:K].T,
        right=by_phi[:K].T,
        W_z=az * sum_outer_t(lam_z, tz_prev),
        A_z=sum_outer_t(ga, zs),
        b_z=ga.sum(axis=(0, 1)),
        B_x=by_lam_x[K : K + Ux].T,
        B_z=az * sum_outer_t(lam_z, inputs_z),
        C=g_C,
        d=g_d,
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

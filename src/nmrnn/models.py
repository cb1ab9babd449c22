"""The recurrent models of the paper as flax modules: NM-RNN, linear symmetric NM-RNN, LR-RNN,
vanilla RNN and LSTM.

Each module declares its parameters (collection ``params``) and its fixed initial state (collection
``constants``; never trained) with the initialisations of SPEC §1, and runs a trial batch
``inputs: (batch, time, U)`` -- batch-major, trials first; time-major arrays cannot be told apart by
shape and must be transposed first. The module prepares the weights (the QR normalisation of L,
the LSTM's stacked gates and input drive), transposes the inputs to time-major and runs the time
loop of :mod:`nmrnn.rollouts`: a ``fori_loop`` with a hand-written reverse pass (``jax.custom_vjp``,
reverse mode only) by default, or, with ``gradient="autodiff"``, a plain ``lax.scan`` of the same
equations differentiated by JAX. ``apply`` returns a dict of trajectories, each
``(batch, time, ·)``: always ``y`` (outputs), plus ``x`` (fast state), ``z`` (neuromodulatory
state) and ``s`` (gains) for NM-RNNs, ``x`` for the low-rank and vanilla RNNs, ``h`` and ``c``
for the LSTM.

Sizes (N, M, K, O) must be positive integers and time constants positive; a low-rank model also
needs K <= N; ``gradient`` is ``"custom"`` or ``"autodiff"``. Bad values raise a ValueError
naming the field at construction.

Symbols follow the paper: L, R (N×K) the low-rank factors, s (K) the neuromodulatory gains,
z (M) the neuromodulatory state, τx and τz the time constants, φ = tanh. Euler steps of dt = 1.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nmrnn import rollouts
from nmrnn.lowrank import check_options, low_rank_factors, recurrence_gain

Array = jax.Array

ARCHITECTURES = ("nmrnn", "linear_nmrnn", "lrrnn", "vanilla", "lstm")


def _normal(scale: float):
    """Initialiser drawing N(0, scale²) entries."""

    def init(key, shape, dtype=jnp.float32):
        return scale * jax.random.normal(key, shape, dtype)

    return init


def _initial_state(module: nn.Module, name: str, size: int, random: bool) -> Array:
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


def _readout(module: nn.Module, N: int, O: int) -> tuple[Array, Array]:
    """Readout y = C x + d with C, d ~ N(0, 1/N); d is zero (not a parameter) without a bias."""
    C = module.param("C", _normal(1.0 / jnp.sqrt(N)), (O, N))
    if module.readout_bias:
        return C, module.param("d", _normal(1.0 / jnp.sqrt(N)), (O,))
    return C, jnp.zeros((O,), jnp.float32)


def _check_size(owner: str, name: str, value: Any) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")


def _check_time_constant(owner: str, name: str, value: Any) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a positive number (in steps)."""
    if isinstance(value, jax.core.Tracer):
        return
    try:
        positive = not isinstance(value, bool) and float(value) > 0
    except (TypeError, ValueError):
        positive = False
    if not positive:
        raise ValueError(f"{owner}: {name} must be a positive number of steps, got {value!r}")


def _check_low_rank_options(owner: str, normalisation: str, qr_sign: str) -> None:
    try:
        check_options(normalisation, qr_sign)
    except ValueError as error:
        raise ValueError(f"{owner}: {error}") from None


def _check_rank(owner: str, N: int, K: int) -> None:
    if K > N:
        raise ValueError(f"{owner}: K={K} exceeds N={N}: a rank-K recurrence needs K <= N")


def _gradient_field() -> Any:
    """The ``gradient`` attribute: how the time loop is differentiated, ``"custom"`` (the
    hand-written reverse pass) or ``"autodiff"`` (JAX's autodiff of a plain ``lax.scan``, the
    baseline of ``python -m nmrnn.bench --compare``). An implementation choice, not a setting of
    the model: left out of the repr (and so of a run's fingerprint) and of the settings that
    :func:`nmrnn.architectures.build_model` accepts."""
    return dataclasses.field(default="custom", repr=False)


def _check_gradient(owner: str, gradient: Any) -> None:
    try:
        rollouts.check_gradient(gradient)
    except ValueError as error:
        raise ValueError(f"{owner}: {error}") from None


def _time_major(a: Array) -> Array:
    return jnp.swapaxes(a, 0, 1)


def _batch_major(tree):
    return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), tree)


class NMRNN(nn.Module):
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
            differentiated (see :func:`_gradient_field`; every model has it).
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
    gradient: str = _gradient_field()

    PARAM_GROUPS = {
        "lowrank": ("L", "R", "B_x", "C", "d"),
        "neuromod": ("W_z", "B_z", "A_z", "b_z", "W_zx", "b_zx"),
        "inputs": ("B_x", "B_z"),
    }

    def __post_init__(self):
        owner = "LinearNMRNN" if self.linear else "NMRNN"
        for name in ("N", "M", "K", "O"):
            _check_size(owner, name, getattr(self, name))
        _check_rank(owner, self.N, self.K)
        _check_time_constant(owner, "tau_x", self.tau_x)
        _check_time_constant(owner, "tau_z", self.tau_z)
        _check_low_rank_options(owner, self.normalisation, self.qr_sign)
        _check_gradient(owner, self.gradient)
        super().__post_init__()

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
        L = self.param("L", _normal(lr_scale), (N, K))
        R = self.param("R", _normal(lr_scale), (N, K))
        B_x = self.param("B_x", _normal(1.0 / jnp.sqrt(Ux)), (N, Ux))
        B_z = self.param("B_z", _normal(1.0 / jnp.sqrt(U)), (M, U))
        C, d = _readout(self, N, O)
        W_z = self.param("W_z", _normal(nm_scale_w), (M, M))
        A_z = self.param("A_z", _normal(nm_scale_w), (K, M))
        b_z = self.param("b_z", _normal(nm_scale_b), (K,))
        if self.feedback:
            W_zx = self.param("W_zx", _normal(1.0 / jnp.sqrt(N)), (M, N))
            b_zx = self.param("b_zx", _normal(1.0 / jnp.sqrt(M)), (M,))
        x0 = _initial_state(self, "x0", N, random=eft)
        z0 = _initial_state(self, "z0", M, random=eft)

        if self.linear:
            Q = low_rank_factors(L, "qr")
            left, right, gain = Q, Q, 1.0
        else:
            left = low_rank_factors(L, self.normalisation, self.qr_sign)
            right = R
            gain = recurrence_gain(self.normalisation, N)

        batch = inputs.shape[0]
        u = _time_major(inputs)
        if s_override is None:
            s_fix, omask = None, None
        else:
            s_fix = _time_major(s_override)
            omask = jnp.asarray(s_override_mask, bool)

        # The time loop, input projections and readout included (nmrnn.rollouts.nmrnn): the
        # equations above, with a hand-written reverse pass unless gradient="autodiff".
        weights = rollouts.NMRNNWeights(
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
        ys, xs, zs, ss = rollouts.nmrnn.rollout(
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
        ys, xs, zs, ss = _batch_major((ys, xs, zs, ss))
        return {"y": ys, "x": xs, "z": zs, "s": ss}


def LinearNMRNN(N: int, M: int, K: int, O: int, **kwargs: Any) -> NMRNN:
    """The linear symmetric NM-RNN of Section 3: φ(x) = x in the x update, R = L = QR(L)."""
    return NMRNN(N=N, M=M, K=K, O=O, linear=True, **kwargs)


class LRRNN(nn.Module):
    """Low-rank RNN: the NM-RNN with s ≡ 1 and no z.

    x_t = (1 - 1/τ) x_{t-1} + (1/τ)[g L Rᵀ φ(x_{t-1}) + B u_t],  y_t = C x_t + d
    """

    N: int
    K: int
    O: int
    tau_x: float = 10.0
    normalisation: str = "qr"
    qr_sign: str = "positive"
    readout_bias: bool = True
    init_scheme: str = "default"
    gradient: str = _gradient_field()

    PARAM_GROUPS = {"lowrank": ("L", "R", "B", "C", "d"), "inputs": ("B",)}

    def __post_init__(self):
        for name in ("N", "K", "O"):
            _check_size("LRRNN", name, getattr(self, name))
        _check_rank("LRRNN", self.N, self.K)
        _check_time_constant("LRRNN", "tau_x", self.tau_x)
        _check_low_rank_options("LRRNN", self.normalisation, self.qr_sign)
        _check_gradient("LRRNN", self.gradient)
        super().__post_init__()

    @nn.compact
    def __call__(self, inputs: Array) -> dict[str, Array]:
        """Run a batch of trials.

        inputs: (batch, time, U), batch-major (trials first, not time-major) → dict with
        y (batch, time, O), x (batch, time, N).
        """
        N, K, O = self.N, self.K, self.O
        U = inputs.shape[-1]
        eft = self.init_scheme == "eft"
        lr_scale = 1.0 / jnp.sqrt(K) if eft else 1.0
        L = self.param("L", _normal(lr_scale), (N, K))
        R = self.param("R", _normal(lr_scale), (N, K))
        B = self.param("B", _normal(1.0 / jnp.sqrt(U)), (N, U))
        C, d = _readout(self, N, O)
        x0 = _initial_state(self, "x0", N, random=eft)
        left = low_rank_factors(L, self.normalisation, self.qr_sign)
        gain = recurrence_gain(self.normalisation, N)
        # The time loop, input projection and readout included (nmrnn.rollouts.lrrnn): the
        # equation above, with a hand-written reverse pass unless gradient="autodiff".
        ys, xs = rollouts.lrrnn.rollout(
            rollouts.LRRNNWeights(left, R, B, C, d),
            jnp.broadcast_to(x0, (inputs.shape[0], N)),
            _time_major(inputs),
            gain=gain,
            ax=1.0 / self.tau_x,
            gradient=self.gradient,
        )
        ys, xs = _batch_major((ys, xs))
        return {"y": ys, "x": xs}


class VanillaRNN(nn.Module):
    """Leaky vanilla RNN.

    x_t = (1 - 1/τ) x_{t-1} + (1/τ)[(1/N) W φ(x_{t-1}) + B u_t], y = C x + d.
    """

    N: int
    O: int
    tau_x: float = 10.0
    readout_bias: bool = True
    init_scheme: str = "default"
    gradient: str = _gradient_field()

    PARAM_GROUPS = {"inputs": ("B",)}

    def __post_init__(self):
        for name in ("N", "O"):
            _check_size("VanillaRNN", name, getattr(self, name))
        _check_time_constant("VanillaRNN", "tau_x", self.tau_x)
        _check_gradient("VanillaRNN", self.gradient)
        super().__post_init__()

    @nn.compact
    def __call__(self, inputs: Array) -> dict[str, Array]:
        """Run a batch of trials.

        inputs: (batch, time, U), batch-major (trials first, not time-major) → dict with
        y (batch, time, O), x (batch, time, N).
        """
        N, O = self.N, self.O
        U = inputs.shape[-1]
        W = self.param("W", _normal(1.0), (N, N))
        B = self.param("B", _normal(1.0 / jnp.sqrt(U)), (N, U))
        C, d = _readout(self, N, O)
        x0 = _initial_state(self, "x0", N, random=self.init_scheme == "eft")
        # The time loop, input projection and readout included (nmrnn.rollouts.vanilla): the
        # equation above, with a hand-written reverse pass unless gradient="autodiff".
        ys, xs = rollouts.vanilla.rollout(
            rollouts.VanillaWeights(W, B, C, d),
            jnp.broadcast_to(x0, (inputs.shape[0], N)),
            _time_major(inputs),
            gain=1.0 / N,
            ax=1.0 / self.tau_x,
            gradient=self.gradient,
        )
        ys, xs = _batch_major((ys, xs))
        return {"y": ys, "x": xs}


LSTM_GATES = ("i", "f", "g", "o")


class LSTM(nn.Module):
    """Standard LSTM without peepholes; readout y = C h (no bias).

    i, f, o = σ(Wx_· u + Wh_· h + b_·), g = tanh(Wx_g u + Wh_g h + b_g),
    c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c').
    """

    N: int
    O: int
    init_scheme: str = "default"
    gradient: str = _gradient_field()

    PARAM_GROUPS = {"inputs": tuple(f"Wx_{g}" for g in LSTM_GATES)}

    def __post_init__(self):
        for name in ("N", "O"):
            _check_size("LSTM", name, getattr(self, name))
        _check_gradient("LSTM", self.gradient)
        super().__post_init__()

    @nn.compact
    def __call__(self, inputs: Array) -> dict[str, Array]:
        """Run a batch of trials.

        inputs: (batch, time, U), batch-major (trials first, not time-major) → dict with
        y (batch, time, O), h and c (batch, time, N).
        """
        N, O = self.N, self.O
        U = inputs.shape[-1]
        Wx = {g: self.param(f"Wx_{g}", _normal(1.0 / jnp.sqrt(U)), (N, U)) for g in LSTM_GATES}
        Wh = {g: self.param(f"Wh_{g}", _normal(1.0 / jnp.sqrt(N)), (N, N)) for g in LSTM_GATES}
        b = {g: self.param(f"b_{g}", _normal(1.0 / jnp.sqrt(N)), (N,)) for g in LSTM_GATES}
        C = self.param("C", _normal(1.0 / jnp.sqrt(N)), (O, N))
        random = self.init_scheme == "eft"
        h0 = _initial_state(self, "h0", N, random=random)
        c0 = _initial_state(self, "c0", N, random=random)

        # One stacked matrix per path keeps the time loop to a single product per step.
        Wx_all = jnp.concatenate([Wx[g] for g in LSTM_GATES], axis=0)  # (4N, U)
        Wh_all = jnp.concatenate([Wh[g] for g in LSTM_GATES], axis=0)  # (4N, N)
        b_all = jnp.concatenate([b[g] for g in LSTM_GATES])
        drive = _time_major(inputs @ Wx_all.T + b_all)
        # The time loop (nmrnn.rollouts.lstm), with a hand-written reverse pass unless
        # gradient="autodiff".
        batch = inputs.shape[0]
        hs, cs = rollouts.lstm.rollout(
            rollouts.LSTMWeights(Wh_all),
            jnp.broadcast_to(h0, (batch, N)),
            jnp.broadcast_to(c0, (batch, N)),
            drive,
            gradient=self.gradient,
        )
        hs, cs = _batch_major((hs, cs))
        return {"y": hs @ C.T, "h": hs, "c": cs}

"""Every model against an independent NumPy implementation of the SPEC §1 equations, plus the
shapes of the trajectories, gain overrides, initial states and initialisation scales."""

from __future__ import annotations

import functools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nmrnn.models import LRRNN, LSTM, NMRNN, LinearNMRNN, VanillaRNN

RTOL, ATOL = 1e-4, 1e-5
BATCH, T, U = 3, 7, 6


# ----------------------------------------------------------------------------- NumPy reference


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def qr_positive(L):
    """Q of the reduced QR of L with diag(R) > 0 (the package's sign convention)."""
    Q, R = np.linalg.qr(L, mode="reduced")
    return Q * np.sign(np.diag(R))[None, :]


def np_params(variables):
    """params and constants as float64 NumPy arrays."""
    f = lambda tree: {k: np.asarray(v, np.float64) for k, v in tree.items()}  # noqa: E731
    return f(variables["params"]), f(variables["constants"])


def ref_nmrnn(
    variables,
    u,
    *,
    tau_x,
    tau_z,
    normalisation="qr",
    x_inputs=None,
    feedback=False,
    readout_bias=True,
    linear=False,
    s_override=None,
    s_mask=None,
):
    """SPEC §1 NM-RNN, one trial at a time, one step at a time. u: (batch, time, U)."""
    p, c = np_params(variables)
    N = p["L"].shape[0]
    if linear:
        left = right = qr_positive(p["L"])
        g = 1.0
        phi = lambda v: v  # noqa: E731
    else:
        left = qr_positive(p["L"]) if normalisation == "qr" else p["L"]
        right = p["R"]
        g = 1.0 if normalisation == "qr" else 1.0 / N
        phi = np.tanh
    Ux = u.shape[-1] if x_inputs is None else x_inputs
    d = p["d"] if readout_bias else 0.0
    out = {k: [] for k in ("x", "z", "s", "y")}
    for b in range(u.shape[0]):
        x, z = c["x0"].copy(), c["z0"].copy()
        traj = {k: [] for k in out}
        for t in range(u.shape[1]):
            ut = u[b, t]
            pre_z = p["W_z"] @ np.tanh(z) + p["B_z"] @ ut
            if feedback:
                pre_z = pre_z + p["W_zx"] @ np.tanh(x) + p["b_zx"]
            z_new = (1 - 1 / tau_z) * z + (1 / tau_z) * pre_z
            s = sigmoid(p["A_z"] @ z_new + p["b_z"])
            if s_override is not None:
                s = np.where(s_mask, s_override[b, t], s)
            rec = g * left @ np.diag(s) @ right.T @ phi(x)
            x = (1 - 1 / tau_x) * x + (1 / tau_x) * (rec + p["B_x"] @ ut[:Ux])
            z = z_new
            for k, v in (("x", x), ("z", z), ("s", s), ("y", p["C"] @ x + d)):
                traj[k].append(v)
        for k in out:
            out[k].append(np.stack(traj[k]))
    return {k: np.stack(v) for k, v in out.items()}


def ref_lrrnn(variables, u, *, tau_x, normalisation):
    p, c = np_params(variables)
    N = p["L"].shape[0]
    left = qr_positive(p["L"]) if normalisation == "qr" else p["L"]
    g = 1.0 if normalisation == "qr" else 1.0 / N
    xs, ys = [], []
    for b in range(u.shape[0]):
        x = c["x0"].copy()
        xb, yb = [], []
        for t in range(u.shape[1]):
            x = (1 - 1 / tau_x) * x + (1 / tau_x) * (
                g * left @ p["R"].T @ np.tanh(x) + p["B"] @ u[b, t]
            )
            xb.append(x)
            yb.append(p["C"] @ x + p["d"])
        xs.append(xb)
        ys.append(yb)
    return {"x": np.array(xs), "y": np.array(ys)}


def ref_vanilla(variables, u, *, tau_x):
    p, c = np_params(variables)
    N = p["W"].shape[0]
    xs, ys = [], []
    for b in range(u.shape[0]):
        x = c["x0"].copy()
        xb, yb = [], []
        for t in range(u.shape[1]):
            x = (1 - 1 / tau_x) * x + (1 / tau_x) * (p["W"] @ np.tanh(x) / N + p["B"] @ u[b, t])
            xb.append(x)
            yb.append(p["C"] @ x + p["d"])
        xs.append(xb)
        ys.append(yb)
    return {"x": np.array(xs), "y": np.array(ys)}


def ref_lstm(variables, u):
    p, c0 = np_params(variables)
    out = {"h": [], "c": [], "y": []}
    for b in range(u.shape[0]):
        h, c = c0["h0"].copy(), c0["c0"].copy()
        hb, cb, yb = [], [], []
        for t in range(u.shape[1]):
            ut = u[b, t]
            pre = {g: p[f"Wx_{g}"] @ ut + p[f"Wh_{g}"] @ h + p[f"b_{g}"] for g in "ifgo"}
            i, f, o = sigmoid(pre["i"]), sigmoid(pre["f"]), sigmoid(pre["o"])
            c = f * c + i * np.tanh(pre["g"])
            h = o * np.tanh(c)
            hb.append(h)
            cb.append(c)
            yb.append(p["C"] @ h)
        out["h"].append(hb)
        out["c"].append(cb)
        out["y"].append(yb)
    return {k: np.array(v) for k, v in out.items()}


# ----------------------------------------------------------------------------- cases

N_, M_, K_, O_ = 30, 15, 8, 5

CASES = {
    "nmrnn_qr": (
        NMRNN(N=N_, M=M_, K=K_, O=O_, tau_x=3.0, tau_z=5.0, normalisation="qr"),
        lambda v, u: ref_nmrnn(v, u, tau_x=3.0, tau_z=5.0, normalisation="qr"),
    ),
    "nmrnn_inv_n": (
        NMRNN(N=N_, M=M_, K=K_, O=O_, tau_x=3.0, tau_z=5.0, normalisation="inv_n"),
        lambda v, u: ref_nmrnn(v, u, tau_x=3.0, tau_z=5.0, normalisation="inv_n"),
    ),
    "nmrnn_qr_routing": (
        NMRNN(N=N_, M=M_, K=K_, O=O_, tau_x=3.0, tau_z=5.0, normalisation="qr", x_inputs=2),
        lambda v, u: ref_nmrnn(v, u, tau_x=3.0, tau_z=5.0, normalisation="qr", x_inputs=2),
    ),
    "nmrnn_inv_n_routing": (
        NMRNN(N=N_, M=M_, K=K_, O=O_, tau_x=3.0, tau_z=5.0, normalisation="inv_n", x_inputs=3),
        lambda v, u: ref_nmrnn(v, u, tau_x=3.0, tau_z=5.0, normalisation="inv_n", x_inputs=3),
    ),
    "nmrnn_feedback_eft": (
        NMRNN(
            N=N_,
            M=M_,
            K=K_,
            O=O_,
            tau_x=2.0,
            tau_z=10.0,
            normalisation="inv_n",
            feedback=True,
            readout_bias=False,
            init_scheme="eft",
        ),
        lambda v, u: ref_nmrnn(
            v, u, tau_x=2.0, tau_z=10.0, normalisation="inv_n", feedback=True, readout_bias=False
        ),
    ),
    "linear_nmrnn": (
        LinearNMRNN(N=N_, M=M_, K=K_, O=O_, tau_x=3.0, tau_z=5.0),
        lambda v, u: ref_nmrnn(v, u, tau_x=3.0, tau_z=5.0, linear=True),
    ),
    "lrrnn_qr": (
        LRRNN(N=N_, K=K_, O=O_, tau_x=3.0, normalisation="qr"),
        lambda v, u: ref_lrrnn(v, u, tau_x=3.0, normalisation="qr"),
    ),
    "lrrnn_inv_n": (
        LRRNN(N=N_, K=K_, O=O_, tau_x=3.0, normalisation="inv_n"),
        lambda v, u: ref_lrrnn(v, u, tau_x=3.0, normalisation="inv_n"),
    ),
    "vanilla": (VanillaRNN(N=N_, O=O_, tau_x=3.0), lambda v, u: ref_vanilla(v, u, tau_x=3.0)),
    "lstm": (LSTM(N=N_, O=O_), ref_lstm),
    "lstm_eft": (LSTM(N=N_, O=O_, init_scheme="eft"), ref_lstm),
}

STATE_KEYS = {
    NMRNN: {"y": O_, "x": N_, "z": M_, "s": K_},
    LRRNN: {"y": O_, "x": N_},
    VanillaRNN: {"y": O_, "x": N_},
    LSTM: {"y": O_, "h": N_, "c": N_},
}


# Test data come from NumPy: every new shape of a jax.random draw costs a compilation.
ONE_STEP = jnp.zeros((1, 1, U))  # example input for init: only the width U matters


def _inputs(seed, time):
    """Random-ish inputs (BATCH, time, U) with MWG-like pulses of height 10 here and there."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(BATCH, time, U)) + 10.0 * (rng.uniform(size=(BATCH, time, U)) < 0.1)
    return jnp.asarray(u, jnp.float32)


@functools.cache
def _init(name, seed=0):
    """CASES[name].init with key ``seed`` (cached: each init compiles the model's time loop)."""
    model, _ = CASES[name]
    return model.init(jax.random.key(seed), ONE_STEP)


@functools.cache
def _perturbed_init(name):
    """The model's init, then every parameter nudged so that d, biases etc. are not special
    values."""
    seed = zlib.crc32(name.encode())
    variables = _init(name)
    rng = np.random.default_rng(seed)
    params = jax.tree.map(
        lambda a: a + jnp.asarray(0.3 * rng.normal(size=a.shape), jnp.float32),
        variables["params"],
    )
    return {"params": params, "constants": variables["constants"]}


@pytest.mark.parametrize("name", list(CASES))
def test_one_step_and_rollout_match_numpy_reference(name):
    model, reference = CASES[name]
    seed = zlib.crc32(name.encode())
    u = _inputs(seed, T)
    variables = _perturbed_init(name)
    out = model.apply(variables, u)
    # One step from the initial state (a one-step trial), then the whole rollout; one call to the
    # model serves both, since compiling each trial length costs more than the checks.
    one_step = reference(variables, np.asarray(u[:, :1], np.float64))
    rollout = reference(variables, np.asarray(u, np.float64))

    assert set(out) == set(STATE_KEYS[type(model)])
    for k, width in STATE_KEYS[type(model)].items():
        assert out[k].shape == (BATCH, T, width), k
        assert out[k].dtype == jnp.float32, k
        got = np.asarray(out[k])
        np.testing.assert_allclose(
            got[:, :1], one_step[k], rtol=RTOL, atol=ATOL, err_msg=f"{k}, one step"
        )
        np.testing.assert_allclose(got, rollout[k], rtol=RTOL, atol=ATOL, err_msg=f"{k}, rollout")


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith(("nmrnn", "linear"))])
def test_gains_are_in_open_unit_interval(name):
    model, _ = CASES[name]
    u = _inputs(3, T)
    s = np.asarray(model.apply(_init(name), u)["s"])
    assert np.all(s > 0) and np.all(s < 1)


def test_qr_normalisation_uses_orthonormal_left_factor():
    # With the QR normalisation, rescaling a column of L must not change the dynamics.
    model, _ = CASES["nmrnn_qr"]
    u = _inputs(11, T)
    variables = _perturbed_init("nmrnn_qr")
    scaled = jax.tree.map(lambda a: a, variables)
    scaled["params"] = dict(
        scaled["params"], L=variables["params"]["L"] * jnp.linspace(0.2, 7.0, K_)
    )
    a, b = model.apply(variables, u), model.apply(scaled, u)
    np.testing.assert_allclose(np.asarray(a["y"]), np.asarray(b["y"]), rtol=1e-4, atol=1e-5)
    # ...while with inv_n it does.
    model_n, _ = CASES["nmrnn_inv_n"]
    a, b = model_n.apply(variables, u), model_n.apply(scaled, u)
    assert not np.allclose(np.asarray(a["y"]), np.asarray(b["y"]), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", ["nmrnn_qr", "nmrnn_feedback_eft"])
def test_s_override_replaces_exactly_the_masked_gains(name):
    model, _ = CASES[name]
    u = _inputs(5, T)
    variables = _perturbed_init(name)
    override = jnp.asarray(np.random.default_rng(6).uniform(size=(BATCH, T, K_)), jnp.float32)
    mask = np.arange(K_) % 2 == 0
    out = model.apply(variables, u, s_override=override, s_override_mask=mask)
    s = np.asarray(out["s"])
    np.testing.assert_array_equal(s[..., mask], np.asarray(override)[..., mask])

    # The free gain follows the model; the whole trajectory follows the reference with overrides.
    kwargs = dict(tau_x=model.tau_x, tau_z=model.tau_z, normalisation=model.normalisation)
    kwargs.update(feedback=model.feedback, readout_bias=model.readout_bias)
    expected = ref_nmrnn(
        variables,
        np.asarray(u, np.float64),
        s_override=np.asarray(override, np.float64),
        s_mask=mask,
        **kwargs,
    )
    for k in ("x", "z", "s", "y"):
        np.testing.assert_allclose(np.asarray(out[k]), expected[k], rtol=RTOL, atol=ATOL)
    # The unmasked gain is not the override, and the z trajectory is untouched by the override
    # when there is no x -> z feedback.
    assert not np.allclose(s[..., 1], np.asarray(override)[..., 1])
    plain = model.apply(variables, u)
    if not model.feedback:
        np.testing.assert_allclose(np.asarray(out["z"]), np.asarray(plain["z"]), rtol=1e-6)
        np.testing.assert_allclose(s[..., 1], np.asarray(plain["s"])[..., 1], rtol=1e-6)
    assert not np.allclose(np.asarray(out["x"]), np.asarray(plain["x"]))

    # An all-false mask changes nothing.
    none = model.apply(variables, u, s_override=override, s_override_mask=np.zeros(K_, bool))
    np.testing.assert_allclose(np.asarray(none["y"]), np.asarray(plain["y"]), rtol=1e-6)


# ----------------------------------------------------------------------------- gradients


def _nm_reference_kwargs(model):
    names = ("tau_x", "tau_z", "normalisation", "x_inputs", "feedback", "readout_bias", "linear")
    return {n: getattr(model, n) for n in names}


@pytest.mark.parametrize(
    "name, override",
    # Between them: QR and 1/N normalisations, context routing, gain override, x -> z feedback,
    # the linear symmetric model.
    [("nmrnn_qr_routing", True), ("nmrnn_feedback_eft", False), ("linear_nmrnn", False)],
)
def test_gradients_match_finite_differences_of_reference(name, override):
    """jax.grad through the model (whatever reverse pass it uses) against central differences
    of the float64 NumPy reference, along a random direction in each parameter."""
    model, _ = CASES[name]
    seed = zlib.crc32(name.encode()) + override
    u = _inputs(seed, T)
    variables = _perturbed_init(name)
    rng = np.random.default_rng(seed + 2)
    widths = STATE_KEYS[NMRNN]
    weights = {k: rng.normal(size=(BATCH, T, w)) for k, w in widths.items()}
    kwargs = _nm_reference_kwargs(model)
    extra = {}
    if override:
        s_fix = rng.uniform(size=(BATCH, T, K_))
        mask = np.arange(K_) % 3 == 1
        extra = {"s_override": jnp.asarray(s_fix, jnp.float32), "s_override_mask": mask}
        kwargs.update(s_override=s_fix.astype(np.float32).astype(np.float64), s_mask=mask)

    def loss(params):
        out = model.apply({"params": params, "constants": variables["constants"]}, u, **extra)
        return sum(jnp.sum(out[k] * weights[k]) for k in widths)

    grads = jax.grad(loss)(variables["params"])
    u64 = np.asarray(u, np.float64)
    base = {k: np.asarray(v, np.float64) for k, v in variables["params"].items()}

    def reference_loss(params):
        out = ref_nmrnn({"params": params, "constants": variables["constants"]}, u64, **kwargs)
        return sum(np.sum(out[k] * weights[k]) for k in widths)

    eps = 1e-4
    for leaf, value in base.items():
        direction = rng.normal(size=value.shape)
        plus = reference_loss({**base, leaf: value + eps * direction})
        minus = reference_loss({**base, leaf: value - eps * direction})
        numeric = (plus - minus) / (2 * eps)
        g = np.asarray(grads[leaf], np.float64)
        analytic = np.sum(g * direction)
        scale = np.linalg.norm(g) * np.linalg.norm(direction)
        assert abs(analytic - numeric) <= 1e-3 * abs(numeric) + 1e-4 * scale + 1e-5, (
            leaf,
            analytic,
            numeric,
        )


# ----------------------------------------------------------------------------- initial states


@pytest.mark.parametrize(
    "name, names",
    [
        ("nmrnn_qr", ("x0", "z0")),
        ("lrrnn_qr", ("x0",)),
        ("vanilla", ("x0",)),
        ("lstm", ("h0", "c0")),
    ],
)
def test_default_initial_states_are_point_one(name, names):
    model, _ = CASES[name]
    variables = _init(name)
    assert set(variables["constants"]) == set(names)
    assert not set(names) & set(variables["params"])
    for n in names:
        np.testing.assert_array_equal(np.asarray(variables["constants"][n]), np.float32(0.1))


@pytest.mark.parametrize(
    "name, names", [("nmrnn_feedback_eft", ("x0", "z0")), ("lstm_eft", ("h0", "c0"))]
)
def test_eft_initial_states_are_random_once_per_run(name, names):
    model, _ = CASES[name]
    u = jnp.zeros((BATCH, 1, U))
    v1 = _init(name, 1)
    v1_again = model.init(jax.random.key(1), ONE_STEP)  # not cached: a second call
    v2 = _init(name, 2)
    assert set(v1["constants"]) == set(names)
    for n in names:
        a = np.asarray(v1["constants"][n])
        np.testing.assert_array_equal(a, np.asarray(v1_again["constants"][n]))
        assert not np.allclose(a, np.asarray(v2["constants"][n]))
        assert np.unique(a).size == a.size
    # Every trial starts from the one stored state (apply draws nothing: it has no rng), so with
    # zero input all trials of a batch are identical. (The rollout test checks that this state is
    # the one the dynamics start from.)
    y = np.asarray(model.apply(v1, u)["y"])
    np.testing.assert_array_equal(y[0], y[1])
    np.testing.assert_array_equal(y[0], y[2])


# ----------------------------------------------------------------------------- init scales


def _assert_normal(a, std, name):
    """Sample mean ≈ 0 and std ≈ ``std`` within generous multiples of the standard errors."""
    a = np.asarray(a, np.float64).ravel()
    n = a.size
    assert abs(a.mean()) < 5 * std / np.sqrt(n) + 1e-12, name
    rel = abs(a.std() / std - 1)
    assert rel < max(0.05, 5 / np.sqrt(2 * n)), f"{name}: std {a.std():.4g}, expected {std:.4g}"


# Init scales: one large model per scheme, sized so that every leaf has hundreds of samples or
# more and the candidate scales 1, 0.1, 1/√U, 1/√N, 1/√M, 1/√K are all far apart.
BIG = {"N": 1600, "M": 625, "K": 256, "O": 400}
BIG_U = 16


def _big_init(model):
    return model.init(jax.random.key(7), jnp.zeros((1, 1, BIG_U)))


def test_default_init_scales():
    N = BIG["N"]
    v = _big_init(NMRNN(**BIG, normalisation="inv_n"))
    expected = {
        "L": 1.0,
        "R": 1.0,
        "B_x": 1 / np.sqrt(BIG_U),
        "B_z": 1 / np.sqrt(BIG_U),
        "C": 1 / np.sqrt(N),
        "d": 1 / np.sqrt(N),
        "W_z": 0.1,
        "A_z": 0.1,
        "b_z": 0.1,
    }
    assert set(v["params"]) == set(expected)
    for name, std in expected.items():
        _assert_normal(v["params"][name], std, name)


def test_eft_init_scales():
    N, M, K = BIG["N"], BIG["M"], BIG["K"]
    model = NMRNN(
        **BIG, feedback=True, readout_bias=False, init_scheme="eft", normalisation="inv_n"
    )
    v = _big_init(model)
    expected = {
        "L": 1 / np.sqrt(K),
        "R": 1 / np.sqrt(K),
        "B_x": 1 / np.sqrt(BIG_U),
        "B_z": 1 / np.sqrt(BIG_U),
        "C": 1 / np.sqrt(N),
        "W_z": 1 / np.sqrt(M),
        "A_z": 1 / np.sqrt(M),
        "b_z": 1 / np.sqrt(K),
        "W_zx": 1 / np.sqrt(N),
        "b_zx": 1 / np.sqrt(M),
    }
    assert set(v["params"]) == set(expected)  # no readout bias d
    for name, std in expected.items():
        _assert_normal(v["params"][name], std, name)
    # x_0 ~ N(0, I/N), z_0 ~ N(0, I/M).
    _assert_normal(v["constants"]["x0"], 1 / np.sqrt(N), "x0")
    _assert_normal(v["constants"]["z0"], 1 / np.sqrt(M), "z0")


def test_baseline_init_scales():
    # LR-RNN and vanilla RNN: matrices only, from the small test models (already initialised).
    p = _init("lrrnn_qr")["params"]
    for name, std in {"L": 1.0, "R": 1.0, "B": 1 / np.sqrt(U), "C": 1 / np.sqrt(N_)}.items():
        _assert_normal(p[name], std, name)
    p = _init("vanilla")["params"]
    for name, std in {"W": 1.0, "B": 1 / np.sqrt(U), "C": 1 / np.sqrt(N_)}.items():
        _assert_normal(p[name], std, name)
    # LSTM (EFT scheme: random h0, c0), large enough for its vectors.
    N = 400
    v = _big_init(LSTM(N=N, O=BIG["O"], init_scheme="eft"))
    p = v["params"]
    assert "d" not in p
    for g in "ifgo":
        _assert_normal(p[f"Wx_{g}"], 1 / np.sqrt(BIG_U), f"Wx_{g}")
        _assert_normal(p[f"Wh_{g}"], 1 / np.sqrt(N), f"Wh_{g}")
        _assert_normal(p[f"b_{g}"], 1 / np.sqrt(N), f"b_{g}")
    _assert_normal(p["C"], 1 / np.sqrt(N), "C")
    _assert_normal(v["constants"]["h0"], 1 / np.sqrt(N), "h0")
    _assert_normal(v["constants"]["c0"], 1 / np.sqrt(N), "c0")


def test_normalisations_and_qr_signs():
    """qr_inv_n is the qr factor with gain 1/N (the authors' LR-RNN); householder is LAPACK's Q,
    which spans the same columns as the positive-diagonal one and differs by column signs."""
    from nmrnn.lowrank import low_rank_factors, recurrence_gain

    L = jax.random.normal(jax.random.key(3), (106, 3))
    R = jax.random.normal(jax.random.key(4), (106, 3))
    qr = low_rank_factors(L, "qr")
    assert jnp.allclose(low_rank_factors(L, "qr_inv_n"), qr)
    assert recurrence_gain("qr_inv_n", 106) == recurrence_gain("inv_n", 106) == 1 / 106
    assert recurrence_gain("qr", 106) == 1.0
    sv = jnp.linalg.svd(recurrence_gain("qr_inv_n", 106) * qr @ R.T, compute_uv=False)[:3]
    assert jnp.all((sv > 0.05) & (sv < 0.2))  # ≈ 0.1 at N = 106, against ≈ 10 for qr
    house = low_rank_factors(L, "qr", "householder")
    assert jnp.allclose(house, jnp.linalg.qr(L)[0])
    signs = jnp.sign(jnp.sum(house * qr, axis=0))
    assert jnp.allclose(house, qr * signs, atol=1e-5)
    with pytest.raises(ValueError, match="qr_sign"):
        LRRNN(N=8, K=2, O=1, qr_sign="lapack")
    with pytest.raises(ValueError, match="normalisation"):
        NMRNN(N=8, M=2, K=2, O=1, normalisation="inv_sqrt_n")
    # the model computes with the chosen form: outputs differ between qr and qr_inv_n
    x = jnp.ones((2, 5, 3))
    model = LRRNN(N=8, K=2, O=1, normalisation="qr_inv_n")
    variables = model.init(jax.random.key(0), x)
    y = model.apply(variables, x)["y"]
    y_qr = LRRNN(N=8, K=2, O=1, normalisation="qr").apply(variables, x)["y"]
    assert not jnp.allclose(y, y_qr)

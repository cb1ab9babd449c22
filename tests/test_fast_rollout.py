"""The fast NM-RNN, LR-RNN, vanilla RNN and LSTM rollouts against the plain ``lax.scan`` they
replace: same outputs, and their hand-written reverse passes give JAX's autodiff gradients for
every parameter and input, in every configuration of the model (qr / inv_n, feedback, linear φ,
gain overrides), under ``vmap`` over seeds, and inside the modules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nmrnn.fast_rollout import (
    lrrnn_rollout,
    lrrnn_rollout_scan,
    lstm_rollout,
    lstm_rollout_scan,
    nmrnn_rollout,
    nmrnn_rollout_scan,
    vanilla_rollout,
    vanilla_rollout_scan,
)
from nmrnn.lowrank import low_rank_factors
from nmrnn.models import LRRNN, LSTM, NMRNN, VanillaRNN

RTOL, ATOL = 1e-4, 1e-5
N, M, K, O, B, T, U, UX = 9, 4, 3, 2, 5, 12, 5, 3  # noqa: E741 (O: outputs, as in the paper)
S_MASK = jnp.array([True, False, True])


def arguments(key, normalisation="qr", feedback=False, linear=False, override=False):
    """Random weights, states and inputs: (differentiable arrays, static keyword arguments)."""
    ks = iter(jax.random.split(key, 16))
    normal = lambda shape, scale=1.0: scale * jax.random.normal(next(ks), shape)  # noqa: E731
    arrays = dict(
        L=normal((N, K)),
        right=normal((N, K), 0.7),
        W_z=normal((M, M), 0.5),
        A_z=normal((K, M)),
        b_z=normal((K,), 0.3),
        B_x=normal((N, UX)),
        B_z=normal((M, U)),
        C=normal((O, N), 0.4),
        d=normal((O,), 0.1),
        x0=normal((B, N), 0.3),
        z0=normal((B, M), 0.3),
        inputs_x=normal((T, B, UX)),
        inputs_z=normal((T, B, U)),
    )
    if feedback:
        arrays["W_zx"] = normal((M, N), 0.4)
        arrays["b_zx"] = normal((M,), 0.3)
    if override:
        arrays["s_fix"] = jax.nn.sigmoid(normal((T, B, K)))
    static = dict(
        gain=1.0 if normalisation == "qr" or linear else 1.0 / N,
        ax=0.2,
        az=0.05,
        linear=linear,
        s_mask=S_MASK if override else None,
    )
    return arrays, static, normalisation


def run(rollout, arrays, static, normalisation):
    """The rollout as the model calls it: the left factor normalised outside (QR for "qr"), and
    R = L = Q for the linear model."""
    a = dict(arrays)
    left = low_rank_factors(a.pop("L"), "qr" if static["linear"] else normalisation)
    right = left if static["linear"] else a.pop("right")
    a.pop("right", None)
    return rollout(left, right, **a, **static)


def weighted_sum(outputs, key):
    """A scalar that depends on every output, with random weights (so no cotangent is special)."""
    keys = jax.random.split(key, len(outputs))
    ws = [jax.random.normal(k, o.shape) for k, o in zip(keys, outputs, strict=True)]
    return sum(jnp.sum(w * jnp.tanh(o)) for w, o in zip(ws, outputs, strict=True))


def assert_trees_close(actual, expected):
    for name in expected:
        a, e = np.asarray(actual[name]), np.asarray(expected[name])
        scale = max(1.0, float(np.max(np.abs(e))))
        np.testing.assert_allclose(a, e, rtol=RTOL, atol=ATOL * scale, err_msg=name)


# Every option of the model, each on and off, and every pair of the options that share code in
# the rollout (feedback × linear, feedback × override, linear × override) in both states.
CASES = [
    dict(normalisation="qr", feedback=False, linear=False, override=False),
    dict(normalisation="inv_n", feedback=True, linear=False, override=True),
    dict(normalisation="qr", feedback=True, linear=True, override=False),
    dict(normalisation="qr", feedback=False, linear=True, override=True),
    dict(normalisation="inv_n", feedback=False, linear=False, override=True),
    dict(normalisation="qr", feedback=True, linear=False, override=False),
]


def case_id(case):
    flags = [name for name in ("feedback", "linear", "override") if case[name]]
    return "-".join([case["normalisation"]] + flags)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_outputs_and_gradients_equal_plain_scan(case):
    """Outputs, and gradients w.r.t. every weight, both initial states, the inputs and the imposed
    gains through a loss on all four outputs, equal the plain scan's (autodiff)."""
    arrays, static, norm = arguments(jax.random.key(1), **case)
    if static["linear"]:
        arrays.pop("right")  # unused: R = L = Q

    def outputs_and_gradients(rollout):
        def loss(a):
            outputs = run(rollout, a, static, norm)
            return weighted_sum(outputs, jax.random.key(2)), outputs

        return jax.jit(jax.grad(loss, has_aux=True))(arrays)

    fast_grads, fast = outputs_and_gradients(nmrnn_rollout)
    plain_grads, plain = outputs_and_gradients(nmrnn_rollout_scan)
    for name, f, p in zip(("y", "x", "z", "s"), fast, plain, strict=True):
        assert f.shape == p.shape, name
        np.testing.assert_allclose(f, p, rtol=RTOL, atol=ATOL, err_msg=name)
    assert set(fast_grads) == set(arrays)
    assert_trees_close(fast_grads, plain_grads)


@pytest.mark.parametrize("feedback", [False, True], ids=["plain", "feedback"])
def test_gradients_of_a_loss_on_y_only(feedback):
    """The training case: only y is used, the other outputs' cotangents are symbolic zeros."""
    arrays, static, norm = arguments(jax.random.key(3), feedback=feedback)
    target = jax.random.normal(jax.random.key(4), (T, B, O))

    def loss(rollout):
        return lambda a: jnp.mean((run(rollout, a, static, norm)[0] - target) ** 2)

    fast = jax.jit(jax.value_and_grad(loss(nmrnn_rollout)))(arrays)
    plain = jax.jit(jax.value_and_grad(loss(nmrnn_rollout_scan)))(arrays)
    np.testing.assert_allclose(fast[0], plain[0], rtol=RTOL)
    assert_trees_close(fast[1], plain[1])


def test_vmap_over_seeds():
    """Seeds as a leading axis (as the training engine runs them): per-seed values and gradients
    equal those of each seed alone."""
    cases = [arguments(jax.random.key(10 + i), feedback=True) for i in range(3)]
    static, norm = cases[0][1], cases[0][2]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *[c[0] for c in cases])
    target = jax.random.normal(jax.random.key(5), (T, B, O))

    def loss(rollout):
        return lambda a: jnp.mean((run(rollout, a, static, norm)[0] - target) ** 2)

    values, grads = jax.jit(jax.vmap(jax.value_and_grad(loss(nmrnn_rollout))))(stacked)
    for i, (arrays, _, _) in enumerate(cases):
        value, grad = jax.value_and_grad(loss(nmrnn_rollout_scan))(arrays)
        np.testing.assert_allclose(values[i], value, rtol=RTOL)
        assert_trees_close({k: g[i] for k, g in grads.items()}, grad)


def test_nmrnn_module_gradients_equal_plain_scan(monkeypatch):
    """The module wired to the fast rollout gives the gradients of the same module running the
    plain scan, for every parameter (EFT-style model: feedback, inv_n, no readout bias)."""
    model = NMRNN(
        N=12,
        M=5,
        K=7,
        O=1,
        tau_x=2.0,
        tau_z=10.0,
        feedback=True,
        normalisation="inv_n",
        init_scheme="eft",
        readout_bias=False,
    )
    inputs = jax.random.normal(jax.random.key(6), (8, 26, 1))
    variables = model.init(jax.random.key(7), inputs)
    target = jax.random.normal(jax.random.key(8), (8, 26, 1))

    def loss(params):
        y = model.apply({"params": params, "constants": variables["constants"]}, inputs)["y"]
        return jnp.mean((y - target) ** 2)

    fast = jax.grad(loss)(variables["params"])
    monkeypatch.setattr("nmrnn.fast_rollout.nmrnn_rollout", nmrnn_rollout_scan)
    plain = jax.grad(loss)(variables["params"])
    assert_trees_close(fast, plain)


@pytest.mark.parametrize("normalisation", ["qr", "inv_n"])
def test_lrrnn_outputs_and_gradients_equal_plain_scan(normalisation):
    ks = iter(jax.random.split(jax.random.key(20), 8))
    normal = lambda shape, scale=1.0: scale * jax.random.normal(next(ks), shape)  # noqa: E731
    arrays = dict(
        L=normal((N, K)),
        right=normal((N, K), 0.7),
        B=normal((N, U)),
        C=normal((O, N), 0.4),
        d=normal((O,), 0.1),
        x0=normal((B, N), 0.3),
        inputs=normal((T, B, U)),
    )
    gain = 1.0 if normalisation == "qr" else 1.0 / N

    def outputs_and_gradients(rollout):
        def loss(a):
            a = dict(a)
            left = low_rank_factors(a.pop("L"), normalisation)
            outputs = rollout(left, a.pop("right"), **a, gain=gain, ax=0.2)
            return weighted_sum(outputs, jax.random.key(21)), outputs

        return jax.jit(jax.grad(loss, has_aux=True))(arrays)

    fast_grads, fast = outputs_and_gradients(lrrnn_rollout)
    plain_grads, plain = outputs_and_gradients(lrrnn_rollout_scan)
    for name, f, p in zip(("y", "x"), fast, plain, strict=True):
        np.testing.assert_allclose(f, p, rtol=RTOL, atol=ATOL, err_msg=name)
    assert set(fast_grads) == set(arrays)
    assert_trees_close(fast_grads, plain_grads)


def test_lrrnn_module_gradients_equal_plain_scan_under_vmap(monkeypatch):
    """The LR-RNN module, seeds vmapped as in training, against the same module on the plain
    scan."""
    model = LRRNN(N=16, K=3, O=1)
    inputs = jax.random.normal(jax.random.key(22), (6, 30, 3))
    target = jax.random.normal(jax.random.key(23), (6, 30, 1))
    variables = jax.vmap(lambda k: model.init(k, inputs))(jax.random.split(jax.random.key(24), 2))

    def loss(params, constants):
        y = model.apply({"params": params, "constants": constants}, inputs)["y"]
        return jnp.mean((y - target) ** 2)

    grad = jax.vmap(jax.grad(loss))
    fast = grad(variables["params"], variables["constants"])
    monkeypatch.setattr("nmrnn.fast_rollout.lrrnn_rollout", lrrnn_rollout_scan)
    plain = grad(variables["params"], variables["constants"])
    assert_trees_close(fast, plain)


@pytest.mark.parametrize("outputs_used", ["y", "y+x"])
def test_vanilla_outputs_and_gradients_equal_plain_scan(outputs_used):
    ks = iter(jax.random.split(jax.random.key(30), 8))
    normal = lambda shape, scale=1.0: scale * jax.random.normal(next(ks), shape)  # noqa: E731
    arrays = dict(
        W=normal((N, N)),
        B=normal((N, U)),
        C=normal((O, N), 0.4),
        d=normal((O,), 0.1),
        x0=normal((B, N), 0.3),
        inputs=normal((T, B, U)),
    )

    def outputs_and_gradients(rollout):
        def loss(a):
            ys, xs = rollout(**a, gain=1.0 / N, ax=0.2)
            used = (ys, xs) if outputs_used == "y+x" else (ys,)
            return weighted_sum(used, jax.random.key(31)), (ys, xs)

        return jax.jit(jax.grad(loss, has_aux=True))(arrays)

    fast_grads, fast = outputs_and_gradients(vanilla_rollout)
    plain_grads, plain = outputs_and_gradients(vanilla_rollout_scan)
    for name, f, p in zip(("y", "x"), fast, plain, strict=True):
        np.testing.assert_allclose(f, p, rtol=RTOL, atol=ATOL, err_msg=name)
    assert set(fast_grads) == set(arrays)
    assert_trees_close(fast_grads, plain_grads)


def test_vanilla_module_gradients_equal_plain_scan_under_vmap(monkeypatch):
    """The vanilla RNN module, seeds vmapped as in training, against the plain scan."""
    model = VanillaRNN(N=12, O=2)
    inputs = jax.random.normal(jax.random.key(32), (6, 30, 3))
    target = jax.random.normal(jax.random.key(33), (6, 30, 2))
    variables = jax.vmap(lambda k: model.init(k, inputs))(jax.random.split(jax.random.key(34), 2))

    def loss(params, constants):
        y = model.apply({"params": params, "constants": constants}, inputs)["y"]
        return jnp.mean((y - target) ** 2)

    grad = jax.vmap(jax.grad(loss))
    fast = grad(variables["params"], variables["constants"])
    monkeypatch.setattr("nmrnn.fast_rollout.vanilla_rollout", vanilla_rollout_scan)
    plain = grad(variables["params"], variables["constants"])
    assert set(fast) == {"W", "B", "C", "d"}
    assert_trees_close(fast, plain)


@pytest.mark.parametrize("outputs_used", ["h", "h+c"])
def test_lstm_outputs_and_gradients_equal_plain_scan(outputs_used):
    ks = iter(jax.random.split(jax.random.key(40), 8))
    normal = lambda shape, scale=1.0: scale * jax.random.normal(next(ks), shape)  # noqa: E731
    arrays = dict(
        Wh=normal((4 * N, N), 0.5),
        h0=normal((B, N), 0.3),
        c0=normal((B, N), 0.3),
        drive=normal((T, B, 4 * N)),
    )

    def outputs_and_gradients(rollout):
        def loss(a):
            hs, cs = rollout(**a)
            used = (hs, cs) if outputs_used == "h+c" else (hs,)
            return weighted_sum(used, jax.random.key(41)), (hs, cs)

        return jax.jit(jax.grad(loss, has_aux=True))(arrays)

    fast_grads, fast = outputs_and_gradients(lstm_rollout)
    plain_grads, plain = outputs_and_gradients(lstm_rollout_scan)
    for name, f, p in zip(("h", "c"), fast, plain, strict=True):
        np.testing.assert_allclose(f, p, rtol=RTOL, atol=ATOL, err_msg=name)
    assert set(fast_grads) == set(arrays)
    assert_trees_close(fast_grads, plain_grads)


@pytest.mark.parametrize("init_scheme", ["default", "eft"])
def test_lstm_module_gradients_equal_plain_scan_under_vmap(monkeypatch, init_scheme):
    """The LSTM module (random initial states with the EFT scheme), seeds vmapped, against the
    plain scan."""
    model = LSTM(N=7, O=2, init_scheme=init_scheme)
    inputs = jax.random.normal(jax.random.key(42), (6, 30, 3))
    target = jax.random.normal(jax.random.key(43), (6, 30, 2))
    variables = jax.vmap(lambda k: model.init(k, inputs))(jax.random.split(jax.random.key(44), 2))
    constants = variables.get("constants", {})

    def loss(params, constants):
        y = model.apply({"params": params, "constants": constants}, inputs)["y"]
        return jnp.mean((y - target) ** 2)

    grad = jax.vmap(jax.grad(loss))
    fast = grad(variables["params"], constants)
    monkeypatch.setattr("nmrnn.fast_rollout.lstm_rollout", lstm_rollout_scan)
    plain = grad(variables["params"], constants)
    assert {"Wh_i", "Wx_o", "b_f", "C"} <= set(fast)
    assert_trees_close(fast, plain)

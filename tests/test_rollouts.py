"""The time loops of the NM-RNN, LR-RNN, vanilla RNN and LSTM (each model module's ``rollout``) with
``gradient="custom"`` against ``gradient="autodiff"`` (the plain ``lax.scan`` they replace): same
outputs, and the hand-written reverse passes give JAX's autodiff gradients for every parameter and
input, in every configuration of the model (qr / inv_n, feedback, linear φ, gain overrides), under
``vmap`` over seeds, and inside the modules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nmrnn import models
from nmrnn.architectures import ConfigError, build_model
from nmrnn.lowrank import low_rank_factors
from nmrnn.models import LRRNN, LSTM, NMRNN, LinearNMRNN, VanillaRNN
from nmrnn.models.lrrnn import LRRNNWeights
from nmrnn.models.lstm import LSTMWeights
from nmrnn.models.nmrnn import NMRNNWeights
from nmrnn.models.vanilla import VanillaWeights

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


WEIGHTS = ("W_z", "A_z", "b_z", "B_x", "B_z", "C", "d", "W_zx", "b_zx")


def run(gradient, arrays, static, normalisation):
    """The NM-RNN rollout as the model calls it: the left factor normalised outside (QR for
    "qr"), and R = L = Q for the linear model."""
    a = dict(arrays)
    left = low_rank_factors(a.pop("L"), "qr" if static["linear"] else normalisation)
    right = left if static["linear"] else a.pop("right")
    a.pop("right", None)
    weights = NMRNNWeights(left, right, **{k: a.pop(k) for k in WEIGHTS if k in a})
    return models.nmrnn.rollout(
        weights,
        a.pop("x0"),
        a.pop("z0"),
        a.pop("inputs_x"),
        a.pop("inputs_z"),
        **a,
        **static,
        gradient=gradient,
    )


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

    fast_grads, fast = outputs_and_gradients("custom")
    plain_grads, plain = outputs_and_gradients("autodiff")
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

    def loss(gradient):
        return lambda a: jnp.mean((run(gradient, a, static, norm)[0] - target) ** 2)

    fast = jax.jit(jax.value_and_grad(loss("custom")))(arrays)
    plain = jax.jit(jax.value_and_grad(loss("autodiff")))(arrays)
    np.testing.assert_allclose(fast[0], plain[0], rtol=RTOL)
    assert_trees_close(fast[1], plain[1])


def test_vmap_over_seeds():
    """Seeds as a leading axis (as the training engine runs them): per-seed values and gradients
    equal those of each seed alone."""
    cases = [arguments(jax.random.key(10 + i), feedback=True) for i in range(3)]
    static, norm = cases[0][1], cases[0][2]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *[c[0] for c in cases])
    target = jax.random.normal(jax.random.key(5), (T, B, O))

    def loss(gradient):
        return lambda a: jnp.mean((run(gradient, a, static, norm)[0] - target) ** 2)

    values, grads = jax.jit(jax.vmap(jax.value_and_grad(loss("custom"))))(stacked)
    for i, (arrays, _, _) in enumerate(cases):
        value, grad = jax.value_and_grad(loss("autodiff"))(arrays)
        np.testing.assert_allclose(values[i], value, rtol=RTOL)
        assert_trees_close({k: g[i] for k, g in grads.items()}, grad)


def test_nmrnn_module_gradients_equal_plain_scan():
    """The module on the custom gradient gives the gradients of the same module with
    ``gradient="autodiff"``, for every parameter (EFT-style model: feedback, inv_n, no readout
    bias)."""
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

    def loss(module):
        def of(params):
            variables_ = {"params": params, "constants": variables["constants"]}
            return jnp.mean((module.apply(variables_, inputs)["y"] - target) ** 2)

        return of

    fast = jax.grad(loss(model))(variables["params"])
    plain = jax.grad(loss(model.clone(gradient="autodiff")))(variables["params"])
    assert_trees_close(fast, plain)


def random_arrays(seed: int, **shapes) -> dict:
    """name=(shape, scale) → independent N(0, scale²) arrays."""
    keys = jax.random.split(jax.random.key(seed), len(shapes))
    return {
        name: scale * jax.random.normal(k, shape)
        for k, (name, (shape, scale)) in zip(keys, shapes.items(), strict=True)
    }


def assert_rollouts_agree(arrays, call, names, used):
    """Outputs and the gradient of a weighted sum of the outputs named in ``used`` with respect
    to every array, custom against autodiff: ``call(gradient, arrays)`` returns the outputs, in
    the order of ``names``."""

    def outputs_and_gradients(gradient):
        def loss(a):
            outputs = call(gradient, a)
            kept = [o for name, o in zip(names, outputs, strict=True) if name in used]
            return weighted_sum(kept, jax.random.key(99)), outputs

        return jax.jit(jax.grad(loss, has_aux=True))(arrays)

    fast_grads, fast = outputs_and_gradients("custom")
    plain_grads, plain = outputs_and_gradients("autodiff")
    for name, f, p in zip(names, fast, plain, strict=True):
        np.testing.assert_allclose(f, p, rtol=RTOL, atol=ATOL, err_msg=name)
    assert set(fast_grads) == set(arrays)
    assert_trees_close(fast_grads, plain_grads)


# The arrays of the LR-RNN and vanilla loops besides their recurrent weights (shape, scale).
LEAKY_ARRAYS = {
    "B": ((N, U), 1.0),
    "C": ((O, N), 0.4),
    "d": ((O,), 0.1),
    "x0": ((B, N), 0.3),
    "inputs": ((T, B, U), 1.0),
}


@pytest.mark.parametrize("normalisation", ["qr", "inv_n"])
def test_lrrnn_outputs_and_gradients_equal_plain_scan(normalisation):
    arrays = random_arrays(20, L=((N, K), 1.0), right=((N, K), 0.7), **LEAKY_ARRAYS)
    gain = 1.0 if normalisation == "qr" else 1.0 / N

    def call(gradient, a):
        left = low_rank_factors(a["L"], normalisation)
        weights = LRRNNWeights(left, a["right"], a["B"], a["C"], a["d"])
        return models.lrrnn.rollout(
            weights, a["x0"], a["inputs"], gain=gain, ax=0.2, gradient=gradient
        )

    assert_rollouts_agree(arrays, call, ("y", "x"), "yx")


@pytest.mark.parametrize("used", ["y", "yx"])
def test_vanilla_outputs_and_gradients_equal_plain_scan(used):
    arrays = random_arrays(30, W=((N, N), 1.0), **LEAKY_ARRAYS)

    def call(gradient, a):
        weights = VanillaWeights(a["W"], a["B"], a["C"], a["d"])
        return models.vanilla.rollout(
            weights, a["x0"], a["inputs"], gain=1.0 / N, ax=0.2, gradient=gradient
        )

    assert_rollouts_agree(arrays, call, ("y", "x"), used)


@pytest.mark.parametrize("used", ["h", "hc"])
def test_lstm_outputs_and_gradients_equal_plain_scan(used):
    arrays = random_arrays(
        40,
        Wh=((4 * N, N), 0.5),
        h0=((B, N), 0.3),
        c0=((B, N), 0.3),
        drive=((T, B, 4 * N), 1.0),
    )

    def call(gradient, a):
        weights = LSTMWeights(a["Wh"])
        return models.lstm.rollout(weights, a["h0"], a["c0"], a["drive"], gradient=gradient)

    assert_rollouts_agree(arrays, call, ("h", "c"), used)


@pytest.mark.parametrize(
    "model",
    [
        LRRNN(N=16, K=3, O=1),
        VanillaRNN(N=12, O=2),
        LSTM(N=7, O=2),
        LSTM(N=7, O=2, init_scheme="eft"),
    ],
    ids=["lrrnn", "vanilla", "lstm", "lstm-eft"],
)
def test_module_gradients_equal_plain_scan_under_vmap(model):
    """Each baseline module, seeds vmapped as in training, against the same module with
    ``gradient="autodiff"`` (the plain scan)."""
    inputs = jax.random.normal(jax.random.key(22), (6, 30, 3))
    target = jax.random.normal(jax.random.key(23), (6, 30, model.O))
    variables = jax.vmap(lambda k: model.init(k, inputs))(jax.random.split(jax.random.key(24), 2))

    def grad(module):
        def loss(params, constants):
            y = module.apply({"params": params, "constants": constants}, inputs)["y"]
            return jnp.mean((y - target) ** 2)

        return jax.vmap(jax.grad(loss))(variables["params"], variables["constants"])

    fast = grad(model)
    plain = grad(model.clone(gradient="autodiff"))
    assert set(fast) == set(variables["params"])
    assert_trees_close(fast, plain)


def test_autodiff_gradient_allows_forward_mode():
    """``gradient="autodiff"`` is a plain scan: forward mode (``jax.jvp``) works, and its
    directional derivative is the custom reverse pass's gradient along the same direction."""
    arrays, static, norm = arguments(jax.random.key(60), feedback=True)
    target = jax.random.normal(jax.random.key(61), (T, B, O))

    def loss(gradient):
        return lambda a: jnp.mean((run(gradient, a, static, norm)[0] - target) ** 2)

    tangent = jax.tree.map(jnp.ones_like, arrays)
    _, forward = jax.jvp(loss("autodiff"), (arrays,), (tangent,))
    reverse = jax.grad(loss("custom"))(arrays)
    along = sum(jnp.sum(g) for g in jax.tree.leaves(reverse))
    np.testing.assert_allclose(forward, along, rtol=RTOL)


def test_gradient_is_an_attribute_of_the_model_not_a_setting():
    """Every model takes ``gradient``; it is checked, left out of the repr (which a run's
    fingerprint reads) and not a setting a config may give."""
    models = [
        NMRNN(N=4, M=2, K=2, O=1),
        LinearNMRNN(N=4, M=2, K=2, O=1),
        LRRNN(N=4, K=2, O=1),
        VanillaRNN(N=4, O=1),
        LSTM(N=4, O=1),
    ]
    for model in models:
        assert model.gradient == "custom"
        assert repr(model.clone(gradient="autodiff")) == repr(model)
        with pytest.raises(ValueError, match="unknown gradient"):
            model.clone(gradient="numeric")
    with pytest.raises(ConfigError, match="no setting 'gradient'"):
        build_model({"model": "vanilla", "N": 4, "O": 1, "gradient": "autodiff"})

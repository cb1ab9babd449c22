"""Bad arguments to the package API raise one clear ValueError naming the argument (issue #16)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nmrnn.architectures import build_model, match_size
from nmrnn.config import ConfigError
from nmrnn.models import LRRNN, LSTM, NMRNN, LinearNMRNN, VanillaRNN
from nmrnn.tasks.common import TaskData, masked_mse
from nmrnn.training import Optimizer, Stage, train

# ----------------------------------------------------------------------------- masked_mse

Y = jnp.arange(12.0).reshape(2, 3, 2)


def test_masked_mse_all_zero_mask_raises():
    with pytest.raises(ValueError, match="masked_mse: mask has no nonzero entry"):
        masked_mse(Y, jnp.zeros_like(Y), jnp.zeros_like(Y))


def test_masked_mse_all_zero_numpy_mask_raises():
    with pytest.raises(ValueError, match="mask has no nonzero entry"):
        masked_mse(Y, jnp.zeros_like(Y), np.zeros((2, 3, 2)))


def test_masked_mse_concrete_zero_mask_closed_over_in_jit_raises():
    zero = jnp.zeros_like(Y)
    with pytest.raises(ValueError, match="mask has no nonzero entry"):
        jax.jit(lambda y: masked_mse(y, y, zero))(Y)


def test_masked_mse_outputs_shape_mismatch_names_outputs():
    with pytest.raises(ValueError, match=r"masked_mse: outputs has shape \(2, 3, 1\)"):
        masked_mse(Y[..., :1], jnp.zeros_like(Y), jnp.ones_like(Y))


def test_masked_mse_targets_shape_mismatch_names_targets():
    with pytest.raises(ValueError, match=r"masked_mse: targets has shape \(3, 2, 2\)"):
        masked_mse(Y, jnp.zeros((3, 2, 2)), jnp.ones_like(Y))


def test_masked_mse_mask_shape_mismatch_names_mask():
    with pytest.raises(ValueError, match=r"masked_mse: mask has shape \(2, 3, 1\)"):
        masked_mse(Y, jnp.zeros_like(Y), jnp.ones((2, 3, 1)))


def test_masked_mse_valid_values_unchanged_eager_jit_and_vmap():
    t = jnp.ones_like(Y)
    m = jnp.zeros_like(Y).at[:, 1:].set(1.0)
    expected = jnp.sum(m * (Y - t) ** 2) / jnp.sum(m)
    assert masked_mse(Y, t, m) == expected
    assert jax.jit(masked_mse)(Y, t, m) == expected
    per_trial = jax.vmap(masked_mse)(Y, t, m)
    np.testing.assert_array_equal(
        per_trial, [jnp.sum(m[i] * (Y[i] - t[i]) ** 2) / jnp.sum(m[i]) for i in range(2)]
    )
    # A traced mask cannot be checked by value: the old 0/0 = NaN is kept there.
    assert jnp.isnan(jax.jit(masked_mse)(Y, t, jnp.zeros_like(Y)))


# ----------------------------------------------------------------------------- Stage, Optimizer


def test_stage_zero_learning_rate_raises():
    with pytest.raises(ValueError, match="learning_rate must be a positive finite number"):
        Stage("all", "all", 10, 0.0)


def test_stage_negative_learning_rate_raises():
    with pytest.raises(ValueError, match="learning_rate must be a positive finite number"):
        Stage("all", "all", 10, -1e-2)


def test_stage_zero_steps_raises():
    with pytest.raises(ValueError, match="steps must be at least 1, got 0"):
        Stage("all", "all", 0, 1e-2)


def test_stage_non_integer_steps_raises():
    with pytest.raises(ValueError, match="steps must be an integer"):
        Stage("all", "all", 10.5, 1e-2)


def test_stage_non_string_trainable_raises():
    with pytest.raises(ValueError, match="trainable must be 'all' or the name of a parameter"):
        Stage("all", ("L", "R"), 10, 1e-2)


def test_optimizer_unknown_kind_raises_at_construction():
    with pytest.raises(ValueError, match="unknown optimizer kind 'sgd'"):
        Optimizer(kind="sgd")


def test_optimizer_nonpositive_clip_raises():
    with pytest.raises(ValueError, match="Optimizer: clip must be positive, got 0"):
        Optimizer(clip=0.0)


def test_optimizer_nonpositive_eps_raises():
    with pytest.raises(ValueError, match="Optimizer: eps must be positive"):
        Optimizer(kind="adam", eps=-1e-8)


def test_optimizer_negative_weight_decay_raises():
    with pytest.raises(ValueError, match="Optimizer: weight_decay must be a number >= 0"):
        Optimizer(weight_decay=-1e-4)


def test_optimizer_zero_reset_every_raises():
    with pytest.raises(ValueError, match="Optimizer: reset_every must be None or an integer >= 1"):
        Optimizer(reset_every=0)


def test_valid_stage_and_optimizer_settings_accepted():
    Stage("all", "all", np.int64(5), 1e-3)
    Optimizer()
    Optimizer(kind="adam", eps=1e-7, weight_decay=0.0, reset_every=1000)


def _tiny_run(**kwargs):
    model = VanillaRNN(N=3, O=1)
    variables = jax.vmap(lambda k: model.init(k, jnp.zeros((1, 2, 1))))(
        jax.random.split(jax.random.key(0), 1)
    )
    batch = TaskData(jnp.ones((2, 4, 1)), jnp.zeros((2, 4, 1)), jnp.ones((2, 4, 1)), {})
    return train(
        model,
        variables,
        [Stage("all", "all", 2, 1e-2)],
        Optimizer(),
        lambda _data, _key: batch,
        None,
        jax.random.split(jax.random.key(1), 1),
        log=lambda _line: None,
        **kwargs,
    )


def test_train_zero_chunk_size_raises():
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1, got 0"):
        _tiny_run(chunk_size=0)


def test_train_float_chunk_size_raises():
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1, got 2.5"):
        _tiny_run(chunk_size=2.5)


def test_train_valid_chunk_size_runs():
    result = _tiny_run(chunk_size=1)
    assert result.losses.shape == (1, 2)
    assert np.all(np.isfinite(result.losses))


# ----------------------------------------------------------------------------- models

NM = {"N": 6, "M": 2, "K": 2, "O": 1}


@pytest.mark.parametrize("field", ["N", "M", "K", "O"])
def test_nmrnn_nonpositive_size_raises(field):
    with pytest.raises(ValueError, match=f"NMRNN: {field} must be a positive integer, got 0"):
        NMRNN(**{**NM, field: 0})


@pytest.mark.parametrize("field", ["N", "M", "K", "O"])
def test_linear_nmrnn_nonpositive_size_raises(field):
    with pytest.raises(ValueError, match=f"LinearNMRNN: {field} must be a positive integer"):
        LinearNMRNN(**{**NM, field: -1})


@pytest.mark.parametrize("field", ["tau_x", "tau_z"])
def test_nmrnn_nonpositive_time_constant_raises(field):
    with pytest.raises(ValueError, match=f"NMRNN: {field} must be a positive number of steps"):
        NMRNN(**NM, **{field: 0.0})


def test_nmrnn_float_size_raises():
    with pytest.raises(ValueError, match="NMRNN: N must be a positive integer, got 6.0"):
        NMRNN(**{**NM, "N": 6.0})


def test_nmrnn_rank_above_n_raises():
    with pytest.raises(ValueError, match=r"K=10 exceeds N=3: a rank-K recurrence needs K <= N"):
        NMRNN(N=3, M=2, K=10, O=1)


def test_linear_nmrnn_rank_above_n_raises():
    with pytest.raises(ValueError, match=r"LinearNMRNN: K=4 exceeds N=3"):
        LinearNMRNN(N=3, M=2, K=4, O=1)


@pytest.mark.parametrize("field", ["N", "K", "O"])
def test_lrrnn_nonpositive_size_raises(field):
    with pytest.raises(ValueError, match=f"LRRNN: {field} must be a positive integer, got 0"):
        LRRNN(**{"N": 6, "K": 2, "O": 1, field: 0})


def test_lrrnn_nonpositive_tau_raises():
    with pytest.raises(ValueError, match="LRRNN: tau_x must be a positive number of steps"):
        LRRNN(N=6, K=2, O=1, tau_x=-10.0)


def test_lrrnn_rank_above_n_raises():
    with pytest.raises(ValueError, match=r"LRRNN: K=5 exceeds N=4"):
        LRRNN(N=4, K=5, O=1)


@pytest.mark.parametrize("cls", [VanillaRNN, LSTM])
@pytest.mark.parametrize("field", ["N", "O"])
def test_full_rank_nonpositive_size_raises(cls, field):
    with pytest.raises(ValueError, match=f"{cls.__name__}: {field} must be a positive integer"):
        cls(**{"N": 6, "O": 1, field: 0})


def test_vanilla_nonpositive_tau_raises():
    with pytest.raises(ValueError, match="VanillaRNN: tau_x must be a positive number of steps"):
        VanillaRNN(N=6, O=1, tau_x=0)


def test_valid_models_build_and_run_batch_major():
    x = jnp.ones((2, 5, 3))  # (batch, time, U)
    for model in (
        NMRNN(N=4, M=2, K=4, O=1),  # K == N is allowed
        LinearNMRNN(N=4, M=2, K=1, O=1, tau_x=1.0),
        LRRNN(N=np.int64(4), K=2, O=1),
        VanillaRNN(N=4, O=2),
        LSTM(N=4, O=2),
    ):
        out = model.apply(model.init(jax.random.key(0), x), x)
        assert out["y"].shape[:2] == (2, 5)


def test_build_model_reports_bad_value_as_config_error():
    with pytest.raises(ConfigError, match=r"NMRNN: K=10 exceeds N=3"):
        build_model({"model": "nmrnn", "N": 3, "M": 2, "K": 10, "O": 1})
    with pytest.raises(ConfigError, match="LSTM: N must be a positive integer, got 0"):
        build_model({"model": "lstm", "N": 0, "O": 1})


def test_match_size_starts_the_search_at_n_equals_k():
    reference = {"model": "nmrnn", "N": 10, "M": 2, "K": 3, "O": 1}
    matched = match_size({"model": "lrrnn", "K": 3, "O": 1}, reference, n_inputs=2)
    assert matched["N"] >= 3
    with pytest.raises(ConfigError, match="LRRNN: K must be a positive integer, got 0"):
        match_size({"model": "lrrnn", "K": 0, "O": 1}, reference, n_inputs=2)

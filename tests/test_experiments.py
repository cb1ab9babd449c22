"""nmrnn.experiments: per-architecture data protocols of the multitask experiments (the authors
gave their NM-RNN and their baselines different trials and noise): the default draws exactly as
before."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nmrnn import experiments as ex
from nmrnn.config import ConfigError, merge, validate
from nmrnn.tasks import multitask

BASE = {
    "task": "multitask",
    "seeds": 1,
    "pool_per_task": 8,
    "test_per_task": 2,
    "batch": 5,
    "input_noise_std": 0.1,
    "archs": {
        "a": {"model": "vanilla", "settings": {"N": 4}, "stages": [
            {"trainable": "all", "steps": 1, "learning_rate": 0.01}]},
    },
}  # fmt: skip
TRANSFER = {**BASE, "task": "multitask_transfer", "pool": 10, "test_trials": 2}


def parsed(settings, name="x"):
    return ex.parse({name: settings}, name)


def seed_data(exp, seed=0):
    data = ex.make_task_data(exp.data, seed)
    data["fixed_key"] = jax.random.key_data(jax.random.key(99))
    return data


def with_data(exp, **settings):
    return merge(exp, {"archs": {"a": {"data": settings}}})


def test_default_multitask_batch_is_the_previous_draw():
    """Reference: the draw before per-architecture protocols (index with replacement, then
    fresh noise on the sensory channels), written out here."""
    exp = parsed(BASE)
    data, key = seed_data(exp), jax.random.key(5)
    batch = ex.batch_function(exp, "a")(data, key)
    k_idx, k_noise = jax.random.split(key)
    pool = data["train"]
    idx = jax.random.randint(k_idx, (5,), 0, pool.inputs.shape[0])
    ref = jax.tree.map(lambda a: a[idx], pool)
    noise = 0.1 * jax.random.normal(k_noise, ref.inputs.shape[:-1] + (multitask.N_SENSORY,))
    ref_inputs = ref.inputs.at[..., : multitask.N_SENSORY].add(noise)
    np.testing.assert_array_equal(batch.inputs, ref_inputs)
    np.testing.assert_array_equal(ex.batch_function(exp)(data, key).inputs, ref_inputs)


def test_default_transfer_batch_is_the_previous_draw():
    exp = parsed(TRANSFER)
    data, key = seed_data(exp), jax.random.key(6)
    batch = ex.batch_function(exp, "a")(data, key)
    k_idx, k_noise, k_ctx = jax.random.split(key, 3)
    pool = data["train"]
    idx = jax.random.randint(k_idx, (5,), 0, pool.inputs.shape[0])
    ref = jax.tree.map(lambda a: a[idx], pool)
    noise = 0.1 * jax.random.normal(k_noise, ref.inputs.shape[:-1] + (multitask.N_SENSORY,))
    inputs = ref.inputs.at[..., : multitask.N_SENSORY].add(noise)
    inputs = multitask.noisy_old_contexts(k_ctx, inputs, (3, 4, 5), 0.1)
    np.testing.assert_array_equal(batch.inputs, inputs)


def test_fixed_noise_on_every_row_of_a_smaller_pool_is_the_same_every_step():
    exp = parsed(with_data(BASE, pool_trials=6, noise="fixed", noise_channels="all", batch="full"))
    data = seed_data(exp)
    fn = ex.batch_function(exp, "a")
    first, second = fn(data, jax.random.key(1)), fn(data, jax.random.key(2))
    assert first.inputs.shape[0] == 6  # the whole (smaller) pool, every step
    np.testing.assert_array_equal(first.inputs, second.inputs)
    added = np.asarray(first.inputs - data["train"].inputs[:6])
    assert np.all(np.abs(added).reshape(-1, added.shape[-1]).std(axis=0) > 0.05)  # all rows


def test_no_noise_leaves_the_trials_as_they_are():
    exp = parsed(with_data(BASE, noise="none", batch="full"))
    data = seed_data(exp)
    batch = ex.batch_function(exp, "a")(data, jax.random.key(3))
    np.testing.assert_array_equal(batch.inputs, data["train"].inputs)


def test_fixed_old_context_noise_in_transfer():
    exp = parsed(with_data(TRANSFER, context_noise="fixed", batch="full"))
    data = seed_data(exp)
    fn = ex.batch_function(exp, "a")
    a, b = fn(data, jax.random.key(1)), fn(data, jax.random.key(2))
    np.testing.assert_array_equal(a.inputs[..., 3:6], b.inputs[..., 3:6])  # contexts: one draw
    assert not np.array_equal(a.inputs[..., :3], b.inputs[..., :3])  # sensory: fresh noise
    assert float(jnp.abs(a.inputs[..., 3:6]).mean()) > 0.01


def test_data_settings_are_checked_at_start_up():
    paper = {"experiments": {"multitask": {**BASE, "match_reference": "a"}}}
    ok = merge(paper, {"experiments": {"multitask": {"archs": {"a": {"data": {
        "pool_trials": 24, "noise": "fixed"}}}}}})  # fmt: skip
    validate(ok)
    too_many = merge(ok, {"experiments": {"multitask": {"archs": {"a": {"data": {
        "pool_trials": 25}}}}}})  # fmt: skip
    with pytest.raises(ConfigError, match="pool_trials: 25 exceeds the pool of 24"):
        validate(too_many)
    mwg = {"experiments": {"m": {**BASE, "task": "mwg", "archs": {"a": {
        **BASE["archs"]["a"], "data": {"noise": "none"}}}}}}  # fmt: skip
    with pytest.raises(ConfigError, match="only the multitask tasks"):
        validate(mwg)


def test_an_architecture_with_fixed_noise_trains():
    config = validate({"experiments": {"x": with_data(BASE, noise="fixed", pool_trials=10)}})
    _, result = ex.train_seeds(ex.parse(config["experiments"], "x"), "a", [0, 1], chunk_size=1)
    assert result.losses.shape == (2, 1) and np.all(np.isfinite(result.losses))

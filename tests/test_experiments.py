"""nmrnn.experiments: an experiment is read once (:func:`nmrnn.experiments.parse`) into a frozen
object that the steps pass along (its sizes resolved once, its mistakes named when read, the
settings it was read from recorded and fingerprinted as configured); per-architecture data
protocols of the multitask experiments (the authors gave their NM-RNN and their baselines
different trials and noise): the default draws exactly as before."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nmrnn import experiments as ex
from nmrnn.architectures import build_model, parameter_count
from nmrnn.config import ConfigError, merge, validate
from nmrnn.io import UnreadableFile, read_npz_meta, save_tree, taskdata_tree
from nmrnn.steps import train_block
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


# ----------------------------------------------------------------------------- read once

MATCHED = {
    **BASE,
    "match_reference": "a",
    "archs": {
        **BASE["archs"],
        "b": {"model": "lstm", "settings": {"N": "match"}, "stages": BASE["archs"]["a"]["stages"]},
    },
}
TRANSFERRED = {
    "m": MATCHED,
    "t": {**TRANSFER, "pretrained": "m", "archs": {"a": {"stages": BASE["archs"]["a"]["stages"]}}},
}


def test_an_experiment_is_read_once_into_a_frozen_object(monkeypatch):
    settings = json.loads(json.dumps(MATCHED))
    resolved = []
    match_size = ex.match_size
    monkeypatch.setattr(ex, "match_size", lambda *a: resolved.append(a) or match_size(*a))
    exp = ex.parse({"x": settings}, "x")
    assert len(resolved) == 1  # N: match, resolved once for "b"
    b = exp.archs["b"]
    assert b.kind == "lstm" and isinstance(b.settings["N"], int) and b.settings["O"] == 3
    assert b.n_parameters == parameter_count(b.model, exp.U) >= exp.archs["a"].n_parameters
    assert parameter_count(build_model({**b.settings, "N": b.settings["N"] - 1}), exp.U) < (
        exp.archs["a"].n_parameters
    )  # the smallest size that reaches the reference
    assert (exp.U, exp.O) == (6, 3) and exp.task.name == "multitask" and exp.selects_on is None
    assert [s.trainable for s in b.stages] == ["all"] and b.data is None
    assert b.n_trainable_last_stage == b.n_parameters  # trains everything
    # what the steps ask of it reads the object, never the settings again
    ex.memory_estimate(exp, "b", 2)
    assert ex.check_variables(exp, "b", {"params": {}, "constants": {}}).startswith("no params/")
    assert len(resolved) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        exp.name = "y"
    with pytest.raises(TypeError):
        exp.settings["batch"] = 7
    with pytest.raises(TypeError):
        b.settings["N"] = 3
    with pytest.raises(TypeError):
        exp.archs["c"] = b
    settings["batch"] = 7  # the settings it was read from change: the object does not
    assert exp.settings["batch"] == 5 and exp.plain_settings() == MATCHED


def test_a_transfer_reads_its_source_once():
    cache = {}
    transfer = ex.parse(TRANSFERRED, "t", cache)
    assert transfer.pretrained == "m" and cache["m"] is transfer.source
    assert ex.parse(TRANSFERRED, "m", cache) is transfer.source
    source = transfer.source.archs["a"]
    assert transfer.archs["a"].model is source.model  # the source's model, one more input
    assert (transfer.U, transfer.source.U) == (7, 6)
    assert transfer.archs["a"].n_parameters == source.n_parameters + 4  # N = 4 more weights
    with pytest.raises(ConfigError, match="needs pretrained variables per seed"):
        ex.initial_variables(transfer, "a", [0])
    with pytest.raises(ConfigError, match="experiments.u.pretrained: 't' is itself a transfer"):
        ex.parse({**TRANSFERRED, "u": {**TRANSFERRED["t"], "pretrained": "t"}}, "u")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"archs": {"a": {"stages": [{"trainable": "neuromod", "steps": 1,
                                      "learning_rate": 0.1}]}}},
         "experiments.x.archs.a.stages.0.trainable: 'neuromod' is not a parameter group"),
        ({"match_reference": None}, "experiments.x.archs.b: 'N: match' needs match_reference"),
        ({"archs": {"a": {"settings": {"N": "match"}}}},
         "experiments.x.match_reference: 'a' has 'N: match' itself"),
        ({"archs": {"b": {"settings": {"N": 0}}}}, "experiments.x.archs.b: "),
        ({"optimizer": {"kind": "sgd"}}, "experiments.x.optimizer: unknown optimizer kind"),
    ],
)  # fmt: skip
def test_what_cannot_be_used_is_named_when_read(change, message):
    settings = merge(MATCHED, change)
    with pytest.raises(ConfigError) as error:
        ex.parse({"x": {k: v for k, v in settings.items() if v is not None}}, "x")
    assert str(error.value).startswith(message)


def test_unknown_names_are_named():
    with pytest.raises(ConfigError, match="no experiment 'y'"):
        ex.parse({"x": BASE}, "y")
    with pytest.raises(ConfigError, match="experiment 'x' has no architecture 'z'"):
        ex.parse({"x": BASE}, "x").arch("z")


def test_the_fingerprint_holds_the_settings_as_configured():
    """What decides whether a checkpoint resumes: the raw settings but the architectures and
    seeds, and the architecture's own data protocol (so checkpoints keep their identity)."""
    settings = with_data(BASE, noise="none")
    shaping = ex.fingerprint_settings(parsed(settings), "a")
    expected = {k: v for k, v in settings.items() if k not in ("archs", "seeds")}
    assert shaping == {**expected, "arch_data": {"noise": "none"}}
    assert json.dumps(shaping, sort_keys=True) == json.dumps(
        {**expected, "arch_data": {"noise": "none"}}, sort_keys=True
    )
    assert ex.fingerprint_settings(parsed(BASE), "a") == {
        k: v for k, v in BASE.items() if k not in ("archs", "seeds")
    }


def test_a_training_block_records_the_settings_as_configured(tmp_path):
    """train_block reads the experiment once and writes what it read: the model settings and
    sizes, and the experiment's settings as configured (a plain dict); a transfer's pretrained
    files are checked against its source's model."""
    cache = {}
    files = {}
    for name in ("m", "t"):
        exp = ex.parse(TRANSFERRED, name, cache)
        for s in (0, 1):
            path = tmp_path / f"{name}_data{s}.npz"
            save_tree(
                path, {k: taskdata_tree(v) for k, v in ex.make_task_data(exp.data, s).items()}
            )
            files.setdefault(name, []).append(str(path))
    out = tmp_path / "block.npz"
    quiet = dict(chunk_size=1, log=lambda _: None)
    train_block(TRANSFERRED, "m", "b", [0, 1], files["m"], [], str(out), str(tmp_path / "c.npz"),
                **quiet)  # fmt: skip
    meta = read_npz_meta(out)
    b = cache["m"].archs["b"]
    assert meta["experiment_settings"] == TRANSFERRED["m"]
    assert meta["model"] == dict(b.settings) and meta["n_parameters"] == b.n_parameters
    assert meta["n_trainable_last_stage"] == b.n_trainable_last_stage
    assert {"experiment", "arch", "seeds", "wall_s", "train_s_all_attempts", "compile_s",
            "resumed_from_step", "seeds_in_job", "run"} <= set(meta)  # fmt: skip
    initial = ex.initial_variables(cache["m"], "a", [0, 1])
    pretrained = []
    for s in (0, 1):
        path = tmp_path / f"pre{s}.npz"
        save_tree(path, jax.tree.map(lambda v, s=s: np.asarray(v[s]), initial))
        pretrained.append(str(path))
    out = tmp_path / "transfer.npz"
    train_block(TRANSFERRED, "t", "a", [0, 1], files["t"], pretrained, str(out),
                str(tmp_path / "ct.npz"), **quiet)  # fmt: skip
    meta = read_npz_meta(out)
    assert meta["experiment_settings"] == TRANSFERRED["t"]
    assert meta["n_parameters"] == cache["t"].archs["a"].n_parameters
    wrong = ex.initial_variables(cache["m"], "b", [0])  # the LSTM's, not the vanilla RNN's
    save_tree(tmp_path / "wrong.npz", jax.tree.map(lambda v: np.asarray(v[0]), wrong))
    with pytest.raises(UnreadableFile, match="trained under other settings"):
        train_block(TRANSFERRED, "t", "a", [0], files["t"][:1], [str(tmp_path / "wrong.npz")],
                    str(tmp_path / "no.npz"), str(tmp_path / "cw.npz"), **quiet)  # fmt: skip

"""The training engine on tiny models: learning, seeds as a vmap axis, kill-and-resume, frozen
parameter groups, divergence handling and optimizer options.

Compilation dominates the cost of these tests, so they share programs: one batch function, S = 3
seeds (1 for the single-seed runs), chunks of 50 steps, and a persistent compilation cache for
the module, so that a chunk program seen before (same stage settings) is not compiled again.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache as compilation_cache_module

from nmrnn.models import NMRNN
from nmrnn.tasks import mwg, take
from nmrnn.tasks.common import masked_mse
from nmrnn.training import (
    Optimizer,
    Selection,
    Stage,
    TrainingDiverged,
    _progress_line,
    count_trainable,
    init_seeds,
    train,
    unstack,
)

# A tiny NM-RNN on a subset of the MWG training set (8 of the 40 trials, full length).
MODEL = NMRNN(N=16, M=3, K=2, O=1, normalisation="inv_n")
TRIALS = take(mwg.training_set(), np.arange(0, 40, 5))
S = 3
CHUNK = 50
POISON_ROWS = 30
PROGRESS = re.compile(r"stage \S+ step (\d+)/(\d+)")

ALL = [Stage("all", "all", 100, 1e-2)]


def batch_fn(data, key):
    """The fixed trials with fresh input noise keyed by (seed, step); NaN inputs when the key is
    one of the seed's ``poison`` keys (rows of key data; all-zero rows match nothing)."""
    trials = data["trials"]
    noise = 0.1 * jax.random.normal(key, trials.inputs.shape)
    hit = jnp.any(jnp.all(jax.random.key_data(key) == data["poison"], axis=-1))
    return trials._replace(inputs=jnp.where(hit, jnp.nan, 1.0) * (trials.inputs + noise))


@functools.cache
def _initial_all():
    init_keys = jax.random.split(jax.random.key(0), S)
    data_keys = jax.random.split(jax.random.key(1), S)
    variables = init_seeds(MODEL, init_keys, jnp.zeros((1, 1, 3)))
    data = {
        "trials": jax.tree.map(lambda a: jnp.broadcast_to(a, (S, *a.shape)), TRIALS),
        "poison": jnp.zeros((S, POISON_ROWS, 2), jnp.uint32),
    }
    return variables, data, data_keys


def initial():
    """(variables, data, data_keys) of the S seeds, each with its own init and data key (drawn
    once: every new shape of a random draw costs a compilation)."""
    return _initial_all()


def run(stages, *, variables=None, data=None, keys=None, optimizer=None, **kwargs):
    """train() with this module's defaults (all S seeds, chunks of 50, no log)."""
    v0, d0, k0 = initial()
    kwargs = {"chunk_size": CHUNK, "log": quiet, **kwargs}
    return train(
        MODEL,
        v0 if variables is None else variables,
        stages,
        optimizer or Optimizer(),
        batch_fn,
        d0 if data is None else data,
        k0 if keys is None else keys,
        **kwargs,
    )


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    """A persistent compilation cache for this module only (restored afterwards)."""
    names = (
        "jax_compilation_cache_dir",
        "jax_persistent_cache_min_compile_time_secs",
        "jax_persistent_cache_min_entry_size_bytes",
    )
    old = {name: getattr(jax.config, name) for name in names}
    compilation_cache_module.reset_cache()
    jax.config.update(names[0], str(tmp_path_factory.mktemp("jax_cache")))
    jax.config.update(names[1], 0.0)
    jax.config.update(names[2], 0)
    yield
    for name, value in old.items():
        jax.config.update(name, value)
    compilation_cache_module.reset_cache()


def seed_slice(tree, i):
    """Seed i of a stacked tree, keeping a leading axis of length 1."""
    return jax.tree.map(lambda a: a[i : i + 1], tree)


def quiet(_line):
    pass


class Killed(Exception):
    pass


def killing_log(after: int, lines: list):
    """A log callback that records lines and raises on the ``after``-th progress line.

    The engine logs a chunk's progress line before writing its checkpoint, so the checkpoint on
    disk then holds the chunk before.
    """

    def log(line):
        lines.append(line)
        if sum(bool(PROGRESS.search(x)) for x in lines) >= after:
            raise Killed(line)

    return log


def assert_trees_equal(a, b):
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def vmapped_run():
    return run(ALL)


# ----------------------------------------------------------------------------- learning


def test_loss_falls_on_mwg(vmapped_run):
    result = vmapped_run
    variables, _, _ = initial()
    assert result.losses.shape == (S, 100)
    assert np.all(np.isfinite(result.losses))
    initial_loss = result.losses[:, :5].mean(axis=1)
    final_loss = result.losses[:, -5:].mean(axis=1)
    assert np.all(final_loss < 0.5 * initial_loss), (initial_loss, final_loss)
    # The caller's initial variables survive training (the engine donates only its own copies).
    assert not np.allclose(np.asarray(variables["params"]["C"]), result.variables["params"]["C"])
    assert result.resumed_from == 0


def test_vmapped_seeds_equal_seeds_trained_alone(vmapped_run):
    variables, data, keys = initial()
    for i in range(S):
        alone = run(
            ALL,
            variables=seed_slice(variables, i),
            data=seed_slice(data, i),
            keys=keys[i : i + 1],
        )
        np.testing.assert_allclose(alone.losses[0], vmapped_run.losses[i], rtol=1e-4, atol=1e-6)
        for a, b in zip(
            jax.tree.leaves(unstack(alone.variables, 0)),
            jax.tree.leaves(unstack(vmapped_run.variables, i)),
            strict=True,
        ):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # The seeds really are different runs.
    assert not np.allclose(vmapped_run.losses[0], vmapped_run.losses[1])


# ----------------------------------------------------------------------------- kill and resume

STAGED = [Stage("lowrank", "lowrank", 100, 1e-2), Stage("neuromod", "neuromod", 100, 2e-2)]


@pytest.fixture(scope="module")
def uninterrupted_staged():
    return run(STAGED)


@pytest.mark.parametrize(
    "kill_on_line, resume_step",
    [(3, 100), (4, 150)],
    ids=["killed_at_stage_boundary", "killed_inside_second_stage"],
)
def test_kill_and_resume_is_bit_identical(
    tmp_path, uninterrupted_staged, kill_on_line, resume_step
):
    ckpt = tmp_path / "run.npz"
    lines = []
    with pytest.raises(Killed):
        run(STAGED, checkpoint=ckpt, log=killing_log(kill_on_line, lines))
    with np.load(ckpt) as f:
        meta = json.loads(str(f["meta"]))
        assert f["losses"].shape == (S, resume_step)
    assert meta["step"] == resume_step and meta["total"] == 200

    lines = []
    resumed = run(STAGED, checkpoint=ckpt, log=lines.append)
    assert "resumed from checkpoint" in lines[0] and f"at step {resume_step}/200" in lines[0]
    progress = [int(PROGRESS.search(x).group(1)) for x in lines[1:]]
    assert progress == list(range(resume_step + CHUNK, 201, CHUNK))
    assert resumed.resumed_from == resume_step
    # the time spent before the kill counts: this call's wall time plus the checkpoint's
    assert meta["elapsed_s"] > 0
    assert resumed.total_s == pytest.approx(meta["elapsed_s"] + resumed.wall_s)
    assert uninterrupted_staged.total_s == uninterrupted_staged.wall_s
    np.testing.assert_array_equal(resumed.losses, uninterrupted_staged.losses)
    assert_trees_equal(resumed.variables, uninterrupted_staged.variables)

    # The finished checkpoint belongs to this protocol: another one sets it aside and starts
    # over (same result as without a checkpoint), and the old file is kept, not deleted.
    before = ckpt.read_bytes()
    lines = []
    other = run(STAGED[:1], checkpoint=ckpt, log=lines.append)
    assert "belongs to another run" in lines[0] and "starting from step 0" in lines[0]
    assert other.resumed_from == 0
    assert (tmp_path / "run.stale.npz").read_bytes() == before
    np.testing.assert_array_equal(other.losses, run(STAGED[:1]).losses)


def test_checkpoint_of_another_run_with_the_same_length_is_not_resumed(tmp_path):
    """Same step count, different learning rate (or seeds): never resumed as if it were ours."""
    ckpt = tmp_path / "run.npz"
    with pytest.raises(Killed):
        run(STAGED, checkpoint=ckpt, log=killing_log(2, []))
    faster = [dataclasses.replace(s, learning_rate=2 * s.learning_rate) for s in STAGED]
    lines = []
    result = run(faster, checkpoint=ckpt, log=lines.append)
    assert "belongs to another run" in lines[0]
    assert result.resumed_from == 0
    np.testing.assert_array_equal(result.losses, run(faster).losses)


@pytest.mark.parametrize("change", ["extra", "data"])
def test_checkpoint_of_other_batch_settings_or_data_is_not_resumed(tmp_path, change):
    """The fingerprint covers the fixed data and the settings that shape the batches (batch size,
    noise, ...: ``fingerprint_extra``), not only the model, protocol and keys."""
    ckpt = tmp_path / "run.npz"
    with pytest.raises(Killed):
        run(ALL, checkpoint=ckpt, log=killing_log(2, []), fingerprint_extra={"batch": 8})
    _, data, _ = initial()
    if change == "extra":
        kwargs = {"fingerprint_extra": {"batch": 32}}
    else:
        trials = data["trials"]._replace(targets=data["trials"].targets * 0.5)
        kwargs = {"data": {**data, "trials": trials}, "fingerprint_extra": {"batch": 8}}
    lines = []
    result = run(ALL, checkpoint=ckpt, log=lines.append, **kwargs)
    assert "belongs to another run" in lines[0] and "starting from step 0" in lines[0]
    assert result.resumed_from == 0
    assert (tmp_path / "run.stale.npz").exists()


def test_set_aside_checkpoints_are_kept_and_reused_when_the_config_comes_back(tmp_path):
    """A config changed and changed back: the first run's finished checkpoint, set aside by the
    second run, is put back in use (no retraining); set-aside files never overwrite each
    other."""
    ckpt = tmp_path / "run.npz"
    first = run(ALL, checkpoint=ckpt, fingerprint_extra={"batch": 8})
    run(ALL, checkpoint=ckpt, fingerprint_extra={"batch": 32})  # sets the first one aside
    lines = []
    again = run(ALL, checkpoint=ckpt, log=lines.append, fingerprint_extra={"batch": 8})
    assert any("back in use" in line for line in lines)
    assert again.resumed_from == 100 and not any(PROGRESS.search(line) for line in lines)
    np.testing.assert_array_equal(again.losses, first.losses)
    # the batch-32 run's checkpoint was set aside in turn, next to nothing it overwrote
    run(ALL, checkpoint=ckpt, fingerprint_extra={"batch": 64})
    aside = sorted(p.name for p in tmp_path.glob("run.stale*.npz"))
    assert aside == ["run.stale.1.npz", "run.stale.npz"]


@pytest.mark.parametrize("damage", ["random bytes", "truncated", "empty"])
def test_damaged_checkpoint_is_set_aside_and_training_restarts(tmp_path, vmapped_run, damage):
    ckpt = tmp_path / "run.npz"
    if damage == "random bytes":
        ckpt.write_bytes(np.random.default_rng(0).bytes(5000))
    else:
        with pytest.raises(Killed):
            run(ALL, checkpoint=ckpt, log=killing_log(2, []))
        data = ckpt.read_bytes()
        ckpt.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    broken = ckpt.read_bytes()
    lines = []
    result = run(ALL, checkpoint=ckpt, log=lines.append)
    assert "WARNING" in lines[0] and "cannot be read" in lines[0] and str(ckpt) in lines[0]
    assert "run.corrupt.npz" in lines[0] and "starting from step 0" in lines[0]
    assert result.resumed_from == 0
    assert (tmp_path / "run.corrupt.npz").read_bytes() == broken  # kept for inspection
    np.testing.assert_array_equal(result.losses, vmapped_run.losses)


def test_finished_checkpoint_returns_the_result_without_training(
    tmp_path, vmapped_run, monkeypatch
):
    """The last checkpoint stays: the same run with the same code is restored from it (a block
    Snakemake deleted before rerunning costs nothing); other package code trains again."""
    ckpt = tmp_path / "run.npz"
    run(ALL, checkpoint=ckpt)
    lines = []
    again = run(ALL, checkpoint=ckpt, log=lines.append)
    assert again.resumed_from == 100
    assert not any(PROGRESS.search(line) for line in lines)  # no step trained
    np.testing.assert_array_equal(again.losses, vmapped_run.losses)
    assert_trees_equal(again.variables, vmapped_run.variables)

    monkeypatch.setattr("nmrnn.checkpoints.code_digest", lambda: "other code")
    lines = []
    retrained = run(ALL, checkpoint=ckpt, log=lines.append)
    assert "finished by other package code" in lines[0] and retrained.resumed_from == 0
    np.testing.assert_array_equal(retrained.losses, vmapped_run.losses)


# ----------------------------------------------------------------------------- selection

EVERY = 30  # does not divide the chunk (50) nor the run (200): checks cross chunks and stages


def validation_batch():
    """Each seed's held-out trials: the fixed trials with noise of their own key."""
    _, data, _ = initial()
    keys = jax.random.split(jax.random.key(7), S)
    return jax.vmap(lambda trials, key: batch_fn({"trials": trials, "poison": jnp.zeros((1, 2),
        jnp.uint32)}, key))(data["trials"], keys)  # fmt: skip


def validation_loss(variables, batch):
    def one(v, b):
        return masked_mse(MODEL.apply(v, b.inputs)["y"], b.targets, b.mask)

    return np.asarray(jax.vmap(one)(variables, batch))


@pytest.fixture(scope="module")
def selected_run():
    return run(STAGED, selection=Selection(EVERY, validation_batch()))


def test_selection_keeps_the_parameters_with_the_lowest_validation_loss(
    selected_run, uninterrupted_staged
):
    result = selected_run
    # Selection only watches: the trajectory is the one without it.
    np.testing.assert_array_equal(result.losses, uninterrupted_staged.losses)
    assert_trees_equal(result.variables, uninterrupted_staged.variables)
    checked_steps = [t for t in range(200) if (t + 1) % EVERY == 0 or t == 199]
    assert result.validation_losses.shape == (S, 200)
    for i in range(S):
        assert list(np.flatnonzero(np.isfinite(result.validation_losses[i]))) == checked_steps
    values = result.validation_losses[:, checked_steps]
    best = np.asarray(checked_steps)[np.argmin(values, axis=1)] + 1
    np.testing.assert_array_equal(result.best_step, best)
    # The kept variables score what was recorded, and they are not the final ones where the
    # minimum came earlier (checked on this run: training loss is noisy, the final step is last).
    batch = validation_batch()
    np.testing.assert_allclose(
        validation_loss(result.best_variables, batch), values.min(axis=1), rtol=1e-5
    )
    np.testing.assert_allclose(
        validation_loss(result.variables, batch), result.validation_losses[:, 199], rtol=1e-5
    )


def test_selection_resumes_bit_identical(tmp_path, selected_run):
    ckpt = tmp_path / "run.npz"
    selection = Selection(EVERY, validation_batch())
    with pytest.raises(Killed):
        run(STAGED, checkpoint=ckpt, log=killing_log(3, []), selection=selection)
    resumed = run(STAGED, checkpoint=ckpt, selection=selection)
    assert resumed.resumed_from == 100
    np.testing.assert_array_equal(resumed.validation_losses, selected_run.validation_losses)
    np.testing.assert_array_equal(resumed.best_step, selected_run.best_step)
    assert_trees_equal(resumed.best_variables, selected_run.best_variables)
    # Another interval is another run: its checkpoint is not resumed.
    lines = []
    other = run(STAGED, checkpoint=ckpt, selection=Selection(2 * EVERY, selection.batch),
                log=lines.append)  # fmt: skip
    assert "belongs to another run" in lines[0] and other.resumed_from == 0


@pytest.fixture(scope="module")
def train_selected_run():
    return run(STAGED, selection=Selection(20, on="train"))


def test_train_selection_keeps_the_lowest_training_loss_per_stage(
    train_selected_run, uninterrupted_staged
):
    """The authors' rule: the training loss of every 20th step of a stage (and its last) picks
    the parameters after that step; the second stage starts from the first stage's pick."""
    result = train_selected_run
    losses = result.losses
    # stage 1 is the plain trajectory; stage 2 starts from stage 1's selection instead
    np.testing.assert_array_equal(losses[:, :100], uninterrupted_staged.losses[:, :100])
    checks = np.arange(19, 200, 20)  # stage steps 19, 39, ..., 99 of both stages
    second = checks[checks >= 100]
    for i in range(S):
        expected = second[np.argmin(losses[i, second])] + 1
        assert result.best_step[i] == expected
        first = checks[checks < 100]
        chosen_first = first[np.argmin(uninterrupted_staged.losses[i, first])]
        if chosen_first != 99:  # stage 2 starts elsewhere than the plain run's step 100
            assert not np.array_equal(losses[i, 100:], uninterrupted_staged.losses[i, 100:])
    # the selected parameters are the final ones where the last check was the best
    assert result.validation_losses is None or result.validation_losses.shape == losses.shape


def test_train_selection_resumes_bit_identical(tmp_path, train_selected_run):
    ckpt = tmp_path / "run.npz"
    with pytest.raises(Killed):
        run(STAGED, checkpoint=ckpt, selection=Selection(20, on="train"), log=killing_log(3, []))
    resumed = run(STAGED, checkpoint=ckpt, selection=Selection(20, on="train"))
    assert resumed.resumed_from == 100  # killed at the stage boundary, after the hand-off
    np.testing.assert_array_equal(resumed.losses, train_selected_run.losses)
    assert_trees_equal(resumed.best_variables, train_selected_run.best_variables)
    np.testing.assert_array_equal(resumed.best_step, train_selected_run.best_step)


@pytest.mark.parametrize("chunk_size", [7, 200])
def test_chunk_size_changes_nothing_trained(train_selected_run, chunk_size):
    """How often a run prints and checkpoints (chunk_size) leaves the trajectory, the selection
    and the final parameters bit for bit the same (the selection goes by the stage step, not by
    the chunk), so finished results need not be retrained when it changes (the pipeline still
    reruns them unless told `--rerun-triggers mtime input`: it is a setting of the job)."""
    other = run(STAGED, selection=Selection(20, on="train"), chunk_size=chunk_size)
    np.testing.assert_array_equal(other.losses, train_selected_run.losses)
    assert_trees_equal(other.variables, train_selected_run.variables)
    assert_trees_equal(other.best_variables, train_selected_run.best_variables)
    np.testing.assert_array_equal(other.best_step, train_selected_run.best_step)


def test_chunk_size_changes_nothing_with_adam_reset():
    """The Adam reset too goes by the stage step, not by the chunk."""
    reset = [run(ALL, optimizer=Optimizer(reset_every=30), chunk_size=c) for c in (CHUNK, 13)]
    np.testing.assert_array_equal(reset[0].losses, reset[1].losses)
    assert_trees_equal(reset[0].variables, reset[1].variables)


def test_selection_interval_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        Selection(0, validation_batch())


# ----------------------------------------------------------------------------- frozen groups

LOWRANK = ("L", "R", "B_x", "C", "d")
NEUROMOD = ("W_z", "B_z", "A_z", "b_z")


@pytest.mark.parametrize(
    "stage, moving, frozen",
    [
        (Stage("neuromod", "neuromod", 50, 2e-2), NEUROMOD, LOWRANK),
        (Stage("lowrank", "lowrank", 50, 1e-2), LOWRANK, NEUROMOD),
    ],
    ids=["neuromod", "lowrank"],
)
def test_frozen_parameters_do_not_move(stage, moving, frozen):
    # The stages of STAGED, 50 steps each (same programs). AdamW's weight decay (1e-4) would
    # move a frozen parameter by ~1e-6 of itself per step if it reached it: exact equality sees it.
    variables, _, _ = initial()
    result = run([stage])
    before, after = variables["params"], result.variables["params"]
    assert set(before) == set(LOWRANK) | set(NEUROMOD)
    for name in frozen:
        np.testing.assert_array_equal(np.asarray(after[name]), np.asarray(before[name]), name)
    for name in moving:
        assert np.all(np.any(np.asarray(after[name]) != np.asarray(before[name]), axis=-1)), name
    assert_trees_equal(result.variables["constants"], variables["constants"])


def test_count_trainable_neuromod_on_multitask_sizes():
    model = NMRNN(N=100, M=5, K=4, O=3, x_inputs=3)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 2, 7)))["params"]
    params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    # W_z 5x5 + B_z 5x7 + A_z 4x5 + b_z 4 (SPEC §3: 84 numbers).
    assert count_trainable(model, params, "neuromod") == 84
    assert count_trainable(model, params, "lowrank") == 400 + 400 + 300 + 300 + 3
    assert count_trainable(model, params, "inputs") == 300 + 35
    assert count_trainable(model, params, "all") == sum(a.size for a in jax.tree.leaves(params))


def test_unknown_trainable_group_raises_naming_it():
    with pytest.raises(ValueError, match="'gates'"):
        run([Stage("x", "gates", 2, 1e-2)])


def test_unknown_optimizer_kind_raises():
    with pytest.raises(ValueError, match="'sgd'"):
        run(ALL, optimizer=Optimizer(kind="sgd"))


# ----------------------------------------------------------------------------- divergence


def test_nan_raises_training_diverged_and_keeps_last_good_checkpoint(tmp_path):
    variables, data, keys = initial()
    bad_seed, bad_step = 1, 70
    # Poison the batches of (seed 1, step >= 70): their keys go in seed 1's poison table.
    rows = [jax.random.key_data(jax.random.fold_in(keys[bad_seed], t)) for t in range(70, 100)]
    data = {**data, "poison": data["poison"].at[bad_seed].set(jnp.stack(rows))}
    ckpt = tmp_path / "run.npz"
    with pytest.raises(TrainingDiverged) as err:
        run(ALL, data=data, checkpoint=ckpt)
    message = str(err.value)
    assert f"seed index {bad_seed}" in message and f"at step {bad_step}" in message
    with np.load(ckpt) as f:
        meta = json.loads(str(f["meta"]))
        arrays = {k: f[k] for k in f.files if k != "meta"}
    assert meta["step"] == CHUNK
    assert arrays["losses"].shape == (S, CHUNK)
    for name, a in arrays.items():
        assert np.all(np.isfinite(a)), name


def test_divergence_before_any_checkpoint_says_none_was_written(tmp_path):
    variables, data, keys = initial()
    rows = [jax.random.key_data(jax.random.fold_in(keys[0], t)) for t in range(10, 40)]
    data = {**data, "poison": data["poison"].at[0].set(jnp.stack(rows))}
    ckpt = tmp_path / "run.npz"
    with pytest.raises(TrainingDiverged) as err:
        run(ALL, data=data, checkpoint=ckpt)
    message = str(err.value)
    assert "at step 10" in message and "no checkpoint was written yet" in message
    assert "kept in" not in message and not ckpt.exists()
    assert "learning rate 0.01" in message


# ----------------------------------------------------------------------------- optimizer options


def test_reset_every_runs_and_differs_from_no_reset(vmapped_run):
    reset = run(ALL, optimizer=Optimizer(reset_every=30))
    # Identical until the first reset (the loss of step 30 is computed before its update)...
    np.testing.assert_allclose(reset.losses[:, :31], vmapped_run.losses[:, :31], rtol=1e-6)
    # ...and different afterwards.
    assert not np.allclose(reset.losses[:, 31:], vmapped_run.losses[:, 31:])
    assert not np.allclose(reset.variables["params"]["L"], vmapped_run.variables["params"]["L"])
    assert np.all(np.isfinite(reset.losses))


def test_adam_optimizer():
    variables, data, keys = initial()
    result = run(
        ALL,
        variables=seed_slice(variables, 0),
        data=seed_slice(data, 0),
        keys=keys[:1],
        optimizer=Optimizer(kind="adam", eps=1e-7),
    )
    assert np.all(np.isfinite(result.losses))
    assert result.losses[0, -5:].mean() < 0.5 * result.losses[0, :5].mean()


def test_progress_line_estimates_the_time_left_in_the_stage():
    stage = Stage("all", "all", steps=10_000, learning_rate=1e-2)
    losses = np.full((1, 2), 0.5)  # (steps of the chunk, seeds)
    running = _progress_line("mwg/nmrnn ", stage, 4_000, 10_000, losses, rate=100.0)
    assert running.endswith("| 100.0 steps/s, ~1 min left"), running
    assert "~1 h 40 min left" in _progress_line("", stage, 0, 600_000, losses, rate=100.0)
    assert "~<1 min left" in _progress_line("", stage, 9_990, 10_000, losses, rate=100.0)
    assert _progress_line("", stage, 10_000, 10_000, losses, rate=100.0).endswith("steps/s")


# --------------------------------------------- issue 28, case 3: the cause of a non-finite loss


def test_nan_in_the_data_is_named_before_training():
    variables, data, keys = initial()
    trials = data["trials"]
    data = {**data, "trials": trials._replace(targets=trials.targets.at[1, 0, 0, 0].set(jnp.nan))}
    with pytest.raises(ValueError, match=r"data.*targets.*not finite") as err:
        run(ALL, data=data)
    assert "learning" not in str(err.value) and "\n" not in str(err.value)


def test_empty_data_is_named_before_training():
    variables, data, keys = initial()
    data = {**data, "trials": jax.tree.map(lambda a: a[:, :0], data["trials"])}
    with pytest.raises(ValueError, match=r"data.*empty"):
        run(ALL, data=data)


def test_nan_in_the_initial_variables_is_named():
    variables, data, keys = initial()
    params = {**variables["params"], "L": variables["params"]["L"].at[0, 0, 0].set(jnp.inf)}
    with pytest.raises(ValueError, match=r"params.*L.*not finite"):
        run(ALL, variables={**variables, "params": params})


def test_divergence_from_a_non_finite_batch_names_the_batch_not_the_learning_rate():
    variables, data, keys = initial()
    rows = [jax.random.key_data(jax.random.fold_in(keys[2], t)) for t in range(60, 90)]
    data = {**data, "poison": data["poison"].at[2].set(jnp.stack(rows))}
    with pytest.raises(TrainingDiverged) as err:
        run(ALL, data=data)
    message = str(err.value)
    assert "at step 60" in message and "batch" in message and "inputs" in message
    assert "lower learning_rate" not in message


def test_seed_axes_that_disagree_are_named_before_training():
    variables, data, keys = initial()
    with pytest.raises(ValueError, match=r"data_keys has shape \(2,.*seeds"):
        run(ALL, keys=keys[:2])
    with pytest.raises(ValueError, match=r"data\[.poison.\] has shape"):
        run(ALL, data={**data, "poison": data["poison"][:1]})


def test_variables_without_constants_are_named():
    variables, data, keys = initial()
    with pytest.raises(ValueError, match="'params' and 'constants'"):
        run(ALL, variables={"params": variables["params"]})

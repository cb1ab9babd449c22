"""Invariants of the four-task generator, its accuracy measure, and agreement with the authors'
frozen test set."""

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nmrnn.tasks import multitask as mt

REFERENCE_NAME = "nm-rnn-multitask-testset"


def _reference_dir():
    candidates = []
    if os.environ.get("NMRNN_REFERENCE_DIR"):
        env = Path(os.environ["NMRNN_REFERENCE_DIR"])
        candidates += [env / REFERENCE_NAME, env]
    candidates.append(Path(__file__).parents[2] / "shared" / "reference" / REFERENCE_NAME)
    for folder in candidates:
        if all((folder / f).is_file() for f in mt.REFERENCE_FILES):
            return folder
    pytest.skip(f"authors' test set not found (set NMRNN_REFERENCE_DIR); looked in {candidates}")


@pytest.fixture(scope="module")
def reference():
    return mt.load_reference_testset(_reference_dir())


@pytest.fixture(scope="module")
def sampled():
    task_ids = jnp.tile(jnp.arange(4, dtype=jnp.int32), 500)
    return mt.sample_trials(jax.random.key(0), task_ids, n_contexts=4)


def _step_bounds(memory: bool):
    """Extreme (t_stim_on, t_go) steps implied by the abstract epoch ranges and ceil rescaling."""
    f, r = mt.FIXATION_RANGE, mt.RESPONSE_RANGE
    s = mt.MEMORY_STIMULUS_RANGE if memory else mt.DELAY_TASK_STIMULUS_RANGE
    d = mt.MEMORY_DELAY_RANGE if memory else (0.0, 0.0)
    on = (f[0] / (f[0] + s[1] + d[1] + r[1]), f[1] / (f[1] + s[0] + d[0] + r[0]))
    go_lo = (f[0] + s[0] + d[0]) / (f[0] + s[0] + d[0] + r[1])
    go_hi = (f[1] + s[1] + d[1]) / (f[1] + s[1] + d[1] + r[0])
    ceil = lambda v: int(np.ceil(v * mt.T))  # noqa: E731
    return (ceil(on[0]), ceil(on[1])), (ceil(go_lo), ceil(go_hi))


def _check_encoding(data, n_contexts):
    """Assert the trial encoding shared by our generator and the authors' test set."""
    x, y = np.asarray(data.inputs), np.asarray(data.targets)
    ev = {k: np.asarray(v) for k, v in data.events.items()}
    B, T, U = x.shape
    assert (T, U, y.shape[-1]) == (mt.T, 3 + n_contexts, 3)
    t = np.arange(T)[None]
    before_go = t < ev["t_go"][:, None]
    stim = (t >= ev["t_stim_on"][:, None]) & (t < ev["t_stim_off"][:, None])
    memory, anti = ev["task"] >= 2, ev["task"] % 2 == 1
    # fixation input 1 until go; stimulus only during its epoch, constant and on the unit circle
    np.testing.assert_array_equal(x[..., 0], before_go.astype(np.float32))
    np.testing.assert_allclose(x[..., 1], stim * np.sin(ev["theta"])[:, None], atol=1e-5)
    np.testing.assert_allclose(x[..., 2], stim * np.cos(ev["theta"])[:, None], atol=1e-5)
    # one context channel, constant over the trial
    np.testing.assert_array_equal(x[..., 3:], np.eye(n_contexts)[ev["task"]][:, None].repeat(T, 1))
    # epochs: delay tasks keep the stimulus on to the end; memory tasks switch it off before go
    assert np.all(0 < ev["t_stim_on"]) and np.all(ev["t_stim_on"] < ev["t_stim_off"])
    np.testing.assert_array_equal(ev["t_stim_off"][~memory], T)
    assert np.all(ev["t_stim_off"][memory] < ev["t_go"][memory]) and np.all(ev["t_go"] < T)
    # targets: fixation 0.8 then 0; answer's sin/cos from go on
    np.testing.assert_allclose(y[..., 0], 0.8 * before_go, atol=1e-6)
    np.testing.assert_allclose(y[..., 1], ~before_go * np.sin(ev["answer"])[:, None], atol=1e-5)
    np.testing.assert_allclose(y[..., 2], ~before_go * np.cos(ev["answer"])[:, None], atol=1e-5)
    # Anti answers theta + pi, Pro answers theta
    err = np.angle(np.exp(1j * (ev["answer"] - ev["theta"] - np.pi * anti)))
    np.testing.assert_allclose(err, 0, atol=1e-4)
    # event times inside the ranges the abstract epochs allow
    for is_mem in (False, True):
        (on_lo, on_hi), (go_lo, go_hi) = _step_bounds(is_mem)
        sel = memory == is_mem
        assert on_lo <= ev["t_stim_on"][sel].min() and ev["t_stim_on"][sel].max() <= on_hi
        assert go_lo <= ev["t_go"][sel].min() and ev["t_go"][sel].max() <= go_hi


def test_sampled_trials_have_the_task_encoding(sampled):
    _check_encoding(sampled, n_contexts=4)
    assert np.asarray(sampled.mask).min() == 1.0


def test_abstract_durations_in_range_and_boundaries_rescaled(sampled):
    ev = {k: np.asarray(v, dtype=np.float64) for k, v in sampled.events.items()}
    memory = ev["task"] >= 2

    def within(name, lo, hi, sel=slice(None)):
        assert lo <= ev[name][sel].min() and ev[name][sel].max() <= hi, name

    within("dur_fixation", *mt.FIXATION_RANGE)
    within("dur_response", *mt.RESPONSE_RANGE)
    within("dur_stimulus", *mt.DELAY_TASK_STIMULUS_RANGE, ~memory)
    within("dur_stimulus", *mt.MEMORY_STIMULUS_RANGE, memory)
    within("dur_delay", *mt.MEMORY_DELAY_RANGE, memory)
    np.testing.assert_array_equal(ev["dur_delay"][~memory], 0.0)
    # the memory stimulus range reaches past the delay-task one, so both were really sampled
    assert ev["dur_stimulus"][memory].max() > mt.DELAY_TASK_STIMULUS_RANGE[1]

    total = ev["dur_fixation"] + ev["dur_stimulus"] + ev["dur_delay"] + ev["dur_response"]
    cumulative = {
        "t_stim_on": ev["dur_fixation"],
        "t_go": ev["dur_fixation"] + ev["dur_stimulus"] + ev["dur_delay"],
    }
    for name, c in cumulative.items():  # each boundary is the first step at/after c/total*T
        exact = c / total * mt.T
        assert np.all(ev[name] >= exact - 1e-4) and np.all(ev[name] < exact + 1 + 1e-4), name
    exact_off = (ev["dur_fixation"] + ev["dur_stimulus"]) / total * mt.T
    assert np.all(np.abs(ev["t_stim_off"][memory] - np.ceil(exact_off[memory])) <= 1)
    # the integer epochs tile the trial: fixation + stimulus + delay + response = T
    fix_len = ev["t_stim_on"]
    pre_go_stim = np.minimum(ev["t_stim_off"], ev["t_go"]) - ev["t_stim_on"]
    delay_len = ev["t_go"] - np.minimum(ev["t_stim_off"], ev["t_go"])
    resp_len = mt.T - ev["t_go"]
    assert np.all(resp_len > 0) and np.all(pre_go_stim > 0) and np.all(delay_len[memory] > 0)
    np.testing.assert_array_equal(fix_len + pre_go_stim + delay_len + resp_len, mt.T)


def test_pools_and_contexts():
    pool = mt.training_pool(jax.random.key(1), n_per_task=10)
    assert pool.inputs.shape == (30, 100, 6)
    assert np.bincount(np.asarray(pool.events["task"])).tolist() == [10, 10, 10]
    assert not np.array_equal(pool.events["task"][:10], np.zeros(10))  # shuffled
    _check_encoding(pool, n_contexts=3)

    transfer = mt.transfer_pool(jax.random.key(2), n=50)
    assert transfer.inputs.shape == (50, 100, 7)
    np.testing.assert_array_equal(transfer.events["task"], 3)
    np.testing.assert_array_equal(transfer.inputs[..., 3:6], 0)
    np.testing.assert_array_equal(transfer.inputs[..., 6], 1)

    noisy = np.asarray(mt.noisy_old_contexts(jax.random.key(3), transfer.inputs, (3, 4, 5), 0.1))
    np.testing.assert_array_equal(noisy[..., [0, 1, 2, 6]], transfer.inputs[..., [0, 1, 2, 6]])
    assert abs(noisy[..., 3:6].std() - 0.1) < 0.005 and abs(noisy[..., 3:6].mean()) < 0.005


def test_input_noise_only_on_sensory_channels():
    ids = jnp.array([0, 1, 2, 3] * 50)
    clean = mt.sample_trials(jax.random.key(4), ids)
    noisy = mt.sample_trials(jax.random.key(4), ids, noise_std=0.1)
    diff = np.asarray(noisy.inputs - clean.inputs)
    assert abs(diff[..., :3].std() - 0.1) < 0.005
    np.testing.assert_array_equal(diff[..., 3:], 0)
    np.testing.assert_array_equal(noisy.targets, clean.targets)


def _rotate_answer(data, angle):
    """Perfect outputs whose reported angle is rotated by `angle`."""
    ans = np.asarray(data.events["answer"]) + angle
    y = np.array(data.targets)
    after_go = y[..., 0] == 0
    y[..., 1] = after_go * np.sin(ans)[:, None]
    y[..., 2] = after_go * np.cos(ans)[:, None]
    return jnp.asarray(y)


def test_percent_correct(sampled):
    assert float(mt.percent_correct(sampled.targets, sampled)) == 1.0
    assert float(mt.percent_correct(sampled.targets, sampled, "arctan")) == 1.0
    assert float(mt.percent_correct(jnp.zeros_like(sampled.targets), sampled)) == 0.0
    assert float(mt.percent_correct(_rotate_answer(sampled, np.pi / 20), sampled)) == 1.0
    assert float(mt.percent_correct(_rotate_answer(sampled, -np.pi / 20), sampled)) == 1.0
    assert float(mt.percent_correct(_rotate_answer(sampled, np.pi / 8), sampled)) == 0.0
    # a break of fixation before go fails the trial
    broken = np.array(sampled.targets)
    broken[np.arange(len(broken)), np.asarray(sampled.events["t_go"]) - 1, 0] = 0.4
    assert float(mt.percent_correct(jnp.asarray(broken), sampled)) == 0.0
    # the arctan rule cannot tell the opposite direction from the answer; atan2 can
    flipped = _rotate_answer(sampled, np.pi)
    assert float(mt.percent_correct(flipped, sampled, "atan2")) == 0.0
    assert float(mt.percent_correct(flipped, sampled, "arctan")) == 1.0
    assert float(mt.percent_correct(flipped, sampled, "arctan_mod_pi")) == 1.0
    per_trial = mt.correct_trials(sampled.targets, sampled)
    assert per_trial.shape == (sampled.inputs.shape[0],) and per_trial.dtype == jnp.bool_


def test_arctan_rule_does_not_wrap_at_vertical():
    """The authors' rule compares arctan values directly: an answer just left of vertical and an
    output just right of it are wrong for 'arctan' but right for 'arctan_mod_pi' and 'atan2'."""
    data = mt.sample_trials(jax.random.key(5), jnp.array([0]))
    ans = float(data.events["answer"][0])
    target_angle, out_angle = np.pi / 2 - 0.02, np.pi / 2 + 0.02
    y = np.array(_rotate_answer(data, out_angle - ans))
    t = np.array(_rotate_answer(data, target_angle - ans))
    data = data._replace(targets=jnp.asarray(t))
    assert bool(mt.correct_trials(jnp.asarray(y), data, "atan2")[0])
    assert bool(mt.correct_trials(jnp.asarray(y), data, "arctan_mod_pi")[0])
    assert not bool(mt.correct_trials(jnp.asarray(y), data, "arctan")[0])
    with pytest.raises(ValueError):
        mt.correct_trials(jnp.asarray(y), data, "nope")


def test_reference_testset_matches_our_encoding(reference):
    assert reference.inputs.shape == (100, 100, 7) and reference.targets.shape == (100, 100, 3)
    np.testing.assert_array_equal(np.bincount(np.asarray(reference.events["task"])), [25] * 4)
    _check_encoding(reference, n_contexts=4)
    np.testing.assert_array_equal(
        np.unique(np.asarray(reference.targets[..., 0])), np.float32([0.0, 0.8])
    )


def test_reference_label_order_matches_task_names():
    folder = _reference_dir()
    try:
        names = np.load(folder / "label_key.npy", allow_pickle=False)
    except (ValueError, FileNotFoundError) as err:
        pytest.skip(f"label_key.npy not loadable without pickle: {err}")
    assert tuple(str(n) for n in names) == mt.TASK_NAMES


def test_perfect_outputs_on_reference_score_100_percent(reference):
    assert float(mt.percent_correct(reference.targets, reference, "atan2")) == 1.0
    assert float(mt.percent_correct(jnp.zeros_like(reference.targets), reference)) == 0.0

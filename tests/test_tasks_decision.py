"""The perceptual-decision example task (src/nmrnn/tasks/decision.py, not in the paper): a task
added as one module works through the package API (data, batches, training, evaluation)."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

from nmrnn import experiments as ex
from nmrnn.config import ConfigError, merge, validate
from nmrnn.evaluation import evaluate, expected_table
from nmrnn.tasks import TASKS, decision, get_task

ROOT = Path(__file__).resolve().parents[1]


def batch(n=64, seed=0, **kwargs):
    return decision.sample_batch(jax.random.key(seed), n, **kwargs)


def test_registered_and_unknown_tasks_are_named():
    assert get_task("decision") is TASKS["decision"]
    with pytest.raises(ConfigError, match="unknown task 'nope'.*decision"):
        get_task("nope")


def test_shapes_epochs_and_mask():
    data = batch(32)
    T = decision.T
    assert data.inputs.shape == (32, T, 2)
    assert data.targets.shape == data.mask.shape == (32, T, 1)
    x, y, m = (np.asarray(a) for a in data[:3])
    t = np.arange(T)
    # evidence only during the stimulus, fixation off from go on
    assert np.all(x[:, (t < decision.T_STIM_ON) | (t >= decision.T_STIM_OFF), 0] == 0)
    assert np.all(x[:, decision.T_STIM_ON : decision.T_STIM_OFF, 0] != 0)
    np.testing.assert_array_equal(x[0, :, 1], (t < decision.T_GO).astype(np.float32))
    # target 0 before go, the choice after; the grace steps after go are not counted
    assert np.all(y[:, : decision.T_GO] == 0)
    choice = np.asarray(data.events["choice"])
    np.testing.assert_array_equal(
        y[:, decision.T_GO :, 0], np.repeat(choice[:, None], T - decision.T_GO, 1)
    )
    grace = (t >= decision.T_GO) & (t < decision.T_GO + decision.GRACE)
    np.testing.assert_array_equal(m[0, :, 0], (~grace).astype(np.float32))
    assert np.all(m == m[:1])
    assert set(np.unique(choice)) == {-1, 1}


def test_the_sign_of_the_evidence_is_the_target():
    """Noise-free trials: the evidence has the choice's sign; with noise, its mean over the
    stimulus agrees with the target more often at a higher coherence."""
    clean = batch(64, noise_std=0.0)
    evidence = np.asarray(clean.inputs[:, decision.T_STIM_ON, 0])
    target = np.asarray(clean.targets[:, -1, 0])
    np.testing.assert_array_equal(np.sign(evidence), target)
    np.testing.assert_allclose(np.abs(evidence), np.asarray(clean.events["coherence"]), rtol=1e-6)
    agree = {}
    for c in (0.05, 0.8):
        noisy = batch(2000, seed=1, coherences=(c,))
        mean = np.asarray(noisy.events["evidence"])
        np.testing.assert_allclose(
            mean,
            np.asarray(noisy.inputs[..., 0]).sum(1) / decision.T_STIMULUS,
            rtol=1e-5,
            atol=1e-6,
        )
        agree[c] = np.mean(np.sign(mean) == np.asarray(noisy.targets[:, -1, 0]))
    assert 0.5 < agree[0.05] < 0.75 and agree[0.8] > 0.99  # Phi(0.22) = 0.59, Phi(3.6) ~ 1


def test_reproducible_by_key():
    a, b, c = batch(16, seed=3), batch(16, seed=3), batch(16, seed=4)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.inputs, c.inputs)


def test_balanced_test_set():
    test = decision.test_set(jax.random.key(0), 6, (0.1, 0.4))
    np.testing.assert_allclose(test.events["coherence"], [0.1] * 6 + [0.4] * 6)
    np.testing.assert_array_equal(test.events["choice"], [1, -1] * 6)


EXPERIMENT = {
    "task": "decision",
    "seeds": 2,
    "batch": 32,
    "match_reference": "nmrnn",
    "task_settings": {"coherences": [0.2, 0.8], "test_per_coherence": 40},
    "select_best": {"on": "validation", "every": 50, "trials": 64},
    "archs": {
        "nmrnn": {
            "model": "nmrnn",
            "settings": {"N": 20, "M": 3, "K": 2, "tau_x": 5, "tau_z": 20},
            "stages": [{"trainable": "all", "steps": 300, "learning_rate": 0.01}],
        },
    },
}


def test_config_checks_of_the_task():
    validate({"experiments": {"d": EXPERIMENT}})
    bad = [
        ({"task_settings": {"coherence": 0.1}}, "task_settings: unknown key 'coherence'"),
        ({"task_settings": {"coherences": []}}, "task_settings.coherences"),
        ({"task_settings": {"noise_std": -1}}, "task_settings.noise_std"),
        ({"task_settings": {"test_per_coherence": 3}}, "test_per_coherence"),
        ({"archs": {"nmrnn": {"data": {"noise": "none"}}}}, "only the multitask tasks"),
        ({"context_to_z_only": True}, "context_to_z_only"),
        ({"task": "decisions"}, "decisions"),
    ]
    for update, named in bad:
        with pytest.raises(ConfigError, match=named):
            validate({"experiments": {"d": merge(EXPERIMENT, update)}})
    # the paper's tasks take no task_settings
    paper = yaml.safe_load((ROOT / "config.yaml").read_text())
    mwg = merge(paper["experiments"]["mwg"], {"task_settings": {"coherences": [0.1]}})
    with pytest.raises(ConfigError, match="unknown key 'coherences' for the mwg task"):
        validate({"experiments": {"mwg": mwg}})


def test_example_overlay_is_a_valid_config():
    paper = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = yaml.safe_load((ROOT / "examples" / "decision.yaml").read_text())
    config = validate(merge(paper, overlay))
    assert config["experiments"]["decision"]["task"] == "decision"
    assert "decision" not in paper["experiments"]


def test_a_small_nmrnn_learns_it_and_is_scored():
    """Through the package API, as the pipeline does: task data, training (two seeds together),
    evaluation rows with the columns and row count the task declares."""
    exp = ex.parse(validate({"experiments": {"d": EXPERIMENT}})["experiments"], "d")
    data = [ex.make_task_data(exp.data, s) for s in (0, 1)]
    assert set(data[0]) == {"test", "validation"}
    assert data[0]["test"].inputs.shape == (80, decision.T, 2)
    _, result = ex.train_seeds(exp, "nmrnn", [0, 1], data=data, chunk_size=100)
    losses = np.asarray(result.losses)
    assert losses.shape == (2, 300) and np.all(np.isfinite(losses))
    first, last = losses[:, :20].mean(1), losses[:, -20:].mean(1)
    assert np.all(last < 0.7 * first), (first, last)
    table = expected_table(exp, "nmrnn")
    assert table["rows"] == [4]  # 2 coherences x (final, selected)
    for i in (0, 1):
        variables = {
            "params": {k: np.asarray(v)[i] for k, v in result.variables["params"].items()},
            "constants": {k: np.asarray(v)[i] for k, v in result.variables["constants"].items()},
            "selected_params": {
                k: np.asarray(v)[i] for k, v in result.best_variables["params"].items()
            },
        }
        frame = evaluate(exp, "nmrnn", i, variables, data[i])
        assert list(frame.columns) == table["columns"]
        assert list(frame["checkpoint"]) == ["final", "final", "selected", "selected"]
        assert list(frame["coherence"]) == pytest.approx([0.2, 0.8, 0.2, 0.8])
        assert list(frame["trials"]) == [40] * 4
        assert frame[table["required"]].notna().all().all()
        # an easy coherence after training: better than chance
        assert frame["percent_correct"].iloc[1] > 60

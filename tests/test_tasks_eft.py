"""Invariants of the Element Finder Task generator."""

import jax
import numpy as np
import pytest

from nmrnn.tasks import eft, masked_mse


def test_target_is_queried_element_scored_only_at_last_step():
    data = eft.sample_batch(jax.random.key(0), batch=256)
    x, y, m = (np.asarray(a) for a in (data.inputs, data.targets, data.mask))
    assert x.shape == y.shape == m.shape == (256, 26, 1)
    q = x[:, 0, 0].astype(int)
    assert q.min() >= 0 and q.max() <= 24 and len(np.unique(q)) > 20
    elements = x[:, 1:, 0]
    assert np.all(elements == np.round(elements))
    assert elements.min() == -10 and elements.max() == 10
    np.testing.assert_array_equal(y[:, -1, 0], elements[np.arange(256), q])
    np.testing.assert_array_equal(y[:, -1, 0], x[np.arange(256), q + 1, 0])
    np.testing.assert_array_equal(y[:, :-1], 0)
    np.testing.assert_array_equal(m[:, -1], 1)
    np.testing.assert_array_equal(m[:, :-1], 0)
    np.testing.assert_array_equal(data.events["query"], q)
    np.testing.assert_array_equal(data.events["value"], y[:, -1, 0])


def test_predicting_zero_scores_chance():
    assert eft.CHANCE_MSE == pytest.approx(110 / 3)
    data = eft.sample_batch(jax.random.key(1), batch=200_000)
    mse = float(masked_mse(np.zeros_like(data.targets), data.targets, data.mask))
    # standard error of the mean of v^2 over 2e5 trials is ~0.07
    assert mse == pytest.approx(eft.CHANCE_MSE, abs=0.5)


def test_fixed_query_sets():
    data = eft.fixed_query_set(jax.random.key(2), query=7, n=64)
    np.testing.assert_array_equal(data.inputs[:, 0, 0], 7)
    np.testing.assert_array_equal(data.targets[:, -1, 0], data.inputs[:, 8, 0])
    assert len(np.unique(np.asarray(data.targets[:, -1, 0]))) > 5

    data = eft.fixed_query_value_set(jax.random.key(3), query=24, value=-3, n=64)
    np.testing.assert_array_equal(data.inputs[:, 0, 0], 24)
    np.testing.assert_array_equal(data.inputs[:, 25, 0], -3)
    np.testing.assert_array_equal(data.targets[:, -1, 0], -3)
    np.testing.assert_array_equal(data.events["value"], -3)
    assert len(np.unique(np.asarray(data.inputs[:, 1:25, 0]))) > 5  # others stay random


def test_batches_differ_across_keys_and_repeat_for_a_key():
    a = eft.sample_batch(jax.random.key(4), 16)
    b = eft.sample_batch(jax.random.key(4), 16)
    c = eft.sample_batch(jax.random.key(5), 16)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    assert not np.array_equal(a.inputs, c.inputs)

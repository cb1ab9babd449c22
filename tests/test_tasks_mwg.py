"""Invariants of the Measure-Wait-Go generator."""

import numpy as np
import pytest

from nmrnn.tasks import mwg, take


def test_pulses_at_measure_wait_go_with_height_10():
    data = mwg.trials(np.array([10, 19, 3]), np.array([12, 18, 4]))
    x = np.asarray(data.inputs)
    assert x.shape == (3, mwg.T, 3) and x.dtype == np.float32
    for b, (tm, interval) in enumerate([(10, 12), (19, 18), (3, 4)]):
        for ch, t in enumerate([tm, tm + interval, tm + interval + 15]):
            expected = np.zeros(mwg.T, np.float32)
            expected[t] = 10.0
            np.testing.assert_array_equal(x[b, :, ch], expected)
    np.testing.assert_array_equal(data.events["t_go"], [37, 52, 22])
    np.testing.assert_array_equal(data.events["t_wait"], [22, 37, 7])


def test_ramp_formula_and_mask():
    data = mwg.trials(np.array([15]), np.array([16]))
    y = np.asarray(data.targets[0, :, 0])
    t_go = 15 + 16 + 15
    t = np.arange(mwg.T)
    np.testing.assert_allclose(y, -0.5 + np.clip((t - t_go) / 16, 0, 1), atol=1e-6)
    assert y[t_go] == -0.5 and y[t_go + 8] == pytest.approx(0.0) and y[t_go + 16] == 0.5
    assert y[:t_go].max() == -0.5 and y[t_go + 16 :].min() == 0.5
    np.testing.assert_array_equal(data.mask, np.ones((1, mwg.T, 1)))


def test_training_set_is_all_40_combinations():
    data = mwg.training_set()
    assert data.inputs.shape == (40, 110, 3) and data.targets.shape == (40, 110, 1)
    pairs = set(
        zip(
            np.asarray(data.events["interval"]).tolist(),
            np.asarray(data.events["t_measure"]).tolist(),
            strict=True,
        )
    )
    assert pairs == {(i, tm) for i in (12, 14, 16, 18) for tm in range(10, 20)}
    assert mwg.TRAINED_INTERVALS == (12, 14, 16, 18)


def test_test_set_intervals_and_groups():
    data = mwg.test_set()
    assert data.inputs.shape == (12, 110, 3)
    np.testing.assert_array_equal(data.events["interval"], np.arange(4, 27, 2))
    np.testing.assert_array_equal(data.events["t_measure"], np.full(12, 15))
    assert mwg.TEST_INTERVALS == tuple(range(4, 27, 2))
    groups = [mwg.interval_group(i) for i in mwg.TEST_INTERVALS]
    assert groups == ["shorter"] * 4 + ["trained"] * 4 + ["longer"] * 4
    # the longest ramp still ends inside the trial
    assert int(data.events["t_go"].max()) + 26 < mwg.T
    assert float(data.targets[-1, -1, 0]) == 0.5


def test_take_indexes_events_too():
    data = take(mwg.test_set(), np.array([0, 11]))
    assert data.inputs.shape == (2, 110, 3)
    np.testing.assert_array_equal(data.events["interval"], [4, 26])

"""Bootstrap uncertainty of the claim verdicts (nmrnn.claims.uncertainty / decide) on inputs whose
answer is known in closed form, and the columns it adds to the claims and protocols tables."""

from math import comb

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats import binom

from nmrnn import claims as cl
from nmrnn import protocols as pr
from nmrnn.figures.fig3 import claims as claims3
from nmrnn.tasks import mwg


def test_p_holds_is_the_probability_over_resampled_seed_sets():
    # a's resampled median is 0, 5 or 10 with probabilities 1/4, 1/2, 1/4; b's is always 5:
    # "median(a) < median(b)" holds in a quarter of the resampled seed sets.
    out = cl.uncertainty([0.0, 10.0], [5.0, 5.0], lambda x, y: np.median(x, -1) < np.median(y, -1))
    assert out["p_holds"] == pytest.approx(0.25, abs=0.02)
    assert out["ratio"] == 1.0
    assert (out["ratio_ci_low"], out["ratio_ci_high"]) == (0.0, 2.0)


def test_ratio_interval_spans_the_resampled_medians():
    # a's resampled median is 1, 2 or 3 (prob. 1/4, 1/2, 1/4): the 95% interval is [1, 3].
    out = cl.uncertainty([1.0, 3.0], [1.0, 1.0], lambda x, y: np.ones(x.shape[:-1], bool))
    assert out == {"ratio": 2.0, "ratio_ci_low": 1.0, "ratio_ci_high": 3.0, "p_holds": 1.0}


def test_too_few_seeds_give_nan_and_nonfinite_values_are_left_out():
    nan = cl.uncertainty([1.0], [1.0, 2.0], cl.lower)
    assert all(np.isnan(v) for v in nan.values())
    with_nan = cl.uncertainty([1.0, np.nan, 3.0], [1.0, 1.0, np.inf], cl.lower)
    assert with_nan == cl.uncertainty([1.0, 3.0], [1.0, 1.0], cl.lower)
    assert cl.decide([np.nan], [1.0, 2.0], cl.lower)["holds"] is False


def test_the_same_draws_on_every_call():
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 5.0, 7.0]
    assert cl.uncertainty(a, b, cl.lower) == cl.uncertainty(a, b, cl.lower)


@pytest.mark.parametrize("alternative", ["less", "greater", "two-sided"])
def test_vectorised_mann_whitney_matches_scipy_row_by_row(alternative):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 6, (40, 5)).astype(float)  # many rows with ties, some without
    b = rng.integers(0, 6, (40, 5)).astype(float)
    a[:5] = rng.random((5, 5))  # rows without ties: the exact test
    b[:5] = rng.random((5, 5))
    got = cl.mann_whitney_p(a, b, alternative)
    want = [
        stats.mannwhitneyu(x, y, alternative=alternative).pvalue for x, y in zip(a, b, strict=True)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def _mwg_table(trained: dict) -> pd.DataFrame:
    """A tidy mwg table with the given per-seed MSE on every trained interval (and 0.1
    elsewhere), one list of seeds per architecture."""
    rows = [
        {"experiment": "mwg", "arch": arch, "seed": s, "interval": interval,
         "group": mwg.interval_group(interval),
         "mse": v if mwg.interval_group(interval) == "trained" else 0.1}
        for arch, values in trained.items()
        for s, v in enumerate(values)
        for interval in mwg.TEST_INTERVALS
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_claims_table_p_holds_has_the_binomial_answer():
    # 1-trained holds when both medians are below the fit threshold. The LR-RNN has one seed in
    # five above it: a resampled set fails when 3 or more of its 5 draws are that seed.
    fit, bad = claims3.FIT_THRESHOLD / 10, claims3.FIT_THRESHOLD * 10
    table = _mwg_table({"nmrnn": [fit] * 5, "lrrnn": [fit, fit, fit, fit, bad]})
    row = {r["claim"]: r for r in claims3.claims(table)}["1-trained"]
    fails = sum(comb(5, k) * 0.2**k * 0.8 ** (5 - k) for k in range(3, 6))  # 0.0579
    assert row["holds"] is True
    assert row["p_holds"] == pytest.approx(1 - fails, abs=0.01)
    # the ratio is 1, or fit/bad = 0.01 in those 5.8% of sets: the 95% interval reaches 0.01
    assert row["ratio"] == 1.0
    assert row["ratio_ci_low"] == pytest.approx(0.01) and row["ratio_ci_high"] == 1.0
    assert set(cl.UNCERTAINTY) <= set(row)


def test_protocols_rows_carry_the_same_uncertainty_as_the_claims_table():
    rng = np.random.default_rng(0)
    nm, base = pd.Series(rng.random(5) * 0.5), pd.Series(rng.random(5) + 0.3)
    row = pr.compare_claim("1-shorter", nm, base)
    assert row["holds"] == bool(cl.lower(nm.to_numpy(), base.to_numpy()))
    assert {k: row[k] for k in ("ratio_ci_low", "ratio_ci_high", "p_holds")} == {
        k: v for k, v in cl.uncertainty(nm, base, cl.lower).items() if k != "ratio"
    }


def test_protocols_seed_table_keeps_every_value_by_side_and_seed():
    points = {("matched", "1-shorter"): (pd.Series([0.1, 0.2], index=[0, 3]), pd.Series([0.5]))}
    table = pr.seed_table(points)
    assert list(table.columns) == list(pr.SEED_COLUMNS)
    assert table[["side", "seed", "value"]].values.tolist() == [
        ["nm", 0, 0.1], ["nm", 3, 0.2], ["baseline", 0, 0.5]
    ]  # fmt: skip


def _median_below_zero(x, y):
    return np.median(x, axis=-1) < 0


def test_seeds_to_decide_has_the_binomial_answer():
    # 60% of the NM-RNN's seeds are negative: with n seeds per side (n even) the median is below
    # zero when more than n/2 of them are, P = P(Binomial(n, 0.6) > n/2): 0.63 at n = 10, 0.75 at
    # 20, 0.87 at 40 (undecided) and 0.97 at 100, the first count that decides.
    counts = (10, 20, 40, 100)
    exact = [binom.sf(n // 2, n, 0.6) for n in counts]
    assert [cl.undecided(p) for p in exact] == [True, True, True, False]
    a, b = [-1.0, -1.0, -1.0, 1.0, 1.0], [0.0, 0.0]
    assert cl.seeds_to_decide(a, b, _median_below_zero, counts=counts) == 100
    # a test that stays a coin flip is never decided; too few values give NaN
    assert cl.seeds_to_decide([-1.0, 1.0], b, _median_below_zero, counts=counts) == np.inf
    assert np.isnan(cl.seeds_to_decide([1.0], b, _median_below_zero))


def test_protocols_rows_estimate_seeds_only_where_undecided():
    decided = pr.compare_claim("1-shorter", pd.Series([0.1] * 5), pd.Series([1.0] * 5))
    assert decided["p_holds"] == 1.0 and np.isnan(decided["seeds_to_decide"])
    rng = np.random.default_rng(3)
    nm, base = pd.Series(rng.normal(0.0, 1.0, 8)), pd.Series(rng.normal(0.5, 1.0, 8))
    row = pr.compare_claim("1-shorter", nm, base)
    assert cl.undecided(row["p_holds"])
    assert row["seeds_to_decide"] == cl.seeds_to_decide(nm, base, cl.lower)
    assert list(row) == list(pr.COLUMNS[5:])

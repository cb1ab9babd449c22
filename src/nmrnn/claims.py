"""The paper's claims (SPEC §6) checked on a run's tidy metrics tables: the statistics and the
table format shared by every figure.

Each figure's ``claims`` module (``nmrnn.figures.figN.claims``) defines ``claims(metrics:
DataFrame) -> list[dict]`` with the helpers here; :func:`write_claims` gathers the rows of the
checks it is given (``nmrnn.figures.CLAIMS_BY_TABLE``) into ``claims.csv`` and a rendered
``claims.md``. This module imports no figure. A claim row has the columns of :data:`COLUMNS`.
Comparisons across seeds use a one-sided Mann–Whitney U test (architectures are initialised
independently, so seeds are not paired) at :data:`ALPHA`.

Every claim's decision is a *rule*: a function of two arrays of per-seed values (the NM-RNN's and
the baseline's, seeds on the last axis) that returns whether the claim holds, row by row. The
claim row applies it to the observed seeds; :func:`uncertainty` applies it to bootstrap resamples
of the seeds (each side resampled with replacement, :data:`BOOTSTRAP_DRAWS` times) and reports
P(holds), the fraction of resampled seed sets in which the claim's own test holds, beside the 95%
percentile interval of the ratio of medians (``scipy.stats.bootstrap``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
COLUMNS = (
    "claim",  # id, e.g. "1-longer"
    "statement",  # what the paper says, in one sentence
    "metric",  # what is compared, e.g. "MSE on longer intervals (median across seeds)"
    "values",  # per architecture: "nmrnn 0.012 (n=5); lrrnn 0.034 (n=5)"
    "seeds",  # seeds per architecture
    "test",  # e.g. "one-sided Mann-Whitney U, nmrnn < lrrnn"
    "p_value",
    "holds",  # True / False
    "ratio",  # median of the NM-RNN's seeds over the baseline's (NaN where not a comparison)
    "ratio_ci_low",  # 95% bootstrap percentile interval of that ratio over resampled seed sets
    "ratio_ci_high",
    "p_holds",  # fraction of resampled seed sets in which the claim's test holds
    "detail",  # per-seed values or any caveat
)
UNCERTAINTY = ("ratio", "ratio_ci_low", "ratio_ci_high", "p_holds")
BOOTSTRAP_DRAWS = 10_000
BOOTSTRAP_SEED = 0  # one fixed stream: a table's intervals are the same on every rerun
CONFIDENCE = 0.95
Rule = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (..., n_a), (..., n_b) -> bool (...)
Checks = Mapping[str, Callable[[pd.DataFrame], list[dict]]]  # table name -> its claims function


def finite_values(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Both sides' per-seed values as float arrays, without their non-finite values (a seed
    that failed, or a missing one, is left out of every test)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return a[np.isfinite(a)], b[np.isfinite(b)]


def compare(a: Sequence[float], b: Sequence[float], alternative: str = "less") -> dict:
    """Medians, their ratio and a one-sided Mann–Whitney U p-value for ``a`` vs ``b``.

    ``alternative="less"``: is a stochastically smaller than b (e.g. a lower loss)?
    """
    a, b = finite_values(a, b)
    if len(a) == 0 or len(b) == 0:
        return {"median_a": np.nan, "median_b": np.nan, "ratio": np.nan, "p_value": np.nan}
    p = stats.mannwhitneyu(a, b, alternative=alternative).pvalue if min(len(a), len(b)) else np.nan
    med_a, med_b = float(np.median(a)), float(np.median(b))
    return {
        "median_a": med_a,
        "median_b": med_b,
        "ratio": med_a / med_b if med_b else np.nan,
        "p_value": float(p),
    }


def median_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Median of ``a`` over median of ``b`` along the last axis (NaN where the latter is 0)."""
    num, den = np.median(a, axis=-1), np.median(b, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


def mann_whitney_p(a: np.ndarray, b: np.ndarray, alternative: str) -> np.ndarray:
    """Mann–Whitney U p-values along the last axis, each row with the method scipy's ``"auto"``
    picks for that row alone (exact unless both sides exceed 8 values or the row has ties), so a
    row gives the p-value :func:`compare` gives for the same values."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    lead = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    a = np.broadcast_to(a, lead + a.shape[-1:]).reshape(-1, a.shape[-1])
    b = np.broadcast_to(b, lead + b.shape[-1:]).reshape(-1, b.shape[-1])
    both = np.sort(np.concatenate([a, b], axis=-1), axis=-1)
    ties = (np.diff(both, axis=-1) == 0).any(axis=-1)
    exact = ~ties & (min(a.shape[-1], b.shape[-1]) <= 8)
    p = np.empty(len(a))
    for method, rows in (("exact", exact), ("asymptotic", ~exact)):
        if rows.any():
            test = stats.mannwhitneyu(a[rows], b[rows], alternative=alternative, method=method,
                                      axis=-1)  # fmt: skip
            p[rows] = test.pvalue
    return p.reshape(lead)


def uncertainty(
    a: Sequence[float],
    b: Sequence[float],
    rule: Rule,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = BOOTSTRAP_SEED,
) -> dict:
    """The bootstrap over seeds of one claim test: ``ratio`` (median of ``a`` over median of
    ``b``), its 95% percentile interval ``ratio_ci_low``/``ratio_ci_high`` and ``p_holds``, the
    fraction of the ``draws`` resampled seed sets (each side resampled with replacement, apart
    from the other) in which ``rule`` holds. Non-finite values are left out, as in
    :func:`compare`; a side with fewer than two values gives NaN everywhere. Both come from
    ``scipy.stats.bootstrap`` with the same random stream, so they see the same resamples."""
    a, b = finite_values(a, b)
    nan = {k: np.nan for k in UNCERTAINTY}
    if len(a) < 2 or len(b) < 2:  # nothing to resample
        return nan

    def resampled(statistic):
        return stats.bootstrap(
            (a, b),
            lambda x, y, axis=-1: statistic(np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)),
            n_resamples=draws,
            paired=False,
            vectorized=True,
            confidence_level=CONFIDENCE,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )

    holds = resampled(lambda x, y: np.asarray(rule(x, y), float)).bootstrap_distribution
    with np.errstate(invalid="ignore"):  # a resample whose baseline median is 0: NaN interval
        interval = resampled(median_ratio).confidence_interval
    return {
        "ratio": float(median_ratio(a, b)),
        "ratio_ci_low": float(interval.low),
        "ratio_ci_high": float(interval.high),
        "p_holds": float(np.mean(holds)),
    }


SEED_COUNTS = (10, 20, 30, 50, 75, 100, 150, 200)  # per side, tried by seeds_to_decide
UNDECIDED = (0.1, 0.9)  # P(holds) strictly between these: the verdict could turn on a fresh draw


def undecided(p_holds: float) -> bool:
    """Whether a verdict's P(holds) lies strictly inside :data:`UNDECIDED`."""
    return bool(np.isfinite(p_holds) and UNDECIDED[0] < p_holds < UNDECIDED[1])


def seeds_to_decide(
    a: Sequence[float],
    b: Sequence[float],
    rule: Rule,
    counts: Sequence[int] = SEED_COUNTS,
    draws: int = 2000,
    seed: int = BOOTSTRAP_SEED,
) -> float:
    """An estimate of the seeds per side a claim test needs to be decided: the smallest n of
    ``counts`` at which, drawing n seeds per side with replacement from the observed ones
    (``draws`` times), the test's P(holds) leaves :data:`UNDECIDED`; ``inf`` if none does.

    It treats the observed seeds as the population, so it says how many seeds would settle the
    verdict if the next seeds look like these, not more. Non-finite values are left out; NaN
    if a side has fewer than two values."""
    a, b = finite_values(a, b)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    for n in counts:
        x = rng.choice(a, size=(draws, n), replace=True)
        y = rng.choice(b, size=(draws, n), replace=True)
        if not undecided(float(np.mean(rule(x, y)))):
            return float(n)
    return float("inf")


def decide(a: Sequence[float], b: Sequence[float], rule: Rule) -> dict:
    """A claim's verdict on the observed seeds (``holds``: ``rule`` on the finite values, False
    when a side has none) and its :func:`uncertainty`: the claim-row columns a rule fills."""
    fa, fb = finite_values(a, b)
    holds = bool(len(fa) and len(fb) and np.all(rule(fa, fb)))
    return {"holds": holds, **uncertainty(fa, fb, rule)}


def lower(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rule: ``x`` below ``y`` (one-sided Mann–Whitney U p < ALPHA) with a median ratio < 1."""
    return (mann_whitney_p(x, y, "less") < ALPHA) & (median_ratio(x, y) < 1)


def format_values(groups: dict[str, Sequence[float]], fmt: str = "{:.4g}") -> str:
    """'arch median (n=k); ...' for a dict arch -> per-seed values."""
    parts = []
    for arch, vals in groups.items():
        vals = np.asarray(vals, float)
        parts.append(f"{arch} {fmt.format(np.nanmedian(vals))} (n={len(vals)})")
    return "; ".join(parts)


def format_seeds(values: Sequence[float], fmt: str = "{:.3g}") -> str:
    return "[" + ", ".join(fmt.format(v) for v in values) + "]"


def format_detail(values, extra: str = "") -> str:
    """'arch per seed [...]' for a dict arch -> pandas Series of per-seed values, noting NaNs."""
    parts = [f"{a} per seed {format_seeds(v.to_numpy())}" for a, v in values.items()]
    dropped = {a: int(v.isna().sum()) for a, v in values.items() if v.isna().any()}
    if dropped:
        parts.append(f"seeds with NaN MSE, left out of the test: {dropped}")
    if extra:
        parts.append(extra)
    return "; ".join(parts)


def format_seed_counts(values) -> str:
    """'arch n; ...' for a dict arch -> per-seed values."""
    return "; ".join(f"{a} {len(v)}" for a, v in values.items())


def gather(tables: Sequence[str | Path], checks: Checks) -> pd.DataFrame:
    """Claim rows from every metrics table (named ``<table>.csv``) that ``checks`` has a claims
    function for."""
    rows = []
    for path in tables:
        name = Path(path).stem
        if name in checks:
            rows.extend(checks[name](pd.read_csv(path)))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.sort_values("claim", kind="stable").reset_index(drop=True)


def format_interval(row: Mapping) -> str:
    """'1.4 [0.48, 2.9]' from a row's ratio columns ('' without a ratio)."""
    if pd.isna(row["ratio"]):
        return ""
    low, high = row["ratio_ci_low"], row["ratio_ci_high"]
    ci = "" if pd.isna(low) or pd.isna(high) else f" [{low:.2g}, {high:.2g}]"
    return f"{row['ratio']:.3g}{ci}"


def to_markdown(frame: pd.DataFrame) -> str:
    """The claims table as GitHub markdown (no extra dependency)."""
    cols = ["claim", "statement", "metric", "values", "test", "p_value", "holds"]
    heads = cols + ["median ratio [95% CI]", "P(holds)"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for _, row in frame.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if c == "p_value":
                v = "" if pd.isna(v) else f"{float(v):.3g}"
            if c == "holds":
                v = "**yes**" if bool(v) else "**no**"
            cells.append(str(v).replace("|", "/").replace("\n", " "))
        cells += [format_interval(row), "" if pd.isna(row["p_holds"]) else f"{row['p_holds']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_claims(
    tables: Sequence[str | Path], checks: Checks, out_csv: str | Path, out_md: str | Path
) -> None:
    """``claims.csv`` and ``claims.md`` from the metrics tables, by :func:`gather`."""
    frame = gather(tables, checks)
    frame.to_csv(out_csv, index=False)
    Path(out_md).write_text(
        "# Claims of the paper, checked on this run\n\n"
        "Generated by the pipeline from `figures/metrics/*.csv`; see `PROVENANCE.json` for the "
        "run. Median ratio: the NM-RNN's median across seeds over the baseline's, with its 95% "
        f"bootstrap interval; P(holds): the fraction of {BOOTSTRAP_DRAWS:,} resampled seed sets "
        "(each side's seeds drawn with replacement) in which the claim's own test holds.\n\n"
        + to_markdown(frame)
    )

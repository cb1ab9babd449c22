"""Figure 4's claims (SPEC §6 claim 3: transfer to Memory Anti) from the tidy ``multitask``
metrics table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nmrnn import claims as cl
from nmrnn.figures.style import arch_label

BASELINES = ("lrrnn", "vanilla", "lstm")
TEST_SETS = ("generated", "authors_frozen")


def transfer_rows(metrics: pd.DataFrame, testset: str = "generated") -> pd.DataFrame:
    """The rows behind claim 3: Memory Anti after the transfer stage, scored on ``testset``
    (a table without ``stage``/``testset`` columns holds transfer rows on the generated set)."""
    if testset not in TEST_SETS:
        raise ValueError(f"unknown test set {testset!r}; choose one of {TEST_SETS}")
    rows = metrics[metrics["task"] == "memory_anti"]
    if "stage" in rows:
        rows = rows[rows["stage"] == "transfer"]
    scored_on = rows["testset"] if "testset" in rows else pd.Series("generated", index=rows.index)
    return rows[scored_on == testset]


def per_seed_accuracy(rows: pd.DataFrame, arch: str) -> pd.Series:
    """An architecture's percent correct per seed (mean over its rows), indexed by seed."""
    rows = rows[rows["arch"] == arch]
    accuracy = pd.to_numeric(rows["percent_correct"], errors="coerce")
    return accuracy.groupby(rows["seed"]).mean().sort_index()


def retrained(rows: pd.DataFrame, arch: str) -> float:
    """Median number of parameters an architecture retrains in the transfer stage (NaN when
    the rows do not say)."""
    counts = pd.to_numeric(rows.loc[rows["arch"] == arch, "n_trainable"], errors="coerce")
    counts = counts[np.isfinite(counts)]
    return float(counts.median()) if len(counts) else np.nan


def more_accurate(fewer: bool) -> cl.Rule:
    """Claim 3's rule for a pair that retrains ``fewer`` parameters or not: the NM-RNN's
    accuracies greater (one-sided Mann–Whitney U, p < ALPHA) and ``fewer``."""

    def rule(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (cl.mann_whitney_p(x, y, "greater") < cl.ALPHA) & fewer

    return rule


def transfer_test(nm: pd.Series, baseline: pd.Series, n_nm: float, n_base: float) -> dict:
    """Claim 3's test: :func:`nmrnn.claims.compare` of the per-seed accuracies (one-sided, the
    NM-RNN greater) plus ``better`` (p < ALPHA), ``fewer`` (the NM-RNN retrains fewer parameters),
    ``holds`` (both) and the bootstrap columns of :func:`nmrnn.claims.decide`."""
    c = cl.compare(np.asarray(nm, float), np.asarray(baseline, float), alternative="greater")
    better = bool(np.isfinite(c["p_value"]) and c["p_value"] < cl.ALPHA)
    fewer = bool(np.isfinite(n_nm) and np.isfinite(n_base) and n_nm < n_base)
    return {**c, "better": better, "fewer": fewer, **cl.decide(nm, baseline, more_accurate(fewer))}


def _claim_row(frame: pd.DataFrame, claim: str, baseline: str, testset: str) -> dict | None:
    acc = {a: per_seed_accuracy(frame, a) for a in ("nmrnn", baseline)}
    if any(len(v) == 0 for v in acc.values()):
        return None
    n_nm, n_base = retrained(frame, "nmrnn"), retrained(frame, baseline)
    res = transfer_test(acc["nmrnn"], acc[baseline], n_nm, n_base)
    better, fewer = res["better"], res["fewer"]
    fmt_n = lambda n: "?" if not np.isfinite(n) else f"{n:.0f}"  # noqa: E731
    ratio = f" ({n_base / n_nm:.1f}x fewer)" if fewer and n_nm > 0 else ""
    values = cl.format_values({a: v.values for a, v in acc.items()}, "{:.1f}%")
    detail = "; ".join(
        f"{a} per seed " + ", ".join(f"{int(k)}: {x:.2f}" for k, x in v.items())
        for a, v in acc.items()
    )
    detail += (
        f"; accuracy greater: {better}; fewer retrained parameters: {fewer}"
        f" (nmrnn {fmt_n(n_nm)} vs {baseline} {fmt_n(n_base)})"
    )
    return {
        "claim": claim,
        "statement": (
            "After transfer to Memory Anti, the NM-RNN is more accurate than the "
            f"{arch_label(baseline)} while "
            "retraining far fewer parameters."
        ),
        "metric": (
            f"percent correct on Memory Anti after transfer ({testset} test set, atan2 rule; "
            "median across seeds) and parameters retrained in the transfer stage"
        ),
        "values": f"{values}; retrained: nmrnn {fmt_n(n_nm)}, {baseline} {fmt_n(n_base)}{ratio}",
        "seeds": f"nmrnn {len(acc['nmrnn'])}; {baseline} {len(acc[baseline])}",
        "test": (
            f"one-sided Mann-Whitney U, nmrnn > {baseline} (alpha {cl.ALPHA}), "
            f"and n_trainable nmrnn < {baseline}"
        ),
        "p_value": res["p_value"],
        **{k: res[k] for k in ("holds", *cl.UNCERTAINTY)},
        "detail": detail,
    }


def claims(metrics: pd.DataFrame) -> list[dict]:
    """Claim 3 (SPEC §6): rows "3-lrrnn", "3-vanilla", "3-lstm" on the generated test set and
    "3-frozen-testset" (NM-RNN vs LR-RNN on the authors' frozen test set, if scored).

    A row holds when the NM-RNN's per-seed Memory Anti accuracy is greater (one-sided
    Mann-Whitney U, p < ALPHA) AND it retrains fewer parameters. Architectures absent from the
    table are skipped.
    """
    needed = {"experiment", "arch", "seed", "task", "percent_correct"}
    if metrics is None or metrics.empty or not needed <= set(metrics.columns):
        return []
    if "checkpoint" in metrics.columns:  # with checkpoint selection: final, then selected
        rows = claims(metrics[metrics["checkpoint"] == "final"].drop(columns="checkpoint"))
        for row in claims(metrics[metrics["checkpoint"] == "selected"].drop(columns="checkpoint")):
            row["claim"] += "-selected"
            row["metric"] = (
                "parameters kept by checkpoint selection (select_best): " + row["metric"]
            )
            rows.append(row)
        return rows
    generated = transfer_rows(metrics, "generated")
    rows = [_claim_row(generated, f"3-{b}", b, "generated") for b in BASELINES]
    frozen = transfer_rows(metrics, "authors_frozen")
    rows.append(_claim_row(frozen, "3-frozen-testset", "lrrnn", "authors' frozen"))
    return [r for r in rows if r is not None]

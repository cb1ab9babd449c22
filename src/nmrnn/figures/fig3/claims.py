"""Figure 3's claims (SPEC §6 claims 1 and 2) from the tidy ``mwg`` metrics table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from nmrnn import claims as cl
from nmrnn.tasks import mwg

EXPERIMENT = "mwg"

# Claim 1-trained: a network "fits" the trained intervals when its median MSE across seeds is
# below this. The MWG target's variance over a trial is ≈ 0.22 (half the trial at -0.5, the rest
# ramping to +0.5; TARGET_VARIANCE below is computed from the test set), so 0.01 means the network
# explains ≳ 95% of the target's variance (an RMS error of 0.1 on an output range of 1).
FIT_THRESHOLD = 0.01
# Claim 2-lstm: "comparable" = the ratio of median extrapolation MSEs within [1/3, 3].
COMPARABLE_FACTOR = 3.0


def target_variance() -> float:
    """Mean over the 12 test trials of the target's variance over time (the MSE of the best
    constant output per trial)."""
    return float(np.asarray(mwg.test_set().targets)[..., 0].var(axis=1).mean())


def per_seed_group_mse(metrics: pd.DataFrame, arch: str, groups: Sequence[str]) -> pd.Series:
    """Mean MSE over the test intervals of ``groups`` for each seed of ``arch`` (index: seed).

    A seed with a NaN MSE on any of those intervals gets NaN (a diverged seed is not averaged
    away)."""
    rows = metrics[(metrics["arch"] == arch) & metrics["group"].isin(list(groups))]
    return rows.groupby("seed")["mse"].apply(lambda v: v.mean(skipna=False)).sort_index()


def both_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Claim 1-trained's rule: both medians below FIT_THRESHOLD."""
    return (np.median(x, axis=-1) < FIT_THRESHOLD) & (np.median(y, axis=-1) < FIT_THRESHOLD)


def not_worse(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Claim 2-vanilla's rule: the NM-RNN's median not above the baseline's."""
    return np.median(x, axis=-1) <= np.median(y, axis=-1)


def comparable(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Claim 2-lstm's rule: the ratio of medians within [1/COMPARABLE_FACTOR, COMPARABLE_FACTOR]."""
    ratio = cl.median_ratio(x, y)
    return (ratio >= 1 / COMPARABLE_FACTOR) & (ratio <= COMPARABLE_FACTOR)


_detail = cl.format_detail
_seeds_text = cl.format_seed_counts


def _available(metrics: pd.DataFrame, *archs: str) -> bool:
    return all((metrics["arch"] == a).any() for a in archs)


def claims(metrics: pd.DataFrame) -> list[dict]:
    """Claim rows for SPEC §6 claims 1 and 2 from the ``mwg`` metrics table.

    Per seed, an architecture's MSE on a group of intervals is the mean of its per-interval MSEs.
    Rows whose architectures are missing from the table are skipped. With a ``checkpoint``
    column (runs with checkpoint selection, ``select_best``), the rows are made for the final
    parameters (ids ``1-…``, ``2-…``) and again for the selected ones (ids ``…-selected``).
    """
    if "experiment" in metrics:
        metrics = metrics[metrics["experiment"] == EXPERIMENT]
    if "checkpoint" not in metrics:
        return _claim_rows(metrics)
    rows = _claim_rows(metrics[metrics["checkpoint"] == "final"])
    for row in _claim_rows(metrics[metrics["checkpoint"] == "selected"]):
        row["claim"] += "-selected"
        row["metric"] = "parameters kept by checkpoint selection (select_best): " + row["metric"]
        rows.append(row)
    return rows


def _claim_rows(metrics: pd.DataFrame) -> list[dict]:
    rows: list[dict] = []
    alpha = cl.ALPHA

    # 1-shorter / 1-longer: NM-RNN below LR-RNN on extrapolated intervals.
    if _available(metrics, "nmrnn", "lrrnn"):
        for group in ("shorter", "longer"):
            vals = {a: per_seed_group_mse(metrics, a, [group]) for a in ("nmrnn", "lrrnn")}
            c = cl.compare(vals["nmrnn"], vals["lrrnn"], "less")
            rows.append({
                "claim": f"1-{group}",
                "statement": f"MWG: on {group} (extrapolated) intervals the NM-RNN's loss is "
                             "below the parameter-matched LR-RNN's, across seeds",
                "metric": f"MSE on {group} intervals (mean over intervals per seed; median "
                          f"across seeds); median ratio nmrnn/lrrnn {c['ratio']:.3g}",
                "values": cl.format_values({a: v.to_numpy() for a, v in vals.items()}),
                "seeds": _seeds_text(vals),
                "test": f"one-sided Mann-Whitney U, nmrnn < lrrnn, holds if p < {alpha} "
                        "and median ratio < 1",
                "p_value": c["p_value"],
                **cl.decide(vals["nmrnn"], vals["lrrnn"], cl.lower),
                "detail": _detail(vals, f"median ratio {c['ratio']:.3g}"),
            })  # fmt: skip

        # 1-trained: both fit the trained intervals.
        vals = {a: per_seed_group_mse(metrics, a, ["trained"]) for a in ("nmrnn", "lrrnn")}
        c = cl.compare(vals["nmrnn"], vals["lrrnn"], "two-sided")
        var = target_variance()
        rows.append({
            "claim": "1-trained",
            "statement": f"MWG: on the trained intervals both the NM-RNN and the LR-RNN fit "
                         f"(median MSE across seeds < {FIT_THRESHOLD:g}, i.e. under "
                         f"{FIT_THRESHOLD / var:.1%} of the target's variance {var:.3f})",
            "metric": "MSE on trained intervals (12-18; mean over intervals per seed; median "
                      "across seeds)",
            "values": cl.format_values({a: v.to_numpy() for a, v in vals.items()}),
            "seeds": _seeds_text(vals),
            "test": f"threshold: both medians < {FIT_THRESHOLD:g}; p_value: two-sided "
                    "Mann-Whitney U nmrnn vs lrrnn (information only)",
            "p_value": c["p_value"],
            **cl.decide(vals["nmrnn"], vals["lrrnn"], both_fit),
            "detail": _detail(vals, f"target variance {var:.4f} (MSE of the best constant "
                                    "output per trial)"),
        })  # fmt: skip

    extrapolated = ["shorter", "longer"]
    # 2-vanilla: at least as good as the vanilla RNN.
    if _available(metrics, "nmrnn", "vanilla"):
        vals = {a: per_seed_group_mse(metrics, a, extrapolated) for a in ("nmrnn", "vanilla")}
        c = cl.compare(vals["nmrnn"], vals["vanilla"], "less")
        rows.append({
            "claim": "2-vanilla",
            "statement": "MWG: on extrapolated intervals the NM-RNN is at least as good as the "
                         "parameter-matched vanilla RNN (median MSE across seeds not above it)",
            "metric": "MSE on shorter + longer intervals (mean over the 8 intervals per seed; "
                      f"median across seeds); median ratio nmrnn/vanilla {c['ratio']:.3g}",
            "values": cl.format_values({a: v.to_numpy() for a, v in vals.items()}),
            "seeds": _seeds_text(vals),
            "test": "holds if median nmrnn <= median vanilla; p_value: one-sided Mann-Whitney U "
                    "nmrnn < vanilla (is it also significantly better?)",
            "p_value": c["p_value"],
            **cl.decide(vals["nmrnn"], vals["vanilla"], not_worse),
            "detail": _detail(vals, f"median ratio {c['ratio']:.3g}"),
        })  # fmt: skip

    # 2-lstm: comparable to the LSTM.
    if _available(metrics, "nmrnn", "lstm"):
        vals = {a: per_seed_group_mse(metrics, a, extrapolated) for a in ("nmrnn", "lstm")}
        c = cl.compare(vals["nmrnn"], vals["lstm"], "two-sided")
        ratio = c["ratio"]
        rows.append({
            "claim": "2-lstm",
            "statement": "MWG: on extrapolated intervals the NM-RNN is comparable to the "
                         "parameter-matched LSTM (ratio of median MSEs within "
                         f"[1/{COMPARABLE_FACTOR:g}, {COMPARABLE_FACTOR:g}])",
            "metric": "MSE on shorter + longer intervals (mean over the 8 intervals per seed; "
                      f"median across seeds); median ratio nmrnn/lstm {ratio:.3g}",
            "values": cl.format_values({a: v.to_numpy() for a, v in vals.items()}),
            "seeds": _seeds_text(vals),
            "test": f"median ratio in [1/{COMPARABLE_FACTOR:g}, {COMPARABLE_FACTOR:g}]; "
                    "p_value: two-sided Mann-Whitney U nmrnn vs lstm (information only)",
            "p_value": c["p_value"],
            **cl.decide(vals["nmrnn"], vals["lstm"], comparable),
            "detail": _detail(vals, f"median ratio {ratio:.3g}" + (
                " (outside the band because the NM-RNN is better)"
                if np.isfinite(ratio) and ratio < 1 / COMPARABLE_FACTOR else "")),
        })  # fmt: skip
    return [{k: row[k] for k in cl.COLUMNS} for row in rows]

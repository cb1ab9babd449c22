"""Which choice decides a claim: the same claim test under several protocols side by side.

A *comparison* names the two sides of a claim test (an NM-RNN and a baseline, each an
(experiment, architecture, checkpoint) of this run, or of a tidy metrics table written by another
run such as ``figures/authors/metrics/mwg.csv``) under a labelled *variant* of the protocol: the
matched protocol, one switch towards the authors' code, a control, or the authors' protocol. For
each comparison and claim, :func:`protocol_table` gives the per-side medians across seeds, their
ratio, the one-sided Mann–Whitney p-value and whether the claim holds, decided exactly as in
the claims table (:func:`nmrnn.figures.fig3.claims.claims`).

Claims covered: ``1-shorter``, ``1-longer`` (NM-RNN MSE below the baseline's on extrapolated
intervals) and ``1-trained`` (both fit the trained intervals) on MWG metrics, the default for
sides with MWG rows; ``4-lstm`` (the NM-RNN reaches LSTM-level test MSE) and ``4-lrrnn`` (below
the baseline, one-sided) on EFT metrics, the default for sides with EFT rows; ``3-transfer``
(after transfer to Memory Anti the NM-RNN is more accurate, one-sided, and retrains fewer
parameters; generated test set) and ``3-frozen-testset`` (the same on the authors' frozen test
set) on multitask metrics, the default for sides with multitask rows. An EFT side's
``arch: best`` is the NM-RNN configuration (``nmrnn*``) with the lowest median test MSE in its
source and checkpoint, as in the claims table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nmrnn import claims as cl
from nmrnn.figures.fig3.claims import both_fit, per_seed_group_mse
from nmrnn.figures.fig4.claims import (
    more_accurate,
    per_seed_accuracy,
    retrained,
    transfer_rows,
    transfer_test,
)
from nmrnn.figures.fig5.claims import best_of, lstm_level, reaches_lstm
from nmrnn.io import (
    atomic_path,
    environment_info,
    read_csv_checked,
    read_seed_json,
    training_time,
    unreadable,
    write_json,
)

MWG_CLAIMS = ("1-shorter", "1-longer", "1-trained")
EFT_CLAIMS = ("4-lstm", "4-lrrnn")
MULTITASK_CLAIMS = ("3-transfer", "3-frozen-testset")
CLAIMS = MWG_CLAIMS + MULTITASK_CLAIMS + EFT_CLAIMS
TESTSET = {"3-transfer": "generated", "3-frozen-testset": "authors_frozen"}
COLUMNS = (
    "claim",
    "variant",
    "protocol",
    "nm",
    "baseline",
    "n_nm",
    "n_baseline",
    "median_nm",
    "median_baseline",
    "ratio",
    "p_value",
    "holds",
    "ratio_ci_low",
    "ratio_ci_high",
    "p_holds",
    "seeds_to_decide",  # undecided rows only (nmrnn.claims.seeds_to_decide): seeds per side
)
SEED_COLUMNS = ("claim", "variant", "side", "seed", "value")
PROTOCOLS = ("matched", "switch", "control", "authors", "extension")


def side_label(side: Mapping[str, Any], arch: str | None = None) -> str:
    """'experiment/arch[ (selected)]' or 'table:arch[ (selected)]'; ``arch`` names the
    architecture an ``arch: best`` side resolved to."""
    where = f"{side['table']}:" if side.get("table") else f"{side.get('experiment', 'mwg')}/"
    checkpoint = side.get("checkpoint", "final")
    name = arch or side["arch"]
    return f"{where}{name}" + ("" if checkpoint == "final" else f" ({checkpoint})")


def side_rows(metrics: pd.DataFrame, side: Mapping[str, Any]) -> pd.DataFrame:
    """The metrics rows of one side: its experiment (or table), architecture and checkpoint.

    A table without a ``checkpoint`` column holds final parameters only."""
    rows = metrics
    if not side.get("table") and "experiment" in rows:
        rows = rows[rows["experiment"] == side.get("experiment", "mwg")]
    checkpoint = side.get("checkpoint", "final")
    if "checkpoint" in rows:
        rows = rows[rows["checkpoint"].fillna("final") == checkpoint]
    elif checkpoint != "final":
        rows = rows.iloc[0:0]
    arch = side["arch"]
    if arch == "best" and not rows.empty:
        configs = [a for a in dict.fromkeys(rows["arch"]) if str(a).startswith("nmrnn")]
        per_arch = {a: rows.loc[rows["arch"] == a, "mse"].to_numpy(float) for a in configs}
        arch = best_of(per_arch, configs)
    rows = rows[rows["arch"] == arch]
    if rows.empty:
        raise ValueError(f"no metrics rows for {side_label(side)}")
    return rows


def per_seed(rows: pd.DataFrame, claim: str) -> pd.Series:
    """Per-seed values of a side for a claim: MWG MSE on the claim's interval group, percent
    correct on Memory Anti after transfer, or EFT test MSE."""
    if claim in MWG_CLAIMS:
        return per_seed_group_mse(rows, rows["arch"].iloc[0], _groups(claim))
    if claim in MULTITASK_CLAIMS:
        return per_seed_accuracy(transfer_rows(rows, TESTSET[claim]), rows["arch"].iloc[0])
    return rows.groupby("seed")["mse"].first().sort_index()


def n_retrained(rows: pd.DataFrame, claim: str) -> float:
    """Median number of parameters a multitask side retrains in the transfer stage."""
    return retrained(transfer_rows(rows, TESTSET[claim]), rows["arch"].iloc[0])


def _is_mwg(rows: pd.DataFrame) -> bool:
    """Whether a side's rows are MWG rows (interval groups), not EFT rows: a run's metrics
    combine both tasks, so the column alone does not tell (EFT rows hold no group)."""
    return "group" in rows and bool(rows["group"].notna().any())


def _is_multitask(rows: pd.DataFrame) -> bool:
    """Whether a side's rows are multitask rows (per-task accuracy)."""
    return "percent_correct" in rows and bool(rows["percent_correct"].notna().any())


def default_claims(rows: pd.DataFrame) -> tuple[str, ...]:
    """The claims a comparison tests unless it names them, from its NM-RNN side's rows."""
    if _is_mwg(rows):
        return MWG_CLAIMS
    if _is_multitask(rows):
        frozen = "testset" in rows and (rows["testset"] == "authors_frozen").any()
        return MULTITASK_CLAIMS if frozen else MULTITASK_CLAIMS[:1]
    return EFT_CLAIMS[:1]


def _groups(claim: str) -> list[str]:
    return [claim.split("-", 1)[1]]


def compare_claim(
    claim: str,
    nm: pd.Series,
    baseline: pd.Series,
    retrained_counts: tuple[float, float] | None = None,
) -> dict:
    """One claim test on per-seed values, decided by the claims table's rule for it, with the
    bootstrap interval of the median ratio and P(holds) (:func:`nmrnn.claims.decide`).
    ``retrained_counts`` (claim 3 only): the parameters the NM-RNN and the baseline retrain in
    transfer."""
    if claim not in CLAIMS:
        raise ValueError(f"unknown claim {claim!r}; choose one of {CLAIMS}")
    if claim == "1-trained":
        rule = both_fit
        c = {**cl.compare(nm, baseline, "two-sided"), **cl.decide(nm, baseline, rule)}
    elif claim == "4-lstm":
        rule = reaches_lstm
        c, _ = lstm_level(pd.Series(nm), pd.Series(baseline))
    elif claim in MULTITASK_CLAIMS:
        if retrained_counts is None:
            raise ValueError(f"claim {claim} needs the retrained-parameter counts")
        c = transfer_test(nm, baseline, *retrained_counts)
        rule = more_accurate(c["fewer"])
    else:
        rule = cl.lower
        c = {**cl.compare(nm, baseline, "less"), **cl.decide(nm, baseline, rule)}
    to_decide = np.nan
    if cl.undecided(c["p_holds"]):
        to_decide = cl.seeds_to_decide(nm, baseline, rule)
    return {
        "n_nm": int(np.isfinite(np.asarray(nm, float)).sum()),
        "n_baseline": int(np.isfinite(np.asarray(baseline, float)).sum()),
        "median_nm": c["median_a"],
        "median_baseline": c["median_b"],
        "ratio": c["ratio"],
        "p_value": c["p_value"],
        "holds": c["holds"],
        "ratio_ci_low": c["ratio_ci_low"],
        "ratio_ci_high": c["ratio_ci_high"],
        "p_holds": c["p_holds"],
        "seeds_to_decide": to_decide,
    }


def protocol_table(
    run_metrics: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame],
    comparisons: Sequence[Mapping[str, Any]],
) -> tuple[pd.DataFrame, dict]:
    """The comparison table (a row per comparison and claim, :data:`COLUMNS`) and the per-seed
    values behind it (``{(variant, claim): (nm values, baseline values)}``, each a Series indexed
    by seed; :func:`seed_table` makes them a table).

    ``run_metrics``: this run's per-seed metrics rows (every experiment); ``tables``: other runs'
    tidy metrics tables by the name the comparisons use. No comparisons is a ValueError (an
    empty table would replace a committed one)."""
    if not comparisons:
        raise ValueError(
            "no protocol comparisons given (a profile names them, e.g. profiles/protocols/eft)"
        )
    rows, points = [], {}
    for comp in comparisons:
        sides = []
        for key in ("nm", "baseline"):
            side = comp[key]
            source = tables[side["table"]] if side.get("table") else run_metrics
            sides.append(side_rows(source, side))
        limit = comp.get("seeds")  # only seeds 0 .. limit-1 of each side
        for claim in comp.get("claims", default_claims(sides[0])):
            nm, base = (per_seed(r, claim) for r in sides)
            if limit is not None:
                nm, base = nm[nm.index < limit], base[base.index < limit]
            counts = None
            if claim in MULTITASK_CLAIMS:
                counts = tuple(n_retrained(r, claim) for r in sides)
            rows.append({
                "claim": claim,
                "variant": comp["variant"],
                "protocol": comp.get("protocol", "switch"),
                "nm": side_label(comp["nm"], sides[0]["arch"].iloc[0]),
                "baseline": side_label(comp["baseline"], sides[1]["arch"].iloc[0]),
                **compare_claim(claim, nm, base, counts),
            })  # fmt: skip
            points[(comp["variant"], claim)] = (nm.astype(float), base.astype(float))
    return pd.DataFrame(rows, columns=list(COLUMNS)), points


def seed_table(points: Mapping) -> pd.DataFrame:
    """The per-seed values behind ``protocols.csv`` as a tidy table (:data:`SEED_COLUMNS`), so a
    later reader can recompute every row's test and bootstrap without the runs."""
    rows = [
        {"claim": claim, "variant": variant, "side": side, "seed": int(seed), "value": value}
        for (variant, claim), values in points.items()
        for side, series in zip(("nm", "baseline"), values, strict=True)
        for seed, value in series.items()
    ]
    return pd.DataFrame(rows, columns=list(SEED_COLUMNS))


def protocols_provenance(meta_files: Sequence[str], table_files: Mapping[str, str]) -> dict:
    """What ``protocols.csv`` was computed from: per trained (experiment, architecture) of this
    run its seeds, the commits its seeds were trained at and their summed training time (every
    attempt, or the last one for a seed trained before that was recorded); the other runs'
    tables by path (their own ``PROVENANCE.json`` lies beside them)."""
    runs: dict[str, dict[str, Any]] = {}
    for f in meta_files:
        meta = read_seed_json(f)  # its experiment, architecture and seed checked against f
        try:
            key = f"{meta['experiment']}/{meta['arch']}"
            seed = int(meta["seed"])
            spent, last_only = training_time(meta)
        except (OSError, ValueError, KeyError) as e:
            raise unreadable(f, f"not a seed's meta.json ({type(e).__name__}: {e})") from e
        run = runs.setdefault(
            key, {"seeds": [], "git_commits": [], "training_s": 0.0, "last_attempt_only": 0}
        )
        run["seeds"].append(seed)
        commit = str(meta.get("git_commit", "unknown"))
        if commit not in run["git_commits"]:
            run["git_commits"].append(commit)
        run["training_s"] += spent
        run["last_attempt_only"] += int(last_only)
    for run in runs.values():
        run["seeds"].sort()
        run["training_s"] = round(run["training_s"], 1)
    return {
        "runs": dict(sorted(runs.items())),
        "training_s_sum": round(sum(r["training_s"] for r in runs.values()), 1),
        "tables": dict(table_files),
        "written": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rendered_by": environment_info(),
    }


def write_protocols(
    metrics_files: Sequence[str],
    table_files: Mapping[str, str],
    comparisons: Sequence[Mapping[str, Any]],
    csv_out: str,
    png_out: str,
    meta_files: Sequence[str] | None = None,
    provenance_out: str | None = None,
    seeds_out: str | None = None,
) -> pd.DataFrame:
    """Read the inputs (checked tidy tables), write ``protocols.csv`` and ``protocols.png``, with
    ``provenance_out`` the provenance of the runs behind them (:func:`protocols_provenance` of
    ``meta_files``) and with ``seeds_out`` the per-seed values (:func:`seed_table`)."""
    frames = [read_csv_checked(f) for f in metrics_files]
    run_metrics = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    tables = {
        name: read_csv_checked(path, hint=f"run the profile that writes it ({name})")
        for name, path in table_files.items()
    }
    table, points = protocol_table(run_metrics, tables, comparisons)
    with atomic_path(csv_out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    if seeds_out is not None:
        with atomic_path(seeds_out) as tmp:
            seed_table(points).to_csv(tmp, index=False, float_format="%.6g")
    plot_protocols(table, points, png_out)
    if provenance_out is not None:
        write_json(provenance_out, protocols_provenance(meta_files or [], table_files))
    return table


def plot_protocols(table: pd.DataFrame, points: Mapping, png_out: str) -> None:
    """Per claim, the NM-RNN/baseline ratio under each variant: each NM-RNN seed's value over
    the baseline's median (dots) and the ratio of medians (bar); filled where the claim holds.
    The matched and authors' protocols are marked."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    claims = [c for c in CLAIMS if c in set(table["claim"])]
    variants = list(dict.fromkeys(table["variant"]))
    # room for the variant labels (left) beside panels of a fixed width
    label_in = 0.075 * max(len(str(v)) + 10 for v in variants)
    fig, axes = plt.subplots(
        1,
        len(claims),
        figsize=(label_in + 4.2 * len(claims), 0.45 * len(variants) + 1.9),
        sharey=True,
    )
    axes = np.atleast_1d(axes)
    colours = {
        "matched": "#1f77b4",
        "authors": "#d62728",
        "switch": "#7f7f7f",
        "control": "#2ca02c",
        "extension": "#9467bd",
    }
    for ax, claim in zip(axes, claims, strict=True):
        rows = table[table["claim"] == claim].set_index("variant")
        for y, variant in enumerate(variants):
            if variant not in rows.index:
                continue
            row = rows.loc[variant]
            colour = colours.get(row["protocol"], "#7f7f7f")
            nm, base = (np.asarray(v, float) for v in points[(variant, claim)])
            reference = np.nanmedian(base) if np.isfinite(base).any() else np.nan
            ax.scatter(nm / reference, np.full(len(nm), y), s=14, color=colour, alpha=0.7)
            ax.barh(y, row["ratio"], height=0.5, left=0, color=colour if row["holds"] else "none",
                    edgecolor=colour, alpha=0.35 if row["holds"] else 1.0)  # fmt: skip
            low, high = row.get("ratio_ci_low", np.nan), row.get("ratio_ci_high", np.nan)
            if np.isfinite(low) and np.isfinite(high):  # the 95% bootstrap interval
                ax.plot([low, high], [y + 0.32, y + 0.32], color=colour, lw=1.2)
            if np.isfinite(row.get("p_holds", np.nan)):
                ax.annotate(f"P={row['p_holds']:.2f}", (1.0, y - 0.3), ha="right", va="center",
                            xycoords=("axes fraction", "data"), xytext=(-2, 0),
                            textcoords="offset points", fontsize=7, color=colour)  # fmt: skip
        ax.axvline(1.0, color="black", lw=0.8, ls="--")
        if claim in MULTITASK_CLAIMS:  # accuracy ratios: bounded, a linear axis from 0
            ax.set_xlim(left=0)
            ax.set_xlabel("NM-RNN accuracy / baseline's median")
        else:  # MSE ratios span decades
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no crowded labels
            ax.set_xlabel("NM-RNN MSE / baseline's median")
        ax.set_title(claim)
        ax.set_yticks(range(len(variants)))
    axes[0].set_yticks(range(len(variants)))
    protocol_of = dict(zip(table["variant"], table["protocol"], strict=False))
    labels = []
    for v in variants:
        mark = {"matched": " [matched]", "authors": " [authors]"}.get(protocol_of[v], "")
        labels.append(v + mark)
    axes[0].set_yticklabels(labels)
    axes[0].invert_yaxis()
    fig.suptitle(
        "Claims under each protocol. Filled bar: the claim holds; dots: NM-RNN seeds;\n"
        "line: 95% bootstrap interval of the ratio; P: fraction of resampled seed sets where it "
        "holds",
        fontsize=9,
    )
    fig.tight_layout()
    Path(png_out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(png_out) as tmp:
        fig.savefig(tmp, dpi=150, format="png")
    plt.close(fig)

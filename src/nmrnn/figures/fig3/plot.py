"""Figure 3: Measure-Wait-Go. Draws the analysis of :mod:`nmrnn.figures.fig3.analyse` and the
``mwg`` metrics table: (A) task, (B) rank-1 gain vs theory, (C) MSE by interval group, (D) outputs,
(E) gains, (F) gain ablations, (G) produced vs true interval."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from nmrnn.figures.style import ARCH_COLORS, arch_label, empty_panel, panel_letter, save_figure

matplotlib.use("Agg")

EXTRA_NM_COLORS = ("#8c1d18", "#f4a582", "#e7298a", "#b35806")
GROUPS = ("shorter", "trained", "longer")
TRAINED_SPAN = (12, 18)
INPUT_COLORS = ("#4c72b0", "#dd8452", "#55a868")


def arch_color(arch: str, order: list[str] | None = None) -> str:
    """The figure-wide colour of an architecture (unknown NM-RNN variants: other reds/oranges)."""
    if arch in ARCH_COLORS:
        return ARCH_COLORS[arch]
    extras = [a for a in (order or [arch]) if a not in ARCH_COLORS]
    i = extras.index(arch) if arch in extras else 0
    return EXTRA_NM_COLORS[i % len(EXTRA_NM_COLORS)]


def _strings(a) -> list[str]:
    return [str(v) for v in np.atleast_1d(np.asarray(a))]


def _interval_colors(intervals):
    """A colour per test interval (viridis) and a matching mappable for a colour bar."""
    intervals = np.asarray(intervals)
    colors = sns.color_palette("viridis", len(intervals))
    step = np.diff(intervals).min() if len(intervals) > 1 else 1
    bounds = np.r_[intervals - step / 2, intervals[-1] + step / 2]
    mappable = ScalarMappable(BoundaryNorm(bounds, len(intervals)), ListedColormap(colors))
    return colors, mappable


def _missing(ax, text):
    empty_panel(ax, text, fontsize=10)


# ------------------------------------------------------------------------------------ panels


def draw_task(ax_in, ax_out, analysis, interval=14):
    """(A) The three input pulses and the target ramp of one test trial."""
    meta, task = analysis["meta"], analysis["task"]
    intervals = np.asarray(meta["intervals"])
    b = int(np.argmin(np.abs(intervals - interval)))
    inputs, target = np.asarray(task["inputs"])[b], np.asarray(task["targets"])[b]
    names = _strings(task.get("input_names", ["measure", "wait", "go"]))
    t = np.arange(target.shape[0])
    for ch in range(inputs.shape[1]):
        on = np.flatnonzero(inputs[:, ch])
        color = INPUT_COLORS[ch % len(INPUT_COLORS)]
        ax_in.vlines(on, 0, inputs[on, ch], color=color, lw=2.5, label=names[ch])
        for tt in on:
            ax_in.text(tt, inputs[tt, ch] * 1.04, names[ch], color=color, ha="center",
                       va="bottom", fontsize=8.5)  # fmt: skip
    tm, tg = int(meta["t_measure"][b]), int(meta["t_go"][b])
    span = int(intervals[b])
    arrow = {"arrowstyle": "<->", "color": "0.3"}
    ax_in.annotate("", (tm + span, 5), (tm, 5), arrowprops=arrow)
    ax_in.text(tm + span / 2, 5.6, f"I = {span}", ha="center", fontsize=8.5)
    ax_in.annotate("", (tg, 5), (tm + span, 5), arrowprops=arrow)
    ax_in.text((tm + span + tg) / 2, 5.6, f"{tg - tm - span}", ha="center", fontsize=8.5)
    ax_in.set_ylim(0, 14)
    ax_in.set_ylabel("input")
    ax_in.set_xticklabels([])
    ax_out.plot(t, target, color="k", lw=1.8)
    ax_out.annotate("", (tg + span, 0.62), (tg, 0.62), arrowprops=arrow)
    ax_out.text(tg + span / 2, 0.7, f"ramp for I = {span}", ha="center", fontsize=8.5)
    ax_out.set_ylim(-0.65, 0.95)
    ax_out.set_ylabel("target")
    ax_out.set_xlabel("time (steps)")
    for ax in (ax_in, ax_out):
        ax.set_xlim(0, target.shape[0] - 1)
        sns.despine(ax=ax)
    ax_in.set_title(f"one test trial: t_m = {tm}, I = {span} (trained I: 12–18; tested: 4–26)",
                    fontsize=10)  # fmt: skip


def _robust_limits(*curves, base=(0.0, 1.0), clip=(-1.5, 2.5)):
    vals = np.concatenate([np.asarray(c, float).ravel() for c in curves])
    vals = vals[np.isfinite(vals)]
    lo, hi = base
    if vals.size:
        lo = min(lo, np.percentile(vals, 2))
        hi = max(hi, np.percentile(vals, 98))
    lo, hi = max(lo, clip[0]), min(hi, clip[1])
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def draw_rank1_theory(axes, analysis):
    """(B) Trained rank-1 gain after go against the exact and approximate optimal gain."""
    r1 = analysis.get("rank1")
    if not r1 or not np.size(r1.get("intervals", [])):
        for ax in axes:
            _missing(ax, "no rank-1 NM-RNN in this run")
        return
    intervals = np.atleast_1d(r1["intervals"])
    t_go = np.atleast_1d(r1["t_go"])
    T = np.asarray(r1["s_trained"]).shape[1]
    color = arch_color("nmrnn_rank1")
    for j, ax in enumerate(axes):
        if j >= len(intervals):
            ax.set_axis_off()
            continue
        interval, tg = int(intervals[j]), int(t_go[j])
        t = np.arange(T) - tg
        trained, exact = r1["s_trained"][j], r1["s_exact"][j]
        approx = r1["s_approx"][j]
        ax.axhspan(0, 1, color="0.93", lw=0, zorder=0)
        ax.plot(t, trained, color=color, lw=2.2, label="trained s(t)")
        ax.plot(t, exact, color="k", lw=1.3, label="theory, exact (x⊥ kept)")
        ax.plot(t, approx, color="0.45", lw=1.1, ls="--", label="theory, approx. formula")
        ax.axvline(interval, color="0.5", lw=0.8, ls=":")
        ax.set_ylim(*_robust_limits(trained, exact))
        ax.set_xlim(0, T - 1 - tg)
        kind = "trained" if TRAINED_SPAN[0] <= interval <= TRAINED_SPAN[1] else "extrapolated"
        ax.set_title(f"I = {interval} ({kind})", fontsize=10)
        ax.set_xlabel("steps after go")
        corr = float(np.atleast_1d(r1.get("corr_exact_postgo", [np.nan]))[j])
        rmse = float(np.atleast_1d(r1.get("rmse_exact_postgo", [np.nan]))[j])
        ax.text(0.97, 0.04, f"vs exact: r = {corr:.2f}\nRMSE = {rmse:.2g}", ha="right",
                va="bottom", fontsize=8, transform=ax.transAxes,
                bbox={"fc": "white", "ec": "none", "alpha": 0.8})  # fmt: skip
        sns.despine(ax=ax)
    axes[0].set_ylabel(f"gain s (seed {int(r1['seed'])})")
    axes[0].legend(fontsize=7.5, loc="upper right", framealpha=0.85, edgecolor="none")


def group_mse_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per (arch, seed, group) mean MSE over the group's test intervals."""
    return metrics.groupby(["arch", "seed", "group"], as_index=False)["mse"].mean()


def _arch_order(metrics: pd.DataFrame, analysis) -> list[str]:
    from_analysis = _strings(analysis.get("meta", {}).get("archs", []))
    present = [a for a in from_analysis if (metrics["arch"] == a).any()]
    return present + [a for a in metrics["arch"].unique() if a not in present]


def _n_params(metrics, arch):
    if "n_parameters" not in metrics:
        return None
    vals = metrics.loc[metrics["arch"] == arch, "n_parameters"].dropna()
    return int(vals.iloc[0]) if len(vals) else None


def draw_group_mse(ax, metrics, archs):
    """(C) MSE per architecture on shorter / trained / longer intervals: a dot per seed, a bar at
    the median; log scale."""
    table = group_mse_table(metrics)
    width = 0.8 / max(len(archs), 1)
    rng = np.random.default_rng(0)
    for g, group in enumerate(GROUPS):
        if group == "trained":
            ax.axvspan(g - 0.45, g + 0.45, color="0.94", lw=0, zorder=0)
        for a, arch in enumerate(archs):
            vals = table[(table["arch"] == arch) & (table["group"] == group)]["mse"].to_numpy()
            vals = vals[np.isfinite(vals) & (vals > 0)]
            if not vals.size:
                continue
            x = g - 0.4 + width * (a + 0.5)
            jitter = rng.uniform(-0.22, 0.22, vals.size) * width
            color = arch_color(arch, archs)
            ax.scatter(x + jitter, vals, s=16, color=color, alpha=0.75, lw=0, zorder=3)
            ax.hlines(np.median(vals), x - 0.38 * width, x + 0.38 * width, color=color, lw=2.5,
                      zorder=4)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xticks(range(len(GROUPS)))
    ax.set_xticklabels(["shorter\n(I = 4–10)", "trained\n(I = 12–18)", "longer\n(I = 20–26)"])
    ax.set_xlim(-0.5, len(GROUPS) - 0.5)
    ax.set_ylabel("test MSE (mean over the group's intervals)")
    for arch in archs:
        n = _n_params(metrics, arch)
        label = arch_label(arch) + (f" ({n} params)" if n else "")
        ax.scatter([], [], s=20, color=arch_color(arch, archs), label=label)
    ax.plot([], [], color="k", lw=2.5, label="median across seeds")
    ax.legend(fontsize=7.5, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    n_seeds = metrics.groupby("arch")["seed"].nunique()
    ax.set_title("loss across seeds (dots: seeds; n = " + ", ".join(
        f"{int(n_seeds.get(a, 0))}" for a in archs) + ")", fontsize=10)  # fmt: skip
    sns.despine(ax=ax)


def draw_produced_interval(ax, metrics, archs):
    """(G) Produced vs true interval: per-seed points and the median across seeds."""
    if "produced_interval" not in metrics:
        _missing(ax, "no produced_interval in the metrics table")
        return
    ax.axvspan(*TRAINED_SPAN, color="0.94", lw=0, zorder=0)
    intervals = np.sort(metrics["interval"].unique())
    ax.plot(intervals, intervals, color="k", ls="--", lw=1, label="identity")
    offsets = np.linspace(-0.3, 0.3, max(len(archs), 1))
    for a, arch in enumerate(archs):
        rows = metrics[metrics["arch"] == arch]
        color = arch_color(arch, archs)
        ax.scatter(rows["interval"] + offsets[a], rows["produced_interval"], s=9, color=color,
                   alpha=0.4, lw=0)  # fmt: skip
        med = rows.groupby("interval")["produced_interval"].median()
        ax.plot(med.index + offsets[a], med.to_numpy(), "-o", color=color, ms=3.5, lw=1.5,
                label=arch_label(arch))  # fmt: skip
    ax.set_xlabel("true interval I")
    ax.set_ylabel("produced interval")
    top = max(intervals.max() * 1.6, 10)
    ax.set_ylim(0, top)
    ax.set_xlim(intervals.min() - 1.5, intervals.max() + 1.5)
    ax.set_title("produced interval (90% crossing / 0.9)", fontsize=10)
    ax.legend(fontsize=7.5, frameon=False, loc="upper left")
    clipped = (metrics["produced_interval"] > top).sum()
    if clipped:
        ax.text(0.98, 0.02, f"{clipped} points above {top:.0f} not shown", ha="right",
                fontsize=7, color="0.4", transform=ax.transAxes)  # fmt: skip
    sns.despine(ax=ax)


def _draw_outputs(ax, y, targets, colors, title=None):
    T = targets.shape[1]
    t = np.arange(T)
    for b in range(targets.shape[0]):
        ax.plot(t, targets[b], color="0.6", lw=0.8, ls="--")
        ax.plot(t, y[b], color=colors[b], lw=1.3)
    ax.set_xlim(0, T - 1)
    ax.set_ylim(-0.8, 0.8)
    if title:
        ax.set_title(title, fontsize=10)
    sns.despine(ax=ax)


def draw_outputs(axes, analysis, archs, colors):
    """(D) Outputs (solid, coloured by interval) and targets (dashed) of each architecture's best
    seed on the 12 test intervals."""
    targets = np.asarray(analysis["task"]["targets"])
    for ax, arch in zip(axes, archs, strict=False):
        entry = analysis.get("archs", {}).get(arch)
        if entry is None:
            _missing(ax, f"{arch_label(arch)}: not analysed")
            continue
        mse = np.asarray(entry["mse"])
        best = int(entry["best_seed"])
        seeds = list(np.atleast_1d(entry["seeds"]).astype(int))
        b = seeds.index(best) if best in seeds else 0
        title = f"{arch_label(arch)} (seed {best}, MSE {np.nanmean(mse[b]):.2g})"
        _draw_outputs(ax, np.asarray(entry["y_best"]), targets, colors, title)
        ax.title.set_color(arch_color(arch, archs))
        ax.set_xlabel("time (steps)")
    for ax in axes[len(archs) :]:
        ax.set_axis_off()
    axes[0].set_ylabel("output y (dashed: target)")


def draw_gains(axes, analysis, colors):
    """(E) s_k(t) of the NM-RNN for the 12 intervals, aligned to trial start and to go.

    axes: (K, 2) array."""
    nm = analysis.get("nmrnn")
    if not nm:
        for ax in np.ravel(axes):
            _missing(ax, "no NM-RNN in this run")
        return
    s = np.asarray(nm["s"])
    t_go = np.asarray(analysis["meta"]["t_go"])
    t_measure = np.asarray(analysis["meta"]["t_measure"])
    T, K = s.shape[1], s.shape[2]
    t = np.arange(T)
    for k in range(min(K, axes.shape[0])):
        ax_start, ax_go = axes[k]
        for b in range(s.shape[0]):
            ax_start.plot(t, s[b, :, k], color=colors[b], lw=1.1)
            ax_go.plot(t - t_go[b], s[b, :, k], color=colors[b], lw=1.1)
        for tm in np.unique(t_measure):
            ax_start.axvline(tm, color="0.4", lw=0.8, ls=":")
        ax_go.axvline(0, color="0.4", lw=0.8, ls=":")
        ax_start.set_ylabel(f"$s_{k + 1}$")
        ax_start.set_xlim(0, T - 1)
        ax_go.set_xlim(-(t_go.max()), T - 1 - t_go.min())
        for ax in (ax_start, ax_go):
            sns.despine(ax=ax)
            if k < K - 1:
                ax.set_xticklabels([])
    axes[0, 0].set_title(f"aligned to trial start (dotted: measure), seed {int(nm['seed'])}",
                         fontsize=9.5)  # fmt: skip
    axes[0, 1].set_title("aligned to go (dotted)", fontsize=9.5)
    axes[-1, 0].set_xlabel("time (steps)")
    axes[-1, 1].set_xlabel("steps from go")


def draw_ablations(axes, analysis, colors):
    """(F) NM-RNN outputs with one gain s_k ablated: held at 0 (top row) or held from the measure
    pulse on at its pre-measure value (bottom row). axes: (2, K) array."""
    nm = analysis.get("nmrnn")
    if not nm:
        for ax in np.ravel(axes):
            _missing(ax, "no NM-RNN in this run")
        return
    targets = np.asarray(analysis["task"]["targets"])
    intact = float(np.mean(nm["mse_intact"]))
    rows = (("zero", "= 0"), ("premeasure", "held at pre-measure value"))
    K = np.asarray(nm["y_zero"]).shape[0]
    for r, (name, text) in enumerate(rows):
        ys, mses = np.asarray(nm[f"y_{name}"]), np.asarray(nm[f"mse_{name}"])
        for k in range(min(K, axes.shape[1])):
            ax = axes[r, k]
            _draw_outputs(ax, ys[k], targets, colors)
            ax.set_title(f"$s_{k + 1}$ {text}\nMSE {mses[k].mean():.2g} (intact {intact:.2g})",
                         fontsize=9)  # fmt: skip
            if k:
                ax.set_yticklabels([])
            if r == 0:
                ax.set_xticklabels([])
            else:
                ax.set_xlabel("time (steps)")
    axes[0, 0].set_ylabel("output y")
    axes[1, 0].set_ylabel("output y")


# ------------------------------------------------------------------------------------ figure


def plot(analysis: Mapping[str, Any], metrics: pd.DataFrame, out_png: str, out_pdf: str) -> None:
    """Draw Figure 3 from the analysis dict (see :mod:`nmrnn.figures.fig3.analyse`) and the ``mwg``
    metrics table; write PNG and PDF."""
    if "checkpoint" in metrics:  # with checkpoint selection: the figure shows final parameters
        metrics = metrics[metrics["checkpoint"] == "final"]
    if "experiment" in metrics:
        metrics = metrics[metrics["experiment"] == "mwg"]
    archs = _arch_order(metrics, analysis)
    analysed = _strings(analysis.get("meta", {}).get("archs", [])) or archs
    intervals = np.asarray(analysis["meta"]["intervals"])
    colors, mappable = _interval_colors(intervals)
    nm = analysis.get("nmrnn") or {}
    K = int(np.asarray(nm["s"]).shape[-1]) if nm else 3
    r1 = analysis.get("rank1") or {}
    n_theory = max(len(np.atleast_1d(r1.get("intervals", []))), 3)
    d_archs = [a for a in ("nmrnn", "lrrnn") if a in analysed] + [
        a for a in analysed if a not in ("nmrnn", "lrrnn")
    ]

    with sns.axes_style("ticks"):
        fig = Figure(figsize=(17.5, 21.0))
        grid = fig.add_gridspec(4, 1, height_ratios=[1.0, 1.0, 0.75, 1.45], hspace=0.32,
                                left=0.06, right=0.965, top=0.975, bottom=0.035)  # fmt: skip
        row1 = grid[0].subgridspec(1, 2, width_ratios=[1.0, 2.3], wspace=0.16)
        a_grid = row1[0].subgridspec(2, 1, height_ratios=[1, 1.1], hspace=0.12)
        ax_in, ax_out = fig.add_subplot(a_grid[0]), fig.add_subplot(a_grid[1])
        b_grid = row1[1].subgridspec(1, n_theory, wspace=0.22)
        ax_b = [fig.add_subplot(b_grid[j]) for j in range(n_theory)]
        row2 = grid[1].subgridspec(1, 2, width_ratios=[1.5, 1.0], wspace=0.42)
        ax_c, ax_g = fig.add_subplot(row2[0]), fig.add_subplot(row2[1])
        row3 = grid[2].subgridspec(1, max(len(d_archs), 2) + 1,
                                   width_ratios=[1] * max(len(d_archs), 2) + [0.06],
                                   wspace=0.12)  # fmt: skip
        ax_d = [fig.add_subplot(row3[j]) for j in range(max(len(d_archs), 2))]
        ax_cbar = fig.add_subplot(row3[-1])
        row4 = grid[3].subgridspec(1, 2, width_ratios=[1.0, 1.45], wspace=0.16)
        e_grid = row4[0].subgridspec(K, 2, hspace=0.15, wspace=0.15)
        ax_e = np.array([[fig.add_subplot(e_grid[k, j]) for j in range(2)] for k in range(K)])
        f_grid = row4[1].subgridspec(2, K, hspace=0.35, wspace=0.08)
        ax_f = np.array([[fig.add_subplot(f_grid[r, k]) for k in range(K)] for r in range(2)])

        draw_task(ax_in, ax_out, analysis)
        draw_rank1_theory(ax_b, analysis)
        draw_group_mse(ax_c, metrics, archs)
        draw_produced_interval(ax_g, metrics, archs)
        draw_outputs(ax_d, analysis, d_archs, colors)
        for ax in ax_d[1:]:
            ax.set_yticklabels([])
        cbar = fig.colorbar(mappable, cax=ax_cbar, ticks=intervals)
        cbar.set_label("interval I")
        draw_gains(ax_e, analysis, colors)
        draw_ablations(ax_f, analysis, colors)

        letters = ((ax_in, "A"), (ax_b[0], "B"), (ax_c, "C"), (ax_g, "G"), (ax_d[0], "D"),
                   (ax_e[0, 0], "E"), (ax_f[0, 0], "F"))  # fmt: skip
        for ax, letter in letters:
            panel_letter(fig, ax, letter, dx=0.035, dy=0.004)

    save_figure(fig, out_png, out_pdf, dpi=150)

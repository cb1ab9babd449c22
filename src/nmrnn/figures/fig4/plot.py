"""Figure 4: the four-task set and transfer to Memory Anti.

(A) the four tasks; (B) accuracy on the three training tasks after stage 1; (C) Memory Anti
accuracy after transfer against the number of retrained parameters; (D) the NM-RNN's gains s(t)
per task; (E) PCA of the NM-RNN's x across tasks; (F) Memory Anti outputs after transfer.
Draws :func:`nmrnn.figures.fig4.analyse.analyse`'s output and the ``multitask`` metrics table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from nmrnn.figures.fig4 import claims
from nmrnn.figures.fig4.analyse import ARCH_ORDER
from nmrnn.figures.style import ARCH_COLORS, arch_label, empty_panel, panel_letter, save_figure
from nmrnn.tasks import multitask as mt

EXTRA_NM_COLORS = ("#ff7f0e", "#e377c2", "#8c564b", "#bcbd22")
TASK_COLORS = ("#6a3d9a", "#e6ab02", "#1b9e77", "#a6761d")
TASK_MARKERS = ("o", "s", "^", "D")
TASK_LABELS = ("Delay Pro", "Delay Anti", "Memory Pro", "Memory Anti")
TRAIN_TASKS = mt.TASK_NAMES[:3]
GAIN_COLORS = ("#67000d", "#cb181d", "#fb6a4a", "#fcae91", "#fdd0a2", "#fdae6b")
IO_COLORS = {"fixation": "0.35", "sin": "#17becf", "cos": "#ff7f0e"}
ANGLE_COLOR = "#9467bd"
TEST_SETS = {
    "generated": ("o", "generated test set"),
    "authors_frozen": ("D", "authors' frozen set"),
}


def arch_color(arch: str) -> str:
    """The figure-wide colour of an architecture (other NM-RNN variants in reds/oranges)."""
    if arch in ARCH_COLORS:
        return ARCH_COLORS[arch]
    if arch.startswith("nmrnn"):
        return EXTRA_NM_COLORS[sum(map(ord, arch)) % len(EXTRA_NM_COLORS)]
    return "#9467bd"


def _archs(values) -> list[str]:
    values = list(dict.fromkeys(values))
    return [a for a in ARCH_ORDER if a in values] + sorted(a for a in values if a not in ARCH_ORDER)


def _empty(ax, text):
    empty_panel(ax, text, fontsize=9, wrap=True)


def _epochs(ax, ev: Mapping[str, Any], i=None, label=False):
    """Shade the stimulus period and mark go on a time axis."""
    keys = ("t_stim_on", "t_stim_off", "t_go")
    on, off, go = (int(np.asarray(ev[k]).reshape(-1)[i or 0]) for k in keys)
    ax.axvspan(on, off, color="0.9", lw=0, zorder=0, label="stimulus on" if label else None)
    ax.axvline(go, color="k", ls="--", lw=0.9, zorder=1, label="go" if label else None)


# ----------------------------------------------------------------------------- A


def _draw_tasks(fig, axes_in, axes_out, tasks: Mapping[str, Any]):
    if not tasks:
        for ax in (*axes_in, *axes_out):
            _empty(ax, "no example trials")
        return
    inputs, targets = np.asarray(tasks["inputs"]), np.asarray(tasks["targets"])
    t = np.arange(inputs.shape[1])
    for i, (ax_i, ax_o) in enumerate(zip(axes_in, axes_out, strict=True)):
        for ax in (ax_i, ax_o):
            _epochs(ax, tasks, i, label=(i == 0 and ax is ax_o))
        ax_i.plot(t, inputs[i, :, 0], color=IO_COLORS["fixation"], lw=1.4, label="fixation")
        ax_i.plot(t, inputs[i, :, 1], color=IO_COLORS["sin"], lw=1.4, label="sin θ")
        ax_i.plot(t, inputs[i, :, 2], color=IO_COLORS["cos"], lw=1.4, label="cos θ")
        ax_o.plot(t, targets[i, :, 0], color=IO_COLORS["fixation"], lw=1.4, label="fixation")
        ax_o.plot(t, targets[i, :, 1], color=IO_COLORS["sin"], lw=1.4, label="sin answer")
        ax_o.plot(t, targets[i, :, 2], color=IO_COLORS["cos"], lw=1.4, label="cos answer")
        task = int(np.asarray(tasks["task"])[i])
        ctx = np.flatnonzero(inputs[i, 0, mt.N_SENSORY :] > 0.5)
        ctx = f"context input {ctx[0] + 1} on" if len(ctx) else "no context input"
        ax_i.set_title(f"{TASK_LABELS[task]}", fontsize=10, color=TASK_COLORS[task],
                       fontweight="bold", loc="left")  # fmt: skip
        ax_i.set_title(ctx, fontsize=8, color="0.35", loc="right")
        for ax in (ax_i, ax_o):
            ax.set_ylim(-1.15, 1.15)
            ax.set_xlim(0, t[-1])
            sns.despine(ax=ax)
            if i:
                ax.set_yticklabels([])
        ax_i.set_xticklabels([])
        ax_o.set_xlabel("time (steps)", fontsize=8)
    axes_in[0].set_ylabel("inputs")
    axes_out[0].set_ylabel("targets")
    theta = float(np.asarray(tasks["theta"])[0])
    axes_in[-1].legend(
        fontsize=7,
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        title=f"θ = {np.degrees(theta):.0f}°\nin all four",
        title_fontsize=7,
    )
    axes_out[-1].legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))


# ----------------------------------------------------------------------------- B, C


def _dots(ax, x, values, color, marker, filled, jitter, rng, size=22):
    values = np.asarray(values, float)
    xs = x + rng.uniform(-jitter, jitter, len(values))
    ax.scatter(xs, values, s=size, marker=marker, zorder=3, lw=1.0,
               facecolor=color if filled else "white", edgecolor=color, alpha=0.9)  # fmt: skip


def _draw_training_accuracy(ax, metrics: pd.DataFrame):
    if metrics is None or metrics.empty or "stage" not in metrics:
        _empty(ax, "no stage-1 metrics")
        return
    rows = metrics[(metrics["stage"] == "train_tasks") & metrics["task"].isin(TRAIN_TASKS)]
    if rows.empty:
        _empty(ax, "no stage-1 metrics")
        return
    archs = _archs(rows["arch"])
    testsets = [s for s in TEST_SETS if s in set(rows["testset"])]
    rng = np.random.default_rng(0)
    width = 0.8 / len(archs)
    for j, arch in enumerate(archs):
        for i, task in enumerate(TRAIN_TASKS):
            for k, testset in enumerate(testsets):
                sel = rows[(rows["arch"] == arch) & (rows["task"] == task)
                           & (rows["testset"] == testset)]  # fmt: skip
                if sel.empty:
                    continue
                vals = claims.per_seed_accuracy(sel, arch).to_numpy(float)
                x = i - 0.4 + width * (j + 0.5) + (0.3 * width if k else -0.15 * width)
                marker = TEST_SETS[testset][0]
                _dots(ax, x, vals, arch_color(arch), marker, k == 0, 0.08 * width, rng,
                      size=20 if k == 0 else 14)  # fmt: skip
                med = np.nanmedian(vals) if np.isfinite(vals).any() else np.nan
                ax.plot([x - 0.22 * width, x + 0.22 * width], [med, med], color=arch_color(arch),
                        lw=2.4 if k == 0 else 1.2, ls="-" if k == 0 else ":", zorder=4)  # fmt: skip
    ax.set_xticks(range(len(TRAIN_TASKS)), [TASK_LABELS[i] for i in range(3)])
    ax.set_xlim(-0.5, len(TRAIN_TASKS) - 0.5)
    ax.set_ylim(-4, 104)
    ax.set_ylabel("percent correct (stage 1)")
    handles = [Line2D([], [], color=arch_color(a), marker="o", ls="-", lw=2, label=arch_label(a))
               for a in archs]  # fmt: skip
    for k, testset in enumerate(testsets):
        marker, label = TEST_SETS[testset]
        handles.append(Line2D([], [], color="0.3", marker=marker, ls="-" if k == 0 else ":",
                              mfc="0.3" if k == 0 else "white", label=label))  # fmt: skip
    ax.legend(handles=handles, fontsize=7.5, frameon=False, ncol=3, loc="lower left",
              bbox_to_anchor=(0, 1.0))  # fmt: skip
    ax.set_title("dots: seeds; bars: medians", fontsize=8, loc="right", color="0.35")
    sns.despine(ax=ax)


def _draw_transfer_accuracy(ax, metrics: pd.DataFrame):
    rows = []
    if metrics is not None and not metrics.empty and "stage" in metrics:
        rows = metrics[(metrics["stage"] == "transfer") & (metrics["task"] == "memory_anti")]
    if len(rows) == 0:
        _empty(ax, "no transfer metrics")
        return
    rng = np.random.default_rng(1)
    archs = _archs(rows["arch"])
    testsets = [s for s in TEST_SETS if s in set(rows["testset"])]
    retrained = {arch: claims.retrained(rows, arch) for arch in archs}
    # labels alternate low/high from left to right, so neighbours on the x axis never collide
    by_x = sorted((n, a) for a, n in retrained.items() if np.isfinite(n) and n > 0)
    rank = {arch: i for i, (_, arch) in enumerate(by_x)}
    xs = []
    for arch in archs:
        sub = rows[rows["arch"] == arch]
        n = retrained[arch]
        if arch not in rank:
            continue
        xs.append(n)
        for k, testset in enumerate(testsets):
            sel = sub[sub["testset"] == testset]
            if sel.empty:
                continue
            vals = claims.per_seed_accuracy(sel, arch).to_numpy(float)
            x = n * (1.0 + (0.0 if k == 0 else 0.22))
            jit = np.exp(rng.uniform(-0.06, 0.06, len(vals)))
            marker = TEST_SETS[testset][0]
            ax.scatter(x * jit, vals, s=26 if k == 0 else 16, marker=marker, lw=1.0, zorder=3,
                       facecolor=arch_color(arch) if k == 0 else "white",
                       edgecolor=arch_color(arch), alpha=0.9)  # fmt: skip
            med = np.nanmedian(vals) if np.isfinite(vals).any() else np.nan
            ax.plot([x / 1.12, x * 1.12], [med, med], color=arch_color(arch),
                    lw=2.4 if k == 0 else 1.2, ls="-" if k == 0 else ":", zorder=4)  # fmt: skip
            if k == 0:
                top = pd.to_numeric(sub["percent_correct"], errors="coerce").max()
                top = top if np.isfinite(top) else 0.0
                lift = 6 + 20 * (rank[arch] % 2)
                ax.annotate(f"{arch_label(arch)}\n{n:.0f} retrained", (x, top), xytext=(0, lift),
                            textcoords="offset points", ha="center", fontsize=7.5,
                            color=arch_color(arch))  # fmt: skip
    ax.set_xscale("log")
    if xs:
        ax.set_xlim(min(xs) / 2.2, max(xs) * 2.2)
    ax.set_ylim(-4, 125)
    ax.set_yticks(range(0, 101, 20))
    ax.set_xlabel("parameters retrained in the transfer stage (log)")
    ax.set_ylabel("Memory Anti percent correct\n(after transfer)")
    handles = [Line2D([], [], color="0.3", marker=TEST_SETS[s][0], ls="-" if k == 0 else ":",
                      mfc="0.3" if k == 0 else "white", label=TEST_SETS[s][1])
               for k, s in enumerate(testsets)]  # fmt: skip
    ax.legend(handles=handles, fontsize=7.5, frameon=False, loc="lower left",
              bbox_to_anchor=(0, 1.0), ncol=2)  # fmt: skip
    sns.despine(ax=ax)


# ----------------------------------------------------------------------------- D


def _draw_gains(axes, gains: Mapping[str, Any], seed: int):
    if not gains:
        for ax in axes:
            _empty(ax, "no NM-RNN")
        return
    s = np.asarray(gains["s"])
    tasks = np.asarray(gains["task"]).astype(int)
    t = np.arange(s.shape[1])
    K = s.shape[2]
    colors = sns.color_palette("Reds_r", K + 1)[:K] if K > len(GAIN_COLORS) else GAIN_COLORS[:K]
    for i, ax in enumerate(axes):
        if i >= len(tasks):
            _empty(ax, "no transferred NM-RNN")
            continue
        _epochs(ax, gains, i, label=(i == 0))
        for k in range(K):
            ax.plot(t, s[i, :, k], color=colors[k], lw=1.5, label=f"$s_{k + 1}$")
        task = tasks[i]
        stage = "after transfer" if task == mt.MEMORY_ANTI else "stage 1"
        ax.set_title(f"{TASK_LABELS[task]} ({stage})", fontsize=9, color=TASK_COLORS[task])
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlim(0, t[-1])
        ax.set_xlabel("time (steps)", fontsize=8)
        if i:
            ax.set_yticklabels([])
        sns.despine(ax=ax)
    axes[0].set_ylabel(f"NM-RNN gain s(t)\n(seed {seed})")
    axes[-1].legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))


# ----------------------------------------------------------------------------- E


def _draw_pca(ax_ring, ax_strip, ax_bar, pca: Mapping[str, Any], epoch="pre_go"):
    if not pca or epoch not in pca:
        for ax in (ax_ring, ax_strip, ax_bar):
            _empty(ax, "no NM-RNN")
        return
    ep = pca[epoch]
    scores = np.asarray(ep["scores"])
    task = np.asarray(pca["task"]).astype(int)
    theta = np.asarray(pca["theta"])
    P = scores.shape[1]
    explained = np.asarray(ep["explained"])
    a, b = (int(i) for i in np.asarray(ep["ring_pcs"])) if P >= 2 else (0, 0)
    cmap = matplotlib.colormaps["twilight"]
    for tk in np.unique(task):
        sel = task == tk
        sc = ax_ring.scatter(scores[sel, a], scores[sel, b], c=theta[sel], cmap=cmap, vmin=0,
                             vmax=2 * np.pi, marker=TASK_MARKERS[tk], s=16, lw=0.3,
                             edgecolor="0.2", label=TASK_LABELS[tk])  # fmt: skip
    ax_ring.set_xlabel(f"PC{a + 1} ({100 * explained[a]:.0f}% var.)")
    ax_ring.set_ylabel(f"PC{b + 1} ({100 * explained[b]:.0f}% var.)")
    cbar = ax_ring.figure.colorbar(sc, ax=ax_ring, fraction=0.05, pad=0.02,
                                   ticks=[0, np.pi, 2 * np.pi])  # fmt: skip
    cbar.ax.set_yticklabels(["0", "π", "2π"])
    cbar.set_label("θ", rotation=0, fontsize=9, labelpad=4)
    leg = ax_ring.legend(fontsize=7, frameon=False, loc="lower left", bbox_to_anchor=(0, 1.0),
                         ncol=3, handletextpad=0.1, columnspacing=0.6,
                         title="x at the last step before go", title_fontsize=8,
                         alignment="left")  # fmt: skip
    for h in leg.legend_handles:
        h.set_facecolor("0.6")
    sns.despine(ax=ax_ring)

    sep = np.asarray(ep["separation_pro_anti"])
    best = int(np.nanargmax(sep)) if np.isfinite(sep).any() else 0
    rng = np.random.default_rng(2)
    for tk in np.unique(task):
        vals = scores[task == tk, best]
        ax_strip.scatter(tk + rng.uniform(-0.18, 0.18, len(vals)), vals, s=7,
                         color=TASK_COLORS[tk], alpha=0.6, lw=0)  # fmt: skip
    present = np.unique(task)
    ax_strip.set_xticks(present, [TASK_LABELS[i].replace(" ", "\n") for i in present],
                        fontsize=7.5)  # fmt: skip
    ax_strip.set_ylabel(f"PC{best + 1} score")
    ax_strip.set_title(f"PC{best + 1}: largest Pro/Anti separation", fontsize=9)
    sns.despine(ax=ax_strip)

    pcs = np.arange(1, P + 1)
    epochs = (("pre_go", "before go", "#6a3d9a"), ("response", "end of response", "#cab2d6"))
    series = [(pca[e]["separation_pro_anti"], f"Pro vs Anti, {lab}", c)
              for e, lab, c in epochs if e in pca]  # fmt: skip
    series.append((ep["separation_delay_memory"], "Delay vs Memory, before go", "#1b9e77"))
    w = 0.8 / len(series)
    for j, (vals, lab, c) in enumerate(series):
        ax_bar.bar(pcs - 0.4 + w * (j + 0.5), np.nan_to_num(np.asarray(vals)), width=w, color=c,
                   label=lab)  # fmt: skip
    ax_bar.set_xticks(pcs)
    ax_bar.set_xlabel("principal component")
    ax_bar.set_ylabel("|Δ mean| / pooled s.d.")
    ax_r2 = ax_bar.twinx()
    ax_r2.plot(pcs, np.asarray(ep["angle_r2_theta"]), "k.-", lw=1, ms=6, label="θ tuning R²")
    ax_r2.set_ylim(0, 1.05)
    ax_r2.set_ylabel("R² on (cos θ, sin θ)", fontsize=8)
    h1, l1 = ax_bar.get_legend_handles_labels()
    h2, l2 = ax_r2.get_legend_handles_labels()
    ax_bar.legend(h1 + h2, l1 + l2, fontsize=7, frameon=False, loc="lower left",
                  bbox_to_anchor=(0, 1.0), ncol=2)  # fmt: skip
    sns.despine(ax=ax_bar, right=False)


# ----------------------------------------------------------------------------- F


def _draw_outputs(axes_t, axes_d, outputs: Mapping[str, Any]):
    archs = _archs(outputs) if outputs else []
    for j in range(len(axes_t)):
        if j >= len(archs):
            _empty(axes_t[j], "no transferred network")
            _empty(axes_d[j], "")
            continue
        arch = archs[j]
        o = outputs[arch]
        y, tgt = np.asarray(o["y"]), np.asarray(o["targets"])
        t = np.arange(y.shape[0])
        ax = axes_t[j]
        _epochs(ax, o, None, label=(j == 0))
        for c, name in ((0, "fixation"), (1, "sin"), (2, "cos")):
            ax.plot(t, tgt[:, c], color=IO_COLORS[name], lw=1.0, ls="--")
            ax.plot(t, y[:, c], color=IO_COLORS[name], lw=1.6, label=f"{name} output")
        go = int(np.asarray(o["t_go"]))
        dec = np.degrees(np.mod(np.arctan2(y[go:, 1], y[go:, 2]), 2 * np.pi))
        ax2 = ax.twinx()
        ax2.plot(t[go:], dec, color=ANGLE_COLOR, lw=1.3, label="decoded angle (atan2)")
        ax2.hlines(np.degrees(float(o["answer"])), go, t[-1], color=ANGLE_COLOR, ls=":", lw=1.3,
                   label="answer")  # fmt: skip
        ax2.set_ylim(-10, 370)
        ax2.set_yticks([0, 180, 360])
        ax2.set_ylabel("angle (°)", fontsize=8, color=ANGLE_COLOR)
        ax2.tick_params(axis="y", colors=ANGLE_COLOR, labelsize=8)
        ax.set_ylim(-1.3, 1.3)
        ax.set_xlim(0, t[-1])
        ax.set_xlabel("time (steps)", fontsize=8)
        ax.set_title(f"{arch_label(arch)} (seed {int(o['seed'])}), one Memory Anti trial",
                     fontsize=9, color=arch_color(arch))  # fmt: skip
        if j == 0:
            ax.set_ylabel("output (solid), target (dashed)", fontsize=8)
            h1, l1 = ax.get_legend_handles_labels()
            h2, l2 = ax2.get_legend_handles_labels()
            ax.legend(h1 + h2, l1 + l2, fontsize=7, frameon=False, ncol=4, loc="lower left",
                      bbox_to_anchor=(0, 1.12))  # fmt: skip

        ax = axes_d[j]
        ans, dec_last = np.degrees(o["answer_all"]), np.degrees(o["decoded_last"])
        correct = np.asarray(o["correct"]).astype(bool)
        grid = np.linspace(0, 360, 50)
        tol = np.degrees(float(mt.TOLERANCE))
        for shift in (-360, 0, 360):
            ax.fill_between(grid, grid + shift - tol, grid + shift + tol, color="0.88", lw=0)
        ax.scatter(ans[~correct], dec_last[~correct], s=8, color="0.55", lw=0, label="wrong")
        ax.scatter(ans[correct], dec_last[correct], s=8, color=arch_color(arch), lw=0,
                   label="correct")  # fmt: skip
        ax.set_xlim(0, 360)
        ax.set_ylim(0, 360)
        ax.set_xticks([0, 180, 360])
        ax.set_yticks([0, 180, 360])
        ax.set_aspect("equal")
        ax.set_xlabel("answer (°)", fontsize=8)
        ax.set_ylabel("decoded at last step (°)", fontsize=8)
        ax.set_title(f"{float(o['percent_correct']):.0f}% correct (n={len(ans)})", fontsize=8.5)
        sns.despine(ax=ax)


# ----------------------------------------------------------------------------- figure


def plot(analysis: Mapping[str, Any], metrics: pd.DataFrame, out_png: str, out_pdf: str) -> None:
    """Draw Figure 4 from ``analysis`` (:func:`nmrnn.figures.fig4.analyse.analyse`) and the
    ``multitask`` metrics table; write PNG and PDF."""
    seed = int(np.asarray(analysis.get("nmrnn_seed", -1)))
    metrics = pd.DataFrame() if metrics is None else metrics
    if "checkpoint" in metrics:  # with checkpoint selection: the figure shows final parameters
        metrics = metrics[metrics["checkpoint"] == "final"]
    if not metrics.empty and "testset" not in metrics:
        metrics = metrics.assign(testset="generated")
    if not metrics.empty:
        pc = pd.to_numeric(metrics.get("percent_correct"), errors="coerce")
        metrics = metrics.assign(percent_correct=pc)
    with sns.axes_style("ticks"):
        fig = Figure(figsize=(15.5, 17.5))
        grid = fig.add_gridspec(4, 1, height_ratios=[1.05, 1.0, 0.9, 1.05], hspace=0.42,
                                left=0.06, right=0.93, top=0.965, bottom=0.04)  # fmt: skip
        a = grid[0].subgridspec(2, 4, hspace=0.12, wspace=0.08)
        ax_ai = [fig.add_subplot(a[0, i]) for i in range(4)]
        ax_ao = [fig.add_subplot(a[1, i]) for i in range(4)]
        bc = grid[1].subgridspec(1, 2, width_ratios=[1.35, 1], wspace=0.22)
        ax_b, ax_c = fig.add_subplot(bc[0]), fig.add_subplot(bc[1])
        d = grid[2].subgridspec(1, 4, wspace=0.08)
        ax_d = [fig.add_subplot(d[0, i]) for i in range(4)]
        low = grid[3].subgridspec(1, 2, width_ratios=[1.0, 1.05], wspace=0.25)
        e = low[0].subgridspec(2, 2, height_ratios=[1.25, 1], hspace=0.75, wspace=0.5)
        ax_e1 = fig.add_subplot(e[0, 0])
        ax_e2 = fig.add_subplot(e[0, 1])
        ax_e3 = fig.add_subplot(e[1, :])
        f = low[1].subgridspec(2, 2, width_ratios=[2.3, 1], hspace=0.75, wspace=0.45)
        ax_ft = [fig.add_subplot(f[i, 0]) for i in range(2)]
        ax_fd = [fig.add_subplot(f[i, 1]) for i in range(2)]

        _draw_tasks(fig, ax_ai, ax_ao, analysis.get("tasks", {}))
        _draw_training_accuracy(ax_b, metrics)
        _draw_transfer_accuracy(ax_c, metrics)
        _draw_gains(ax_d, analysis.get("gains", {}), seed)
        _draw_pca(ax_e1, ax_e2, ax_e3, analysis.get("pca", {}))
        _draw_outputs(ax_ft, ax_fd, analysis.get("outputs", {}))
        for ax, letter in ((ax_ai[0], "A"), (ax_b, "B"), (ax_c, "C"), (ax_d[0], "D"),
                           (ax_e1, "E"), (ax_ft[0], "F")):  # fmt: skip
            panel_letter(fig, ax, letter, dx=0.04, dy=0.008)

    save_figure(fig, out_png, out_pdf, dpi=150)

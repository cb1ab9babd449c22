"""Figure 5 (Element Finder Task): the task (A), final test MSE of the NM-RNN configurations and the
parameter-matched baselines (B), training curves (C), and the best NM-RNN's neuromodulatory state
z (D), gains s (E) and fast state x read out on C (F), across query indices and target values.

Draws from ``analysis/fig5.npz`` (:func:`nmrnn.figures.fig5.analyse.analyse`) and the ``eft``
metrics table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from nmrnn.figures.style import ARCH_COLORS, arch_label, panel_letter, save_figure

NMRNN_COLORS = ("#d62728", "#8c1d18", "#ff7f0e", "#e9a15a", "#c2185b", "#f08080", "#a0522d")
CONFIG_NAME = re.compile(r"^nmrnn_(\d+)_(\d+)_(\d+)$")


# ---------------------------------------------------------------------------------- helpers


def _str(a) -> str:
    return str(np.asarray(a).item()) if np.ndim(a) == 0 else str(a)


def arch_colors(archs, is_nmrnn) -> dict[str, str]:
    """A colour per architecture: NM-RNN configurations in reds/oranges (config order), the
    baselines in their fixed colours, anything else from a neutral palette."""
    colors, k, other = {}, 0, iter(sns.color_palette("tab10", 10)[4:])
    for arch, nm in zip(archs, is_nmrnn, strict=True):
        if nm:
            colors[arch] = NMRNN_COLORS[k % len(NMRNN_COLORS)]
            k += 1
        elif arch in ARCH_COLORS:
            colors[arch] = ARCH_COLORS[arch]
        else:
            colors[arch] = next(other, "#17becf")
    return colors


def display_name(arch: str, multiline: bool = True) -> str:
    """'nmrnn_5_18_8' -> 'NM-RNN 5/18/8' (M/N/K); baselines by their usual names."""
    m = CONFIG_NAME.match(arch)
    if m:
        sep = "\n" if multiline else " "
        return f"NM-RNN{sep}{m[1]}/{m[2]}/{m[3]}"
    return arch_label(arch)


def _selected(dyn: Mapping[str, Any]) -> bool:
    return "checkpoint" in dyn and _str(dyn["checkpoint"]) == "selected"


def _per_arch_mse(analysis: Mapping[str, Any], metrics: pd.DataFrame | None, archs):
    """Per arch: (per-seed final-step MSE, parameter count, per-seed MSE of the validation-selected
    parameters or None): from the metrics table where it has the arch, else from the analysis
    (the same numbers on the same test sets)."""
    out = {}
    table = metrics
    if table is not None and {"arch", "mse"} <= set(table.columns):
        if "experiment" in table:
            table = table[table["experiment"] == "eft"]
    else:
        table = None
    for arch in archs:
        rows = table[table["arch"] == arch] if table is not None else None
        info = analysis.get("archs", {}).get(arch, {})
        selected = None
        if rows is not None and len(rows):
            rows = rows.sort_values("seed") if "seed" in rows else rows
            n_par = int(rows["n_parameters"].iloc[0]) if "n_parameters" in rows else None
            if "checkpoint" in rows:
                chosen = rows[rows["checkpoint"] == "selected"]
                selected = chosen["mse"].to_numpy(float) if len(chosen) else None
                rows = rows[rows["checkpoint"] == "final"]
            vals = rows["mse"].to_numpy(float)
        elif "mse" in info:
            vals = np.asarray(info["mse"], float)
            n_par = None
            if "mse_selected" in info:
                selected = np.asarray(info["mse_selected"], float)
        else:
            continue
        if n_par is None and "n_parameters" in info:
            n_par = int(np.asarray(info["n_parameters"]))
        out[arch] = (vals, n_par, selected)
    return out


# ---------------------------------------------------------------------------------- panels


def draw_task(ax, task: Mapping[str, np.ndarray]) -> None:
    """Panel A: one input sequence, the queried element and the target."""
    u = np.asarray(task["inputs"], float)
    q, v = int(np.asarray(task["query"])), int(np.asarray(task["value"]))
    T = u.size
    t = np.arange(T)
    colors = ["#9e9e9e"] * T
    colors[0] = "#6a3d9a"
    colors[q + 1] = "#d62728"
    ax.bar(t, u, color=colors, width=0.75)
    ax.axhline(0, color="k", lw=0.6)
    ax.plot(T - 1 + 1.3, v, marker="*", ms=13, color="k", clip_on=False)
    ax.text(T - 1 + 1.3, v + (2.2 if v >= 0 else -2.2), f"target\n{v:+d}", ha="center",
            va="bottom" if v >= 0 else "top", fontsize=8)  # fmt: skip
    ax.annotate(
        f"query q = {q}", xy=(0, u[0]), xytext=(2.0, max(u[0], 12) + 3), fontsize=8.5,
        color="#6a3d9a", arrowprops={"arrowstyle": "->", "color": "#6a3d9a", "lw": 0.8},
    )  # fmt: skip
    ax.annotate(
        f"element {q}  (t = q + 1 = {q + 1})", xy=(q + 1, u[q + 1]),
        xytext=(min(q + 3, T - 10), -16 if u[q + 1] >= 0 else 16), fontsize=8.5, color="#d62728",
        arrowprops={"arrowstyle": "->", "color": "#d62728", "lw": 0.8}, ha="left",
    )  # fmt: skip
    ax.set_xlim(-1, T + 1.2)
    ax.set_ylim(-20, max(u[0], 12) + 8)
    ax.set_xlabel("time step t (t = 0: query; t = 1..25: elements)")
    ax.set_ylabel("input u(t)")
    ax.set_title("Element Finder Task: report element q at t = 25", fontsize=10)
    sns.despine(ax=ax)


def draw_mse(ax, per_arch, colors, chance, best=None, rng_seed=0) -> None:
    """Panel B: per-seed test MSE (dots) and median (bar) per architecture, log y: the final
    parameters (filled dots) and, where the run kept them, the parameters with the lowest
    validation loss (open diamonds, right of each pair)."""
    rng = np.random.default_rng(rng_seed)
    archs = list(per_arch)
    floor = np.inf
    any_selected = any(v[2] is not None for v in per_arch.values())
    offset = 0.18 if any_selected else 0.0
    for i, arch in enumerate(archs):
        vals, _, selected = per_arch[arch]
        groups = [(vals, i - offset, "o", colors[arch])]
        if selected is not None:
            groups.append((selected, i + offset, "D", "none"))
        for values, x, marker, face in groups:
            finite = values[np.isfinite(values) & (values > 0)]
            if finite.size:
                floor = min(floor, finite.min())
            jitter = rng.uniform(-0.08 if offset else -0.15, 0.08 if offset else 0.15, values.size)
            ax.plot(x + jitter, values, marker, color=colors[arch], mfc=face, ms=4.5, alpha=0.8,
                    ls="none", mec=colors[arch] if face == "none" else "none")  # fmt: skip
            if finite.size:
                half = 0.14 if offset else 0.3
                ax.plot([x - half, x + half], [np.median(finite)] * 2, color="k", lw=2)
    if any_selected:
        ax.plot([], [], "o", color="0.4", mec="none", label="final parameters")
        ax.plot([], [], "D", color="0.4", mfc="none", label="lowest validation loss")
        ax.legend(loc="lower left", fontsize=7.5, frameon=False)
    ax.axhline(chance, color="k", ls="--", lw=0.9)
    ax.text(len(archs) - 0.5, chance * 1.08, f"chance (predict 0) = {chance:.1f}", ha="right",
            va="bottom", fontsize=8)  # fmt: skip
    ax.set_yscale("log")
    top = chance
    for vals, _, selected in per_arch.values():
        for values in (vals, selected if selected is not None else vals):
            if np.isfinite(values).any():
                top = max(top, np.nanmax(values))
    low = floor if np.isfinite(floor) else chance / 10
    ax.set_ylim(low / 2, top * 2.2)
    labels = []
    for arch in archs:
        n_par = per_arch[arch][1]
        name = display_name(arch)
        labels.append(f"{name}\n({n_par} p.)" if n_par is not None else name)
    ax.set_xticks(range(len(archs)), labels, fontsize=7.5)
    for tick, arch in zip(ax.get_xticklabels(), archs, strict=True):
        tick.set_color(colors[arch])
        if arch == best:
            tick.set_fontweight("bold")
    ax.set_xlim(-0.6, len(archs) - 0.4)
    ax.set_ylabel("test MSE (10,000 held-out trials)")
    n_seeds = max((len(v) for v, _, _ in per_arch.values()), default=0)
    ax.set_title(f"test MSE per seed (dots; n ≤ {n_seeds}) and median (bar)", fontsize=10)
    sns.despine(ax=ax)


def draw_curves(ax, analysis, archs, colors, chance) -> None:
    """Panel C: training loss, median and interquartile range across seeds, log y."""
    for arch in archs:
        info = analysis["archs"].get(arch)
        if info is None or np.size(info["curve_steps"]) == 0:
            continue
        steps = np.asarray(info["curve_steps"], float)
        med = np.asarray(info["curve_median"], float)
        ax.plot(steps, med, color=colors[arch], lw=1.4, label=display_name(arch, False))
        ax.fill_between(steps, info["curve_q25"], info["curve_q75"], color=colors[arch],
                        alpha=0.15, lw=0)  # fmt: skip
    ax.axhline(chance, color="k", ls="--", lw=0.9)
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(
        matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v else "0")
    )
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (fresh batch each step)")
    ax.set_title("training curves: median and IQR across seeds", fontsize=10)
    ax.legend(fontsize=7, frameon=False, ncol=2, loc="lower left")
    sns.despine(ax=ax)


def _sweep_colors(n, cmap):
    return matplotlib.colormaps[cmap](np.linspace(0.1, 0.9, n))


def draw_sweeps(axes, dyn) -> None:
    """Panels D–F. axes: 2×3 array (rows: query sweep, value sweep; columns: z, s, x)."""
    queries = np.asarray(dyn["queries"]).astype(int)
    values = np.asarray(dyn["values"]).astype(int)
    qv = int(np.asarray(dyn["query_value"]))
    vq = int(np.asarray(dyn["value_query"]))
    k = int(np.asarray(dyn["s_component"]))
    summ = dyn["summary"]
    sweeps = (
        ("query_sweep", queries, list(queries), _sweep_colors(len(queries), "viridis"),
         [f"q = {q}" for q in queries], f"value {qv}, queries vary"),
        ("value_sweep", values, [vq] * len(values), _sweep_colors(len(values), "coolwarm"),
         [f"{v:+d}" for v in values], f"query {vq}, values vary"),
    )  # fmt: skip
    for row, (name, _, qsteps, cols, labels, title) in enumerate(sweeps):
        data = dyn[name]
        series = (np.asarray(data["z_pc1"]), np.asarray(data["s"])[..., k], np.asarray(data["y"]))
        T = series[0].shape[-1]
        t = np.arange(T)
        for col, traj in enumerate(series):
            ax = axes[row, col]
            for i in range(traj.shape[0]):
                ax.plot(t, traj[i], color=cols[i], lw=1.4, label=labels[i])
                tq = qsteps[i] + 1
                ax.plot(tq, traj[i, tq], "o", color=cols[i], ms=4.5, mec="k", mew=0.5)
            if row == 1:
                ax.axvline(vq + 1, color="k", ls=":", lw=0.8)
            ax.set_xlim(0, T - 1)
            sns.despine(ax=ax)
            if row == 1:
                ax.set_xlabel("time step t")
        explained = float(np.asarray(dyn["z_pc"]["explained"])[0])
        axes[row, 0].set_ylabel(f"{title}\n\nz on PC1 ({explained:.0%} of var.)")
        axes[row, 1].set_ylabel(f"gain $s_{{{k + 1}}}$")
        axes[row, 2].set_ylabel("y = C x")
        axes[row, 0].legend(fontsize=6.5, frameon=False, ncol=2, loc="best",
                            title=None if row == 0 else "value", title_fontsize=6.5)  # fmt: skip
        if row == 0:
            axes[row, 2].axhline(qv, color="k", ls="--", lw=0.8)
            axes[row, 2].text(0.5, qv, f"value {qv}", fontsize=7.5, va="bottom")
        else:
            for v, c in zip(values, cols, strict=True):
                axes[row, 2].axhline(v, color=c, ls="--", lw=0.6, alpha=0.7)
    axes[0, 0].set_title(
        f"z encodes q: r(PC1, q) = {float(summ['z_q_corr_early']):.2f} (t = 1–5), "
        f"{float(summ['z_q_corr_late']):.2f} (last 5 steps)", fontsize=9)  # fmt: skip
    axes[0, 1].set_title(
        f"s switches at the queried step: mean |Δs| at t = q+1..q+3 is "
        f"{float(summ['s_change_ratio']):.2g}× elsewhere", fontsize=9)  # fmt: skip
    axes[0, 2].set_title(
        f"x holds the value: r(y(25), value) = {float(summ['x_value_corr_final']):.2f}, "
        f"RMS error {float(summ['x_final_rmse']):.2g}", fontsize=9)  # fmt: skip


# ---------------------------------------------------------------------------------- figure


def plot(analysis: Mapping[str, Any], metrics: pd.DataFrame | None, out_png: str,
         out_pdf: str) -> None:  # fmt: skip
    """Draw Figure 5 and write it as PNG and PDF."""
    meta = analysis["meta"]
    archs = [str(a) for a in np.atleast_1d(meta["archs"])]
    is_nm = [bool(b) for b in np.atleast_1d(meta["is_nmrnn"])]
    chance = float(np.asarray(meta["chance_mse"]))
    colors = arch_colors(archs, is_nm)
    per_arch = _per_arch_mse(analysis, metrics, archs)
    dyn = analysis.get("dynamics")
    best = _str(dyn["arch"]) if dyn is not None else None

    with sns.axes_style("ticks"):
        fig = Figure(figsize=(16, 10.5))
        grid = fig.add_gridspec(2, 1, height_ratios=[1.0, 1.55], hspace=0.32, left=0.06,
                                right=0.985, top=0.95, bottom=0.06)  # fmt: skip
        top = grid[0].subgridspec(1, 3, wspace=0.27, width_ratios=[1.05, 1.2, 1.0])
        ax_a, ax_b, ax_c = (fig.add_subplot(top[i]) for i in range(3))
        bottom = grid[1].subgridspec(2, 3, wspace=0.27, hspace=0.12)
        axes = np.array([[fig.add_subplot(bottom[r, c]) for c in range(3)] for r in range(2)])
        for c in range(3):
            axes[0, c].sharex(axes[1, c])
            axes[0, c].tick_params(labelbottom=False)

        draw_task(ax_a, analysis["task"])
        draw_mse(ax_b, per_arch, colors, chance, best)
        draw_curves(ax_c, analysis, archs, colors, chance)
        if dyn is not None:
            draw_sweeps(axes, dyn)
            fig.text(
                0.5, 0.592,
                f"best NM-RNN configuration {display_name(best, False)} (M/N/K; lowest median "
                f"test MSE {float(np.asarray(dyn['arch_median_mse'])):.3g}"
                f"{', validation-selected parameters' if _selected(dyn) else ''}), its best seed "
                f"{int(np.asarray(dyn['seed']))} (MSE {float(np.asarray(dyn['seed_mse'])):.3g})\n"
                f"trial means over {int(np.asarray(dyn['trials_per_condition']))} trials per "
                "condition, other elements random; dots mark the queried step t = q + 1",
                ha="center", va="center", fontsize=9.5,
            )  # fmt: skip
        else:
            for ax in axes.ravel():
                ax.set_axis_off()
            axes[0, 1].text(0.5, 0.5, "no NM-RNN in this run", ha="center", va="center")
        for ax, letter in ((ax_a, "A"), (ax_b, "B"), (ax_c, "C"), (axes[0, 0], "D"),
                           (axes[0, 1], "E"), (axes[0, 2], "F")):  # fmt: skip
            panel_letter(fig, ax, letter, dx=0.04, dy=0.008)

    save_figure(fig, out_png, out_pdf, dpi=150)

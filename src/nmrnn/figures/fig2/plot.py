"""Figure 2: gain sets a mode's timescale (A), and the linear symmetric NM-RNN is an LSTM (B, C).

Draws the analysis of :mod:`nmrnn.figures.fig2.analyse` (computed from fixed seeds, no trained
model).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from nmrnn import theory
from nmrnn.figures.fig2.analyse import CONSTANT_GAINS, DECAY_TAU_X
from nmrnn.figures.style import panel_letter, save_figure


def _draw_decay(ax_s, ax_w, decay):
    T = decay["s"].shape[0]
    t = np.arange(1, T + 1)
    colors = sns.color_palette("viridis", len(CONSTANT_GAINS)) + ["#d62728"]
    labels = [
        f"s = {s:g}  (τ = {theory.effective_timescale(s, DECAY_TAU_X):.0f})" for s in CONSTANT_GAINS
    ] + ["s(t): hold, then release"]
    every = slice(1, None, 3)
    for k, (color, label) in enumerate(zip(colors, labels, strict=True)):
        ax_s.plot(t, decay["s"][:, k], color=color, lw=1.5)
        ax_w.plot(
            np.r_[0, t], np.r_[1.0, decay["w_discrete"][:, k]], color=color, lw=1.6, label=label
        )
        ax_w.plot(np.r_[0, t], np.r_[1.0, decay["w_continuous"][:, k]], color=color, lw=0.8, ls=":")
        ax_w.plot(t[every], decay["w_sim"][every, k], "o", color=color, ms=3.2, mec="none")
    ax_s.set_ylabel("gain s")
    ax_s.set_ylim(-0.05, 1.05)
    ax_s.set_xticklabels([])
    ax_w.set_xlabel(f"time (steps), τx = {DECAY_TAU_X:g}")
    ax_w.set_ylabel("mode amplitude $w_k(t)\\,/\\,w_k(0)$")
    ax_w.plot([], [], "ko", ms=3.2, label="simulation (package model)")
    ax_w.plot([], [], "k-", lw=1.6, label="closed form, Euler (exact)")
    ax_w.plot([], [], "k:", lw=0.8, label="closed form, continuous")
    ax_w.legend(fontsize=7.5, frameon=False, loc="upper right", ncol=2)
    ax_w.set_ylim(-0.02, 1.42)  # headroom for the legend
    ax_w.set_yticks(np.linspace(0, 1, 6))
    ax_w.spines["left"].set_bounds(0, 1)
    for ax in (ax_s, ax_w):
        ax.set_xlim(0, T)
        sns.despine(ax=ax)


def _draw_correspondence(ax_w, ax_e, corr, window=120):
    w = np.asarray(corr["w_nmrnn"])[0]
    c = np.asarray(corr["c_lstm_rescaled"])[0]
    exact = np.asarray(corr["w_exact"])[0]
    T, K = w.shape
    t = np.arange(1, T + 1)
    colors = sns.color_palette("deep", K)
    for k in range(K):
        ax_w.plot(t[:window], w[:window, k], color=colors[k], lw=1.6, label=f"NM-RNN $w_{k + 1}$")
        ax_w.plot(t[:window:2], c[:window:2, k], "o", color="k", ms=2.0, mec="none")
    ax_w.plot([], [], "ko", ms=2.5, label="LSTM $c/\\varepsilon$")
    ax_w.set_ylabel("$w = Q^\\top x$  and  $c/\\varepsilon$")
    ax_w.set_xlim(0, window)
    low, high = ax_w.get_ylim()
    ax_w.set_ylim(low, high + 0.3 * (high - low))  # headroom for the legend
    ax_w.legend(fontsize=7.5, frameon=False, ncol=4, loc="upper left")
    ax_w.set_xlabel(f"time (steps; first {window} of T = {T}), τx = 1")

    scale = np.abs(exact).max()
    floor = 1e-10
    series = [
        (np.abs(w - c).max(axis=1), "NM-RNN vs LSTM", "k", 1.2),
        (np.abs(c - exact).max(axis=1), "LSTM vs exact (float64)", "#2ca02c", 0.9),
        (np.abs(w - exact).max(axis=1), "NM-RNN vs exact (float64)", "#ff7f0e", 0.9),
    ]
    for err, label, color, lw in series:
        ax_e.semilogy(t, np.maximum(err / scale, floor), color=color, lw=lw, label=label)
    ax_e.axhline(1e-5, color="grey", ls="--", lw=0.9, label="tolerance 1e-5")
    ax_e.axhline(np.finfo(np.float32).eps, color="grey", ls=":", lw=0.9, label="float32 eps")
    ax_e.set_ylim(floor, 1e-3)
    ax_e.set_xlim(0, T)
    ax_e.set_xlabel("time (steps)")
    ax_e.set_ylabel("max error / max|w|")
    ax_e.legend(fontsize=7.5, frameon=False, ncol=3, loc="lower left", bbox_to_anchor=(0, 1.0))
    for ax in (ax_w, ax_e):
        sns.despine(ax=ax)


def _box(ax, xy, width, height, title, body, color):
    x, y = xy
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            width,
            height,
            boxstyle="round,pad=0.006,rounding_size=0.015",
            fc=color,
            ec="0.3",
            lw=0.9,
            transform=ax.transAxes,
        )
    )
    ax.text(x + 0.012, y + height - 0.03, title, fontsize=9, fontweight="bold", va="top")
    ax.text(x + 0.012, y + height / 2 - 0.035, body, fontsize=9.5, va="center")


def _draw_diagram(ax):
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    left, right, width, height = 0.01, 0.56, 0.40, 0.155
    nm_color, lstm_color = "#e8f0fa", "#fdf1e4"
    ax.text(left + width / 2, 0.985, "linear symmetric NM-RNN  (τx = 1,  Q = QR(L))",
            ha="center", va="top", fontsize=10.5, fontweight="bold")  # fmt: skip
    ax.text(right + width / 2, 0.985, "LSTM  (input $[u_t, z_t]$,  $W_h = 0$)",
            ha="center", va="top", fontsize=10.5, fontweight="bold")  # fmt: skip
    rows = [
        (
            "neuromodulatory gain",
            "$s_t = \\sigma(A_z z_t + b_z)$",
            "forget gate",
            "$f_t = \\sigma(W_{x,f}[u_t; z_t] + b_f)$,  $W_{x,f} = [0\\;A_z]$, $b_f = b_z$",
            "$s \\leftrightarrow f$",
        ),
        (
            "input to the modes",
            "$Q^\\top B_x u_t$",
            "input path",
            "$i_t \\odot g_t$,  $i = \\sigma(100) = 1$,  "
            "$g = \\tanh(\\varepsilon Q^\\top B_x u_t) = \\varepsilon Q^\\top B_x u_t$",
            "$Q^\\top B_x u \\leftrightarrow i \\odot g$",
        ),
        (
            "mode amplitudes",
            "$w_t = Q^\\top x_t = s_t \\odot w_{t-1} + Q^\\top B_x u_t$",
            "cell state",
            "$c_t = f_t \\odot c_{t-1} + i_t \\odot g_t = \\varepsilon\\, w_t$",
            "$w \\leftrightarrow c/\\varepsilon$",
        ),
        (
            "readout",
            "$y_t = C Q\\, w_t + C x_{\\perp,t} + d$",
            "readout",
            "$y_t = C_{\\mathrm{lstm}} h_t$,  $h = \\tanh(c) = c$,  "
            "$C_{\\mathrm{lstm}} = [CQ,\\; I]/\\varepsilon$",
            "$CQ \\leftrightarrow C_{\\mathrm{lstm}}$",
        ),
    ]
    tops = [0.92, 0.71, 0.50, 0.29]
    for top, (t_nm, b_nm, t_l, b_l, link) in zip(tops, rows, strict=True):
        y = top - height
        _box(ax, (left, y), width, height, t_nm, b_nm, nm_color)
        _box(ax, (right, y), 0.43, height, t_l, b_l, lstm_color)
        ax.add_patch(
            FancyArrowPatch(
                (left + width + 0.012, y + height / 2),
                (right - 0.012, y + height / 2),
                arrowstyle="<|-|>",
                mutation_scale=12,
                lw=1.3,
                color="0.25",
                transform=ax.transAxes,
            )
        )
        ax.text((left + width + right) / 2, y + height / 2 + 0.022, link, ha="center",
                va="bottom", fontsize=9)  # fmt: skip
    ax.text(
        0.01,
        0.035,
        "Assumptions: Euler step = τx (τx = 1); z_t is computed by the NM-RNN's own RNN and fed to "
        "the LSTM as input; the tanh input path is kept in its linear range by the scale ε = 1e-6 "
        "(i = o = 1, h = c);\nK mode units plus O memoryless readout units (f = 0) carry "
        "C x_⊥ + d, with x_⊥ = (I − QQᵀ)B_x u_t. The package's LSTM module expresses this exactly "
        "(no augmented LSTM).",
        fontsize=8.3,
        va="bottom",
        color="0.2",
    )


def plot(analysis: Mapping[str, Any], metrics: pd.DataFrame | None, out_png: str,
         out_pdf: str) -> None:  # fmt: skip
    """Draw Figure 2 from the analysis dict (:func:`nmrnn.figures.fig2.analyse.analyse`); write
    PNG and PDF. ``metrics`` (the ``theory`` table) is accepted for the common signature."""
    decay, corr = analysis["decay"], analysis["correspondence"]
    with sns.axes_style("ticks"):
        fig = Figure(figsize=(13.5, 10.0))
        grid = fig.add_gridspec(2, 1, height_ratios=[1.0, 0.78], hspace=0.28, left=0.06, right=0.98,
                                top=0.95, bottom=0.02)  # fmt: skip
        top = grid[0].subgridspec(1, 2, wspace=0.25)
        a = top[0].subgridspec(2, 1, height_ratios=[1, 3], hspace=0.08)
        b = top[1].subgridspec(2, 1, height_ratios=[1.2, 1], hspace=0.62)
        ax_s, ax_w = fig.add_subplot(a[0]), fig.add_subplot(a[1])
        ax_bw, ax_be = fig.add_subplot(b[0]), fig.add_subplot(b[1])
        ax_c = fig.add_subplot(grid[1])
        _draw_decay(ax_s, ax_w, decay)
        _draw_correspondence(ax_bw, ax_be, corr)
        _draw_diagram(ax_c)
        ax_s.set_title("a mode's timescale is τx / (1 − s)", fontsize=10.5)
        ax_bw.set_title("constructed LSTM reproduces the NM-RNN's modes", fontsize=10.5)
        for ax, letter in ((ax_s, "A"), (ax_bw, "B"), (ax_c, "C")):
            panel_letter(fig, ax, letter, dx=0.045, dy=0.01)

    save_figure(fig, out_png, out_pdf, dpi=200)

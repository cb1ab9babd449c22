"""Drawing conventions shared by the figures: architecture colours and names, panel letters,
empty panels and writing a figure as PNG and PDF."""

from __future__ import annotations

from pathlib import Path

# The figure-wide colour of each architecture (each figure colours other NM-RNN variants itself).
ARCH_COLORS = {
    "nmrnn": "#d62728",
    "nmrnn_rank1": "#ff7f0e",
    "lrrnn": "#1f77b4",
    "vanilla": "#7f7f7f",
    "lstm": "#2ca02c",
}
ARCH_LABELS = {
    "nmrnn": "NM-RNN",
    "nmrnn_rank1": "NM-RNN rank 1",
    "lrrnn": "LR-RNN",
    "vanilla": "vanilla RNN",
    "lstm": "LSTM",
}


def arch_label(arch: str) -> str:
    """An architecture's name in the figures ('lrrnn' -> 'LR-RNN'; unknown names as they are)."""
    return ARCH_LABELS.get(arch, arch)


def panel_letter(fig, ax, letter: str, dx: float, dy: float) -> None:
    """A bold panel letter ``dx`` left of and ``dy`` above the top-left corner of ``ax``."""
    box = ax.get_position()
    fig.text(box.x0 - dx, box.y1 + dy, letter, fontsize=16, fontweight="bold", va="bottom")


def empty_panel(ax, text: str, fontsize: float = 10, wrap: bool = False) -> None:
    """A panel with nothing to draw: no axes, a grey note in the middle."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=fontsize, color="0.4",
            transform=ax.transAxes, wrap=wrap)  # fmt: skip


def save_figure(fig, out_png, out_pdf, dpi: int = 150) -> None:
    """Write a figure as PNG (at ``dpi``) and PDF, creating their folders."""
    for path in (out_png, out_pdf):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi)
    fig.savefig(out_pdf)

"""Figure 2's claims: the theory checks (computed in :mod:`nmrnn.figures.fig2.analyse`) as claim
rows."""

from __future__ import annotations

import pandas as pd

from nmrnn import claims as cl

CHECKS = {
    "decay_max_abs_error_discrete": (
        "5-decay",
        "Simulated mode decay of the linear symmetric NM-RNN matches the closed form",
        "max |w_sim - w_closed| (Euler closed form)",
    ),
    "lstm_cell_max_rel_error": (
        "5-lstm",
        "An LSTM reproduces the linear symmetric NM-RNN's w = Q^T x to float precision",
        "max |c/eps - w| / max |w| over T steps",
    ),
    "lstm_readout_max_rel_error": (
        "5-lstm-readout",
        "The constructed LSTM's output equals the NM-RNN's output y",
        "max |y_lstm - y_nmrnn| / max |y|",
    ),
}


def claims(metrics: pd.DataFrame) -> list[dict]:
    """Claim rows from the theory table (columns experiment, check, value, tolerance, passed)."""
    rows = []
    for _, row in metrics.iterrows():
        if row["check"] not in CHECKS:
            continue
        claim, statement, metric = CHECKS[row["check"]]
        value, tol = float(row["value"]), float(row["tolerance"])
        rows.append(
            {
                "claim": claim,
                "statement": statement,
                "metric": metric,
                "values": f"{value:.3g}",
                "seeds": "",
                "test": f"below tolerance {tol:g}",
                "p_value": float("nan"),
                "holds": bool(value < tol),
                **dict.fromkeys(cl.UNCERTAINTY, float("nan")),  # one computed value, no seeds
                "detail": "",
            }
        )
    return rows

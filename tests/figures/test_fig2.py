"""Figure 2 end to end: the theory computed by analyse, its metrics table, the claims on it and the
drawing, as the workflow runs them (analyse → analysis_table → plot; claims_table)."""

import numpy as np
import pandas as pd
import pytest

from nmrnn.figures.fig2 import analyse as fig2
from nmrnn.figures.fig2 import claims as claims2
from nmrnn.figures.fig2.plot import plot
from nmrnn.io import load_tree, save_tree


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """The analysis as the plot rule reads it: saved and loaded again."""
    path = tmp_path_factory.mktemp("analysis") / "fig2.npz"
    save_tree(path, fig2.analyse())
    return load_tree(path)


def test_analyse_holds_the_panels_and_the_checks(stored):
    decay, corr = stored["decay"], stored["correspondence"]
    assert decay["s"].shape == decay["w_sim"].shape == (fig2.DECAY_T, len(fig2.CONSTANT_GAINS) + 1)
    assert corr["w_nmrnn"].shape == corr["c_lstm_rescaled"].shape == (1, fig2.LSTM_T, 3)
    assert corr["w_exact"].dtype == np.float64
    checks = stored["checks"]
    assert list(checks["check"]) == [*fig2.TOLERANCES, "lstm_sequence_length"]
    assert checks["passed"].all()


def test_table_claims_and_plot(stored, tmp_path):
    table = tmp_path / "metrics" / "theory.csv"
    fig2.write_table(stored, table)
    metrics = pd.read_csv(table)
    assert list(metrics.columns) == list(fig2.METRIC_COLUMNS)
    assert (metrics["experiment"] == "theory").all() and metrics["passed"].all()
    np.testing.assert_array_equal(metrics["value"], stored["checks"]["value"])
    rows = claims2.claims(metrics)
    assert [r["claim"] for r in rows] == ["5-decay", "5-lstm", "5-lstm-readout"]
    assert all(r["holds"] for r in rows)
    png, pdf = tmp_path / "fig2.png", tmp_path / "fig2.pdf"
    plot(stored, metrics, str(png), str(pdf))
    assert png.read_bytes()[:4] == b"\x89PNG" and pdf.read_bytes()[:4] == b"%PDF"
    assert png.stat().st_size > 50_000

"""Step functions of the pipeline's scripts (``nmrnn.steps``) tested without Snakemake."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def test_curves_table_bins_each_run(tmp_path):
    from nmrnn.steps import curves_table

    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("step,loss\n" + "".join(f"{t},{t}\n" for t in range(10)))
    checks = {3: 0.5, 9: 0.25}
    second.write_text("step,loss,validation_loss\n"
                      + "".join(f"{t},1,{checks.get(t, '')}\n" for t in range(10)))  # fmt: skip
    out = tmp_path / "curves.csv"
    curves_table([str(first), str(second)], [("mwg", "lstm", 0), ("eft", "lstm", 3)], str(out), 4)
    table = pd.read_csv(out)
    a = table[table["experiment"] == "mwg"]
    assert list(a["step_start"]) == [0, 3, 6, 8] and list(a["step_end"]) == [3, 6, 8, 10]
    assert list(a["train_loss"]) == [1.0, 4.0, 6.5, 8.5]
    assert a["validation_loss"].isna().all()
    b = table[table["experiment"] == "eft"]
    assert list(b["seed"].unique()) == [3]
    assert np.isnan(b["validation_loss"].iloc[0]) and b["validation_loss"].iloc[1] == 0.5
    assert b["validation_loss"].iloc[3] == 0.25
    with pytest.raises(ValueError, match="runs named"):
        curves_table([str(first)], [], str(out), 4)

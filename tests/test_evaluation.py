"""nmrnn.evaluation: what one seed's metrics table must hold (its rows follow the config: one per
MWG test interval, multitask task and reference set, EFT checkpoint), so a table cut short or
written by another config is refused before it reaches a figure."""

from __future__ import annotations

import pytest

from nmrnn.evaluation import expected_rows, expected_table
from nmrnn.experiments import parse

ARCH = {
    "model": "lstm",
    "settings": {"N": 4},
    "stages": [{"trainable": "all", "steps": 1, "learning_rate": 0.01}],
}
EXPERIMENTS = {
    "mwg": {"task": "mwg", "archs": {"lstm": ARCH, "nmrnn": ARCH}},
    "multitask": {"task": "multitask", "archs": {"lstm": ARCH}},
    "multitask_transfer": {"task": "multitask_transfer", "archs": {"lstm": ARCH}},
    "eft": {"task": "eft", "archs": {"lstm": ARCH}},
    "eft_selected": {
        "task": "eft",
        "select_best": {"every": 10, "trials": 8},
        "archs": {"lstm": ARCH},
    },
}


def test_expected_rows_follow_the_config():
    exp = {name: parse(EXPERIMENTS, name) for name in EXPERIMENTS}
    assert expected_rows(exp["mwg"], "lstm") == 12
    assert expected_rows(exp["multitask"], "lstm") == 3
    assert expected_rows(exp["multitask"], "lstm", reference=True) == 6
    assert expected_rows(exp["multitask_transfer"], "lstm", reference=True) == 2
    assert expected_rows(exp["eft"], "lstm") == 1
    assert expected_rows(exp["eft_selected"], "lstm") == 2
    spec = expected_table(exp["multitask"], "lstm")
    assert spec["rows"] == [3, 6] and "loss" not in spec["required"]
    assert spec["columns"][:4] == ["experiment", "arch", "seed", "stage"]
    assert expected_table(exp["mwg"], "lstm")["rows"] == [12]
    with pytest.raises(ValueError, match="no architecture"):
        expected_rows(exp["mwg"], "vanilla")

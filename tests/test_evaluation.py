"""nmrnn.evaluation: what one seed's metrics table must hold (its rows follow the config: one per
MWG test interval, multitask task and reference set, EFT checkpoint), so a table cut short or
written by another config is refused before it reaches a figure."""

from __future__ import annotations

import pytest

from nmrnn.evaluation import expected_rows, expected_table

EXPERIMENTS = {
    "mwg": {"task": "mwg", "archs": {"lstm": {}, "nmrnn": {}}},
    "multitask": {"task": "multitask", "archs": {"lstm": {}}},
    "multitask_transfer": {"task": "multitask_transfer", "archs": {"lstm": {}}},
    "eft": {"task": "eft", "archs": {"lstm": {}}},
    "eft_selected": {"task": "eft", "select_best": {"every": 10}, "archs": {"lstm": {}}},
}


def test_expected_rows_follow_the_config():
    assert expected_rows(EXPERIMENTS, "mwg", "lstm") == 12
    assert expected_rows(EXPERIMENTS, "multitask", "lstm") == 3
    assert expected_rows(EXPERIMENTS, "multitask", "lstm", reference=True) == 6
    assert expected_rows(EXPERIMENTS, "multitask_transfer", "lstm", reference=True) == 2
    assert expected_rows(EXPERIMENTS, "eft", "lstm") == 1
    assert expected_rows(EXPERIMENTS, "eft_selected", "lstm") == 2
    spec = expected_table(EXPERIMENTS, "multitask", "lstm")
    assert spec["rows"] == [3, 6] and "loss" not in spec["required"]
    assert spec["columns"][:4] == ["experiment", "arch", "seed", "stage"]
    assert expected_table(EXPERIMENTS, "mwg", "lstm")["rows"] == [12]
    with pytest.raises(ValueError, match="no architecture"):
        expected_rows(EXPERIMENTS, "mwg", "vanilla")

"""Config validation: every mistake stops at start-up with one line naming the key or the file,
before any data is generated or any job runs."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
from config_cases import PAPER, mwg_only, the_error

from nmrnn.config import ConfigError, merge, read_yaml, validate
from nmrnn.experiments import data_key, data_settings, data_spec, make_task_data, parse
from nmrnn.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]


def test_paper_config_is_valid():
    checked = validate(PAPER)
    assert set(checked["experiments"]) == {"mwg", "multitask", "multitask_transfer", "eft"}


@pytest.mark.parametrize(
    "update, named",
    [
        # names become folders and wildcard values: letters, digits, underscores only
        ({"experiments": {"../../../escape": PAPER["experiments"]["mwg"]}}, "../../../escape"),
        ({"experiments": {"mwg": {"archs": {"lstm(": {"model": "lstm", "stages": []}}}}}, "lstm("),
        ({"results_dir": "/"}, "results_dir"),
        ({"results_dir": ""}, "results_dir"),
        ({"figures_dir": "//"}, "figures_dir"),
        ({"experiments": {"mwg": {"seeds": 100000}}}, "seeds"),
        # semantic checks that used to surface only inside a training job
        ({"experiments": {"mwg": {"select_best": {"every": 10, "trials": 5}}}}, "select_best"),
        ({"experiments": {"mwg": {"archs": {"lstm": {"settings": {"K": 3}}}}}}, "'K'"),
        (
            {
                "experiments": {
                    "mwg": {
                        "archs": {
                            "lstm": {
                                "stages": [
                                    {"trainable": "neuromod", "steps": 10, "learning_rate": 0.01}
                                ]
                            }
                        }
                    }
                }
            },
            "neuromod",
        ),  # fmt: skip
        ({"experiments": {"mwg": {"archs": {"nmrnn": {"settings": {"N": "match"}}}}}}, "match"),
        ({"experiments": {"mwg": {"archs": {"nmrnn": {"settings": {"N": 3, "K": 10}}}}}}, "K"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(update, named):
    message = the_error(merge(mwg_only(), update))
    assert named in message, message


def test_a_model_without_its_required_settings_is_named():
    config = mwg_only()
    del config["experiments"]["mwg"]["archs"]["vanilla"]["settings"]
    message = the_error(config)
    assert message == "experiments.mwg.archs.vanilla: model 'vanilla' needs the setting 'N'"
    # the reference of N: match is named as itself, not as the architecture sized to it
    config = mwg_only()
    config["experiments"]["mwg"]["archs"]["nmrnn"]["settings"] = {"N": 10}
    message = the_error(config)
    assert message.startswith("experiments.mwg.archs.nmrnn: model 'nmrnn' needs the settings")
    assert "'K', 'M'" in message


def test_multitask_training_tasks_listed_once_each():
    config = {"experiments": {"multitask": copy.deepcopy(PAPER["experiments"]["multitask"])}}
    config["experiments"]["multitask"]["tasks"] = [0, 0]
    assert the_error(config).startswith("experiments.multitask.tasks: [0, 0] has non-unique")


def test_config_command_line_help(capsys):
    from nmrnn.config import main

    assert main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: python -m nmrnn.config")


def test_match_reference_cycle_is_a_config_error_not_a_recursion():
    config = merge(mwg_only(), {"experiments": {"mwg": {"match_reference": "lrrnn"}}})
    message = the_error(config)
    assert "match_reference" in message and "lrrnn" in message


@pytest.mark.parametrize(
    "text, named",
    [("", "empty"), ("experiments:\n  mwg: {seeds: 3\n", "line 3"), ("- a\n- b\n", "mapping")],
)
def test_unusable_config_file_is_named(tmp_path, text, named):
    path = tmp_path / "extra.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_yaml(path)
    assert str(path) in str(err.value) and named in str(err.value)
    # the command-line check merges files as --configfile does and says the same in one line
    result = subprocess.run(
        [sys.executable, "-m", "nmrnn.config", str(ROOT / "config.yaml"), str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and str(path) in result.stderr


def test_task_data_depends_only_on_its_settings():
    """The task_data rule's params: no seeds, architectures or protocol; the data made from them
    equals the data made from the whole experiment."""
    exp = validate(PAPER)["experiments"]["eft"]
    subset = data_settings(exp)
    assert "archs" not in subset and "seeds" not in subset and "optimizer" not in subset
    small = merge(exp, {"test_batch": 20, "select_best": {"trials": 10}})
    whole = get_task("eft").make_data(small, data_key("eft", 0))  # from every setting
    part = make_task_data(data_spec("eft", data_settings(small)), 0)
    assert parse({"eft": small}, "eft").data == data_spec("eft", data_settings(small))
    assert set(whole) == set(part) == {"test", "validation"}
    for name in whole:
        for a, b in zip(whole[name], part[name], strict=True):
            if not isinstance(a, dict):
                assert (a == b).all()


def test_null_removes_an_experiment_or_an_architecture():
    """Config files merge; an overlay deletes an earlier file's entry with null."""
    overlay = {"experiments": {"multitask": None, "mwg": {"archs": {"lstm": None}}}}
    config = validate(merge(PAPER, merge(overlay, {"experiments": {"multitask_transfer": None}})))
    assert "multitask" not in config["experiments"]
    assert "lstm" not in config["experiments"]["mwg"]["archs"]
    # a transfer experiment whose source was removed is named
    message = the_error(merge(PAPER, {"experiments": {"multitask": None}}))
    assert "multitask_transfer.pretrained" in message

"""What the config tests share: the paper config, its MWG experiment alone (a fresh copy each
time, fast to check) and the one-line error a config gets."""

from __future__ import annotations

import copy

import pytest
import yaml
from snakemake_cli import ROOT

from nmrnn.config import ConfigError, validate

PAPER = yaml.safe_load((ROOT / "config.yaml").read_text())


def mwg_only(**top) -> dict:
    """The paper's MWG experiment alone (a copy: tests may edit it), plus top-level keys."""
    return {"experiments": {"mwg": copy.deepcopy(PAPER["experiments"]["mwg"])}, **top}


def the_error(config) -> str:
    """The message of the ConfigError ``config`` raises, checked to be one line."""
    with pytest.raises(ConfigError) as err:
        validate(config)
    message = str(err.value)
    assert "\n" not in message
    return message

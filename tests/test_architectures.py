"""Parameter counts of the paper's models, parameter matching of the baselines, and build_model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from nmrnn.architectures import (
    ConfigError,
    build_model,
    count_parameters,
    match_size,
    parameter_count,
    parameter_groups,
    smallest_size,
)
from nmrnn.models import LRRNN, LSTM, MODELS, MODULES, NMRNN, VanillaRNN

MWG_INPUTS = 3
MWG_NMRNN = {"model": "nmrnn", "N": 100, "M": 5, "K": 3, "O": 1, "tau_x": 10.0, "tau_z": 100.0}
EFT_NMRNN = {
    "model": "nmrnn",
    "M": 5,
    "N": 18,
    "K": 8,
    "O": 1,
    "feedback": True,
    "readout_bias": False,
    "normalisation": "inv_n",
    "init_scheme": "eft",
    "tau_x": 2.0,
    "tau_z": 10.0,
}


def test_mwg_nmrnn_has_1059_parameters():
    model = build_model(MWG_NMRNN)
    assert isinstance(model, NMRNN)
    assert parameter_count(model, MWG_INPUTS) == 1059
    # By hand from SPEC §1: L, R, B_x, B_z, C, d, W_z, A_z, b_z.
    assert 300 + 300 + 300 + 15 + 100 + 1 + 25 + 15 + 3 == 1059


@pytest.mark.parametrize(
    "settings, cls, size, count",
    [
        ({"model": "lrrnn", "K": 3, "O": 1, "tau_x": 10.0}, LRRNN, 106, 1061),
        ({"model": "vanilla", "O": 1, "tau_x": 10.0}, VanillaRNN, 31, 1086),
        ({"model": "lstm", "O": 1}, LSTM, 15, 1155),
    ],
)
def test_parameter_matched_baselines_for_mwg(settings, cls, size, count):
    matched = match_size(settings, MWG_NMRNN, MWG_INPUTS)
    assert matched == {**settings, "N": size}
    model = build_model(matched)
    assert isinstance(model, cls)
    assert parameter_count(model, MWG_INPUTS) == count
    # The smallest size reaching the NM-RNN's count: one unit fewer falls short.
    assert parameter_count(build_model({**settings, "N": size - 1}), MWG_INPUTS) < 1059


def plain_search(count_of, target, min_size):
    """The smallest size by walking up one unit at a time: the rule, with no shortcut."""
    n = min_size
    while count_of(n) < target:
        n += 1
    return n


@pytest.mark.parametrize(
    "count_of",
    [
        lambda n: 4 * n * n + 9 * n + 5,  # quadratic (LSTM-like): the shortcut's case
        lambda n: 7 * n + 3,  # linear (LR-RNN at fixed K)
        lambda n: n**3 // 5 + n,  # not quadratic: the prediction misses, the bisection answers
        lambda n: 10 * (n // 4) + n,  # steps: also not quadratic
    ],
)
def test_size_search_equals_the_plain_walk(count_of):
    for min_size in (1, 3):
        for target in (1, 2, 17, 100, 1059, 4096, 12345):
            size, count = smallest_size(count_of, target, min_size)
            assert size == plain_search(count_of, target, min_size), (target, min_size)
            assert count == count_of(size)


def test_size_search_names_an_unreachable_target():
    with pytest.raises(ConfigError, match="no size up to 50"):
        smallest_size(lambda n: n, 1000, max_size=50)


def test_lstm_matching_rule_is_at_least_not_closest():
    # SPEC: the closest count would give LSTM N=14; the rule (at least 1059) gives 15.
    c14 = parameter_count(build_model({"model": "lstm", "N": 14, "O": 1}), MWG_INPUTS)
    c15 = parameter_count(build_model({"model": "lstm", "N": 15, "O": 1}), MWG_INPUTS)
    assert abs(c14 - 1059) < abs(c15 - 1059) and c14 < 1059 <= c15


def test_eft_nmrnn_with_feedback_has_497_parameters():
    model = build_model(EFT_NMRNN)
    assert model.feedback and not model.readout_bias
    assert parameter_count(model, 1) == 497
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 2, 1)))["params"]
    assert "d" not in shapes and {"W_zx", "b_zx"} <= set(shapes)


def test_multitask_context_routing_shrinks_only_B_x():
    full = build_model({"model": "nmrnn", "N": 100, "M": 5, "K": 4, "O": 3})
    routed = build_model({"model": "nmrnn", "N": 100, "M": 5, "K": 4, "O": 3, "x_inputs": 3})
    # 7 inputs: fixation, sin, cos, 4 contexts; x sees only the first 3.
    assert parameter_count(full, 7) - parameter_count(routed, 7) == 100 * 4


# Same sizes as tests/test_models.py, so that in one pytest run the random draws are compiled once.
SMALL = {"N": 30, "O": 5}
SMALL_NM = {**SMALL, "M": 15, "K": 8}


@pytest.mark.parametrize(
    "settings",
    [
        {"model": "nmrnn", **SMALL_NM, "x_inputs": 3},
        {
            "model": "nmrnn",
            **SMALL_NM,
            "feedback": True,
            "readout_bias": False,
            "init_scheme": "eft",
            "normalisation": "inv_n",
        },
        {"model": "lrrnn", **SMALL, "K": 8},
        {"model": "vanilla", **SMALL},
        {"model": "lstm", **SMALL},
    ],
    ids=lambda s: s["model"],
)
def test_count_from_pytree_equals_count_via_eval_shape(settings):
    n_inputs = 6
    model = build_model(settings)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 1, n_inputs)))
    n = count_parameters(variables)
    assert n == count_parameters(variables["params"])
    assert n == parameter_count(model, n_inputs)
    # Initial states are constants, not parameters.
    assert "constants" in variables
    assert n == sum(a.size for a in jax.tree.leaves(variables["params"]))


def test_the_registry_holds_the_entries_of_every_model_module():
    names = [entry.name for module in MODULES for entry in module.MODELS]
    assert sorted(names) == sorted(MODELS)
    assert {"nmrnn", "linear_nmrnn", "lrrnn", "vanilla", "lstm"} <= set(MODELS)
    for name, entry in MODELS.items():
        assert entry.name == name
        assert not {"parent", "name", "gradient"} & entry.settings  # flax's, or not a setting
        assert {"N", "O"} <= entry.settings  # every model has a size N and outputs O
    assert MODELS["linear_nmrnn"].settings == MODELS["nmrnn"].settings - {"linear"}


def test_linear_nmrnn_is_linear():
    model = build_model({"model": "linear_nmrnn", "N": 12, "M": 3, "K": 2, "O": 1})
    assert isinstance(model, NMRNN) and model.linear


def test_unknown_model_raises_config_error_naming_it():
    with pytest.raises(ConfigError, match="'transformer'"):
        build_model({"model": "transformer", "N": 10})
    with pytest.raises(ConfigError, match="None"):
        build_model({"N": 10})


@pytest.mark.parametrize(
    "settings, bad",
    [
        ({"model": "nmrnn", "N": 10, "M": 2, "K": 2, "O": 1, "tau": 10.0}, "tau"),
        ({"model": "lstm", "N": 10, "O": 1, "tau_x": 10.0}, "tau_x"),
        ({"model": "linear_nmrnn", "N": 10, "M": 2, "K": 2, "O": 1, "linear": False}, "linear"),
        ({"model": "vanilla", "N": 10, "O": 1, "K": 3}, "K"),
    ],
)
def test_unknown_setting_raises_config_error_naming_it(settings, bad):
    with pytest.raises(ConfigError, match=f"'{bad}'"):
        build_model(settings)
    assert issubclass(ConfigError, ValueError)


def test_parameter_groups():
    nm = parameter_groups(build_model(MWG_NMRNN))
    assert set(nm["lowrank"]) == {"L", "R", "B_x", "C", "d"}
    assert {"W_z", "B_z", "A_z", "b_z"} <= set(nm["neuromod"])
    lstm = parameter_groups(build_model({"model": "lstm", "N": 4, "O": 1}))
    assert set(lstm["inputs"]) == {"Wx_i", "Wx_f", "Wx_g", "Wx_o"}

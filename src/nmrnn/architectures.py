"""Build models from plain settings (as in config.yaml), count their parameters, and size baselines
to match a reference model's parameter count."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nmrnn.config import ConfigError
from nmrnn.models import LRRNN, LSTM, NMRNN, LinearNMRNN, VanillaRNN

MODEL_CLASSES: dict[str, Callable[..., nn.Module]] = {
    "nmrnn": NMRNN,
    "linear_nmrnn": LinearNMRNN,
    "lrrnn": LRRNN,
    "vanilla": VanillaRNN,
    "lstm": LSTM,
}


def _fields(cls) -> set[str]:
    """The settings of a model class. ``gradient`` (how the time loop is differentiated) is not
    one: it does not show in a run's fingerprint, so a config must not choose it."""
    if cls is LinearNMRNN:
        cls = NMRNN
    hidden = ("parent", "name", "gradient")
    return {f.name for f in dataclasses.fields(cls) if f.name not in hidden}


def build_model(settings: Mapping[str, Any]) -> nn.Module:
    """A model from settings such as ``{"model": "nmrnn", "N": 100, "M": 5, "K": 3, "O": 1}``.

    Raises ConfigError naming an unknown model or setting, or a setting with a bad value (the
    model's own ValueError, e.g. ``K`` not a positive integer or larger than ``N``).
    """
    settings = dict(settings)
    kind = settings.pop("model", None)
    if kind not in MODEL_CLASSES:
        raise ConfigError(f"unknown model {kind!r}; choose one of {sorted(MODEL_CLASSES)}")
    cls = MODEL_CLASSES[kind]
    allowed = _fields(cls) - ({"linear"} if kind == "linear_nmrnn" else set())
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ConfigError(
            f"model {kind!r} has no setting {unknown[0]!r}; its settings are {sorted(allowed)}"
        )
    try:
        return cls(**settings)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(str(err)) from err


def count_parameters(variables_or_params: Mapping[str, Any]) -> int:
    """Number of trainable numbers: the leaves of ``params`` (or of a bare params tree)."""
    tree = variables_or_params.get("params", variables_or_params)
    return int(sum(leaf.size for leaf in jax.tree.leaves(tree)))


def parameter_count(model: nn.Module, n_inputs: int) -> int:
    """Parameter count of ``model`` for ``n_inputs`` input channels, without allocating weights."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 2, n_inputs)))
    return count_parameters(shapes)


def smallest_matching_size(
    make: Callable[[int], nn.Module],
    target: int,
    n_inputs: int,
    max_size: int = 100_000,
    min_size: int = 1,
) -> tuple[int, int]:
    """The smallest size N >= ``min_size`` whose model has at least ``target`` parameters, and
    that count.

    ``make(N)`` builds the candidate (it must accept every N >= ``min_size``, e.g. ``min_size=K``
    for a rank-K model); counts grow with N, so a bisection finds it.
    """
    lo, hi = min_size, min_size
    while parameter_count(make(hi), n_inputs) < target:
        lo, hi = hi + 1, hi * 2
        if hi > max_size:
            raise ConfigError(f"no size up to {max_size} reaches {target} parameters")
    while lo < hi:
        mid = (lo + hi) // 2
        if parameter_count(make(mid), n_inputs) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo, parameter_count(make(lo), n_inputs)


def match_size(
    settings: Mapping[str, Any], reference: Mapping[str, Any], n_inputs: int
) -> dict[str, Any]:
    """Settings of a baseline with ``N`` chosen to match the reference model's parameter count."""
    target = parameter_count(build_model(reference), n_inputs)
    base = {k: v for k, v in settings.items() if k != "N"}
    # A rank-K model needs N >= K, so the search starts there (a bad K is left to build_model).
    rank = base.get("K", 1)
    start = rank if isinstance(rank, int) and not isinstance(rank, bool) and rank > 1 else 1
    size, _ = smallest_matching_size(
        lambda n: build_model({**base, "N": n}), target, n_inputs, min_size=start
    )
    return {**base, "N": size}


def parameter_groups(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """Named subsets of the parameters used by staged and transfer training (plus ``all``)."""
    return dict(getattr(model, "PARAM_GROUPS", {}))

"""Build models of the registry (:data:`nmrnn.models.MODELS`) from plain settings (as in
config.yaml), count their parameters, and size baselines to match a reference model's parameter
count."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nmrnn.errors import ConfigError
from nmrnn.models import MODELS


def model_settings_of(kind: str) -> frozenset[str]:
    """The settings a model kind accepts (empty for a name that is not a model:
    :func:`build_model` names the choices)."""
    return MODELS[kind].settings if kind in MODELS else frozenset()


def build_model(settings: Mapping[str, Any]) -> nn.Module:
    """A model from settings such as ``{"model": "nmrnn", "N": 100, "M": 5, "K": 3, "O": 1}``.

    Raises ConfigError naming an unknown model or setting, or a setting with a bad value (the
    model's own ValueError, e.g. ``K`` not a positive integer or larger than ``N``).
    """
    if not isinstance(settings, Mapping):
        raise ConfigError(
            f"model settings must be a mapping such as {{'model': 'vanilla', 'N': 64, 'O': 1}}, "
            f"got a {type(settings).__name__}"
        )
    settings = dict(settings)
    kind = settings.pop("model", None)
    if kind not in MODELS:
        raise ConfigError(f"unknown model {kind!r}; choose one of {sorted(MODELS)}")
    allowed = MODELS[kind].settings
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ConfigError(
            f"model {kind!r} has no setting {unknown[0]!r}; its settings are {sorted(allowed)}"
        )
    missing = sorted(MODELS[kind].required - set(settings))
    if missing:
        raise ConfigError(
            f"model {kind!r} needs the setting{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)}"
        )
    try:
        return MODELS[kind].build(**settings)
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


MAX_SIZE = 100_000  # the largest N a size search tries


def smallest_size(
    count_of: Callable[[int], int], target: int, min_size: int = 1, max_size: int = MAX_SIZE
) -> tuple[int, int]:
    """The smallest size N >= ``min_size`` whose model has at least ``target`` parameters, and
    that count; ``count_of(N)`` gives the parameter count of size N (e.g. through
    :func:`settings_parameter_count`; it must accept every N >= ``min_size``, e.g. ``min_size=K``
    for a rank-K model).

    Counts grow with N. Every model here has a count quadratic in N, so three counts predict the
    answer, which two more confirm (the counts at N and N - 1); a count that is not quadratic
    falls back to a bisection over the counts, with the same answer.
    """
    counts: dict[int, int] = {}

    def count(n: int) -> int:
        if n not in counts:
            counts[n] = count_of(n)
        return counts[n]

    f0, f1, f2 = (count(min_size + j) for j in range(3))
    d1, d2 = f1 - f0, f2 - 2 * f1 + f0

    def quadratic(n: int) -> int:  # through the three counts
        j = n - min_size
        return f0 + j * d1 + d2 * j * (j - 1) // 2

    if quadratic(max_size) >= target:  # q is not monotone in general: check the crossing found
        n = _first_reaching(quadratic, target, min_size, max_size)
        if count(n) >= target and (n == min_size or count(n - 1) < target):
            return n, count(n)
    lo, hi = min_size, min_size
    while count(hi) < target:
        lo, hi = hi + 1, hi * 2
        if hi > max_size:
            raise ConfigError(f"no size up to {max_size} reaches {target} parameters")
    n = _first_reaching(count, target, lo, hi)
    return n, count(n)


def _first_reaching(f: Callable[[int], int], target: int, lo: int, hi: int) -> int:
    """Bisection: the smallest n in [lo, hi] with f(n) >= target, given f(hi) >= target and f
    non-decreasing on [lo, hi]."""
    while lo < hi:
        mid = (lo + hi) // 2
        if f(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


_COUNTS: dict[tuple[str, int], int] = {}


def settings_parameter_count(settings: Mapping[str, Any], n_inputs: int) -> int:
    """:func:`parameter_count` of the model built from ``settings``, remembered for the process:
    config checks and jobs ask for the same references and candidates many times."""
    key = (json.dumps(settings, sort_keys=True, default=repr), n_inputs)
    if key not in _COUNTS:
        _COUNTS[key] = parameter_count(build_model(settings), n_inputs)
    return _COUNTS[key]


def match_size(
    settings: Mapping[str, Any], reference: Mapping[str, Any], n_inputs: int
) -> dict[str, Any]:
    """Settings of a baseline with ``N`` chosen to match the reference model's parameter count."""
    target = settings_parameter_count(reference, n_inputs)
    base = {k: v for k, v in settings.items() if k != "N"}
    # A rank-K model needs N >= K, so the search starts there (a bad K is left to build_model).
    rank = base.get("K", 1)
    start = rank if isinstance(rank, int) and not isinstance(rank, bool) and rank > 1 else 1
    size, _ = smallest_size(
        lambda n: settings_parameter_count({**base, "N": n}, n_inputs), target, min_size=start
    )
    return {**base, "N": size}


def parameter_groups(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """Named subsets of the parameters used by staged and transfer training (plus ``all``)."""
    return dict(getattr(model, "PARAM_GROUPS", {}))

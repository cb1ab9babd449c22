"""The paper's experiments as settings → (model, data, batches, protocol).

An experiment's settings are one entry of ``config.yaml``'s ``experiments`` mapping (see
``nmrnn/config.schema.yaml``). This module turns them into what the training engine needs, so a
notebook can run the same experiment as the pipeline::

    from nmrnn import config
    from nmrnn.experiments import train_seeds
    cfg = config.load("config.yaml", {"step_scale": 0.01})
    model, result = train_seeds(config.scaled_experiments(cfg), "mwg", "nmrnn", seeds=[0, 1])
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nmrnn import training
from nmrnn.architectures import (
    build_model,
    match_size,
    model_settings_of,
    parameter_groups,
    settings_parameter_count,
)
from nmrnn.errors import ConfigError
from nmrnn.tasks import get_task
from nmrnn.tasks.common import TaskData
from nmrnn.tasks.common import selects_on as _selects_on

# ----------------------------------------------------------------------------- keys


def _stable_hash(text: str) -> int:
    return zlib.crc32(text.encode()) & 0x7FFFFFFF


def data_key(experiment: str, seed: int) -> jax.Array:
    """Key of a seed's task data (pool, batch stream, test batch). Shared by the architectures of
    an experiment, so they are compared on the same trials (a paired design)."""
    return jax.random.fold_in(jax.random.key(_stable_hash(f"data/{experiment}")), seed)


def init_key(experiment: str, arch: str, seed: int) -> jax.Array:
    """Key of a seed's initial parameters: independent for every (experiment, arch, seed)."""
    return jax.random.fold_in(jax.random.key(_stable_hash(f"init/{experiment}/{arch}")), seed)


# ----------------------------------------------------------------------------- shapes


def task_dimensions(exp: Mapping[str, Any]) -> tuple[int, int]:
    """(input channels U, output channels O) of an experiment's trials."""
    return get_task(exp["task"]).dimensions(exp)


def model_settings(experiments: Mapping[str, Any], experiment: str, arch: str) -> dict:
    """Settings for :func:`nmrnn.architectures.build_model` of one architecture of an experiment.

    Adds the output size and, to a model that has the setting, the experiment's low-rank
    normalisation, context routing and initialisation; resolves ``N: match`` to the smallest size
    whose parameter count reaches the reference architecture's.
    Transfer experiments reuse the architectures of the experiment they start from.
    """
    exp = experiments[experiment]
    source = exp.get("pretrained", experiment)
    src = experiments[source]
    if arch not in src["archs"]:
        raise ConfigError(f"experiment {source!r} has no architecture {arch!r}")
    U, O = task_dimensions(src)
    spec = src["archs"][arch]
    settings = {"model": spec["model"], **spec.get("settings", {}), "O": O}
    has = model_settings_of(spec["model"])  # what the model can take: no list of model names
    if "normalisation" in has:
        settings.setdefault("normalisation", src.get("normalisation", "qr"))
        if "qr_sign" in src:  # absent: the models' default ("positive")
            settings.setdefault("qr_sign", src["qr_sign"])
    if "x_inputs" in has and src.get("context_to_z_only", False):
        x_inputs = get_task(src["task"]).x_inputs(src)
        if x_inputs is None:
            raise ConfigError(f"experiments.{source}.context_to_z_only: its task has no context")
        settings["x_inputs"] = x_inputs
    if src.get("init_scheme"):
        settings.setdefault("init_scheme", src["init_scheme"])
        if src["init_scheme"] == "eft" and "readout_bias" in has:
            settings.setdefault("readout_bias", False)  # a model without the setting has none
    if settings.get("N") == "match":
        ref_name = src.get("match_reference")
        if not ref_name or ref_name not in src["archs"]:
            raise ConfigError(
                f"experiments.{source}.archs.{arch}: 'N: match' needs match_reference naming "
                f"an architecture of {source!r}"
            )
        if src["archs"][ref_name].get("settings", {}).get("N") == "match":
            raise ConfigError(
                f"experiments.{source}.match_reference: {ref_name!r} has 'N: match' itself; the "
                f"reference needs an explicit N"
            )
        reference = model_settings(experiments, source, ref_name)
        settings = match_size(settings, reference, U)
    build_model(settings)  # fail now, naming the setting, if it is wrong
    return settings


# ----------------------------------------------------------------------------- data


# The settings an experiment's task data depends on (with the experiment's name and the seed).
DATA_KEYS = (
    "task",
    "tasks",
    "pool_per_task",
    "test_per_task",
    "pool",
    "test_trials",
    "test_batch",
    "task_settings",
)


def data_settings(exp: Mapping[str, Any]) -> dict:
    """The part of an experiment's settings that :func:`make_task_data` reads: the task, its
    pool and test sizes and the validation trials of ``select_best`` (not the seeds, the
    architectures or the training protocol)."""
    out = {key: exp[key] for key in DATA_KEYS if key in exp}
    if _selects_on(exp) == "validation":
        out["select_best"] = {"trials": exp["select_best"]["trials"]}
    return out


def make_task_data(exp: Mapping[str, Any], experiment: str, seed: int) -> dict[str, TaskData]:
    """The fixed data of one seed: the training pool (``train``) and the test set(s).

    Reads only :func:`data_settings` of ``exp``."""
    return get_task(exp["task"]).make_data(exp, data_key(experiment, seed))


def batch_function(
    exp: Mapping[str, Any], arch: str | None = None
) -> Callable[[Any, jax.Array], TaskData]:
    """``batch_fn(data, key)`` of the training engine for an experiment's task (and, for the
    multitask tasks, an architecture's :func:`~nmrnn.tasks.multitask.data_protocol`)."""
    return get_task(exp["task"]).batch_function(exp, arch)


# ----------------------------------------------------------------------------- protocol


def stages(exp: Mapping[str, Any], arch: str) -> list[training.Stage]:
    """The training protocol of one architecture."""
    return [
        training.Stage(
            name=st.get("name", st["trainable"]),
            trainable=st["trainable"],
            steps=int(st["steps"]),
            learning_rate=float(st["learning_rate"]),
        )
        for st in exp["archs"][arch]["stages"]
    ]


def optimizer(exp: Mapping[str, Any]) -> training.Optimizer:
    return training.Optimizer(**exp.get("optimizer", {}))


def selection(exp: Mapping[str, Any], data: Sequence[Mapping[str, TaskData]]):
    """The experiment's checkpoint selection (``select_best``) over the seeds' validation
    batches (or their training losses, ``on: train``), or None."""
    on = _selects_on(exp)
    if on is None:
        return None
    get_task(exp["task"]).check_selection(exp, "select_best")
    every = int(exp["select_best"]["every"])
    if on == "train":
        return training.Selection(every, on="train")
    missing = [i for i, d in enumerate(data) if "validation" not in d]
    if missing:
        raise ConfigError(
            "select_best is set but the task data has no validation trials: regenerate the "
            "experiment's data (the task_data rule) with this config"
        )
    return training.Selection(every, stack([d["validation"] for d in data]))


def add_input_column(model: nn.Module, params: dict, n_old: int, value: float = 0.1) -> dict:
    """Widen every input matrix of the model's ``inputs`` group that reads all ``n_old`` channels
    by one column filled with ``value`` (the new context channel of the transfer task)."""
    names = set(parameter_groups(model).get("inputs", ()))
    out = dict(params)
    for name in names & set(params):
        w = jnp.asarray(params[name])  # numpy float64 input becomes JAX's default float
        if w.shape[-1] == n_old:
            out[name] = jnp.concatenate([w, jnp.full(w.shape[:-1] + (1,), value, w.dtype)], -1)
    return out


def stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *a: jnp.stack([jnp.asarray(x) for x in a]), *trees)


def initial_variables(
    experiments: Mapping[str, Any],
    experiment: str,
    arch: str,
    seeds: Sequence[int],
    pretrained: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[nn.Module, dict]:
    """The model and its stacked initial variables (S leading axis) for the given seeds.

    For a transfer experiment, ``pretrained`` holds each seed's trained variables from the source
    experiment; they are widened by the new context column.
    """
    exp = experiments[experiment]
    model = build_model(model_settings(experiments, experiment, arch))
    U, _ = task_dimensions(exp)
    if "pretrained" in exp:
        if pretrained is None or len(pretrained) != len(seeds):
            raise ConfigError(f"experiment {experiment!r} needs pretrained variables per seed")
        source = experiments[exp["pretrained"]]
        U_old, _ = task_dimensions(source)
        # Under the authors' rule the source's kept parameters are its selected ones.
        kept = "selected_params" if _selects_on(source) == "train" else "params"
        per_seed = [
            {
                "params": add_input_column(
                    model, dict(v[kept]), U_old, exp.get("new_column_init", 0.1)
                ),
                "constants": v["constants"],
            }
            for v in pretrained
        ]
        return model, stack(per_seed)
    keys = jnp.stack([init_key(experiment, arch, s) for s in seeds])
    return model, training.init_seeds(model, keys, jnp.zeros((1, 2, U)))


def train_seeds(
    experiments: Mapping[str, Any],
    experiment: str,
    arch: str,
    seeds: Sequence[int],
    data: Sequence[Mapping[str, TaskData]] | None = None,
    pretrained: Sequence[Mapping[str, Any]] | None = None,
    checkpoint=None,
    chunk_size: int = 1000,
    log=None,
) -> tuple[nn.Module, training.TrainResult]:
    """Train the given seeds of one architecture together (one vmapped program).

    ``data``: each seed's fixed data from :func:`make_task_data` (computed if omitted).
    """
    exp = experiments[experiment]
    model, variables = initial_variables(experiments, experiment, arch, seeds, pretrained)
    if data is None:
        data = [make_task_data(exp, experiment, s) for s in seeds]
    data_keys = jnp.stack([jax.random.fold_in(data_key(experiment, s), 1) for s in seeds])
    chooser = selection(exp, data)
    if get_task(exp["task"]).needs_fixed_key(exp, arch):
        data = [
            {**d, "fixed_key": jax.random.key_data(jax.random.fold_in(data_key(experiment, s), 3))}
            for d, s in zip(data, seeds, strict=True)
        ]
    # What shapes the batches besides the data (batch size, noise, ...): part of the fingerprint
    # that decides whether a checkpoint resumes this run.
    shaping = {k: v for k, v in exp.items() if k not in ("archs", "seeds")}
    if exp["archs"].get(arch, {}).get("data"):
        shaping["arch_data"] = exp["archs"][arch]["data"]
    result = training.train(
        model,
        variables,
        stages(exp, arch),
        optimizer(exp),
        batch_function(exp, arch),
        stack(list(data)),
        data_keys,
        chunk_size=chunk_size,
        checkpoint=checkpoint,
        log=log,
        tag=f"{experiment}/{arch} seeds {list(seeds)} ",
        selection=chooser,
        fingerprint_extra={"experiment": experiment, "settings": shaping},
    )
    return model, result


def check_experiment(experiments: Mapping[str, Any], experiment: str) -> None:
    """Every check that does not need data, for each architecture of an experiment: the model
    builds from its settings (sizes matched) and each stage trains a parameter group the model
    has. Raises ConfigError naming the key; run by the pipeline at start-up (after the checks of
    the experiment's task, :meth:`nmrnn.tasks.common.Task.check`), so a mistake never waits for a
    training job to surface."""
    exp = experiments[experiment]
    where = f"experiments.{experiment}"
    for arch, spec in exp["archs"].items():
        try:
            model = build_model(model_settings(experiments, experiment, arch))
        except ConfigError as error:
            message = str(error)
            raise ConfigError(
                message
                if message.startswith("experiments.")
                else f"{where}.archs.{arch}: {message}"
            ) from None
        groups = set(parameter_groups(model)) | {"all"}
        for i, stage in enumerate(spec["stages"]):
            if stage["trainable"] not in groups:
                raise ConfigError(
                    f"{where}.archs.{arch}.stages.{i}.trainable: {stage['trainable']!r} is not a "
                    f"parameter group of a {type(model).__name__}; it has {sorted(groups)}"
                )


def n_parameters(experiments: Mapping[str, Any], experiment: str, arch: str) -> int:
    """Parameter count of one architecture as configured."""
    U, _ = task_dimensions(experiments[experiment])
    return settings_parameter_count(model_settings(experiments, experiment, arch), U)


def n_trainable(experiments: Mapping[str, Any], experiment: str, arch: str) -> int:
    """Numbers updated by the last stage of an architecture's protocol (per seed)."""
    exp = experiments[experiment]
    U, _ = task_dimensions(exp)
    model = build_model(model_settings(experiments, experiment, arch))
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 2, U)))["params"]
    params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    return training.count_trainable(model, params, stages(exp, arch)[-1].trainable)


# ----------------------------------------------------------------------------- memory


def largest_trial_steps(exp: Mapping[str, Any]) -> int:
    """Trials x time steps of an experiment's largest set of trials (from the shapes of its task
    data, not the data)."""
    shapes = jax.eval_shape(
        lambda key: get_task(exp["task"]).make_data(exp, key), jax.random.key(0)
    )
    return max(int(np.prod(split.inputs.shape[:2])) for split in shapes.values())


def memory_estimate(
    experiments: Mapping[str, Any],
    experiment: str,
    arch: str,
    seeds_per_job: int,
    trial_steps: int | None = None,
) -> int:
    """Bytes one job of ``seeds_per_job`` seeds of an architecture needs, roughly: per seed, 8
    float32 copies of its parameters (the parameters, gradients, Adam's two moments, the update
    and the new parameters on the device; the two host copies a checkpoint is written from) and
    4 float32 numbers per unit, time step and trial of its largest set of trials (the states kept
    for the backward pass and their gradients; evaluation runs a whole test set at once), plus
    two per training step (its loss and validation loss, kept for the curves).
    ``trial_steps``: :func:`largest_trial_steps` of the experiment, if known."""
    exp = experiments[experiment]
    source = exp.get("pretrained", experiment)
    if trial_steps is None:
        trial_steps = largest_trial_steps(exp)
    width = int(model_settings(experiments, experiment, arch)["N"])
    if experiments[source]["archs"][arch]["model"] == "lstm":
        width *= 2  # a hidden and a cell state
    # The losses (and validation losses) of every step are kept for the loss curves.
    steps = sum(int(stage["steps"]) for stage in experiments[experiment]["archs"][arch]["stages"])
    per_seed = 8 * n_parameters(experiments, experiment, arch) + 4 * trial_steps * width
    return 4 * (per_seed + 2 * steps) * seeds_per_job


def machine_memory() -> int | None:
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(experiments: Mapping[str, Any], experiment: str, seeds_per_job: int) -> None:
    """Refuse, naming the size setting and the estimate (:func:`memory_estimate`), an
    architecture whose job would need more memory than this machine has: XLA would otherwise
    abort deep in the job (or the machine swap)."""
    available = machine_memory()
    if not available:
        return
    exp = experiments[experiment]
    source = exp.get("pretrained", experiment)
    trial_steps = largest_trial_steps(exp)
    for arch in exp["archs"]:
        need = memory_estimate(experiments, experiment, arch, seeds_per_job, trial_steps)
        if need > available:
            n = model_settings(experiments, experiment, arch)["N"]
            steps = sum(int(st["steps"]) for st in exp["archs"][arch]["stages"])
            if 8 * steps * seeds_per_job > available / 2:
                raise ConfigError(
                    f"experiments.{experiment}.archs.{arch}.stages: {steps:.3g} steps (after "
                    f"step_scale) keep {8 * steps * seeds_per_job / 1e9:.3g} GB of losses per "
                    f"job but this machine has {available / 1e9:.1f} GB of memory; fewer steps"
                )
            raise ConfigError(
                f"experiments.{source}.archs.{arch}.settings.N: N = {n} needs about "
                f"{need / 1e9:.1f} GB per training job (seeds_per_job = {seeds_per_job}) "
                f"but this machine has {available / 1e9:.1f} GB of memory; choose a smaller N "
                f"(or fewer seeds_per_job)"
            )


def check_variables(
    experiments: Mapping[str, Any], experiment: str, arch: str, variables: Mapping[str, Any]
) -> str | None:
    """What is wrong with ``variables`` (a seed's saved variables, no seed axis) for the model
    of ``arch`` as configured in ``experiment``: a parameter missing, extra or of another shape
    (trained under other settings); None when they fit. Checked on shapes only (no weights are
    built)."""
    U, _ = task_dimensions(experiments[experiment])
    model = build_model(model_settings(experiments, experiment, arch))
    expected = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 2, U)))
    for collection in ("params", "constants"):
        want = dict(_leaf_shapes(expected.get(collection, {})))
        have = dict(_leaf_shapes(variables.get(collection, {})))
        for name in sorted(set(want) | set(have)):
            if name not in have:
                return f"no {collection}/{name}"
            if name not in want:
                return f"{collection}/{name}, which a {type(model).__name__} as configured lacks"
            if want[name] != have[name]:
                return (
                    f"{collection}/{name} of shape {have[name]} where {experiment}/{arch} as "
                    f"configured has {want[name]}"
                )
    return None


def _leaf_shapes(tree: Mapping[str, Any], prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _leaf_shapes(value, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", tuple(np.shape(value))

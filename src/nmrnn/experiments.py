"""The paper's experiments as settings → (model, data, batches, protocol).

An experiment's settings are one entry of ``config.yaml``'s ``experiments`` mapping (see
``workflow/schemas/config.schema.yaml``). This module turns them into what the training engine
needs, so a notebook can run the same experiment as the pipeline::

    from nmrnn.experiments import train_seeds
    model, result = train_seeds(config["experiments"]["mwg"], "mwg", "nmrnn", seeds=[0, 1])
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nmrnn import training
from nmrnn.architectures import (
    ConfigError,
    build_model,
    match_size,
    parameter_count,
    parameter_groups,
)
from nmrnn.tasks import eft, multitask, mwg
from nmrnn.tasks.common import TaskData

TASKS = ("mwg", "multitask", "multitask_transfer", "eft")
LOW_RANK_MODELS = ("nmrnn", "linear_nmrnn", "lrrnn")


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
    task = exp["task"]
    if task == "mwg":
        return len(mwg.INPUT_NAMES), 1
    if task == "multitask":
        return multitask.N_SENSORY + len(exp.get("tasks", (0, 1, 2))), 3
    if task == "multitask_transfer":
        return multitask.N_SENSORY + 4, 3
    if task == "eft":
        return 1, 1
    raise ConfigError(f"unknown task {task!r}; choose one of {TASKS}")


def model_settings(experiments: Mapping[str, Any], experiment: str, arch: str) -> dict:
    """Settings for :func:`nmrnn.architectures.build_model` of one architecture of an experiment.

    Adds the output size, the experiment's low-rank normalisation, context routing, and resolves
    ``N: match`` to the smallest size whose parameter count reaches the reference architecture's.
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
    if spec["model"] in LOW_RANK_MODELS:
        settings.setdefault("normalisation", src.get("normalisation", "qr"))
        if "qr_sign" in src:  # absent: the models' default ("positive")
            settings.setdefault("qr_sign", src["qr_sign"])
    if spec["model"] in ("nmrnn", "linear_nmrnn") and src.get("context_to_z_only", False):
        settings["x_inputs"] = multitask.N_SENSORY
    if src.get("init_scheme"):
        settings.setdefault("init_scheme", src["init_scheme"])
        if src["init_scheme"] == "eft" and spec["model"] != "lstm":
            settings.setdefault("readout_bias", False)  # the LSTM never has one
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
DATA_KEYS = ("task", "tasks", "pool_per_task", "test_per_task", "pool", "test_trials", "test_batch")


def data_settings(exp: Mapping[str, Any]) -> dict:
    """The part of an experiment's settings that :func:`make_task_data` reads: the task, its
    pool and test sizes and the validation trials of ``select_best`` (not the seeds, the
    architectures or the training protocol)."""
    out = {key: exp[key] for key in DATA_KEYS if key in exp}
    if _selects_on(exp) == "validation":
        out["select_best"] = {"trials": exp["select_best"]["trials"]}
    return out


def _selects_on(exp: Mapping[str, Any]) -> str | None:
    """What an experiment's checkpoint selection measures: "validation", "train" or None."""
    if "select_best" not in exp:
        return None
    return exp["select_best"].get("on", "validation")


def make_task_data(exp: Mapping[str, Any], experiment: str, seed: int) -> dict[str, TaskData]:
    """The fixed data of one seed: the training pool (``train``) and the test set(s).

    Reads only :func:`data_settings` of ``exp``."""
    task = exp["task"]
    key = data_key(experiment, seed)
    k_train, k_test = jax.random.split(key)
    if task == "mwg":
        return {"train": mwg.training_set(), "test": mwg.test_set()}
    if task == "multitask":
        tasks = tuple(exp.get("tasks", (0, 1, 2)))
        return {
            "train": multitask.training_pool(k_train, exp["pool_per_task"], tasks, len(tasks)),
            "test": multitask.training_pool(k_test, exp["test_per_task"], tasks, len(tasks)),
        }
    if task == "multitask_transfer":
        return {
            "train": multitask.transfer_pool(k_train, exp["pool"], 4),
            "test": multitask.transfer_pool(k_test, exp["test_trials"], 4),
        }
    if task == "eft":
        data = {"test": eft.sample_batch(k_test, exp["test_batch"])}
        if _selects_on(exp) == "validation":  # held out from training and test: its own key
            trials = int(exp["select_best"]["trials"])
            data["validation"] = eft.sample_batch(jax.random.fold_in(key, 2), trials)
        return data
    raise ConfigError(f"unknown task {task!r}; choose one of {TASKS}")


# How an architecture draws its training batches from a multitask pool (its ``data`` settings).
DATA_PROTOCOL = {
    "pool_trials": None,  # use only the first n trials of the seed's (shuffled) pool
    "noise": "fresh",  # input noise: a fresh draw per batch, one draw kept all run, or none
    "noise_channels": "sensory",  # which input rows get it: the sensory ones or all
    "context_noise": "fresh",  # transfer: the old contexts' noise, fresh or one draw kept
    "batch": None,  # trials per step (None: the experiment's batch) or "full": the whole pool
}
MULTITASK_TASKS = ("multitask", "multitask_transfer")


def data_protocol(exp: Mapping[str, Any], arch: str | None = None) -> dict:
    """How one architecture of a multitask experiment draws its batches: :data:`DATA_PROTOCOL`
    with the experiment's batch size, overridden by the architecture's ``data`` settings (the
    authors gave their NM-RNN and their baselines different trial counts and noise)."""
    out = dict(DATA_PROTOCOL, batch=exp.get("batch", 100))
    if arch is not None:
        out.update(exp["archs"].get(arch, {}).get("data", {}))
    return out


def _fixed_key(data, which: int) -> jax.Array:
    """A key of the seed kept for the whole run (fixed noise draws), from its data."""
    return jax.random.fold_in(jax.random.wrap_key_data(data["fixed_key"]), which)


def _with_noise(batch: TaskData, key: jax.Array, std: float, channels: str) -> TaskData:
    if channels == "sensory":
        return _with_sensory_noise(batch, key, std)
    if not std:
        return batch
    return batch._replace(inputs=batch.inputs + std * jax.random.normal(key, batch.inputs.shape))


def _draw(pool: TaskData, key: jax.Array, size) -> TaskData:
    if size == "full":
        return pool
    idx = jax.random.randint(key, (int(size),), 0, pool.inputs.shape[0])
    return jax.tree.map(lambda a: a[idx], pool)


def _pool(data, proto: Mapping[str, Any], std: float) -> TaskData:
    """The seed's pool as the architecture sees it: its first ``pool_trials`` trials, with the
    run's one noise draw added if ``noise`` is ``fixed``."""
    pool = data["train"]
    if proto["pool_trials"]:
        pool = jax.tree.map(lambda a: a[: int(proto["pool_trials"])], pool)
    if proto["noise"] == "fixed":
        pool = _with_noise(pool, _fixed_key(data, 0), std, proto["noise_channels"])
    return pool


def needs_fixed_key(proto: Mapping[str, Any]) -> bool:
    return proto["noise"] == "fixed" or proto["context_noise"] == "fixed"


def batch_function(
    exp: Mapping[str, Any], arch: str | None = None
) -> Callable[[Any, jax.Array], TaskData]:
    """``batch_fn(data, key)`` of the training engine for an experiment's task (and, for the
    multitask tasks, an architecture's :func:`data_protocol`)."""
    task = exp["task"]
    if task == "mwg":
        return lambda data, key: data["train"]
    if task == "multitask":
        noise = exp.get("input_noise_std", 0.0)
        proto = data_protocol(exp, arch)

        def multitask_batch(data, key):
            k_idx, k_noise = jax.random.split(key)
            batch = _draw(_pool(data, proto, noise), k_idx, proto["batch"])
            if proto["noise"] == "fresh":
                batch = _with_noise(batch, k_noise, noise, proto["noise_channels"])
            return batch

        return multitask_batch
    if task == "multitask_transfer":
        noise = exp.get("input_noise_std", 0.0)
        ctx_std = exp.get("context_noise_std", 0.1)
        old = tuple(range(multitask.N_SENSORY, multitask.N_SENSORY + 3))
        proto = data_protocol(exp, arch)

        def transfer_batch(data, key):
            k_idx, k_noise, k_ctx = jax.random.split(key, 3)
            pool = _pool(data, proto, noise)
            if proto["context_noise"] == "fixed":
                inputs = multitask.noisy_old_contexts(
                    _fixed_key(data, 1), pool.inputs, old, ctx_std
                )
                pool = pool._replace(inputs=inputs)
            batch = _draw(pool, k_idx, proto["batch"])
            if proto["noise"] == "fresh":
                batch = _with_noise(batch, k_noise, noise, proto["noise_channels"])
            if proto["context_noise"] == "fresh":
                inputs = multitask.noisy_old_contexts(k_ctx, batch.inputs, old, ctx_std)
                batch = batch._replace(inputs=inputs)
            return batch

        return transfer_batch
    if task == "eft":
        size = exp["batch"]
        return lambda data, key: eft.sample_batch(key, size)
    raise ConfigError(f"unknown task {task!r}; choose one of {TASKS}")


def _with_sensory_noise(batch: TaskData, key: jax.Array, std: float) -> TaskData:
    if not std:
        return batch
    noise = std * jax.random.normal(key, batch.inputs.shape[:-1] + (multitask.N_SENSORY,))
    return batch._replace(inputs=batch.inputs.at[..., : multitask.N_SENSORY].add(noise))


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
    _check_selection(exp, "select_best")
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


# Tasks whose evaluation scores the selected parameters next to the final ones, by rule.
SELECTION_TASKS = {
    "validation": ("eft",),
    "train": ("mwg", "multitask", "multitask_transfer", "eft"),
}


def _check_selection(exp: Mapping[str, Any], where: str) -> None:
    on = _selects_on(exp)
    if on is None:
        return
    if exp["task"] not in SELECTION_TASKS[on]:
        raise ConfigError(
            f"{where}: on {on!r} is available for the {' and '.join(SELECTION_TASKS[on])} "
            f"task(s), not {exp['task']!r}"
            + (" (it needs fresh held-out trials)" if on == "validation" else "")
        )
    if on == "validation" and "trials" not in exp["select_best"]:
        raise ConfigError(f"{where}.trials: needed to select on validation trials")


def add_input_column(model: nn.Module, params: dict, n_old: int, value: float = 0.1) -> dict:
    """Widen every input matrix of the model's ``inputs`` group that reads all ``n_old`` channels
    by one column filled with ``value`` (the new context channel of the transfer task)."""
    names = set(getattr(model, "PARAM_GROUPS", {}).get("inputs", ()))
    out = dict(params)
    for name in names & set(params):
        w = params[name]
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
    if exp["task"] in MULTITASK_TASKS and needs_fixed_key(data_protocol(exp, arch)):
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
    builds from its settings (sizes matched), each stage trains a parameter group the model has,
    and the experiment's options suit its task. Raises ConfigError naming the key; run by the
    pipeline at start-up, so a mistake never waits for a training job to surface."""
    exp = experiments[experiment]
    where = f"experiments.{experiment}"
    _check_selection(exp, f"{where}.select_best")
    for arch, spec in exp["archs"].items():
        if "data" in spec:
            _check_data_protocol(exp, spec["data"], f"{where}.archs.{arch}.data")
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


def _check_data_protocol(exp: Mapping[str, Any], data: Mapping[str, Any], where: str) -> None:
    """An architecture's ``data`` settings: multitask tasks only, no more trials than the pool."""
    if exp["task"] not in MULTITASK_TASKS:
        raise ConfigError(f"{where}: only the multitask tasks have one")
    pool = exp.get("pool", 1000)
    if exp["task"] == "multitask":
        pool = exp.get("pool_per_task", 1000) * len(exp.get("tasks", (0, 1, 2)))
    trials = data.get("pool_trials")
    if trials and trials > pool:
        raise ConfigError(f"{where}.pool_trials: {trials} exceeds the pool of {pool} trials")


def n_parameters(experiments: Mapping[str, Any], experiment: str, arch: str) -> int:
    """Parameter count of one architecture as configured."""
    U, _ = task_dimensions(experiments[experiment])
    return parameter_count(build_model(model_settings(experiments, experiment, arch)), U)


def n_trainable(experiments: Mapping[str, Any], experiment: str, arch: str) -> int:
    """Numbers updated by the last stage of an architecture's protocol (per seed)."""
    exp = experiments[experiment]
    U, _ = task_dimensions(exp)
    model = build_model(model_settings(experiments, experiment, arch))
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 2, U)))["params"]
    params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    return training.count_trainable(model, params, stages(exp, arch)[-1].trainable)

"""The paper's experiments as settings → (model, data, batches, protocol).

An experiment's settings are one entry of ``config.yaml``'s ``experiments`` mapping (see
``nmrnn/config.schema.yaml``). :func:`parse` reads them once into an :class:`Experiment`: its
task, each architecture's resolved model settings, model, size and protocol (:class:`Arch`), the
optimizer, the checkpoint selection and the settings its task data depends on
(:class:`DataSpec`). Everything else here takes that object, so a notebook can run the same
experiment as the pipeline::

    from nmrnn import config
    from nmrnn.experiments import parse, train_seeds
    cfg = config.load("config.yaml", {"step_scale": 0.01})
    mwg = parse(config.scaled_experiments(cfg), "mwg")
    model, result = train_seeds(mwg, "nmrnn", seeds=[0, 1])
"""

from __future__ import annotations

import copy
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
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
from nmrnn.tasks.common import Task, TaskData
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


# ----------------------------------------------------------------------------- the parsed object


def _read_only(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only view of a copy of ``mapping`` (its values copied too, so later changes to the
    mapping it was read from do not reach it)."""
    return MappingProxyType(copy.deepcopy(dict(mapping)))


@dataclass(frozen=True)
class DataSpec:
    """What one experiment's task data depends on (with the seed): the experiment's name (its
    data keys, :func:`data_key`), its task and its :func:`data_settings` (read-only)."""

    experiment: str
    task: Task
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class Arch:
    """One architecture of an experiment as configured (a transfer experiment's model is that
    of the same architecture of its source; its stages and data protocol are its own).

    ``kind``: the model (``nmrnn``, ``lstm``, ...); ``settings``: the settings of
    :func:`~nmrnn.architectures.build_model` (read-only: the output size, the experiment's
    normalisation, context routing and initialisation filled in, ``N: match`` resolved), from
    which ``model`` was built; ``stages``: the training protocol; ``n_inputs``: the experiment's
    input channels; ``n_parameters``: the model's parameter count for them; ``data``: the
    architecture's own data protocol (its ``data`` settings, read-only), or None."""

    name: str
    kind: str
    settings: Mapping[str, Any]
    model: nn.Module
    stages: tuple[training.Stage, ...]
    n_inputs: int
    n_parameters: int
    data: Mapping[str, Any] | None = None

    @cached_property
    def variable_shapes(self) -> dict:
        """The shapes of the model's variables (``jax.ShapeDtypeStruct`` leaves), computed once
        when first asked for, without building weights."""
        inputs = jnp.zeros((1, 2, self.n_inputs))
        return jax.eval_shape(self.model.init, jax.random.key(0), inputs)

    @cached_property
    def n_trainable_last_stage(self) -> int:
        """Numbers updated by the last stage of the protocol (per seed)."""
        shapes = self.variable_shapes["params"]
        params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
        return training.count_trainable(self.model, params, self.stages[-1].trainable)


@dataclass(frozen=True)
class Experiment:
    """One experiment of the config, read once by :func:`parse`.

    ``settings``: its settings as configured (a read-only view of a deep copy, read by the
    tasks' methods; its nested values are plain copies, not to be changed); ``U``, ``O``: the
    input and output channels of its trials; ``archs``: its architectures by name, in config
    order (read-only); ``selects_on``: what its checkpoint selection measures ("validation",
    "train" or None); ``data``: what its task data depends on; ``source``: for a transfer
    experiment (``pretrained``), the experiment it starts from."""

    name: str
    task: Task
    settings: Mapping[str, Any]
    U: int
    O: int
    archs: Mapping[str, Arch]
    optimizer: training.Optimizer
    selects_on: str | None
    data: DataSpec
    source: Experiment | None = None

    @property
    def pretrained(self) -> str | None:
        """The name of the experiment a transfer starts from (None: not a transfer)."""
        return None if self.source is None else self.source.name

    def arch(self, name: str) -> Arch:
        """The architecture ``name``; ConfigError naming the experiment if it has none."""
        if name not in self.archs:
            raise ConfigError(f"experiment {self.name!r} has no architecture {name!r}")
        return self.archs[name]

    def plain_settings(self) -> dict:
        """The settings as a plain (mutable, JSON-able) dict, as configured."""
        return copy.deepcopy(dict(self.settings))


def parse(
    experiments: Mapping[str, Mapping[str, Any]],
    name: str,
    parsed: dict[str, Experiment] | None = None,
) -> Experiment:
    """Read experiment ``name`` of ``experiments`` (the config's ``experiments``; after
    :func:`nmrnn.config.scaled_experiments` for the steps a run trains) into an
    :class:`Experiment`, once.

    Checks what needs no data, raising ConfigError naming the key: each architecture's model
    builds from its settings (sizes matched: ``N: match`` is resolved to the smallest size whose
    parameter count reaches the ``match_reference`` architecture's) and each stage trains a
    parameter group the model has; the pipeline runs it at start-up (after the checks of the
    experiment's task, :meth:`nmrnn.tasks.common.Task.check`), so a mistake never waits for a
    training job to surface. A transfer experiment's source is parsed too. ``parsed``: a dict of
    experiments already parsed, to which this call adds ``name`` (and its source), so that
    parsing every experiment reads a source once."""
    parsed = {} if parsed is None else parsed
    if name in parsed:
        return parsed[name]
    if name not in experiments:
        raise ConfigError(f"no experiment {name!r}; the experiments are {sorted(experiments)}")
    settings = _read_only(experiments[name])
    source = None
    if "pretrained" in settings:
        source = _source(experiments, name, settings["pretrained"], parsed)
    task = get_task(settings["task"])
    U, O = task.dimensions(settings)
    where = f"experiments.{name}"
    try:
        optimizer = training.Optimizer(**settings.get("optimizer", {}))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}.optimizer: {error}") from None
    parsed[name] = Experiment(
        name=name,
        task=task,
        settings=settings,
        U=U,
        O=O,
        archs=MappingProxyType(_archs(name, settings, task, U, O, source)),
        optimizer=optimizer,
        selects_on=_selects_on(settings),
        data=DataSpec(name, task, MappingProxyType(data_settings(settings))),
        source=source,
    )
    return parsed[name]


def _source(
    experiments: Mapping[str, Any], name: str, source: str, parsed: dict[str, Experiment]
) -> Experiment:
    """The parsed experiment a transfer experiment starts from."""
    where = f"experiments.{name}.pretrained"
    if source not in experiments:
        raise ConfigError(f"{where}: {source!r} is not an experiment")
    if "pretrained" in experiments[source]:
        raise ConfigError(
            f"{where}: {source!r} is itself a transfer; name the experiment it starts from"
        )
    return parse(experiments, source, parsed)


def _archs(
    name: str,
    settings: Mapping[str, Any],
    task: Task,
    U: int,
    O: int,
    source: Experiment | None,
) -> dict[str, Arch]:
    """Every architecture of an experiment, in config order: its settings resolved (each
    architecture's once), its model built, its stages read and checked."""
    own: dict[str, dict] = {}

    def own_settings(arch: str) -> dict:  # before N: match is resolved
        if arch not in own:
            own[arch] = _own_settings(name, settings, task, arch, O)
        return own[arch]

    archs = {}
    for arch, spec in settings["archs"].items():
        where = f"experiments.{name}.archs.{arch}"
        try:
            if source is not None:  # a transfer: the source's model
                built = source.arch(arch)
                kind, resolved, model = built.kind, dict(built.settings), built.model
            else:
                resolved = own_settings(arch)
                kind = resolved["model"]
                if resolved.get("N") == "match":
                    reference = _match_reference(name, settings, arch)
                    try:  # a bad reference is named as itself, not as the arch sized to it
                        build_model(own_settings(reference))
                    except ConfigError as error:
                        raise ConfigError(
                            f"experiments.{name}.archs.{reference}: {error}"
                        ) from None
                    resolved = match_size(resolved, own_settings(reference), U)
                model = build_model(resolved)
        except ConfigError as error:
            message = str(error)
            raise ConfigError(
                message if message.startswith("experiments.") else f"{where}: {message}"
            ) from None
        data = spec.get("data")
        archs[arch] = Arch(
            name=arch,
            kind=kind,
            settings=MappingProxyType(resolved),
            model=model,
            stages=_stages(where, spec["stages"], model),
            n_inputs=U,
            n_parameters=settings_parameter_count(resolved, U),
            data=None if data is None else MappingProxyType(data),
        )
    return archs


def _own_settings(
    name: str, settings: Mapping[str, Any], task: Task, arch: str, O: int
) -> dict[str, Any]:
    """Settings for :func:`~nmrnn.architectures.build_model` of one architecture (``N: match``
    not yet resolved): its own, the output size and, to a model that has the setting, the
    experiment's low-rank normalisation, context routing and initialisation."""
    spec = settings["archs"][arch]
    if "model" not in spec:
        raise ConfigError(f"experiments.{name}.archs.{arch}: missing key 'model'")
    out = {"model": spec["model"], **spec.get("settings", {}), "O": O}
    has = model_settings_of(spec["model"])  # what the model can take: no list of model names
    if "normalisation" in has:
        out.setdefault("normalisation", settings.get("normalisation", "qr"))
        if "qr_sign" in settings:  # absent: the models' default ("positive")
            out.setdefault("qr_sign", settings["qr_sign"])
    if "x_inputs" in has and settings.get("context_to_z_only", False):
        x_inputs = task.x_inputs(settings)
        if x_inputs is None:
            raise ConfigError(f"experiments.{name}.context_to_z_only: its task has no context")
        out["x_inputs"] = x_inputs
    if settings.get("init_scheme"):
        out.setdefault("init_scheme", settings["init_scheme"])
        if settings["init_scheme"] == "eft" and "readout_bias" in has:
            out.setdefault("readout_bias", False)  # a model without the setting has none
    return out


def _match_reference(name: str, settings: Mapping[str, Any], arch: str) -> str:
    """The architecture whose parameter count ``arch`` (``N: match``) matches."""
    reference = settings.get("match_reference")
    if not reference or reference not in settings["archs"]:
        raise ConfigError(
            f"experiments.{name}.archs.{arch}: 'N: match' needs match_reference naming "
            f"an architecture of {name!r}"
        )
    if settings["archs"][reference].get("settings", {}).get("N") == "match":
        raise ConfigError(
            f"experiments.{name}.match_reference: {reference!r} has 'N: match' itself; the "
            f"reference needs an explicit N"
        )
    return reference


def _stages(where: str, stages: Sequence[Mapping[str, Any]], model: nn.Module):
    """The training protocol of one architecture, each stage training a parameter group the
    model has."""
    groups = set(parameter_groups(model)) | {"all"}
    out = []
    for i, st in enumerate(stages):
        if st["trainable"] not in groups:
            raise ConfigError(
                f"{where}.stages.{i}.trainable: {st['trainable']!r} is not a parameter group "
                f"of a {type(model).__name__}; it has {sorted(groups)}"
            )
        try:
            stage = training.Stage(
                name=st.get("name", st["trainable"]),
                trainable=st["trainable"],
                steps=int(st["steps"]),
                learning_rate=float(st["learning_rate"]),
            )
        except ValueError as error:
            raise ConfigError(f"{where}.stages.{i}: {error}") from None
        out.append(stage)
    return tuple(out)


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
    out = {key: copy.deepcopy(exp[key]) for key in DATA_KEYS if key in exp}
    if _selects_on(exp) == "validation":
        out["select_best"] = {"trials": exp["select_best"]["trials"]}
    return out


def data_spec(experiment: str, settings: Mapping[str, Any]) -> DataSpec:
    """The :class:`DataSpec` of experiment ``experiment`` from its settings, whole or only their
    :func:`data_settings` (the params of the pipeline's task_data rule): the same either way."""
    return DataSpec(
        experiment, get_task(settings["task"]), MappingProxyType(data_settings(settings))
    )


def make_task_data(data: DataSpec, seed: int) -> dict[str, TaskData]:
    """The fixed data of one seed: the training pool (``train``) and the test set(s).

    ``data``: an experiment's :attr:`Experiment.data` (or :func:`data_spec`)."""
    return data.task.make_data(data.settings, data_key(data.experiment, seed))


def batch_function(
    exp: Experiment, arch: str | None = None
) -> Callable[[Any, jax.Array], TaskData]:
    """``batch_fn(data, key)`` of the training engine for an experiment's task (and, for the
    multitask tasks, an architecture's :func:`~nmrnn.tasks.multitask.data_protocol`; None: the
    experiment's default protocol)."""
    return exp.task.batch_function(exp.settings, arch)


# ----------------------------------------------------------------------------- protocol


def selection(exp: Experiment, data: Sequence[Mapping[str, TaskData]]):
    """The experiment's checkpoint selection (``select_best``) over the seeds' validation
    batches (or their training losses, ``on: train``), or None."""
    on = exp.selects_on
    if on is None:
        return None
    exp.task.check_selection(exp.settings, "select_best")
    every = int(exp.settings["select_best"]["every"])
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
    exp: Experiment,
    arch: str,
    seeds: Sequence[int],
    pretrained: Sequence[Mapping[str, Any]] | None = None,
) -> dict:
    """The stacked initial variables (S leading axis) of an architecture's model for the given
    seeds.

    For a transfer experiment, ``pretrained`` holds each seed's trained variables from the source
    experiment; they are widened by the new context column.
    """
    model = exp.arch(arch).model
    if exp.source is not None:
        if pretrained is None or len(pretrained) != len(seeds):
            raise ConfigError(f"experiment {exp.name!r} needs pretrained variables per seed")
        # Under the authors' rule the source's kept parameters are its selected ones.
        kept = "selected_params" if exp.source.selects_on == "train" else "params"
        column = exp.settings.get("new_column_init", 0.1)
        per_seed = [
            {
                "params": add_input_column(model, dict(v[kept]), exp.source.U, column),
                "constants": v["constants"],
            }
            for v in pretrained
        ]
        return stack(per_seed)
    keys = jnp.stack([init_key(exp.name, arch, s) for s in seeds])
    return training.init_seeds(model, keys, jnp.zeros((1, 2, exp.U)))


def fingerprint_settings(exp: Experiment, arch: str) -> dict:
    """What shapes an architecture's batches besides the data (batch size, noise, ...): the
    experiment's settings but its architectures and seeds, plus the architecture's data protocol
    (``arch_data``) if it has one. Part of the fingerprint that decides whether a checkpoint
    resumes a run."""
    shaping = {k: copy.deepcopy(v) for k, v in exp.settings.items() if k not in ("archs", "seeds")}
    if exp.arch(arch).data:
        shaping["arch_data"] = dict(exp.arch(arch).data)
    return shaping


def train_seeds(
    exp: Experiment,
    arch: str,
    seeds: Sequence[int],
    data: Sequence[Mapping[str, TaskData]] | None = None,
    pretrained: Sequence[Mapping[str, Any]] | None = None,
    checkpoint=None,
    chunk_size: int = 1000,
    log=None,
) -> tuple[nn.Module, training.TrainResult]:
    """Train the given seeds of one architecture together (one vmapped program): its model and
    the result.

    ``data``: each seed's fixed data from :func:`make_task_data` (computed if omitted).
    """
    model = exp.arch(arch).model
    variables = initial_variables(exp, arch, seeds, pretrained)
    if data is None:
        data = [make_task_data(exp.data, s) for s in seeds]
    data_keys = jnp.stack([jax.random.fold_in(data_key(exp.name, s), 1) for s in seeds])
    chooser = selection(exp, data)
    if exp.task.needs_fixed_key(exp.settings, arch):
        data = [
            {**d, "fixed_key": jax.random.key_data(jax.random.fold_in(data_key(exp.name, s), 3))}
            for d, s in zip(data, seeds, strict=True)
        ]
    result = training.train(
        model,
        variables,
        list(exp.arch(arch).stages),
        exp.optimizer,
        batch_function(exp, arch),
        stack(list(data)),
        data_keys,
        chunk_size=chunk_size,
        checkpoint=checkpoint,
        log=log,
        tag=f"{exp.name}/{arch} seeds {list(seeds)} ",
        selection=chooser,
        fingerprint_extra={"experiment": exp.name, "settings": fingerprint_settings(exp, arch)},
    )
    return model, result


# ----------------------------------------------------------------------------- memory


def largest_trial_steps(data: DataSpec) -> int:
    """Trials x time steps of an experiment's largest set of trials (from the shapes of its task
    data, not the data)."""
    shapes = jax.eval_shape(lambda key: data.task.make_data(data.settings, key), jax.random.key(0))
    return max(int(np.prod(split.inputs.shape[:2])) for split in shapes.values())


def memory_estimate(
    exp: Experiment, arch: str, seeds_per_job: int, trial_steps: int | None = None
) -> int:
    """Bytes one job of ``seeds_per_job`` seeds of an architecture needs, roughly: per seed, 8
    float32 copies of its parameters (the parameters, gradients, Adam's two moments, the update
    and the new parameters on the device; the two host copies a checkpoint is written from) and
    4 float32 numbers per unit, time step and trial of its largest set of trials (the states kept
    for the backward pass and their gradients; evaluation runs a whole test set at once), plus
    two per training step (its loss and validation loss, kept for the curves).
    ``trial_steps``: :func:`largest_trial_steps` of the experiment, if known."""
    spec = exp.arch(arch)
    if trial_steps is None:
        trial_steps = largest_trial_steps(exp.data)
    width = int(spec.settings["N"])
    if spec.kind == "lstm":
        width *= 2  # a hidden and a cell state
    # The losses (and validation losses) of every step are kept for the loss curves.
    steps = sum(stage.steps for stage in spec.stages)
    per_seed = 8 * spec.n_parameters + 4 * trial_steps * width
    return 4 * (per_seed + 2 * steps) * seeds_per_job


def machine_memory() -> int | None:
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(exp: Experiment, seeds_per_job: int) -> None:
    """Refuse, naming the size setting and the estimate (:func:`memory_estimate`), an
    architecture whose job would need more memory than this machine has: XLA would otherwise
    abort deep in the job (or the machine swap)."""
    available = machine_memory()
    if not available:
        return
    trial_steps = largest_trial_steps(exp.data)
    for arch, spec in exp.archs.items():
        need = memory_estimate(exp, arch, seeds_per_job, trial_steps)
        if need > available:
            steps = sum(stage.steps for stage in spec.stages)
            if 8 * steps * seeds_per_job > available / 2:
                raise ConfigError(
                    f"experiments.{exp.name}.archs.{arch}.stages: {steps:.3g} steps (after "
                    f"step_scale) keep {8 * steps * seeds_per_job / 1e9:.3g} GB of losses per "
                    f"job but this machine has {available / 1e9:.1f} GB of memory; fewer steps"
                )
            raise ConfigError(
                f"experiments.{exp.pretrained or exp.name}.archs.{arch}.settings.N: N = "
                f"{spec.settings['N']} needs about {need / 1e9:.1f} GB per training job "
                f"(seeds_per_job = {seeds_per_job}) but this machine has "
                f"{available / 1e9:.1f} GB of memory; choose a smaller N (or fewer seeds_per_job)"
            )


def check_variables(exp: Experiment, arch: str, variables: Mapping[str, Any]) -> str | None:
    """What is wrong with ``variables`` (a seed's saved variables, no seed axis) for the model
    of ``arch`` as configured in ``exp``: a parameter missing, extra or of another shape
    (trained under other settings); None when they fit. Checked on shapes only (no weights are
    built)."""
    spec = exp.arch(arch)
    expected = spec.variable_shapes
    for collection in ("params", "constants"):
        want = dict(_leaf_shapes(expected.get(collection, {})))
        have = dict(_leaf_shapes(variables.get(collection, {})))
        for name in sorted(set(want) | set(have)):
            if name not in have:
                return f"no {collection}/{name}"
            if name not in want:
                kind = type(spec.model).__name__
                return f"{collection}/{name}, which a {kind} as configured lacks"
            if want[name] != have[name]:
                return (
                    f"{collection}/{name} of shape {have[name]} where {exp.name}/{arch} as "
                    f"configured has {want[name]}"
                )
    return None


def _leaf_shapes(tree: Mapping[str, Any], prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _leaf_shapes(value, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", tuple(np.shape(value))

"""Shared containers and helpers for the task generators: the `TaskData` pytree, the masked
loss, trial selection, scoring helpers, and :class:`Task`, the interface every task of the
pipeline provides."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from nmrnn.errors import ConfigError

# The registry: every task of the pipeline by name, filled in by :mod:`nmrnn.tasks` from its
# task modules (kept here, below them, so a task's checks can name the tasks that do something).
TASKS: dict[str, Task] = {}


class TaskData(NamedTuple):
    """A batch of trials, laid out (batch, time, channel); a pytree, so it jits, vmaps and indexes.

    Every array is batch-major (trials first, then time), the layout the models' ``__call__``
    takes; a time-major array cannot be told apart by shape, so it must be transposed first.

    inputs: (batch, time, U) float32.
    targets: (batch, time, O) float32.
    mask: (batch, time, O) float32 in {0, 1}: which target entries count in the loss.
    events: dict name -> (batch,) array of the trial's events (times, angles, labels).
    """

    inputs: jax.Array
    targets: jax.Array
    mask: jax.Array
    events: dict

    @property
    def batch_size(self) -> int:
        """Number of trials."""
        return self.inputs.shape[0]


def masked_mse(outputs: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean squared error over the masked entries: sum(mask (y - y*)^2) / sum(mask).

    outputs, targets, mask: (batch, time, O), all of the same shape. Returns a scalar.

    Raises:
        ValueError: the shapes differ (the message names the argument that is off), or the mask is
            a concrete array with a negative or non-finite entry or no nonzero entry (the mean
            over no entries is undefined). A traced mask (inside jit/vmap/grad) cannot be checked
            by value and is not.
    """
    shapes = {"outputs": jnp.shape(outputs), "targets": jnp.shape(targets), "mask": jnp.shape(mask)}
    if len(set(shapes.values())) > 1:
        # Name the odd one out; if all three differ, outputs is taken as the reference.
        if shapes["targets"] == shapes["mask"]:
            off = "outputs"
        elif shapes["targets"] != shapes["outputs"]:
            off = "targets"
        else:
            off = "mask"
        others = ", ".join(f"{n} {shapes[n]}" for n in shapes if n != off)
        raise ValueError(
            f"masked_mse: {off} has shape {shapes[off]}, which does not match {others}; "
            "outputs, targets and mask must all be (batch, time, O)"
        )
    # numpy, not jnp: under jit a jnp reduction of even a concrete mask would be traced.
    if not isinstance(mask, jax.core.Tracer):
        weights = np.asarray(mask, dtype=np.float64)
        if not np.all(np.isfinite(weights)):
            raise ValueError("masked_mse: mask is not finite (NaN or infinite entries)")
        if np.any(weights < 0):
            raise ValueError(
                "masked_mse: mask has negative entries; a mask weighs target entries, "
                "so it is non-negative (1 counts an entry, 0 leaves it out)"
            )
        if not np.any(weights != 0):
            raise ValueError(
                "masked_mse: mask has no nonzero entry, so the masked mean is undefined (0/0); "
                "at least one target entry must count in the loss"
            )
    mask = jnp.asarray(mask, dtype=outputs.dtype)
    return jnp.sum(mask * (outputs - targets) ** 2) / jnp.sum(mask)


def take(data: TaskData, idx) -> TaskData:
    """Select trials (batch axis) of every field, events included.

    idx: anything numpy-style indexing accepts on the leading axis (int array, slice, bool mask).
    """
    return jax.tree.map(lambda a: a[idx], data)


def concatenate(datas) -> TaskData:
    """Stack several `TaskData` with the same fields along the batch axis."""
    return jax.tree.map(lambda *a: jnp.concatenate(a, axis=0), *datas)


# ----------------------------------------------------------------------------- scoring helpers


def selects_on(exp: Mapping[str, Any]) -> str | None:
    """What an experiment's checkpoint selection (``select_best``) measures: "validation",
    "train" or None (no selection)."""
    if "select_best" not in exp:
        return None
    return exp["select_best"].get("on", "validation")


def selected_variables(variables: Mapping[str, Any]) -> dict | None:
    """The selected (lowest validation loss) variables of a seed's ``params.npz`` tree, or None
    when its run had no checkpoint selection."""
    if "selected_params" not in variables:
        return None
    return {"params": variables["selected_params"], "constants": variables["constants"]}


def run(model, variables: Mapping[str, Any], inputs) -> dict[str, np.ndarray]:
    """Trajectories of one trained network (no seed axis) on inputs (batch, time, U)."""
    variables = {k: {n: jnp.asarray(a) for n, a in v.items()} for k, v in variables.items()}
    return {k: np.asarray(v) for k, v in model.apply(variables, jnp.asarray(inputs)).items()}


def trial_mse(y: np.ndarray, data: TaskData) -> np.ndarray:
    """Masked MSE of each trial: (batch,)."""
    mask = np.asarray(data.mask)
    err = mask * (y - np.asarray(data.targets)) ** 2
    return err.sum(axis=(1, 2)) / mask.sum(axis=(1, 2))


def per_checkpoint(
    exp: Mapping[str, Any], variables, rows: Callable[[Any], pd.DataFrame], where: str
) -> pd.DataFrame:
    """``rows(variables)`` of the final parameters; with checkpoint selection (``select_best``)
    also of the selected ones, under a ``checkpoint`` column (``final`` / ``selected``)."""
    if "select_best" not in exp:
        return rows(variables)
    selected = selected_variables(variables)
    if selected is None:
        raise ValueError(f"{where}: select_best is set but its parameters hold no selection")
    frames = []
    for name, chosen in (("final", variables), ("selected", selected)):
        frame = rows(chosen)
        frame.insert(0, "checkpoint", name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------- the task interface

BatchFunction = Callable[[Any, jax.Array], TaskData]


class Task:
    """What the pipeline needs of one task; each module of :mod:`nmrnn.tasks` provides one (or
    more) instances in its ``TASKS`` tuple, registered by name in :data:`nmrnn.tasks.TASKS`.

    An experiment's settings (``exp``, one entry of the config's ``experiments``) name the task;
    the generic code (:mod:`nmrnn.experiments`, :mod:`nmrnn.evaluation`, :mod:`nmrnn.config`)
    asks the task for everything that depends on it:

    - :meth:`dimensions`: input and output channels (U, O) of its trials;
    - :meth:`make_data`: the fixed data of one seed from its data key (``test`` always; ``train``
      for a fixed pool; ``validation`` when ``select_best`` selects on held-out trials);
    - :meth:`batch_function`: ``batch_fn(data, key)``, the training batch of one step;
    - :meth:`evaluation_rows`, :meth:`metric_columns`, :meth:`expected_rows`: one seed's metrics
      rows, their columns and how many there are;
    - :meth:`check`: config checks of its own (start-up, before any job runs).

    Class attributes: ``name`` (the config's ``task``), ``label`` (in messages), ``columns``
    (metrics columns without ``checkpoint``), ``may_be_empty`` (columns that may be NaN),
    ``select_on`` (the ``select_best.on`` values it supports), ``pretrained`` (its experiments
    start from another experiment's trained parameters), ``comparable`` and ``best_arch`` (a side
    of a protocol comparison, and whether a side may name ``arch: best``), ``settings`` (the keys
    of ``task_settings`` it accepts, with their defaults).
    """

    name: str = ""
    label: str = ""
    columns: tuple[str, ...] = ()
    may_be_empty: frozenset[str] = frozenset()
    select_on: tuple[str, ...] = ("train",)
    pretrained: bool = False
    comparable: bool = False
    best_arch: bool = False
    settings: Mapping[str, Any] = MappingProxyType({})

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    # ------------------------------------------------------------------ shapes and data

    def dimensions(self, exp: Mapping[str, Any]) -> tuple[int, int]:
        """(input channels U, output channels O) of the experiment's trials."""
        raise NotImplementedError

    def make_data(self, exp: Mapping[str, Any], key: jax.Array) -> dict[str, TaskData]:
        """The fixed data of one seed (from its data key, shared by the architectures)."""
        raise NotImplementedError

    def batch_function(self, exp: Mapping[str, Any], arch: str | None = None) -> BatchFunction:
        """``batch_fn(data, key)`` of the training engine for an architecture of ``exp``."""
        raise NotImplementedError

    def needs_fixed_key(self, exp: Mapping[str, Any], arch: str) -> bool:
        """Whether ``batch_fn`` reads ``data["fixed_key"]`` (one noise draw kept all run)."""
        return False

    def trials_per_step(self, exp: Mapping[str, Any], arch: str | None = None) -> int | None:
        """Trials one training step of ``arch`` (None: of the experiment's own batch) runs, for
        tasks whose architectures may draw different batches; None: every architecture of the
        experiment runs the same."""
        return None

    def x_inputs(self, exp: Mapping[str, Any]) -> int | None:
        """With ``context_to_z_only``: how many leading input channels drive x (the rest, the
        context, drive only z); None: the task has no context channels."""
        return None

    def task_settings(self, exp: Mapping[str, Any]) -> dict:
        """:attr:`settings` overridden by the experiment's ``task_settings``."""
        return {**self.settings, **exp.get("task_settings", {})}

    # ------------------------------------------------------------------ config checks

    def check(self, experiments: Mapping[str, Any], name: str) -> None:
        """Task-specific checks of experiment ``name`` (raise ConfigError naming the key).

        The base checks what every task shares: ``select_best.on`` is one the task supports,
        ``pretrained``, architectures' ``data`` and ``context_to_z_only`` only where the task has
        them, ``task_settings`` only with keys of :attr:`settings`. Subclasses extend it."""
        exp = experiments[name]
        where = f"experiments.{name}"
        self.check_selection(exp, f"{where}.select_best")
        if "pretrained" in exp and not self.pretrained:
            owners = " or ".join(t.name for t in TASKS.values() if t.pretrained)
            raise ConfigError(f"{where}.pretrained: only a {owners} experiment has one")
        for arch, spec in exp["archs"].items():
            if "data" in spec:
                self.check_data_protocol(exp, spec["data"], f"{where}.archs.{arch}.data")
        if exp.get("context_to_z_only") and self.x_inputs(exp) is None:
            raise ConfigError(f"{where}.context_to_z_only: the {self.name} task has no context")
        for key in exp.get("task_settings", {}):
            if key not in self.settings:
                allowed = ", ".join(self.settings) or "none"
                raise ConfigError(
                    f"{where}.task_settings: unknown key {key!r} for the {self.name} task; "
                    f"allowed: {allowed}"
                )

    def check_selection(self, exp: Mapping[str, Any], where: str) -> None:
        """``select_best`` measures something the task supports."""
        on = selects_on(exp)
        if on is None:
            return
        if on not in self.select_on:
            supported = [t.name for t in TASKS.values() if on in t.select_on]
            raise ConfigError(
                f"{where}: on {on!r} is available for the {' and '.join(supported)} "
                f"task(s), not {exp['task']!r}"
                + (" (it needs fresh held-out trials)" if on == "validation" else "")
            )
        if on == "validation" and "trials" not in exp["select_best"]:
            raise ConfigError(f"{where}.trials: needed to select on validation trials")

    def check_data_protocol(self, exp: Mapping[str, Any], data: Mapping[str, Any], where: str):
        """An architecture's ``data`` settings (how it draws batches from a pool)."""
        raise ConfigError(f"{where}: only the multitask tasks have one")

    # ------------------------------------------------------------------ evaluation

    def metric_columns(self, exp: Mapping[str, Any]) -> tuple[str, ...]:
        """The metrics columns of one experiment: :attr:`columns`, with ``checkpoint`` (final /
        selected) after ``seed`` when ``select_best`` is set."""
        if "select_best" in exp and "checkpoint" not in self.columns:
            return self.columns[:3] + ("checkpoint",) + self.columns[3:]
        return self.columns

    def expected_rows(self, exp: Mapping[str, Any], reference: bool = False) -> int:
        """Rows :meth:`evaluation_rows` gives for one seed (``reference``: with the optional
        reference test set of :meth:`reference_set` scored too)."""
        raise NotImplementedError

    def reference_set(self, exp: Mapping[str, Any], folder: str | Path) -> TaskData | None:
        """An optional second test set read from ``folder`` (the config's
        ``reference_testset``), or None; most tasks have none."""
        return None

    def evaluation_rows(
        self,
        exp: Mapping[str, Any],
        model,
        variables: Mapping[str, Any],
        test: TaskData,
        *,
        where: str,
        reference: TaskData | None = None,
        n_trainable: Callable[[], int] = lambda: 0,
    ) -> pd.DataFrame:
        """One seed's metrics rows on its test set (and ``reference``): the columns of
        :meth:`metric_columns` after ``experiment``, ``arch``, ``seed`` and before
        ``n_parameters`` (added by :func:`nmrnn.evaluation.evaluate`)."""
        raise NotImplementedError

"""Helpers shared by the figures' analyses: the files an analysis reads (:class:`RunFiles`, given
by the workflow rule), running a trained network (:func:`runner`, :func:`jnp_tree`), PCA and
binning a loss curve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nmrnn.models import NMRNN
from nmrnn.steps import step_bins

Run = tuple[str, str, int]  # (experiment, arch, seed)


@dataclass(frozen=True)
class RunFiles:
    """The files a figure's analysis reads, exactly as its workflow rule declares them.

    ``runs``: per trained network (experiment, arch, seed), its files by kind (``params``,
    ``losses``, ``meta``: the outputs of ``export_seed``); ``data``: per (experiment, seed), the
    task data file. The analysis never builds a path itself.
    """

    runs: Mapping[Run, Mapping[str, str]] = field(default_factory=dict)
    data: Mapping[tuple[str, int], str] = field(default_factory=dict)

    @classmethod
    def from_lists(
        cls,
        runs: Sequence[Sequence],
        files: Mapping[str, Sequence[str]],
        data_runs: Sequence[Sequence] = (),
        data_files: Sequence[str] = (),
    ) -> RunFiles:
        """From parallel lists: ``runs[i]`` = (experiment, arch, seed) of ``files[kind][i]`` for
        every kind, ``data_runs[i]`` = (experiment, seed) of ``data_files[i]``."""
        by_run: dict[Run, dict[str, str]] = {_run(r): {} for r in runs}
        for kind, paths in files.items():
            for run, path in zip(runs, paths, strict=True):
                by_run[_run(run)][kind] = str(path)
        data = {
            (str(e), int(s)): str(path) for (e, s), path in zip(data_runs, data_files, strict=True)
        }
        return cls(by_run, data)

    def file(self, experiment: str, arch: str, seed: int, kind: str = "params") -> str:
        """The ``kind`` file of one trained network; FileNotFoundError if the rule gave none."""
        try:
            return self.runs[experiment, arch, int(seed)][kind]
        except KeyError:
            raise FileNotFoundError(
                f"no {kind} file of {experiment}/{arch} seed {seed} among the analysis inputs"
            ) from None

    def task_data(self, experiment: str, seed: int) -> str:
        """The task data file of one seed of an experiment."""
        try:
            return self.data[experiment, int(seed)]
        except KeyError:
            raise FileNotFoundError(
                f"no task data of {experiment} seed {seed} among the analysis inputs"
            ) from None


def _run(run: Sequence) -> Run:
    experiment, arch, seed = run
    return str(experiment), str(arch), int(seed)


# ---------------------------------------------------------------------------------- running


def jnp_tree(tree: Mapping[str, Any]) -> dict:
    """A nested dict of arrays (e.g. loaded flax variables) as JAX arrays."""
    return jax.tree.map(jnp.asarray, tree)


def runner(model):
    """A jitted ``run(variables, inputs, s_fix=None, mask=None) -> trajectories`` for one model
    (one compile per model and shape). ``s_fix``, ``mask``: gains of an NM-RNN overridden where
    ``mask`` (a separate program; ignored for other models)."""
    plain = jax.jit(model.apply)
    if not isinstance(model, NMRNN):
        return lambda variables, inputs, s_fix=None, mask=None: plain(variables, inputs)
    override = jax.jit(
        lambda variables, inputs, s_fix, mask: model.apply(
            variables, inputs, s_override=s_fix, s_override_mask=mask
        )
    )

    def run(variables, inputs, s_fix=None, mask=None):
        if s_fix is None:
            return plain(variables, inputs)
        return override(variables, inputs, s_fix, mask)

    return run


# ---------------------------------------------------------------------------------- statistics


def pca(data: np.ndarray, n_components: int | None = None) -> dict[str, np.ndarray]:
    """Principal components of the rows of ``data`` (n, D).

    Returns mean (D,), components (P, D) (orthonormal rows by decreasing variance, each row's
    sign set so its largest-magnitude loading is positive), scores (n, P) = (data - mean) @
    componentsᵀ, and explained (P,), the fraction of the total variance along each component.
    P = min(n_components, n, D) (all of them without ``n_components``).
    """
    data = np.asarray(data, np.float64)
    mean = data.mean(axis=0)
    centred = data - mean
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)
    P = vt.shape[0] if n_components is None else min(n_components, vt.shape[0])
    comps = vt[:P]
    signs = np.sign(comps[np.arange(P), np.argmax(np.abs(comps), axis=1)])
    comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
    total = (sing**2).sum()
    explained = sing[:P] ** 2 / total if total > 0 else np.zeros(P)
    return {"mean": mean, "components": comps, "scores": centred @ comps.T, "explained": explained}


def bin_curve(loss: Sequence[float], n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """A loss curve averaged in ``n_points`` contiguous bins of steps (the bins of
    :func:`nmrnn.steps.step_bins`, as in the curves tables).

    loss: (steps,) loss at step 0, 1, .... Returns (steps (P,), values (P,)) with P = min(n_points,
    steps): the mean step and the mean loss (NaN-aware) of each bin.
    """
    loss = np.asarray(loss, float)
    if loss.size == 0:
        return np.zeros(0), np.zeros(0)
    chunks = step_bins(loss.size, n_points)
    steps = np.array([c.mean() for c in chunks])
    with np.errstate(all="ignore"):
        values = np.array([np.nanmean(loss[c]) if np.isfinite(loss[c]).any() else np.nan
                           for c in chunks])  # fmt: skip
    return steps, values

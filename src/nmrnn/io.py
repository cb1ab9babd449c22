"""Reading and writing the pipeline's files: parameters and task data as .npz (never pickled),
metadata as JSON, losses as CSV."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

import nmrnn


def _atomic_savez(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "/"))
        else:
            out[name] = np.asarray(value)
    return out


def _unflatten(flat: Mapping[str, np.ndarray]) -> dict:
    tree: dict = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def save_tree(path: str | Path, tree: Mapping[str, Any]) -> None:
    """Save a nested dict of arrays (e.g. flax variables) as .npz with '/'-joined names."""
    _atomic_savez(path, _flatten(tree))


def load_tree(path: str | Path) -> dict:
    """Inverse of :func:`save_tree` (read with ``allow_pickle=False``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing file {path}")
    with np.load(path, allow_pickle=False) as f:
        return _unflatten({k: f[k] for k in f.files})


def taskdata_tree(data) -> dict:
    """A TaskData as a nested dict (for :func:`save_tree`)."""
    return {
        "inputs": data.inputs,
        "targets": data.targets,
        "mask": data.mask,
        "events": dict(data.events),
    }


def tree_taskdata(tree: Mapping[str, Any]):
    """Inverse of :func:`taskdata_tree`: a :class:`nmrnn.tasks.TaskData`."""
    from nmrnn.tasks.common import TaskData

    return TaskData(tree["inputs"], tree["targets"], tree["mask"], dict(tree.get("events", {})))


def write_json(path: str | Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def git_commit(cwd: str | Path | None = None) -> str:
    """The current git commit (with '-dirty' for local changes to tracked files other than the
    pipeline's own committed outputs in ``figures/``), or 'unknown' outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ":/",
                ":(exclude,top)figures",
            ],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def environment_info() -> dict:
    """Package version, git commit, JAX device and host: the provenance of a result."""
    import jax

    dev = jax.devices()[0]
    return {
        "package_version": nmrnn.__version__,
        "git_commit": git_commit(),
        "jax_version": jax.__version__,
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', dev.platform)}",
        "host": platform.node(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }

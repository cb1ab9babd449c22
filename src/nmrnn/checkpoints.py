"""Checkpoints of a training run: what identifies a run, the file format, and what to do with a
checkpoint found on disk (resume it, set it aside, or bring back one set aside earlier).

A checkpoint is one ``.npz`` holding the run state (parameters, constants, optimizer state, the
loss history and, with a selection, the selected parameters) and a JSON ``meta`` entry: the step
reached, the run's fingerprint (:func:`run_fingerprint`), a digest of the package code
(:func:`code_digest`) and the training time spent so far. A checkpoint is never deleted or
overwritten by another run: it is moved aside (``*.stale.npz``, ``*.corrupt.npz``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nmrnn.io import atomic_path, read_npz_meta

Log = Callable[[str], None]

# ----------------------------------------------------------------------------- file format


def _flat(tree) -> dict[str, np.ndarray]:
    leaves = jax.tree.leaves(tree)
    return {f"{i:04d}": np.asarray(leaf) for i, leaf in enumerate(leaves)}


def _unflat(template, arrays: Mapping[str, np.ndarray], prefix: str):
    leaves, treedef = jax.tree.flatten(template)
    loaded = [jnp.asarray(arrays[f"{prefix}{i:04d}"]) for i in range(len(leaves))]
    for a, b in zip(loaded, leaves, strict=True):
        if a.shape != b.shape:
            raise ValueError(f"checkpoint leaf has shape {a.shape}, expected {b.shape}")
    return jax.tree.unflatten(treedef, loaded)


def save_checkpoint(path: Path, state: dict) -> None:
    """Write the run state atomically (a crash mid-write never leaves a broken checkpoint)."""
    arrays = {}
    for key in ("params", "constants", "opt_state", "best_params"):
        if key in state:
            arrays.update({f"{key}/{k}": v for k, v in _flat(state[key]).items()})
    for key in ("losses", "validation_losses", "best_loss", "best_step"):
        if key in state:
            arrays[key] = np.asarray(state[key])
    arrays["meta"] = np.asarray(json.dumps(state["meta"]))
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def load_checkpoint(path: Path, template: dict) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` into the structure of ``template``."""
    with np.load(path, allow_pickle=False) as f:
        arrays = dict(f)
    state = {
        key: _unflat(template[key], arrays, f"{key}/")
        for key in ("params", "constants", "opt_state", "best_params")
        if key in template
    }
    for key in ("losses", "validation_losses", "best_loss", "best_step"):
        if key in arrays:
            state[key] = arrays[key]
    state["meta"] = json.loads(str(arrays["meta"]))
    return state


# ----------------------------------------------------------------------------- identity


def _digest_tree(digest, tree) -> None:
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        array = np.asarray(jax.device_get(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}{array.shape}{array.dtype}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())


def run_fingerprint(
    model: Any,
    stages: Sequence[Any],
    optimizer: Any,
    params: Any,
    constants: Any,
    data_keys: jax.Array,
    selection: Any = None,
    data: Any = None,
    extra: Any = None,
) -> str:
    """A digest of everything that decides a run's trajectory except the step reached: the
    model's settings, the stages, the optimizer, the seeds' initial variables, data keys and
    fixed data (pools, test sets), the validation interval and batch of a selection, and
    ``extra``: any JSON-able description of what else shapes the batches (the experiment's
    settings: batch size, noise levels, ...), which a ``batch_fn`` closure cannot show. A
    checkpoint resumes only a run with the same digest."""
    digest = hashlib.sha256()
    digest.update(repr(model).encode())
    digest.update(json.dumps([dataclasses.asdict(s) for s in stages], sort_keys=True).encode())
    digest.update(json.dumps(dataclasses.asdict(optimizer), sort_keys=True).encode())
    _digest_tree(digest, {"params": params, "constants": constants})
    keys = jnp.asarray(data_keys)
    if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
        keys = jax.random.key_data(keys)
    digest.update(np.asarray(keys).tobytes())
    if selection is not None:
        digest.update(f"selection every {int(selection.every)}".encode())
        if selection.on != "validation":
            digest.update(f" on {selection.on}".encode())
        for leaf in jax.tree.leaves(selection.batch):
            digest.update(np.ascontiguousarray(np.asarray(jax.device_get(leaf))).tobytes())
    if data is not None:
        digest.update(b"data")
        _digest_tree(digest, data)
    if extra is not None:
        digest.update(b"extra" + json.dumps(extra, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def code_digest() -> str:
    """A digest of the package's source files: a finished checkpoint is reused only by the code
    that wrote it (an unfinished one resumes across code changes, see :func:`resumable_meta`)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------- on disk


def set_aside(checkpoint: Path, suffix: str) -> Path:
    """Move a checkpoint that cannot be resumed out of the way, to ``<name><suffix>`` or, if that
    exists, ``<name><suffix without .npz>.1.npz``, ``.2.npz``, ...: never deleted or
    overwritten."""
    stem = checkpoint.name.removesuffix(".npz")
    aside, n = checkpoint.with_name(stem + suffix), 0
    while aside.exists():
        n += 1
        aside = checkpoint.with_name(f"{stem}{suffix.removesuffix('.npz')}.{n}.npz")
    os.replace(checkpoint, aside)
    return aside


def read_meta(path: Path) -> dict:
    """The metadata of a checkpoint file; any error if it cannot be read."""
    meta = read_npz_meta(path)
    int(meta["step"])
    return meta


def meta_or_none(path: Path) -> dict | None:
    """:func:`read_meta`, or None if the file cannot be read."""
    try:
        return read_meta(path)
    except Exception:  # noqa: BLE001 - unreadable: handled by the caller
        return None


def _set_aside_match(checkpoint: Path, protocol: str, total: int) -> Path | None:
    """A checkpoint of this run among those set aside as stale (the config went back to this
    run's settings after another run had moved it aside), or None."""
    stem = checkpoint.name.removesuffix(".npz")
    for path in sorted(checkpoint.parent.glob(f"{stem}.stale*.npz")):
        meta = meta_or_none(path)
        if meta is not None and meta.get("protocol") == protocol and int(meta["step"]) <= total:
            return path
    return None


def set_aside_unreadable(checkpoint: Path, error: Exception, log: Log, tag: str) -> None:
    """Move a checkpoint that cannot be read to ``*.corrupt.npz``, with a warning."""
    aside = set_aside(checkpoint, ".corrupt.npz")
    log(
        f"{tag}WARNING: checkpoint {checkpoint} cannot be read ({type(error).__name__}: "
        f"{error}); moved to {aside.name}, starting from step 0"
    )


def restore_set_aside(checkpoint: Path, protocol: str, total: int, log: Log, tag: str) -> None:
    """If the checkpoint in place (or its absence) is not this run's but one moved aside earlier
    is, put that one back (the one in place is moved aside in turn)."""
    current = meta_or_none(checkpoint) if checkpoint.exists() else None
    if checkpoint.exists() and not (current and current.get("protocol") != protocol):
        return
    match = _set_aside_match(checkpoint, protocol, total)
    if match is None:
        return
    if checkpoint.exists():
        aside = set_aside(checkpoint, ".stale.npz")
        log(f"{tag}checkpoint {checkpoint} belongs to another run; moved to {aside.name}")
    os.replace(match, checkpoint)
    log(f"{tag}the set-aside checkpoint {match.name} belongs to this run: back in use")


def resumable_meta(
    checkpoint: Path, protocol: str, code: str, total: int, log: Log, tag: str
) -> dict | None:
    """The metadata of the checkpoint at ``checkpoint`` if this run can resume from it, else
    None. A checkpoint that cannot be read, belongs to another run or holds this run finished by
    other package code is moved aside, with a line saying so; an unfinished one written by other
    code is resumed, with a note."""
    if not checkpoint.exists():
        return None
    try:
        meta = read_meta(checkpoint)
    except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is set aside
        set_aside_unreadable(checkpoint, error, log, tag)
        return None
    if meta.get("protocol") != protocol or int(meta["step"]) > total:
        stale = set_aside(checkpoint, ".stale.npz")
        log(
            f"{tag}checkpoint {checkpoint} belongs to another run (model, protocol, "
            f"optimizer, seeds, data or batch settings differ); moved to {stale.name}, "
            f"starting from step 0"
        )
        return None
    if int(meta["step"]) == total and meta.get("code") != code:
        stale = set_aside(checkpoint, ".stale.npz")
        log(
            f"{tag}checkpoint {checkpoint} holds this run finished by other package code; "
            f"moved to {stale.name}, training again with this code"
        )
        return None
    if meta.get("code") != code:
        log(
            f"{tag}note: resuming a checkpoint written by other package code "
            f"({meta.get('code')} vs {code})"
        )
    return meta

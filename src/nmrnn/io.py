"""Reading and writing the pipeline's files: parameters and task data as .npz (never pickled),
metadata as JSON, losses as CSV.

Every output is written to a temporary name in its folder and renamed into place when complete
(:func:`atomic_path`), so an interrupted step never leaves a cut file under the real name. Every
read names the file when it cannot be used (:class:`UnreadableFile`) and says what to do."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import nmrnn


class UnreadableFile(ValueError):
    """A pipeline file that exists but cannot be used: truncated, corrupt, of another kind, or
    holding other rows or steps than its config implies. The message is one line naming the file,
    what is wrong with it and what to do."""


def unreadable(path: str | Path, problem: str, hint: str | None = None) -> UnreadableFile:
    """An :class:`UnreadableFile` for ``path``: '<path>: <problem>; <hint>' on one line (the hint
    defaults to the command that rewrites just that file, :func:`regenerate_command`: deleting
    it is not enough while the files made from it are up to date)."""
    text = f"{path}: {problem}; {hint or regenerate_command(path)}"
    return UnreadableFile(" ".join(text.split()))


def _temporary_name(path: Path) -> Path:
    """Where ``path`` is written before it is renamed: the same folder and suffix (numpy and
    matplotlib choose the format by the suffix), e.g. ``metrics.csv.tmp.csv``."""
    return path.with_name(f"{path.name}.tmp{path.suffix}")


@contextlib.contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[tuple[Path, ...]]:
    """Temporary names for ``paths`` (in their folders, which are created): write each, and they
    replace ``paths`` when the block ends without error; on an error they are removed and any
    previous files under ``paths`` are left as they were."""
    finals = [Path(p) for p in paths]
    temps = tuple(_temporary_name(p) for p in finals)
    for p in finals:
        p.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield temps
        for tmp, final in zip(temps, finals, strict=True):
            if not tmp.exists():
                raise FileNotFoundError(f"{final} was not written (nothing at {tmp})")
            os.replace(tmp, final)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """:func:`atomic_paths` for one file: ``with atomic_path(out) as tmp: write(tmp)``."""
    with atomic_paths(path) as (tmp,):
        yield tmp


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path: str | Path, frame, **to_csv) -> None:
    """Write a pandas DataFrame as CSV atomically (``to_csv`` keywords as for pandas)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **to_csv)


def _atomic_savez(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    for name, value in arrays.items():
        if value.dtype.hasobject:
            raise TypeError(f"{name}: {value.dtype} array of Python objects; {path} holds only "
                            "numeric or string arrays (read without pickle)")  # fmt: skip
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


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


def _npz_problem(error: Exception) -> str:
    detail = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, EOFError):
        return "the file is empty"
    if isinstance(error, zipfile.BadZipFile | zlib.error):
        return f"not a complete .npz archive, truncated or corrupt ({detail})"
    if isinstance(error, ValueError) and "pickled" in detail:
        return "not an .npz archive of arrays (numpy read it as pickled object data)"
    return f"cannot be read as an .npz archive ({type(error).__name__}: {detail})"


def load_tree(path: str | Path, hint: str | None = None) -> dict:
    """Inverse of :func:`save_tree` (read with ``allow_pickle=False``).

    Raises FileNotFoundError if ``path`` is missing and :class:`UnreadableFile` naming it if it
    cannot be read (truncated, corrupt, not an .npz archive); ``hint`` says what to do then
    (default: :func:`regenerate_command`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing file {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as error:
        raise unreadable(path, _npz_problem(error), hint) from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise unreadable(path, "a single .npy array, not an .npz archive", hint)
    try:
        with archive as f:
            return _unflatten({k: f[k] for k in f.files})
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise unreadable(path, _npz_problem(error), hint) from error


def read_npz_meta(path: str | Path) -> dict:
    """The JSON ``meta`` entry of an .npz archive (a training block or checkpoint), without
    reading its arrays. FileNotFoundError if ``path`` is missing, :class:`UnreadableFile` naming
    it if it cannot be read or holds no JSON ``meta``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing file {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            text = str(f["meta"])
    except KeyError as error:
        raise unreadable(path, "no 'meta' entry") from error
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as error:
        raise unreadable(path, _npz_problem(error)) from error
    try:
        return json.loads(text)
    except ValueError as error:
        raise unreadable(path, f"its metadata is not JSON ({error})") from error


def regenerate_command(path: str | Path) -> str:
    """What to run to rewrite one pipeline file (and nothing else)."""
    return (
        f"regenerate it with `snakemake {path} --force` (plus the --profile or --cores you run "
        "the pipeline with)"
    )


TASKDATA_FIELDS = ("inputs", "targets", "mask")


def load_task_data(path: str | Path, splits: tuple[str, ...] = ()) -> dict:
    """A seed's task data file (``results/<experiment>/data/seed<s>.npz``) as a dict of
    :class:`nmrnn.tasks.TaskData` per split (``train``, ``test``, ...).

    ``splits``: splits the caller needs. An unreadable or malformed file raises
    :class:`UnreadableFile` naming it and the command that regenerates it."""
    hint = regenerate_command(path)
    tree = load_tree(path, hint=hint)
    for name in splits:
        if name not in tree:
            raise unreadable(path, f"no '{name}' split (it has {sorted(tree)})", hint)
    data = {}
    for name, split in tree.items():
        if not isinstance(split, Mapping) or not all(k in split for k in TASKDATA_FIELDS):
            raise unreadable(path, f"'{name}' is not task data (no inputs, targets, mask)", hint)
        sizes = {np.shape(split[k])[:1] for k in TASKDATA_FIELDS}
        if len(sizes) != 1:
            raise unreadable(path, f"'{name}': inputs, targets and mask differ in trials", hint)
        data[name] = tree_taskdata(split)
    return data


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


def read_csv_checked(
    path: str | Path,
    columns: Sequence[Sequence[str]] = (),
    required: Sequence[str] = (),
    hint: str | None = None,
):
    """A CSV file the pipeline wrote, as a pandas DataFrame, checked to be whole.

    ``columns``: the allowed header(s), each a list of column names in order (any if empty);
    ``required``: columns that may not be empty in any row. Raises :class:`UnreadableFile` naming
    the file if it is empty, does not end with a newline (cut short), does not parse, has other
    columns, or lacks a required value."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing file {path}")
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 1))
        last = handle.read(1)
    if size == 0:
        raise unreadable(path, "the file is empty", hint)
    if last != b"\n":
        raise unreadable(path, f"it ends in the middle of a line (cut short at {size} bytes)", hint)
    try:
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        detail = " ".join(str(error).split())
        raise unreadable(path, f"not a readable CSV table ({detail})", hint) from error
    if columns and list(frame.columns) not in [list(c) for c in columns]:
        wanted = " or ".join(",".join(c) for c in columns)
        raise unreadable(
            path, f"columns {','.join(map(str, frame.columns))} where {wanted} was expected", hint
        )
    for column in required:
        empty = frame.index[frame[column].isna()] if column in frame else []
        if len(empty):
            lines = ", ".join(str(i + 2) for i in empty[:5]) + (", ..." if len(empty) > 5 else "")
            raise unreadable(path, f"no {column} value on line {lines} (cut short?)", hint)
    return frame


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (nothing is written if it cannot be serialised)."""
    write_text(path, json_text(obj, indent=2) + "\n")


def json_text(obj: Any, **dumps) -> str:
    """``obj`` as valid JSON text (keys sorted; ``dumps``: more json.dumps keywords): a NaN or
    infinite number becomes null, as JSON has no such numbers (Python's json would write the
    non-JSON words NaN and Infinity)."""
    return json.dumps(_finite_or_none(obj), sort_keys=True, allow_nan=False, **dumps)


def _finite_or_none(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, np.ndarray | np.generic):
        return _finite_or_none(obj.tolist())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return _json_default(obj)


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


def training_time(meta: Mapping[str, Any]) -> tuple[float, bool]:
    """Seconds a training job spent, from its meta: every attempt (the time before a kill, from
    its checkpoint, plus the resumed run), or its last attempt only for a job trained before
    that was recorded; and whether it was the last attempt only."""
    spent = meta.get("train_s_all_attempts")
    if spent is None:
        return float(meta["wall_s"]), True
    return float(spent), False


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

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
import re
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


def save_tree(
    path: str | Path, tree: Mapping[str, Any], identity: Mapping[str, Any] | None = None
) -> None:
    """Save a nested dict of arrays (e.g. flax variables) as .npz with '/'-joined names.

    ``identity``: whose file it is (:func:`file_identity`), stored as small string and integer
    arrays under ``identity/`` and checked by :func:`load_tree` against the path it is read from.
    """
    if IDENTITY in tree:
        raise ValueError(f"{path}: '{IDENTITY}' is reserved for the file's identity")
    arrays = _flatten(tree)
    for key, value in (identity or {}).items():
        arrays[f"{IDENTITY}/{key}"] = np.asarray(value if isinstance(value, int) else str(value))
    _atomic_savez(path, arrays)


# ------------------------------------------------------------------ whose file it is

IDENTITY = "identity"
_SEED_FOLDER = re.compile(r"seed(\d+)")
_DATA_FILE = re.compile(r"seed(\d+)\.npz")


def file_identity(path: str | Path) -> dict[str, Any] | None:
    """Whose file ``path`` is by the pipeline's layout: ``<experiment>/<arch>/seed<s>/<file>``
    gives experiment, arch and seed; ``<experiment>/data/seed<s>.npz`` experiment and seed;
    ``analysis/<figure>.npz`` (a figure's analysis, read by its plot and table) the figure. None
    for any other path (a file outside the layout is not checked). A folder named ``seed<s>``
    (or a file ``data/seed<s>.npz``) is read as the layout wherever it lies."""
    path = Path(path)
    parts = path.parts
    if len(parts) >= 4 and _SEED_FOLDER.fullmatch(parts[-2]):
        return {"experiment": parts[-4], "arch": parts[-3],
                "seed": int(_SEED_FOLDER.fullmatch(parts[-2])[1])}  # fmt: skip
    if len(parts) >= 3 and parts[-2] == "data" and _DATA_FILE.fullmatch(parts[-1]):
        return {"experiment": parts[-3], "seed": int(_DATA_FILE.fullmatch(parts[-1])[1])}
    if len(parts) >= 2 and parts[-2] == "analysis" and path.suffix == ".npz":
        return {"figure": path.stem}
    return None


def _shown(identity: Mapping[str, Any]) -> str:
    keys = ("figure", "experiment", "arch", "seed")
    return "/".join(f"seed{identity[k]}" if k == "seed" else str(identity[k])
                    for k in keys if k in identity)  # fmt: skip


def stamp_command(path: str | Path) -> str:
    return (
        f"if it is in its right place, record that with `python -m nmrnn.io --stamp {path}` "
        f"(keeps its time, so nothing reruns); else {regenerate_command(path)}"
    )


def check_identity(path: str | Path, found: Mapping[str, Any] | None, hint: str | None = None):
    """Raise :class:`UnreadableFile` if the identity ``found`` in a file (None: none recorded)
    is not the one its path gives (:func:`file_identity`); nothing for a path outside the
    layout. Only experiment, arch and seed are compared (the run fingerprint is carried)."""
    expected = file_identity(path)
    if expected is None:
        return
    if found is None:
        raise unreadable(path, "written before the pipeline's files recorded whose they are",
                         hint or stamp_command(path))  # fmt: skip
    got = {k: found.get(k) for k in expected}
    try:
        if "seed" in got:
            got["seed"] = int(got["seed"])
    except (TypeError, ValueError):
        pass
    if got != expected:
        raise unreadable(
            path,
            f"holds {_shown(got)} but its path is {_shown(expected)} (copied from another "
            f"run or seed, or edited)",
            hint or regenerate_command(path),
        )


def npz_problem(error: Exception) -> str:
    """What is wrong with a file that numpy could not read, from the error it raised."""
    detail = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, EOFError):
        return "the file is empty"
    if isinstance(error, zipfile.BadZipFile | zlib.error):
        return f"not a complete .npz archive, truncated or corrupt ({detail})"
    if isinstance(error, ValueError) and "pickled" in detail:
        return "not an .npz archive of arrays (numpy read it as pickled object data)"
    return f"cannot be read as an .npz archive ({type(error).__name__}: {detail})"


class NpzProblem(ValueError):
    """An .npz file that cannot be read; the message says what is wrong with it (not its path)."""


# what numpy raises on a damaged .npz file: empty (EOFError), truncated or corrupt archive
_NPZ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)


def npz_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz archive (read with ``allow_pickle=False``), or NpzProblem saying
    what is wrong (:func:`npz_problem`; a single .npy array under the name included)."""
    try:
        archive = np.load(path, allow_pickle=False)
    except _NPZ_ERRORS as error:
        raise NpzProblem(npz_problem(error)) from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise NpzProblem("a single .npy array, not an .npz archive")
    try:
        with archive as f:
            return {k: f[k] for k in f.files}
    except _NPZ_ERRORS as error:
        raise NpzProblem(npz_problem(error)) from error


def load_tree(path: str | Path, hint: str | None = None) -> dict:
    """Inverse of :func:`save_tree` (read with ``allow_pickle=False``), without the file's
    identity, which is checked against ``path`` (:func:`check_identity`).

    Raises FileNotFoundError if ``path`` is missing and :class:`UnreadableFile` naming it if it
    cannot be read (truncated, corrupt, not an .npz archive); ``hint`` says what to do then
    (default: :func:`regenerate_command`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing file {path}")
    try:
        tree = _unflatten(npz_arrays(path))
    except NpzProblem as problem:
        raise unreadable(path, str(problem), hint) from problem
    except (ValueError, KeyError) as error:  # entries that do not form a tree
        raise unreadable(path, npz_problem(error), hint) from error
    identity = tree.pop(IDENTITY, None)
    if identity is not None:
        identity = {k: v.item() for k, v in identity.items()}
    check_identity(path, identity)
    return tree


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
        raise unreadable(path, npz_problem(error)) from error
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
    identity = None
    per_seed = file_identity(path) is not None
    if per_seed and set(IDENTITY_COLUMNS) <= set(frame.columns) and len(frame):
        identity = {}
        for column in IDENTITY_COLUMNS:
            values = frame[column].unique()
            if len(values) != 1:
                shown = ", ".join(map(str, values[:3]))
                raise unreadable(path, f"one seed's file holds several {column}s ({shown})", hint)
            identity[column] = values[0]
    if per_seed:
        check_identity(path, identity, None if identity else stamp_command(path))
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


# The columns by which a per-seed CSV (metrics.csv, losses.csv) says whose it is.
IDENTITY_COLUMNS = ("experiment", "arch", "seed")


def read_seed_json(path: str | Path) -> dict:
    """A seed's ``meta.json`` as a dict, its experiment, arch and seed checked against ``path``
    (:func:`check_identity`); :class:`UnreadableFile` naming it if it is not a JSON object."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except ValueError as error:
        raise unreadable(path, f"not JSON ({error})") from error
    if not isinstance(meta, dict):
        raise unreadable(path, f"a JSON {type(meta).__name__}, not an object")
    check_identity(path, meta if "experiment" in meta else None)
    return meta


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


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``; '' if
    neither says): trained parameters can differ between CPUs (docs/results.md)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def environment_info() -> dict:
    """Package version, git commit, JAX device, CPU and host: the provenance of a result."""
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
        "cpu_model": cpu_model(),
    }


def stamp_identity(path: str | Path) -> str:
    """Record in a per-seed file written before files recorded whose they are the identity its
    path gives (:func:`file_identity`), keeping its modification time so that Snakemake reruns
    nothing; the run fingerprint is recorded as 'unrecorded'. Returns what was done. A file
    that already records an identity is left as it is (and checked)."""
    path = Path(path)
    expected = file_identity(path)
    if expected is None:
        layout = "<experiment>/<arch>/seed<s>/<file> or <experiment>/data/seed<s>.npz"
        raise ValueError(f"{path}: not a per-seed file of the pipeline's layout ({layout})")
    times = path.stat()
    if path.suffix == ".npz":
        try:
            arrays = npz_arrays(path)
        except NpzProblem as problem:
            raise ValueError(f"{path}: {problem}") from problem
        if any(k.startswith(f"{IDENTITY}/") for k in arrays):
            load_tree(path)
            return f"{path}: records its identity already"
        identity = {**expected, **({"run": "unrecorded"} if "arch" in expected else {})}
        for key, value in identity.items():
            arrays[f"{IDENTITY}/{key}"] = np.asarray(value if isinstance(value, int) else value)
        _atomic_savez(path, arrays)
    elif path.suffix == ".csv":
        lines = path.read_text().splitlines()
        if not lines:
            raise ValueError(f"{path}: the file is empty")
        if lines[0].split(",")[:3] == list(IDENTITY_COLUMNS):
            read_csv_checked(path)
            return f"{path}: records its identity already"
        who = f"{expected['experiment']},{expected['arch']},{expected['seed']}"
        text = "\n".join([",".join(IDENTITY_COLUMNS) + "," + lines[0]]
                         + [f"{who},{line}" for line in lines[1:]]) + "\n"  # fmt: skip
        write_text(path, text)
    elif path.suffix == ".json":
        read_seed_json(path)
        return f"{path}: records its identity already (experiment, arch, seed)"
    else:
        raise ValueError(f"{path}: not an .npz, .csv or .json file")
    os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
    return f"{path}: identity {_shown(expected)} recorded (modification time kept)"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nmrnn.io --stamp FILE [FILE ...]``: :func:`stamp_identity` of each file."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m nmrnn.io", description=main.__doc__)
    parser.add_argument(
        "--stamp",
        nargs="+",
        metavar="FILE",
        required=True,
        help="per-seed files to record their identity in, from their paths",
    )
    args = parser.parse_args(argv)
    for path in args.stamp:
        try:
            print(stamp_identity(path))
        except (OSError, ValueError) as error:
            message = " ".join(str(error).split())
            named = message if str(path) in message else f"{path}: {message}"
            print(f"error: {named}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    from nmrnn.io import main as _package_main  # the package's module (see nmrnn.config)

    raise SystemExit(_package_main())

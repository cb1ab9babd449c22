"""The outside check: networks trained by the authors' own code (lindermanlab/nm-rnn, run outside
the project), loaded into this project's models and scored with this project's evaluation.

    python -m nmrnn.outside FOLDER [--out figures/outside.csv] [--docs docs/outside.md]
    python -m nmrnn.outside --refresh [--docs docs/outside.md]   # after retraining

FOLDER holds one subfolder per trained run (exported by a script that runs beside their code;
nothing of theirs is imported here, every file is read with ``allow_pickle=False``)::

    RUN/manifest.json            claim, experiment and arch (this project's names), authors_model
                                 (which of their models: a key of :data:`MAPPINGS`), key,
                                 checkpoints, authors_commit, changes (ids), optional wall_time_s
                                 and readout_rows
    RUN/initial_state.npz        their fixed initial state (x0, z0 / x0 / c0, h0)
    RUN/check_inputs.npy         (batch, time, U): inputs they ran their model on
    RUN/CHECKPOINT/params.npz    their parameters, under their names
    RUN/CHECKPOINT/check_outputs.npy   (batch, time, O): their model's outputs on those inputs
                                 (float64: their model run in float64, see below)

Each run's parameters are renamed to this project's (:data:`MAPPINGS`), its sizes read from the
arrays, and its model built from the settings of the ``authors`` protocol (``config.yaml`` with
``profiles/authors/authors.yaml``: the same normalisation, QR signs, routing and
initial states as their code). Before scoring, this project's model must give their outputs on
their inputs: max |difference| <= 1e-5 x max(1, max |their output|); a run that does not is
refused, by name, and nothing is written. Where their outputs are float64 (their model run in
float64 on their float32 parameters), this project's model runs in float64 too and the bound is
1e-9: the check then compares the equations alone, without float32 rounding (which by itself
reaches ~1e-5 over a long trial). Then the run is scored by
:func:`nmrnn.evaluation.evaluate` on the test set of the project's seed 0 (and, for the
multitask experiments, on the authors' frozen test set), and each value is placed among this
project's per-seed values of the same experiment, architecture and checkpoint (the ``authors``
protocol's ``figures/authors/metrics`` and the matched ``figures/metrics``).
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nmrnn import config as cfg
from nmrnn.configfile import read_yaml
from nmrnn.errors import ConfigError
from nmrnn.io import NpzProblem, npz_arrays, npz_problem

# Their parameter names -> this project's, per model of theirs. ``constants``: their initial
# state's names (the same in both).
_NM_MWG = {
    "row_factors": "L",
    "column_factors": "R",
    "input_weights": "B_x",
    "nm_input_weight": "B_z",
    "readout_weights": "C",
    "readout_bias": "d",
    "nm_rec_weight": "W_z",
    "nm_sigmoid_weight": "A_z",
    "nm_sigmoid_intercept": "b_z",
}
MAPPINGS: dict[str, dict[str, Any]] = {
    # nmrnn/rnn_code.py nm_rnn (MWG) and context_nm_rnn (multitask: x sees the first 3 inputs)
    "mwg_nmrnn": {"params": _NM_MWG, "constants": ("x0", "z0")},
    "context_nmrnn": {"params": _NM_MWG, "constants": ("x0", "z0")},
    # nmrnn/rnn_code.py lr_rnn: QR of the row factors and 1/N
    "lrrnn_qr_inv_n": {
        "params": {
            "row_factors": "L",
            "column_factors": "R",
            "input_weights": "B",
            "readout_weights": "C",
            "readout_bias": "d",
        },
        "constants": ("x0",),
    },
    # nmlrrnn_vs_lstm nm_rnn: feedback x -> z, raw factors and 1/N, no readout bias
    "eft_nmrnn": {
        "params": {
            "row_factors": "L",
            "column_factors": "R",
            "input_weights": "B_x",
            "readout_weights": "C",
            "nm_rec_weight": "W_z",
            "nm_input_weight": "B_z",
            "nm_sigmoid_weight": "A_z",
            "nm_sigmoid_bias": "b_z",
            "nm_feedback_weight": "W_zx",
            "nm_feedback_bias": "b_zx",
        },
        "constants": ("x0", "z0"),
    },
    # nmlrrnn_vs_lstm simple_lstm
    "eft_lstm": {
        "params": {
            **{f"weights_{g}u": f"Wx_{g}" for g in "ifgo"},
            **{f"weights_{g}h": f"Wh_{g}" for g in "ifgo"},
            **{f"bias_{g}h": f"b_{g}" for g in "ifgo"},
            "readout_weights": "C",
        },
        "constants": ("c0", "h0"),
    },
}

MANIFEST_KEYS = (
    "claim",
    "experiment",
    "arch",
    "authors_model",
    "key",
    "checkpoints",
    "authors_commit",
    "changes",
)
RUN_FILES = ("manifest.json", "initial_state.npz", "check_inputs.npy")
CHECKPOINT_FILES = ("params.npz", "check_outputs.npy")
TOLERANCE = 1e-5
# float64 outputs: both sides carry the same values, so only float64 rounding is left (~1e-14)
TOLERANCE_FLOAT64 = 1e-9
METRICS_FILE = {"mwg": "mwg.csv", "multitask": "multitask.csv", "eft": "eft.csv"}
# This project's per-seed metrics that each value is placed among.
REFERENCES = {"authors": "figures/authors/metrics", "matched": "figures/metrics"}
COLUMNS = (
    "claim",
    "code",
    "experiment",
    "arch",
    "key",
    "checkpoint",
    "metric",
    "testset",
    "task",
    "value",
    "authors_n",
    "authors_min",
    "authors_median",
    "authors_max",
    "authors_below",
    "authors_place",
    "matched_checkpoint",
    "matched_n",
    "matched_min",
    "matched_median",
    "matched_max",
    "matched_below",
    "matched_place",
    "forward_max_diff",
    "wall_time_s",
    "authors_commit",
    "changes",
)


class OutsideError(ConfigError):
    """A folder of the authors' runs that cannot be scored; the message names what is wrong."""


# ----------------------------------------------------------------------------- reading


def run_folders(folder: str | Path) -> list[Path]:
    """The run subfolders of ``folder``, each checked for every expected file; raises
    OutsideError naming the first run with missing files and which ones."""
    root = Path(folder)
    if not root.is_dir():
        raise OutsideError(f"outside folder {root}: not a directory")
    runs = sorted(p for p in root.iterdir() if p.is_dir())
    if not runs:
        raise OutsideError(f"outside folder {root}: no run subfolders")
    for run in runs:
        missing = [f for f in RUN_FILES if not (run / f).is_file()]
        if not missing:
            manifest = read_manifest(run)
            for ck in manifest["checkpoints"]:
                missing += [f"{ck}/{f}" for f in CHECKPOINT_FILES if not (run / ck / f).is_file()]
        if missing:
            raise OutsideError(f"outside run {run}: missing {', '.join(missing)}")
    return runs


def read_manifest(run: Path) -> dict:
    """The run's manifest.json, checked for the keys every run needs."""
    try:
        manifest = json.loads((run / "manifest.json").read_text())
    except (OSError, ValueError) as error:
        raise OutsideError(f"outside run {run}: unreadable manifest.json ({error})") from error
    if not isinstance(manifest, dict):
        raise OutsideError(f"outside run {run}: manifest.json is not a JSON object")
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing:
        raise OutsideError(f"outside run {run}: manifest.json lacks {', '.join(missing)}")
    if manifest["authors_model"] not in MAPPINGS:
        raise OutsideError(
            f"outside run {run}: unknown authors_model {manifest['authors_model']!r} "
            f"(known: {', '.join(MAPPINGS)})"
        )
    if not manifest["checkpoints"]:
        raise OutsideError(f"outside run {run}: manifest.json lists no checkpoints")
    return manifest


def _npz(path: Path) -> dict[str, np.ndarray]:
    try:
        return npz_arrays(path)
    except NpzProblem as problem:
        raise OutsideError(f"outside file {path}: unreadable ({problem})") from problem


def _npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as error:
        raise OutsideError(f"outside file {path}: unreadable ({npz_problem(error)})") from error
    if not isinstance(array, np.ndarray):
        array.close()
        raise OutsideError(f"outside file {path}: unreadable (an .npz archive, not one .npy array)")
    return array


def to_variables(manifest: Mapping[str, Any], params: Mapping[str, np.ndarray], initial) -> dict:
    """Their parameters and initial state as this project's variables tree (``params``,
    ``constants``), renamed by :data:`MAPPINGS`; ``readout_rows`` keeps those rows of the readout
    (their MWG LR-RNN has three output channels). Raises OutsideError naming a missing or
    unexpected parameter."""
    mapping = MAPPINGS[manifest["authors_model"]]
    names = mapping["params"]
    where = f"outside run {manifest.get('run', '?')} ({manifest['authors_model']})"
    missing = [k for k in names if k not in params]
    extra = [k for k in params if k not in names]
    if missing or extra:
        raise OutsideError(f"{where}: parameters missing {missing}, unexpected {extra}")
    lacking = [k for k in mapping["constants"] if k not in initial]
    if lacking:
        raise OutsideError(f"{where}: initial_state.npz lacks {', '.join(lacking)}")
    out = {names[k]: np.asarray(v, np.float32) for k, v in params.items()}
    rows = manifest.get("readout_rows")
    if rows is not None:
        out["C"] = out["C"][list(rows)]
        if "d" in out:
            out["d"] = out["d"][list(rows)]
    constants = {k: np.asarray(initial[k], np.float32) for k in mapping["constants"]}
    return {"params": out, "constants": constants}


def from_variables(authors_model: str, variables: Mapping[str, Any]) -> tuple[dict, dict]:
    """The inverse of :func:`to_variables` (for tests and for writing a folder from this
    project's own networks): (their parameters, their initial state)."""
    mapping = MAPPINGS[authors_model]
    back = {ours: theirs for theirs, ours in mapping["params"].items()}
    params = {back[k]: np.asarray(v) for k, v in variables["params"].items()}
    initial = {k: np.asarray(variables["constants"][k]) for k in mapping["constants"]}
    return params, initial


# ----------------------------------------------------------------------------- the model


def experiments_for(
    base: Mapping[str, Any], manifest: Mapping[str, Any], variables: Mapping[str, Any]
) -> dict:
    """The validated experiments of ``base`` with the run's architecture sized from its
    parameters (N, and K, M where the model has them) and no checkpoint selection (each of
    their checkpoints is scored as parameters of its own)."""
    experiments = cfg.scaled_experiments(base)
    experiment, arch = manifest["experiment"], manifest["arch"]
    if experiment not in experiments:
        raise OutsideError(f"outside run {manifest.get('run')}: unknown experiment {experiment!r}")
    exp = experiments[experiment]
    source = exp.get("pretrained", experiment)
    if arch not in experiments[source]["archs"]:
        raise OutsideError(f"outside run {manifest.get('run')}: {source!r} has no arch {arch!r}")
    p = variables["params"]
    sizes = {}
    if "L" in p:
        sizes["N"], sizes["K"] = (int(n) for n in p["L"].shape)
    if "W_z" in p:
        sizes["M"] = int(p["W_z"].shape[0])
    if "Wh_i" in p:
        sizes["N"] = int(p["Wh_i"].shape[0])
    spec = experiments[source]["archs"][arch]
    spec["settings"] = {**spec.get("settings", {}), **sizes}
    for name in {experiment, source}:
        experiments[name].pop("select_best", None)
    return experiments


def forward_difference(model, variables, inputs: np.ndarray, outputs: np.ndarray) -> float:
    """Largest |this project's output - theirs| on their inputs, relative to max(1, |theirs|).

    Float64 outputs (their model run in float64 on the float32 parameters) are compared with this
    project's model run in float64 too: both sides then carry the same values and only the
    equations can differ, so a difference is an implementation difference, not float32 rounding
    accumulated over a long trial (which reaches ~1e-5 on its own)."""
    import jax
    import jax.numpy as jnp

    theirs = np.asarray(outputs)
    dtype = np.float64 if theirs.dtype == np.float64 else np.float32
    with jax.enable_x64(dtype == np.float64):
        tree = {k: {n: jnp.asarray(a, dtype) for n, a in v.items()} for k, v in variables.items()}
        y = np.asarray(model.apply(tree, jnp.asarray(inputs, dtype))["y"])
    if y.shape != theirs.shape:
        return float("inf")
    return float(np.max(np.abs(y - theirs)) / max(1.0, float(np.max(np.abs(theirs)))))


# ----------------------------------------------------------------------------- scores


def score_rows(frame: pd.DataFrame, task: str) -> list[dict]:
    """One seed's metrics rows (:func:`nmrnn.evaluation.evaluate`) as (metric, testset, task,
    value) records: MWG the mean MSE of each interval group (as the claims table takes it),
    multitask the percent correct with both decoders per test set and task, EFT the MSE."""
    out = []
    if task == "mwg":
        for group, rows in frame.groupby("group", sort=False):
            out.append({"metric": f"mse_{group}", "testset": "generated", "task": "",
                        "value": float(rows["mse"].mean(skipna=False))})  # fmt: skip
    elif task in ("multitask", "multitask_transfer"):
        decoders = {"percent_correct_atan2": "percent_correct",
                    "percent_correct_arctan": "percent_correct_arctan"}  # fmt: skip
        for _, row in frame.iterrows():
            for metric, column in decoders.items():
                out.append({"metric": metric, "testset": row["testset"], "task": row["task"],
                            "value": float(row[column])})  # fmt: skip
    elif task == "eft":
        out.append({"metric": "mse", "testset": "generated", "task": "",
                    "value": float(frame["mse"].iloc[0])})  # fmt: skip
    else:
        raise OutsideError(f"outside check: no scores for task {task!r}")
    return out


def reference_values(
    table: pd.DataFrame | None, experiment: str, arch: str, checkpoint: str, record: Mapping
) -> tuple[np.ndarray, str]:
    """This project's per-seed values of one metric (same experiment, arch, checkpoint where the
    table has one; else its only parameters, 'final'), and the checkpoint used."""
    if table is None:
        return np.array([]), ""
    rows = table[(table["experiment"] == experiment) & (table["arch"] == arch)]
    used = "final"
    if "checkpoint" in rows.columns:
        used = checkpoint if (rows["checkpoint"] == checkpoint).any() else "final"
        rows = rows[rows["checkpoint"] == used]
    metric = record["metric"]
    if metric.startswith("mse_"):
        rows = rows[rows["group"] == metric[4:]]
        vals = rows.groupby("seed")["mse"].apply(lambda v: v.mean(skipna=False))
    elif metric.startswith("percent_correct"):
        column = "percent_correct" if metric.endswith("atan2") else "percent_correct_arctan"
        rows = rows[(rows["testset"] == record["testset"]) & (rows["task"] == record["task"])]
        vals = rows.set_index("seed")[column]
    else:
        vals = rows.set_index("seed")["mse"]
    return np.asarray(vals, float), (used if len(vals) else "")


def placement(value: float, seeds: np.ndarray) -> dict:
    """Where ``value`` lands among per-seed values: n, min, median, max, how many seeds are
    below it, and 'inside' / 'below' / 'above' the seed range."""
    seeds = seeds[np.isfinite(seeds)]
    if len(seeds) == 0:
        return {"n": 0, "min": np.nan, "median": np.nan, "max": np.nan, "below": np.nan,
                "place": ""}  # fmt: skip
    lo, hi = float(seeds.min()), float(seeds.max())
    place = "below" if value < lo else "above" if value > hi else "inside"
    return {"n": len(seeds), "min": lo, "median": float(np.median(seeds)), "max": hi,
            "below": int((seeds < value).sum()), "place": place}  # fmt: skip


def _read_metrics(folder: Path | None, experiment_task: str) -> pd.DataFrame | None:
    if folder is None:
        return None
    name = METRICS_FILE["multitask" if experiment_task.startswith("multitask") else experiment_task]
    path = Path(folder) / name
    return pd.read_csv(path) if path.is_file() else None


def placed(
    record: Mapping[str, Any],
    experiment: str,
    arch: str,
    checkpoint: str,
    tables: Mapping[str, pd.DataFrame | None],
) -> dict:
    """The columns that place ``record['value']`` among this project's per-seed values (the
    ``authors_*`` and ``matched_*`` columns of :data:`COLUMNS`)."""
    row: dict[str, Any] = {}
    for name in ("authors", "matched"):
        vals, used = reference_values(tables.get(name), experiment, arch, checkpoint, record)
        for k, v in placement(record["value"], vals).items():
            row[f"{name}_{k}"] = v
        if name == "matched":
            row["matched_checkpoint"] = used
    return row


def refresh_references(
    table: pd.DataFrame,
    config_path: str | Path = "config.yaml",
    overlay: str | Path | None = "profiles/authors/authors.yaml",
    references: Mapping[str, str | Path | None] | None = None,
) -> pd.DataFrame:
    """``table`` (an outside-check table) with its placement columns recomputed from the current
    metrics tables of this project, so that retraining either protocol does not leave them
    describing seeds that are gone. Their code's values are kept as they are: nothing of theirs
    is needed."""
    if references is None:
        references = REFERENCES
    base = cfg.load(config_path, read_yaml(overlay) if overlay else None)
    known = base["experiments"]
    unknown = sorted(set(table["experiment"]) - set(known))
    if unknown:
        raise OutsideError(f"outside table: experiments not in the config: {', '.join(unknown)}")
    tables = {
        task: {k: _read_metrics(Path(v) if v else None, task) for k, v in references.items()}
        for task in {known[e]["task"] for e in table["experiment"]}
    }
    out = table.copy()
    for i, row in table.iterrows():
        record = {k: row[k] for k in ("metric", "testset", "task", "value")}
        task = known[row["experiment"]]["task"]
        update = placed(record, row["experiment"], row["arch"], row["checkpoint"], tables[task])
        for column, value in update.items():
            out.at[i, column] = value
    return out


def outside_table(
    folder: str | Path,
    config_path: str | Path = "config.yaml",
    overlay: str | Path | None = "profiles/authors/authors.yaml",
    references: Mapping[str, str | Path | None] | None = None,
    data_seed: int = 0,
) -> pd.DataFrame:
    """The tidy outside-check table of every run in ``folder`` (see the module docstring).

    ``references``: {"authors": folder, "matched": folder} of this project's metrics tables
    (default ``figures/authors/metrics`` and ``figures/metrics``); a missing one leaves its
    columns empty. Raises OutsideError naming a run whose forward pass differs from theirs."""
    from nmrnn import experiments as ex
    from nmrnn.evaluation import evaluate
    from nmrnn.tasks import get_task

    if references is None:
        references = REFERENCES
    base = cfg.load(config_path, read_yaml(overlay) if overlay else None)
    runs = run_folders(folder)
    records, refused = [], []
    for run in runs:
        manifest = {**read_manifest(run), "run": run.name}
        initial = _npz(run / "initial_state.npz")
        inputs = _npy(run / "check_inputs.npy")
        loaded = {}
        for ck in manifest["checkpoints"]:
            variables = to_variables(manifest, _npz(run / ck / "params.npz"), initial)
            parsed = ex.parse(experiments_for(base, manifest, variables), manifest["experiment"])
            model = parsed.arch(manifest["arch"]).model
            theirs = _npy(run / ck / "check_outputs.npy")
            rows = manifest.get("readout_rows")
            if rows is not None:
                theirs = theirs[..., list(rows)]
            diff = forward_difference(model, variables, inputs, theirs)
            tolerance = TOLERANCE_FLOAT64 if theirs.dtype == np.float64 else TOLERANCE
            if not diff <= tolerance:
                refused.append(f"{run.name}/{ck} ({diff:.2g} > {tolerance:g})")
            loaded[ck] = (variables, parsed, diff)
        if refused:
            continue
        experiment, arch = manifest["experiment"], manifest["arch"]
        task = base["experiments"][experiment]["task"]
        settings = base["experiments"][experiment]
        data = ex.make_task_data(ex.data_spec(experiment, settings), data_seed)
        ref_set = base.get("reference_testset") if task.startswith("multitask") else None
        if ref_set:  # a relative folder is relative to the config file, as in the pipeline
            ref_set = str(Path(config_path).resolve().parent / ref_set)
            if get_task(task).reference_set(settings, ref_set) is None:
                ref_set = None
        tables = {k: _read_metrics(Path(v) if v else None, task) for k, v in references.items()}
        for ck, (variables, parsed, diff) in loaded.items():
            frame = evaluate(parsed, arch, data_seed, variables, data, ref_set)
            for rec in score_rows(frame, task):
                row = {
                    "claim": str(manifest["claim"]),
                    "code": "authors",
                    "experiment": experiment,
                    "arch": arch,
                    "key": manifest["key"],
                    "checkpoint": ck,
                    **rec,
                }
                row.update(placed(rec, experiment, arch, ck, tables))
                row["forward_max_diff"] = diff
                row["wall_time_s"] = manifest.get("wall_time_s")
                row["authors_commit"] = manifest["authors_commit"]
                row["changes"] = "+".join(manifest["changes"])
                records.append(row)
    if refused:
        raise OutsideError(
            f"outside check: forward pass differs from the authors' outputs by more than the "
            f"tolerance (relative) for {', '.join(refused)}; refused"
        )
    return pd.DataFrame.from_records(records, columns=list(COLUMNS))


# ----------------------------------------------------------------------------- the docs table

DOCS_START = "<!-- outside-table:start (written by python -m nmrnn.outside --docs) -->"
DOCS_END = "<!-- outside-table:end -->"


def _g(value: Any) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "" if not np.isfinite(value) else f"{value:.4g}"


def _spread(row: Mapping[str, Any], name: str) -> str:
    n = row[f"{name}_n"]
    if not n or not np.isfinite(float(n)) or int(n) == 0:
        return "–"
    return (
        f"{_g(row[f'{name}_min'])} / {_g(row[f'{name}_median'])} / {_g(row[f'{name}_max'])} "
        f"(n = {int(n)}): {row[f'{name}_place']}, {int(row[f'{name}_below'])} below"
    )


def markdown_table(table: pd.DataFrame) -> str:
    """The per-key results of ``figures/outside.csv`` as the Markdown table of docs/outside.md:
    their code's value beside this project's per-seed min / median / max (authors protocol and
    matched), and where it lands."""
    lines = [
        "| claim | experiment / arch | key | checkpoint | metric | test set, task | their code "
        "| `authors` protocol seeds: min / median / max, place | matched seeds (checkpoint) "
        "| wall time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, row in table.iterrows():
        where = ", ".join(str(v) for v in (row["testset"], row["task"]) if isinstance(v, str) and v)
        matched = _spread(row, "matched")
        if matched != "–":
            matched += f" ({row['matched_checkpoint']})"
        lines.append(
            f"| {row['claim']} | {row['experiment']} / {row['arch']} | {row['key']} "
            f"| {row['checkpoint']} | {row['metric']} | {where} | {_g(row['value'])} "
            f"| {_spread(row, 'authors')} | {matched} | {_g(row['wall_time_s'])} |"
        )
    return "\n".join(lines)


def docs_block(text: str, path: str | Path = "docs") -> str:
    """The generated table between the markers of a docs page (OutsideError naming the page
    when a marker is missing)."""
    if DOCS_START not in text or DOCS_END not in text:
        raise OutsideError(f"{path}: no outside-table markers ({DOCS_START} ... {DOCS_END})")
    return text.split(DOCS_START, 1)[1].split(DOCS_END, 1)[0].strip("\n")


def update_docs(path: str | Path, table: pd.DataFrame) -> None:
    """Rewrite the table between the markers of ``path`` from ``table``."""
    path = Path(path)
    text = path.read_text()
    docs_block(text, path)
    head, rest = text.split(DOCS_START, 1)
    tail = rest.split(DOCS_END, 1)[1]
    path.write_text(f"{head}{DOCS_START}\n{markdown_table(table)}\n{DOCS_END}{tail}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nmrnn.outside",
        description="Score the authors' own trained networks with this project's evaluation.",
    )
    parser.add_argument(
        "folder", nargs="?", help="folder of exported runs (see the module docstring)"
    )
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="instead of scoring a folder, recompute where the values of --out land among this "
        "project's per-seed values (after retraining either protocol)",
    )
    parser.add_argument("--out", default="figures/outside.csv")
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--overlay", default="profiles/authors/authors.yaml")
    parser.add_argument(
        "--docs", help="also rewrite the results table of this page (e.g. docs/outside.md)"
    )
    args = parser.parse_args(argv)
    if args.refresh == (args.folder is not None):
        parser.error("give either a folder of exported runs or --refresh")
    try:
        if args.docs:  # before any work: a page that cannot take the table stops nothing half-done
            if not Path(args.docs).is_file():
                raise OutsideError(f"{args.docs}: no such page for --docs")
            docs_block(Path(args.docs).read_text(), args.docs)
        if args.refresh:
            if not Path(args.out).is_file():
                raise OutsideError(f"{args.out}: no such file to refresh")
            table = refresh_references(pd.read_csv(args.out), args.config, args.overlay)
        else:
            table = outside_table(args.folder, args.config, args.overlay)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from nmrnn.io import write_csv

    write_csv(args.out, table, index=False)
    done = "refreshed" if args.refresh else "wrote"
    print(f"{done} {args.out}: {len(table)} rows from {table['key'].nunique()} keys")
    if args.docs:
        update_docs(args.docs, pd.read_csv(args.out))
        print(f"rewrote the table of {args.docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

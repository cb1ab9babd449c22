"""The work behind each pipeline step, as plain functions of file paths.

The Snakemake scripts in ``workflow/scripts`` are a few lines that call these inside
:func:`nmrnn.runtime.log_to`; nothing here knows about Snakemake, so each step can also be run
(and tested) from Python. JAX is imported lazily so that the light steps (export, collection)
start fast.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nmrnn.invocations import read as read_invocations
from nmrnn.invocations import run_timing
from nmrnn.io import (
    check_identity,
    environment_info,
    json_text,
    load_task_data,
    load_tree,
    read_csv_checked,
    read_npz_meta,
    regenerate_command,
    save_tree,
    training_time,
    unreadable,
    write_csv,
    write_json,
    write_text,
)
from nmrnn.runtime import limit_cpu_threads, tune_cpu_codegen, use_compilation_cache


def train_block(
    experiments: Mapping[str, Any],
    experiment: str,
    arch: str,
    seeds: Sequence[int],
    data_files: Sequence[str],
    pretrained_files: Sequence[str],
    output: str,
    checkpoint: str,
    chunk_size: int = 1000,
    reset_optimizer_every: int | None = None,
    compilation_cache: str | None = None,
    threads: int | None = None,
    log=print,
) -> None:
    """Train the seeds of one block and write their stacked variables, losses and metadata.

    ``threads``: the CPU cores this job may use; XLA's CPU backend keeps to that many threads."""
    limit_cpu_threads(threads)
    tune_cpu_codegen()
    import jax

    use_compilation_cache(compilation_cache)
    from nmrnn import experiments as ex

    experiments = json.loads(json.dumps(experiments))  # plain, mutable copy
    if reset_optimizer_every:
        experiments[experiment].setdefault("optimizer", {})["reset_every"] = reset_optimizer_every
    exp = ex.parse(experiments, experiment)
    spec = exp.arch(arch)
    if pretrained_files and exp.source is None:
        raise ValueError(f"{experiment} starts from no pretrained experiment: no files to give")
    data = [load_task_data(f) for f in data_files]
    pretrained = [load_tree(f) for f in pretrained_files] or None
    for f, variables in zip(pretrained_files, pretrained or [], strict=True):
        problem = ex.check_variables(exp.source, arch, variables)
        if problem:
            raise unreadable(f, f"holds {problem} (trained under other settings)")
    log(
        f"training {experiment}/{arch} seeds {list(seeds)} on {jax.devices()[0].platform}: "
        f"{dict(spec.settings)}, {spec.n_parameters} parameters, "
        f"{spec.n_trainable_last_stage} trainable in the last stage"
    )
    _, result = ex.train_seeds(
        exp,
        arch,
        seeds,
        data=data,
        pretrained=pretrained,
        checkpoint=checkpoint,
        chunk_size=chunk_size,
        log=log,
    )
    meta = {
        "experiment": experiment,
        "arch": arch,
        "seeds": list(seeds),
        "model": dict(spec.settings),
        "n_parameters": spec.n_parameters,
        "n_trainable_last_stage": spec.n_trainable_last_stage,
        "experiment_settings": exp.plain_settings(),
        "wall_s": result.wall_s,
        "train_s_all_attempts": result.total_s,
        "compile_s": result.compile_s,
        "resumed_from_step": result.resumed_from,
        "seeds_in_job": len(seeds),
        "run": result.fingerprint,
        **environment_info(),
    }
    block = {
        "variables": result.variables,
        "losses": result.losses,
        "seeds": np.asarray(seeds),
        "meta": np.asarray(json_text(meta)),
    }
    if result.best_variables is not None:
        block.update(
            selected_params=result.best_variables["params"],
            selected_step=result.best_step,
            validation_losses=result.validation_losses,
        )
        chosen = dict(zip(seeds, result.best_step.tolist(), strict=True))
        log(f"selected parameters (steps trained) per seed: {chosen}")
    save_tree(output, block)
    # The final checkpoint stays: if Snakemake reruns this job (it deletes the block first, e.g.
    # after a task-data file was regenerated with the same content), the same run and code
    # return the result from it without training again.
    if result.resumed_from == result.losses.shape[1]:
        log(f"restored from the finished checkpoint {checkpoint} (no training needed)")
    else:
        log(f"done in {result.wall_s:.1f} s ({result.compile_s:.1f} s compiling)")


def export_seed(block_file: str, seed: int, params_out: str, meta_out: str, losses_out: str):
    """Write one seed's variables (.npz), metadata (.json) and loss curve (.csv) from a block.

    With checkpoint selection, the variables file also holds the selected parameters as the
    collection ``selected_params`` (read by :func:`nmrnn.tasks.common.selected_variables`), the
    metadata their ``selected_step``, and the curve a ``validation_loss`` column (empty where
    not computed). Every output is written atomically; a block whose losses do not hold the
    steps of its stages (from its metadata) is refused, naming it."""
    block = load_tree(block_file)
    missing = [k for k in ("seeds", "meta", "variables", "losses") if k not in block]
    if missing:
        raise unreadable(block_file, f"not a training block (no {', '.join(missing)})")
    seeds = [int(s) for s in np.atleast_1d(block["seeds"])]
    if seed not in seeds:
        raise ValueError(f"seed {seed} is not in training block {block_file} (seeds {seeds})")
    i = seeds.index(seed)
    variables = {
        col: {name: np.asarray(a)[i] for name, a in leaves.items()}
        for col, leaves in block["variables"].items()
    }
    try:
        meta = json.loads(str(block["meta"]))
    except ValueError as error:
        raise unreadable(block_file, f"its metadata is not JSON ({error})") from error
    meta["seed"] = seed
    # Whose files these are: checked against the paths they are written to (a block copied from
    # another experiment or architecture is refused here) and, by every reader, against theirs.
    identity = {"experiment": meta.get("experiment"), "arch": meta.get("arch"), "seed": seed}
    for out in (params_out, meta_out, losses_out):
        check_identity(out, identity, regenerate_command(block_file))
    identity["run"] = meta.get("run") or "unrecorded"
    meta["run"] = identity["run"]
    validation = None
    if "selected_params" in block:
        variables["selected_params"] = {
            name: np.asarray(a)[i] for name, a in block["selected_params"].items()
        }
        meta["selected_step"] = int(np.asarray(block["selected_step"])[i])
        validation = np.asarray(block["validation_losses"])[i]
    losses = np.asarray(block["losses"])
    expected = _trained_steps(meta, block_file)
    if losses.ndim != 2 or losses.shape != (len(seeds), expected):
        raise unreadable(
            block_file,
            f"losses of shape {losses.shape} but {len(seeds)} seeds x {expected} steps (the "
            f"stages of {meta.get('experiment')}/{meta.get('arch')} in its metadata)",
        )
    losses = losses[i]
    if validation is not None and validation.shape != losses.shape:
        raise ValueError(
            f"{block_file}: {validation.size} validation entries for {losses.size} steps"
        )
    lines = ["experiment,arch,seed,step,loss" + ("" if validation is None else ",validation_loss")]
    who = f"{identity['experiment']},{identity['arch']},{seed}"
    for step, value in enumerate(losses):
        line = f"{who},{step},{value:.7g}"
        if validation is not None:  # empty where no validation loss was computed
            checked = validation[step]
            line += f",{checked:.7g}" if np.isfinite(checked) else ","
        lines.append(line)
    save_tree(params_out, variables, identity)
    write_json(meta_out, meta)
    write_text(losses_out, "\n".join(lines) + "\n")


def run_steps(settings: Mapping[str, Any], arch: str) -> int:
    """The steps one architecture of an experiment trains: the sum of its stages' steps (after
    step scaling, as in :func:`nmrnn.config.scaled_experiments`)."""
    return sum(int(stage["steps"]) for stage in settings["archs"][arch]["stages"])


def trained_steps(experiments: Mapping[str, Any], runs: Sequence[Sequence[Any]]) -> list[int]:
    """:func:`run_steps` of each (experiment, arch, ...) run: the steps each ``losses.csv`` of a
    curves table holds (the ``steps`` of :func:`curves_table`)."""
    return [run_steps(experiments[run[0]], run[1]) for run in runs]


def metrics_expectations(
    experiments: Mapping[str, Any], paths: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """What each per-seed ``<results>/<experiment>/<arch>/seed<s>/metrics.csv`` in ``paths`` must
    hold (:func:`nmrnn.evaluation.expected_table`), by path: the ``expected`` of
    :func:`collect_tables`."""
    from nmrnn.evaluation import expected_table
    from nmrnn.experiments import parse

    expected, parsed = {}, {}
    for path in paths:
        experiment, arch = Path(path).parts[-4:-2]
        expected[str(path)] = expected_table(parse(experiments, experiment, parsed), arch)
    return expected


def _trained_steps(meta: Mapping[str, Any], block_file: str) -> int:
    """The steps a training block's run trains, from its metadata."""
    try:
        return run_steps(meta["experiment_settings"], meta["arch"])
    except (KeyError, TypeError, ValueError) as error:
        raise unreadable(block_file, f"metadata without the stages' steps ({error!r})") from error


def evaluate_seed(
    experiments: Mapping[str, Any],
    experiment: str,
    arch: str,
    seed: int,
    params_file: str,
    data_file: str,
    output: str,
    reference_testset: str | None = None,
    compilation_cache: str | None = None,
    threads: int | None = None,
) -> None:
    """Score one trained seed on its experiment's test set(s); write tidy rows as CSV.
    ``threads``: as for :func:`train_block`."""
    limit_cpu_threads(threads)
    tune_cpu_codegen()
    use_compilation_cache(compilation_cache)
    from nmrnn.evaluation import evaluate
    from nmrnn.experiments import check_variables, parse

    exp = parse(experiments, experiment)
    variables = load_tree(params_file)
    problem = check_variables(exp, arch, variables)
    if problem:
        raise unreadable(params_file, f"holds {problem} (trained under other settings)")
    data = load_task_data(data_file, splits=("test",))
    frame = evaluate(exp, arch, seed, variables, data, reference_testset)
    write_csv(output, frame, index=False)


def collect_tables(
    inputs: Sequence[str], output: str, expected: Mapping[str, Mapping[str, Any]] | None = None
) -> None:
    """Concatenate per-seed metric tables into one tidy CSV.

    Each input must be whole: ending with a newline and parsing as CSV; with ``expected`` (per
    input path, from :func:`nmrnn.evaluation.expected_table`: its ``columns``, the ``required``
    ones that may not be empty and the allowed ``rows`` counts) it must also match that. A file
    that does not raises :class:`nmrnn.io.UnreadableFile` naming it."""
    import pandas as pd

    frames = []
    for path in inputs:
        spec = None if expected is None else expected.get(str(path))
        if expected is not None and spec is None:
            raise ValueError(f"no expected rows and columns given for {path}")
        if spec is None:
            frames.append(read_csv_checked(path))
            continue
        frame = read_csv_checked(path, [spec["columns"]], spec["required"])
        if len(frame) not in spec["rows"]:
            counts = " or ".join(str(n) for n in spec["rows"])
            raise unreadable(
                path, f"{len(frame)} rows where the config gives {counts} (cut short?)"
            )
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    write_csv(output, table, index=False)


def step_bins(n_steps: int, bins: int) -> list[np.ndarray]:
    """The steps 0..n_steps-1 split into min(bins, n_steps) contiguous bins of near-equal size
    (the bins of the curves tables and of the figures' loss curves)."""
    return np.array_split(np.arange(n_steps), min(bins, n_steps))


def bin_losses(losses: Sequence[float], validation: Sequence[float] | None, bins: int):
    """Rows (step_start, step_end, train_loss, validation_loss) of a loss curve in ``bins``
    contiguous bins of steps: the mean training loss of the bin and the last validation loss
    computed in it (NaN if none). ``step_end`` counts the steps trained at the bin's end."""
    losses = np.asarray(losses, float)
    rows = []
    for chunk in step_bins(losses.size, bins):
        checked = np.nan
        if validation is not None:
            values = np.asarray(validation, float)[chunk]
            finite = values[np.isfinite(values)]
            checked = float(finite[-1]) if finite.size else np.nan
        rows.append((int(chunk[0]), int(chunk[-1]) + 1, float(losses[chunk].mean()), checked))
    return rows


def curves_table(
    inputs: Sequence[str],
    runs: Sequence[tuple[str, str, int]],
    output: str,
    bins: int = 100,
    steps: Sequence[int] | None = None,
) -> None:
    """One tidy CSV of binned loss curves: a row per (experiment, arch, seed, bin) with the mean
    training loss and the last validation loss of the bin (empty without checkpoint selection).
    ``runs`` names the (experiment, arch, seed) of each ``losses.csv`` in ``inputs``; ``steps``,
    the steps each run trains (the sum of its stages' steps in the config). A loss file that is
    cut short or holds other steps than 0, 1, ..., steps - 1 raises
    :class:`nmrnn.io.UnreadableFile` naming it."""
    import pandas as pd

    if len(inputs) != len(runs):
        raise ValueError(f"{len(inputs)} loss files but {len(runs)} runs named")
    if steps is not None and len(steps) != len(runs):
        raise ValueError(f"{len(steps)} step counts for {len(runs)} runs")
    rows = []
    for i, (path, (experiment, arch, seed)) in enumerate(zip(inputs, runs, strict=True)):
        curve = read_csv_checked(path, LOSS_COLUMNS, ("step", "loss"))
        expected = None if steps is None else int(steps[i])
        _check_steps(path, curve["step"], expected, experiment, arch)
        validation = curve["validation_loss"] if "validation_loss" in curve else None
        for start, end, loss, checked in bin_losses(curve["loss"], validation, bins):
            rows.append((experiment, arch, int(seed), start, end, loss, checked))
    columns = ["experiment", "arch", "seed", "step_start", "step_end", "train_loss",
               "validation_loss"]  # fmt: skip
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    write_csv(output, pd.DataFrame(rows, columns=columns), index=False, float_format="%.6g")


# As export_seed writes them (whose curve first); a curve outside the results layout may lack
# those columns (a file in the layout may not: nmrnn.io.check_identity).
LOSS_COLUMNS = (
    ("experiment", "arch", "seed", "step", "loss"),
    ("experiment", "arch", "seed", "step", "loss", "validation_loss"),
    ("step", "loss"),
    ("step", "loss", "validation_loss"),
)


def _check_steps(path: str, found, expected: int | None, experiment: str, arch: str) -> None:
    """A loss file holds the steps 0, 1, ..., expected - 1, in order."""
    found = np.asarray(found)
    n = found.size
    span = f"steps {found[0]}..{found[-1]}" if n else "no steps"
    if expected is not None and n != expected:
        raise unreadable(
            path,
            f"{n} steps ({span}) where {experiment}/{arch} trains {expected} "
            f"(steps 0..{expected - 1}); cut short or from another config",
        )
    consecutive = np.arange(n)
    if not np.array_equal(found, consecutive):
        first = int(np.argmax(found != consecutive))
        raise unreadable(path, f"steps are not 0, 1, 2, ... ({span}; line {first + 2} is off)")


def write_provenance(
    config: Mapping[str, Any],
    block_files: Sequence[str],
    output: str,
    invocations: str | Path | None = None,
):
    """Config, commit, machine, the summed training time of the run's training jobs and the
    commits they ran at; with ``invocations`` (the run's ``invocations.jsonl``) also the run's
    own wall time and idle core time (:func:`nmrnn.invocations.run_timing`).

    A job's time counts every attempt (the time before a kill, from its checkpoint, plus the
    resumed run); a block trained before that was recorded counts its last attempt only, and
    ``training_blocks_last_attempt_only`` says how many did."""
    total, last_only, commits = 0.0, 0, set()
    for f in block_files:
        meta = read_npz_meta(f)
        spent, only_last = training_time(meta)
        total += spent
        last_only += only_last
        commits.add(str(meta.get("git_commit", "unknown")))
    record = {
        "config": dict(config),
        "training_jobs": len(block_files),
        "training_wall_s_sum": round(total, 1),
        "training_blocks_last_attempt_only": last_only,
        "training_commits": sorted(commits),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **environment_info(),
    }
    if invocations is not None:
        figures = config.get("figures_dir")
        record["run"] = run_timing(read_invocations(invocations, figures), total)
    write_json(output, record)

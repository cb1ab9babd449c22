"""What training costs: ms per training iteration per seed for every experiment × architecture
of ``config.yaml``, and the projected compute of the full paper run.

    python -m nmrnn.bench                      # every row, S = 1 and S = 5 seeds per program
    python -m nmrnn.bench --only mwg:nmrnn --seeds 1,5 --steps 100 --json
    python -m nmrnn.bench --compare            # autodiff vs custom-VJP (hand-written) gradients
    python -m nmrnn.bench --seeds 1 --jobs 2   # two programs side by side, as --cores 2 runs them

Each row runs the real engine (:func:`nmrnn.training.train`, the experiment's own model, batch
function and optimizer, at the paper's sizes, batch and trial length) for one warm-up chunk and
``--chunks`` timed chunks of ``--steps`` steps, and reports the fastest timed chunk per step and
per seed (wall clock; CPU time of this process alongside), with compilation timed separately.
Every ratio is measured within one run: on a shared machine compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue as queue_module
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nmrnn import config as config_io
from nmrnn import experiments as ex
from nmrnn import training
from nmrnn.architectures import count_parameters
from nmrnn.runtime import limit_cpu_threads, tune_cpu_codegen

# ----------------------------------------------------------------------------- what to run


def paper_rows(experiments: dict) -> list[tuple[str, str]]:
    """Every (experiment, architecture) of the config, in config order."""
    return [(name, arch) for name, exp in experiments.items() for arch in exp["archs"]]


def parsed_rows(experiments: dict, rows) -> list[tuple[ex.Experiment, str]]:
    """The (experiment, architecture) rows with each experiment read once
    (:func:`nmrnn.experiments.parse`)."""
    parsed: dict[str, ex.Experiment] = {}
    return [(ex.parse(experiments, e, parsed), a) for e, a in rows]


def _select(rows, only: Sequence[str]) -> list[tuple[str, str]]:
    if not only:
        return rows
    wanted = []
    for item in only:
        experiment, _, arch = item.partition(":")
        hits = [r for r in rows if r[0] == experiment and arch in ("", "*", r[1])]
        if not hits:
            known = ", ".join(f"{e}:{a}" for e, a in rows)
            raise SystemExit(f"--only {item}: no such experiment:arch (known: {known})")
        wanted += [h for h in hits if h not in wanted]
    return wanted


# ----------------------------------------------------------------------------- set-up


def _setup(exp: ex.Experiment, arch: str, n_seeds: int, gradient: str = "custom"):
    """Model, stacked variables, stacked data, data keys for ``n_seeds`` seeds. Timing does not
    depend on the values, so every seed gets seed 0's data (and, for a transfer experiment, a
    freshly initialised source model stands in for the pretrained one). ``gradient``: how the
    model's time loop is differentiated (``"custom"`` or ``"autodiff"``, see
    :mod:`nmrnn.models`)."""
    seeds = list(range(n_seeds))
    pretrained = None
    if exp.source is not None:
        source = ex.initial_variables(exp.source, arch, seeds)
        pretrained = [training.unstack(source, i) for i in seeds]
    variables = ex.initial_variables(exp, arch, seeds, pretrained)
    model = exp.arch(arch).model.clone(gradient=gradient)
    data0 = {k: v for k, v in ex.make_task_data(exp.data, 0).items() if k == "train"}
    data = ex.stack([data0] * n_seeds)
    keys = jnp.stack([jax.random.fold_in(ex.data_key(exp.name, s), 1) for s in seeds])
    example = ex.batch_function(exp)(data0, keys[0])
    return model, variables, data, keys, example


def measure_training(
    exp: ex.Experiment,
    arch: str,
    n_seeds: int,
    steps: int = 50,
    chunks: int = 3,
    gradient: str = "custom",
    after_warmup: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Time the engine on one architecture of an experiment (:func:`nmrnn.experiments.parse`)
    with ``n_seeds`` seeds in one program.

    Runs the architecture's last protocol stage for 1 + ``chunks`` chunks of ``steps`` steps and
    returns a row: ms per step per seed of the fastest timed chunk (wall and process CPU), the
    median, and the compile time. ``gradient``: ``"custom"`` (the hand-written reverse pass) or
    ``"autodiff"`` (JAX's autodiff of a plain ``lax.scan``, the baseline).
    ``after_warmup`` is called once the warm-up chunk (and compilation) is done.
    """
    model, variables, data, keys, example = _setup(exp, arch, n_seeds, gradient)
    last = exp.arch(arch).stages[-1]
    stage = training.Stage(last.name, last.trainable, steps * (chunks + 1), last.learning_rate)
    stamps: list[tuple[float, float]] = []

    def log(_line: str) -> None:  # called once after every chunk
        if not stamps and after_warmup is not None:
            after_warmup()
        stamps.append((time.perf_counter(), time.process_time()))

    result = training.train(
        model,
        variables,
        [stage],
        exp.optimizer,
        ex.batch_function(exp),
        data,
        keys,
        chunk_size=steps,
        log=log,
    )
    wall = np.diff([s[0] for s in stamps]) / (steps * n_seeds) * 1e3
    cpu = np.diff([s[1] for s in stamps]) / (steps * n_seeds) * 1e3
    B, T, U = example.inputs.shape
    return {
        "experiment": exp.name,
        "arch": arch,
        "model": type(model).__name__,
        "gradient": gradient,
        "seeds": n_seeds,
        "batch": int(B),
        "T": int(T),
        "U": int(U),
        "n_params": count_parameters(training.unstack(variables, 0)),
        "steps_timed": steps * chunks,
        "ms_per_seed_iter": float(wall.min()),
        "ms_per_seed_iter_median": float(np.median(wall)),
        "cpu_ms_per_seed_iter": float(cpu.min()),
        "compile_s": float(result.compile_s),
        "paper_steps": int(sum(s.steps for s in exp.arch(arch).stages)),
        "paper_seeds": int(exp.settings["seeds"]),
        "load_avg_1min": os.getloadavg()[0],
    }


# ----------------------------------------------------------------------------- gradient only


def _batch_loss(model, variables, batch):
    from nmrnn.tasks.common import masked_mse

    constants = variables["constants"]

    def loss(params):
        y = model.apply({"params": params, "constants": constants}, batch.inputs)["y"]
        return masked_mse(y, batch.targets, batch.mask)

    return loss


def compare_gradients(
    exp: ex.Experiment, arch: str, n_seeds: int, steps: int = 20, reps: int = 5
) -> list[dict[str, Any]]:
    """Forward pass, autodiff gradient and custom-VJP gradient of one architecture's loss on one
    batch, ``n_seeds`` seeds vmapped, timed interleaved (A, B, C, A, B, C, ...) in one process.
    Each call runs ``steps`` evaluations in one jitted loop whose parameters change every step
    (so nothing is hoisted). Returns one row per variant."""
    model, variables, _, _, batch = _setup(exp, arch, n_seeds)
    params = variables["params"]

    def program(kind: str):
        variant = model.clone(gradient="autodiff" if kind == "autodiff" else "custom")

        def one_seed(p, v):
            loss = _batch_loss(variant, v, batch)
            if kind == "forward":
                value = loss(p)
                return value, jax.tree.map(lambda a: jnp.zeros_like(a) + value, p)
            return jax.value_and_grad(loss)(p)

        def run(p):
            def body(p, _):
                value, grads = jax.vmap(one_seed)(p, variables)
                return jax.tree.map(lambda a, g: a - 1e-9 * g, p, grads), value

            return jax.lax.scan(body, p, None, length=steps)[1]

        t0 = time.perf_counter()
        compiled = jax.jit(run).lower(params).compile()
        return compiled, time.perf_counter() - t0

    kinds = ("forward", "autodiff", "custom_vjp")
    compiled = {k: program(k) for k in kinds}
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
    for k in kinds:
        jax.block_until_ready(compiled[k][0](params))
    for _ in range(reps):
        for k in kinds:
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(compiled[k][0](params))
            scale = 1e3 / (steps * n_seeds)
            times[k].append(
                ((time.perf_counter() - t0) * scale, (time.process_time() - c0) * scale)
            )
    return [
        {
            "experiment": exp.name,
            "arch": arch,
            "what": k,
            "seeds": n_seeds,
            "ms_per_seed": min(t[0] for t in times[k]),
            "cpu_ms_per_seed": min(t[1] for t in times[k]),
            "compile_s": compiled[k][1],
            "load_avg_1min": os.getloadavg()[0],
        }
        for k in kinds
    ]


# ----------------------------------------------------------------------------- reports


def projected_hours(rows: list[dict]) -> dict[tuple[str, str], dict[str, float]]:
    """Per (experiment, arch): the paper's steps and seeds run in programs of S seeds (the S
    measured whose cost is lowest; a program of S costs S × the per-seed time even when fewer
    seeds are left), in hours of this machine (wall and CPU). Programs run one after another,
    or ``jobs`` at a time when the rows were timed that many side by side (``--jobs``)."""

    def cost(row: dict, field: str) -> float:
        programs = -(-row["paper_seeds"] // row["seeds"])
        hours = row["paper_steps"] * programs * row["seeds"] * row[field] / 3.6e6
        return hours / row.get("jobs", 1) if field == "ms_per_seed_iter" else hours

    best: dict[tuple[str, str], dict] = {}
    for row in rows:
        key = (row["experiment"], row["arch"])
        if key not in best or cost(row, "ms_per_seed_iter") < cost(best[key], "ms_per_seed_iter"):
            best[key] = row
    return {
        key: {
            "seeds_per_program": row["seeds"],
            "hours": cost(row, "ms_per_seed_iter"),
            "cpu_hours": cost(row, "cpu_ms_per_seed_iter"),
        }
        for key, row in best.items()
    }


def format_table(rows: list[dict], seed_counts: Sequence[int]) -> str:
    base_s = seed_counts[0]
    hours = projected_hours(rows)
    by_key: dict[tuple[str, str], dict[int, dict]] = {}
    for row in rows:
        by_key.setdefault((row["experiment"], row["arch"]), {})[row["seeds"]] = row
    head = f"{'experiment:arch':<34}{'B×T':>9}"
    for s in seed_counts:
        head += f"{f'S={s} ms':>10}{'cpu':>7}"
    for s in seed_counts[1:]:
        head += f"{f'S{s}/S{base_s}':>8}"
    head += f"{'compile s':>11}{'steps×seeds':>13}{'hours':>8}"
    lines = [head, "-" * len(head)]
    total = total_cpu = 0.0
    for key, per in by_key.items():
        any_row = next(iter(per.values()))
        shape = f"{any_row['batch']}×{any_row['T']}"
        line = f"{key[0] + ':' + key[1]:<34}{shape:>9}"
        for s in seed_counts:
            r = per.get(s)
            line += (
                f"{r['ms_per_seed_iter']:>10.2f}{r['cpu_ms_per_seed_iter']:>7.2f}"
                if r
                else " " * 17
            )
        for s in seed_counts[1:]:
            if s in per and base_s in per:
                ratio = per[s]["ms_per_seed_iter"] / per[base_s]["ms_per_seed_iter"]
                line += f"{ratio:>8.2f}"
            else:
                line += " " * 8
        compile_s = "/".join(f"{per[s]['compile_s']:.1f}" for s in seed_counts if s in per)
        h = hours[key]
        total += h["hours"]
        total_cpu += h["cpu_hours"]
        budget = f"{any_row['paper_steps']}×{any_row['paper_seeds']}"
        line += f"{compile_s:>11}{budget:>13}"
        line += f"{h['hours']:>8.2f}"
        lines.append(line)
    lines.append("-" * len(head))
    ratio = (
        f" S{seed_counts[-1]}/S{base_s}: per-seed cost ratio (< 1: seeds together are cheaper)."
        if len(seed_counts) > 1
        else ""
    )
    jobs = max(r.get("jobs", 1) for r in rows)
    side_by_side = f" of each of {jobs} programs timed side by side (mean)" if jobs > 1 else ""
    lines.append(
        f"ms: wall ms per training iteration per seed (fastest timed chunk){side_by_side}; "
        "cpu: process CPU ms." + ratio
    )
    how = "one after another" if jobs == 1 else f"{jobs} at a time, as `snakemake --cores {jobs}`"
    lines.append(
        f"Projected full paper config (each row's seeds in programs of the cheapest S, run "
        f"{how}): {total:.1f} h wall on this machine, {total_cpu:.1f} CPU-hours; load average "
        f"{np.mean([r['load_avg_1min'] for r in rows]):.1f} on {os.cpu_count()} CPUs while timing; "
        f"device {jax.devices()[0].platform}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
        f"PJRT_NPROC={os.environ.get('PJRT_NPROC', '')!r}."
    )
    return "\n".join(lines)


def format_compare(rows: list[dict]) -> str:
    lines = [
        f"{'experiment:arch':<28}{'S':>3}{'forward':>10}{'autodiff':>10}{'custom':>10}"
        f"{'custom/autodiff':>17}{'(cpu)':>7}"
    ]
    groups: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        groups.setdefault((r["experiment"], r["arch"], r["seeds"]), {})[r["what"]] = r
    for (e, a, s), g in groups.items():
        f, ad, cv = g["forward"], g["autodiff"], g["custom_vjp"]
        lines.append(
            f"{e + ':' + a:<28}{s:>3}{f['ms_per_seed']:>10.2f}{ad['ms_per_seed']:>10.2f}"
            f"{cv['ms_per_seed']:>10.2f}{cv['ms_per_seed'] / ad['ms_per_seed']:>17.2f}"
            f"{cv['cpu_ms_per_seed'] / ad['cpu_ms_per_seed']:>7.2f}"
        )
    lines.append("ms per seed per loss evaluation (forward) or value-and-gradient, one batch.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- jobs side by side


def _timing_job(config, rows, seed_counts, steps, chunks, threads, barrier, queue) -> None:
    """One of several programs timed side by side: every row starts, and its timed chunks
    start, when every job is ready (``barrier``), so the timings overlap."""
    limit_cpu_threads(threads)
    tune_cpu_codegen()
    experiments = config_io.load(config)["experiments"]
    for exp, a in parsed_rows(experiments, rows):
        for s in seed_counts:
            barrier.wait()
            queue.put(measure_training(exp, a, s, steps, chunks, after_warmup=barrier.wait))


def side_by_side(
    config: str,
    rows: Sequence[tuple[str, str]],
    seed_counts: Sequence[int],
    steps: int,
    chunks: int,
    threads: int,
    jobs: int,
) -> list[dict[str, Any]]:
    """Time ``rows`` in ``jobs`` processes at once; one row per (experiment, arch, S) with the
    jobs' mean time per step (each job's fastest chunk) and ``jobs`` set, which the projection
    reads as that many programs at a time."""
    context = multiprocessing.get_context("spawn")  # a fresh JAX backend in each job
    barrier, queue = context.Barrier(jobs, timeout=3600), context.Queue()
    workers = [
        context.Process(
            target=_timing_job,
            args=(config, rows, seed_counts, steps, chunks, threads, barrier, queue),
        )
        for _ in range(jobs)
    ]
    for w in workers:
        w.start()
    n_rows = len(rows) * len(seed_counts)
    timed: dict[tuple, list[dict]] = {}
    try:
        for _ in range(n_rows * jobs):
            while True:
                try:
                    row = queue.get(timeout=10)
                    break
                except queue_module.Empty:  # still timing, unless a job died
                    if any(w.exitcode not in (None, 0) for w in workers):
                        raise SystemExit("bench: a timing job failed (error above)") from None
            key = (row["experiment"], row["arch"], row["seeds"])
            timed.setdefault(key, []).append(row)
            if len(timed[key]) == jobs:
                ms = [r["ms_per_seed_iter"] for r in timed[key]]
                print(
                    f"{key[0]}:{key[1]} S={key[2]}, {jobs} jobs: "
                    + " / ".join(f"{m:.2f}" for m in ms)
                    + " ms per seed-iteration",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for w in workers:
            w.join(timeout=60)
            if w.is_alive():
                w.terminate()
    merged = []
    for group in timed.values():
        row = dict(group[0])
        for field in ("ms_per_seed_iter", "ms_per_seed_iter_median", "cpu_ms_per_seed_iter"):
            row[field] = float(np.mean([r[field] for r in group]))
        row["compile_s"] = float(np.max([r["compile_s"] for r in group]))
        row["jobs"] = jobs
        row["ms_per_seed_iter_jobs"] = [r["ms_per_seed_iter"] for r in group]
        merged.append(row)
    return merged


# ----------------------------------------------------------------------------- command line


def _positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def _seed_counts(text: str) -> list[int]:
    """An argparse type: comma-separated seed counts, each >= 1 (e.g. 1,5)."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: give seed counts such as 1,5")
    try:
        return [_positive_int(p) for p in parts]
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"seed count {error}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nmrnn.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--config", default="config.yaml", help="config file (default: config.yaml here)"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="EXPERIMENT:ARCH",
        help="restrict to these rows (repeatable; 'mwg' or 'mwg:*' for all archs)",
    )
    parser.add_argument(
        "--seeds", type=_seed_counts, default="1,5", help="seed counts per program, e.g. 1,5"
    )
    parser.add_argument("--steps", type=_positive_int, default=20, help="steps per timed chunk")
    parser.add_argument(
        "--chunks", type=_positive_int, default=3, help="timed chunks (after one warm-up)"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="CPU threads per program, as a pipeline training job with that many threads gets "
        "(XLA's CPU pools sized to it; 1 is the pipeline's default)",
    )
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=1,
        help="time this many programs side by side (separate processes, each row started "
        "together), as `snakemake --cores N` runs N one-thread training jobs; the projection "
        "then runs that many at a time",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="per row: forward vs autodiff vs custom-VJP gradient, and "
        "the training step with either gradient",
    )
    return parser


def _compare(experiments: dict, rows, seed_counts, args, progress) -> None:
    """``--compare``: per row, the gradients and the training step, autodiff vs custom-VJP."""
    # Every model's time loop has both gradients (nmrnn.models): every row is compared.
    grads, steps_rows = [], []
    for exp, a in parsed_rows(experiments, rows):
        for s in seed_counts:
            progress(f"compare {exp.name}:{a} S={s}")
            grads += compare_gradients(exp, a, s)
            # Alternated twice (A B A B) and the faster of each kept: load on a shared
            # machine comes in bursts longer than one timing.
            runs = {"autodiff": [], "custom": []}
            for gradient in ("autodiff", "custom", "autodiff", "custom"):
                runs[gradient].append(
                    measure_training(exp, a, s, args.steps, args.chunks, gradient)
                )
            for gradient in ("autodiff", "custom"):
                steps_rows.append(min(runs[gradient], key=lambda r: r["ms_per_seed_iter"]))
    if args.json:
        print(json.dumps(grads + steps_rows, indent=1))
        return
    print(format_compare(grads))
    print()
    print("Training iteration (engine), ms per seed: autodiff vs custom-VJP gradient")
    for i in range(0, len(steps_rows), 2):
        ad, cv = steps_rows[i], steps_rows[i + 1]
        print(
            f"{ad['experiment'] + ':' + ad['arch']:<28}S={ad['seeds']:<3}"
            f"autodiff {ad['ms_per_seed_iter']:7.2f} (cpu {ad['cpu_ms_per_seed_iter']:.2f})  "
            f"custom {cv['ms_per_seed_iter']:7.2f} (cpu {cv['cpu_ms_per_seed_iter']:.2f})  "
            f"ratio {cv['ms_per_seed_iter'] / ad['ms_per_seed_iter']:.2f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = config_io.load(args.config)
    except config_io.ConfigError as error:
        parser.error(f"--config: {error}")
    limit_cpu_threads(args.threads)
    tune_cpu_codegen()
    experiments = config["experiments"]
    seed_counts = args.seeds
    rows = _select(paper_rows(experiments), args.only)
    if not rows:
        parser.error(f"--config {args.config}: no experiment with an architecture to time")
    progress = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    if args.compare:
        _compare(experiments, rows, seed_counts, args, progress)
        return 0

    if args.jobs > 1:
        results = side_by_side(
            args.config, rows, seed_counts, args.steps, args.chunks, args.threads, args.jobs
        )
    else:
        results = []
        for exp, a in parsed_rows(experiments, rows):
            for s in seed_counts:
                progress(f"{exp.name}:{a} S={s}")
                row = measure_training(exp, a, s, args.steps, args.chunks)
                progress(
                    f"  {row['ms_per_seed_iter']:.2f} ms per seed-iteration, "
                    f"compile {row['compile_s']:.1f} s"
                )
                results.append(row)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print(format_table(results, seed_counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())

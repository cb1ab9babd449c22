"""The Snakefile's run hooks: the wall time of a pipeline run, from its Snakemake invocations,
and (:func:`drop_local_rate_limiter`) the scheduler setting ``onstart`` makes for a local run.

The Snakefile's ``onstart``/``onsuccess``/``onerror`` hooks (real runs only, never a dry run)
append one JSON line per event to ``<results>/invocations.jsonl``: when an invocation started,
with how many cores, and when it ended. :func:`run_timing` turns the lines into the run's wall
time (the sum over its invocations, the current one counted up to now) and the core time left
idle beside the training jobs, for ``PROVENANCE.json`` (:func:`nmrnn.steps.write_provenance`).
A run resumed over several invocations lists each one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EVENTS = ("start", "end")


def record(
    path: str | Path,
    event: str,
    cores: int | None = None,
    ok: bool = True,
    figures: str | None = None,
) -> None:
    """Append one event of this invocation (``start`` with its cores and the figures folder it
    renders, or ``end``). Runs that share a results folder (a profile training beside the paper
    run) are told apart by their figures folder."""
    if event not in EVENTS:
        raise ValueError(f"unknown invocation event {event!r}; choose one of {EVENTS}")
    line: dict[str, Any] = {"event": event, "time": round(time.time(), 3)}
    if event == "start":
        line["cores"] = int(cores) if cores is not None else None
        if figures is not None:
            line["figures"] = str(figures).rstrip("/")
    else:
        line["ok"] = bool(ok)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(line) + "\n")


def read(path: str | Path, figures: str | None = None) -> list[dict[str, Any]]:
    """The invocations of a results folder, oldest first: ``start``, ``end`` (None while it runs
    or when it was killed without a hook), ``cores``, ``ok``, ``figures``. With ``figures``, only
    the invocations that rendered that figures folder, and those recorded without one. A missing
    file gives none; a line that is not a recorded event is named with its line number."""
    path = Path(path)
    if not path.exists():
        return []
    runs: list[dict[str, Any]] = []
    for number, text in enumerate(path.read_text().splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
            event, at = line["event"], float(line["time"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: not an invocation record ({error})") from None
        if event == "start":
            runs.append({"start": at, "end": None, "cores": line.get("cores"), "ok": None,
                         "figures": line.get("figures")})  # fmt: skip
        elif event == "end" and runs and runs[-1]["end"] is None:
            runs[-1]["end"], runs[-1]["ok"] = at, bool(line.get("ok", True))
    if figures is not None:
        wanted = str(figures).rstrip("/")
        runs = [run for run in runs if run["figures"] in (None, wanted)]
    return runs


def run_timing(
    invocations: Sequence[dict[str, Any]], busy_s: float, now: float | None = None
) -> dict[str, Any]:
    """Wall time of the run and idle core time: per invocation its start, end and cores (the
    last one, still running, ends ``now``; an earlier one killed without its end hook counts
    nothing and is flagged), ``run_wall_s`` their sum, and ``idle_core_s`` = Σ cores × wall
    minus ``busy_s`` (the training jobs' time; the short non-training jobs count as idle)."""
    now = time.time() if now is None else now
    rows, wall, capacity, unended = [], 0.0, 0.0, 0
    for i, inv in enumerate(invocations):
        end = inv["end"]
        if end is None and i == len(invocations) - 1:
            end = now  # this invocation: it is writing the provenance
        span = None if end is None else max(0.0, end - inv["start"])
        unended += span is None
        rows.append({
            "started": _iso(inv["start"]),
            "ended": None if end is None else _iso(end),
            "wall_s": None if span is None else round(span, 1),
            "cores": inv["cores"],
        })  # fmt: skip
        if span is not None:
            wall += span
            capacity += span * (inv["cores"] or 0)
    return {
        "invocations": rows,
        "run_wall_s": round(wall, 1),
        "idle_core_s": round(capacity - busy_s, 1) if invocations else None,
        "invocations_without_end": unended,
    }


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def drop_local_rate_limiter(workflow: Any) -> bool:
    """Switch off Snakemake's job-rate limiter for a local run (call it from ``onstart``).

    While the limiter is on (the default ``--max-jobs-per-timespan 100/1s``), every pass of
    Snakemake's scheduler arms a timer for one more pass, and every finished job starts one more
    such chain of passes, so its own process re-examines the ready jobs more often the longer a
    run goes (Snakemake 9.27). A local run starts a job the moment a core frees, without the
    timers; a cluster run keeps its limiter. Returns whether it was switched off (False when
    the run is not local or the scheduler has no such limiter)."""
    scheduler = getattr(workflow, "scheduler", None)
    if not getattr(workflow, "local_exec", False) or scheduler is None:
        return False
    if getattr(scheduler, "job_rate_limiter", None) is None:
        return False
    scheduler.job_rate_limiter = None
    return True

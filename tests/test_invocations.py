"""The run's wall time from its recorded invocations (nmrnn.invocations)."""

import json

import pytest

from nmrnn import invocations as inv


def _write(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_a_run_resumed_over_invocations_sums_their_walls(tmp_path):
    path = tmp_path / "invocations.jsonl"
    _write(path, [
        {"event": "start", "time": 100.0, "cores": 2}, {"event": "end", "time": 400.0, "ok": False},
        {"event": "start", "time": 1000.0, "cores": 4},  # the one writing the provenance
    ])  # fmt: skip
    timing = inv.run_timing(inv.read(path), busy_s=500.0, now=1100.0)
    assert [r["wall_s"] for r in timing["invocations"]] == [300.0, 100.0]
    assert timing["run_wall_s"] == 400.0
    assert timing["idle_core_s"] == 300 * 2 + 100 * 4 - 500
    assert timing["invocations_without_end"] == 0


def test_an_invocation_killed_without_its_end_hook_is_flagged_not_counted(tmp_path):
    path = tmp_path / "invocations.jsonl"
    _write(path, [{"event": "start", "time": 0.0, "cores": 2},
                  {"event": "start", "time": 50.0, "cores": 2}])  # fmt: skip
    timing = inv.run_timing(inv.read(path), busy_s=0.0, now=60.0)
    assert timing["invocations_without_end"] == 1
    assert timing["run_wall_s"] == 10.0


def test_record_and_read_round_trip(tmp_path):
    path = tmp_path / "sub" / "invocations.jsonl"
    inv.record(path, "start", cores=2)
    inv.record(path, "end", ok=True)
    (run,) = inv.read(path)
    assert run["cores"] == 2 and run["ok"] is True and run["end"] >= run["start"]
    assert inv.read(tmp_path / "missing.jsonl") == []


def test_runs_sharing_a_results_folder_are_told_apart_by_their_figures(tmp_path):
    path = tmp_path / "invocations.jsonl"
    inv.record(path, "start", cores=2)  # recorded without a figures folder: counts for every run
    inv.record(path, "end", ok=True)
    inv.record(path, "start", cores=2, figures="figures/")
    inv.record(path, "end", ok=True)
    inv.record(path, "start", cores=1, figures="figures/extension")
    inv.record(path, "end", ok=True)
    assert [r["figures"] for r in inv.read(path)] == [None, "figures", "figures/extension"]
    assert [r["figures"] for r in inv.read(path, "figures")] == [None, "figures"]
    assert [r["cores"] for r in inv.read(path, "figures/extension/")] == [2, 1]


def test_bad_lines_and_events_are_named(tmp_path):
    path = tmp_path / "invocations.jsonl"
    path.write_text('{"event": "start", "time": 1, "cores": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"invocations.jsonl:2: not an invocation record"):
        inv.read(path)
    with pytest.raises(ValueError, match="unknown invocation event 'stop'"):
        inv.record(path, "stop")


def test_a_local_run_drops_snakemakes_rate_limiter_and_a_cluster_run_keeps_it():
    from types import SimpleNamespace

    limiter = object()
    local = SimpleNamespace(local_exec=True, scheduler=SimpleNamespace(job_rate_limiter=limiter))
    assert inv.drop_local_rate_limiter(local) is True
    assert local.scheduler.job_rate_limiter is None
    assert inv.drop_local_rate_limiter(local) is False  # already off
    cluster = SimpleNamespace(local_exec=False, scheduler=SimpleNamespace(job_rate_limiter=limiter))
    assert inv.drop_local_rate_limiter(cluster) is False
    assert cluster.scheduler.job_rate_limiter is limiter
    assert inv.drop_local_rate_limiter(SimpleNamespace(local_exec=True, scheduler=None)) is False


def test_snakemakes_scheduler_still_has_the_rate_limiter_the_hook_switches_off():
    # drop_local_rate_limiter does nothing if Snakemake renames these; this test says so first
    import inspect

    import snakemake.api  # noqa: F401  (imports snakemake.workflow in the order it needs)
    from snakemake.scheduling import job_scheduler
    from snakemake.workflow import Workflow

    source = inspect.getsource(job_scheduler.JobScheduler)
    assert "self.job_rate_limiter = (" in source
    assert "if self.job_rate_limiter is not None:" in source
    assert isinstance(inspect.getattr_static(Workflow, "local_exec"), property)
    assert isinstance(inspect.getattr_static(Workflow, "scheduler"), property)

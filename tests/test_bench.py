"""The benchmark's projection arithmetic and one real (tiny) measurement."""

import json

import pytest

from nmrnn import bench


def row(seeds, ms, steps=1000, paper_seeds=5):
    return {
        "experiment": "mwg",
        "arch": "nmrnn",
        "seeds": seeds,
        "ms_per_seed_iter": ms,
        "cpu_ms_per_seed_iter": 2 * ms,
        "paper_steps": steps,
        "paper_seeds": paper_seeds,
    }


def test_projection_counts_whole_programs_and_picks_the_cheapest():
    # 5 seeds: S=1 -> 5 programs x 1 seed x 2 ms; S=10 -> 1 program of 10 slots x 0.5 ms.
    hours = bench.projected_hours([row(1, 2.0), row(10, 0.5)])[("mwg", "nmrnn")]
    assert hours["seeds_per_program"] == 10
    assert hours["hours"] == pytest.approx(1000 * 10 * 0.5 / 3.6e6)
    assert hours["cpu_hours"] == pytest.approx(2 * hours["hours"])
    # S=10 at 1.5 ms per seed costs 15 ms per step for 5 seeds: worse than 5 x 2 ms.
    hours = bench.projected_hours([row(1, 2.0), row(10, 1.5)])[("mwg", "nmrnn")]
    assert hours["seeds_per_program"] == 1
    assert hours["hours"] == pytest.approx(1000 * 5 * 2.0 / 3.6e6)


def test_bench_measures_a_row(capsys):
    assert (
        bench.main(
            ["--only", "eft:vanilla", "--seeds", "2", "--steps", "2", "--chunks", "1", "--json"]
        )
        == 0
    )
    (measured,) = json.loads(capsys.readouterr().out)
    assert {"experiment", "arch", "seeds", "ms_per_seed_iter", "compile_s"} <= set(measured)
    assert measured["experiment"] == "eft" and measured["arch"] == "vanilla"
    assert measured["seeds"] == 2
    assert measured["ms_per_seed_iter"] > 0


def test_programs_side_by_side_share_the_wall_time_not_the_cpu_time():
    alone = bench.projected_hours([row(1, 2.0)])[("mwg", "nmrnn")]
    two = bench.projected_hours([{**row(1, 2.0), "jobs": 2}])[("mwg", "nmrnn")]
    assert two["hours"] == pytest.approx(alone["hours"] / 2)
    assert two["cpu_hours"] == pytest.approx(alone["cpu_hours"])


def test_bench_times_two_jobs_side_by_side(capsys):
    argv = ["--only", "eft:vanilla", "--seeds", "1", "--steps", "2", "--chunks", "1"]
    assert bench.main([*argv, "--jobs", "2", "--json"]) == 0
    (measured,) = json.loads(capsys.readouterr().out)
    assert measured["jobs"] == 2
    assert len(measured["ms_per_seed_iter_jobs"]) == 2
    assert measured["ms_per_seed_iter"] == pytest.approx(sum(measured["ms_per_seed_iter_jobs"]) / 2)


def test_a_config_with_nothing_to_time_is_one_line(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("experiments: {}\n")
    with pytest.raises(SystemExit) as stop:
        bench.main(["--config", str(empty)])
    assert stop.value.code == 2
    assert "no experiment with an architecture to time" in capsys.readouterr().err

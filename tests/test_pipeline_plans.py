"""The Snakemake pipeline planned, not run: lint, local rules, the full config's and each local
profile's job counts, and config errors named in one line. Dry runs only, so this file runs
beside the smoke run (``test_pipeline.py``) on another test worker."""

from __future__ import annotations

import re

import pytest
import yaml
from snakemake_cli import ROOT, job_counts, snakemake

pytestmark = pytest.mark.pipeline


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_training_goes_to_the_cluster():
    """Every rule but `train` is local: a SLURM profile submits training and nothing else."""
    sources = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    rules = set()
    for path in sources:
        rules |= set(re.findall(r"^(?:rule|checkpoint)\s+(\w+)\s*:", path.read_text(), flags=re.M))
    snakefile = (ROOT / "Snakefile").read_text()
    block = re.search(r"^localrules:\n((?:[ \t]+\w+,?\n)+)", snakefile, flags=re.M)
    assert block, "no localrules block in the Snakefile"
    local = set(re.findall(r"\w+", block.group(1)))
    assert "train" in rules and len(rules) > 10, sorted(rules)
    assert local == rules - {"train"}, (
        f"missing from localrules: {sorted(rules - {'train'} - local)}; "
        f"unknown or wrongly local: {sorted(local - (rules - {'train'}))}"
    )


def test_full_config_plans_every_job():
    # --forceall: the committed figures/ (fig2 has no inputs) must not hide jobs from the plan
    result = snakemake("-n", "--forceall")
    assert result.returncode == 0, result.stderr
    # task data before any training: the multitask stage 1 (longest chain) must not wait for it
    priorities: dict[str, list[int]] = {}
    output = result.stdout + result.stderr
    for rule, priority in re.findall(r"rule (\w+):(?:\n    .*)*?\n    priority: (\d+)", output):
        priorities.setdefault(rule, []).append(int(priority))
    assert min(priorities["task_data"]) > max(priorities["train"])
    # a trained seed is exported and scored before more training (a cut run keeps its metrics)
    assert min(priorities["export_seed"]) > max(priorities["train"])
    assert min(priorities["evaluate"]) > max(priorities["train"])
    config = yaml.safe_load((ROOT / "config.yaml").read_text())["experiments"]
    seeds = {name: exp.get("seeds", 5) for name, exp in config.items()}
    runs = sum(len(exp["archs"]) * seeds[name] for name, exp in config.items())
    counts = job_counts(result.stdout + result.stderr)
    assert counts["task_data"] == sum(seeds.values())
    assert counts["train"] == runs  # seeds_per_job = 1 in config.yaml
    assert counts["export_seed"] == runs
    assert counts["evaluate"] == runs
    assert counts["metrics_table"] == 3 and counts["curves_table"] == 3
    assert counts["analyse"] == 4 and counts["plot"] == 4  # fig2 too: analyse → plot
    assert counts["analysis_table"] == 1  # the theory table, from fig2's analysis
    assert counts["claims_table"] == 1 and counts["provenance"] == 1


@pytest.mark.parametrize(
    "profile, target, expected",
    [
        # every experiment, architecture and seed; only the step counts differ from config.yaml
        ("reduced", "all", 145),
        ("workstation", "all", 145),
        # the authors' protocol: every experiment, architecture and seed
        ("authors", "all", 145),
        # enough seeds to decide: MWG NM-RNN and LR-RNN x 20, EFT NM-RNN (5,13,12) and two LSTM
        # sizes x 30 (from scratch here: --forceall)
        ("seeds", "protocols", 130),
        ("seeds-authors", "protocols", 130),
        # one switch at a time, one profile per claim (results/protocols/ shared): MWG claim 1,
        # 8 MWG variants and two pairs, 5 seeds each; multitask claim 3, the LR-RNN's
        # normalisation (LR-RNN only), and the data protocol (NM-RNN and LR-RNN) plus the
        # NM-RNN's noise-free stage 1 with the matched transfer, stage 1 and transfer, 5 seeds
        # each; EFT claim 4-lstm, the LSTM at N = 10 and the selection run (five NM-RNN
        # configurations and the LSTM), 10 seeds each
        ("protocols/mwg", "protocols", 60),
        ("protocols/multitask", "protocols", 10),
        ("protocols/multitask-data", "protocols", 25),
        ("protocols/eft", "protocols", 70),
    ],
)
def test_local_profiles_plan(profile, target, expected):
    result = snakemake(
        "-n", "--forceall", "--quiet", "rules", "--profile", f"profiles/{profile}", *target.split()
    )
    assert result.returncode == 0, result.stderr
    assert job_counts(result.stdout + result.stderr)["train"] == expected


def test_a_costlier_training_step_goes_first():
    """Among transfers, the authors' LR-RNN on its whole pool of 1000 trials (10 batches a step,
    ~50 min a seed) is started before the NM-RNN's transfers (~5 min), so it does not end a
    run alone on one core."""
    result = snakemake("-n", "--forceall", "--profile", "profiles/protocols/multitask-data",
                       "protocols")  # fmt: skip
    assert result.returncode == 0, result.stderr
    priority = {}
    for block in re.split(r"\n(?=rule \w+:)", result.stdout + result.stderr):
        if block.startswith("rule train:"):
            wildcards = re.search(r"wildcards: experiment=(\w+), arch=(\w+)", block).groups()
            priority.setdefault(wildcards, set()).add(int(re.search(r"priority: (\d+)", block)[1]))
    full_batch = priority[("multitask_transfer_data", "lrrnn")]
    for nm in ("multitask_transfer_data", "multitask_transfer_nm_noisefree"):
        assert min(full_batch) > max(priority[(nm, "nmrnn")])
    # a stage 1 (which transfers start from) still goes before any transfer
    assert min(priority[("multitask_data", "nmrnn")]) > max(full_batch)


@pytest.mark.parametrize(
    "bad, named",
    [
        ({"experiments": {"mwg": {"sedes": 3}}}, "sedes"),
        ({"experiments": {"mwg": {"archs": {"lstm": {"model": "lsmt"}}}}}, "lsmt"),
        ({"seeds_per_job": "two"}, "seeds_per_job"),
        # a name is a folder: it may not leave the results folder (or break the DAG)
        ({"experiments": {"../../escape": {"task": "mwg"}}}, "../../escape"),
        ({"results_dir": "/"}, "results_dir"),
    ],
)
def test_bad_config_fails_fast_naming_the_key(tmp_path, bad, named):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = snakemake("-n", "--configfile", "config.yaml", str(path))
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert named in text
    assert "Traceback" not in text
    error_lines = [line for line in text.splitlines() if line.startswith("Config error")]
    assert len(error_lines) == 1


def test_protocols_target_without_comparisons_is_refused_before_any_job():
    # config.yaml names no comparisons: the rule would replace figures/protocols.* with nothing
    for target in ("protocols", "figures/protocols.csv"):
        result = snakemake("-n", target)
        text = result.stdout + result.stderr
        assert result.returncode != 0
        assert "target 'protocols' needs a profile that names the comparisons" in text


def test_a_figure_whose_experiments_are_off_is_named():
    # profiles/seeds turns the multitask experiments off: fig4 cannot be drawn there
    result = snakemake("-n", "--profile", "profiles/seeds", "fig4")
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "fig4 draws multitask, multitask_transfer, which this config turns off" in text
    assert "KeyError" not in text

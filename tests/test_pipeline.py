"""The Snakemake pipeline end to end: lint, the full-config plan, config errors, the smoke run, its
idempotence, a one-seed rerun and the report. The smoke run happens once, in a copy of the
repository, so the committed figures/ are never touched."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.pipeline

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference" / "nm-rnn-multitask-testset"
SMOKE = "results/smoke"


def snakemake(*args: str, cwd: Path = ROOT, timeout: int = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def job_counts(output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a snakemake dry run."""
    counts = {}
    block = output.split("Job stats:")[-1]
    for line in block.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def copy_repo(dest: Path) -> Path:
    """The working tree without generated files (results, caches)."""
    ignore = shutil.ignore_patterns(
        ".git", "results", ".snakemake", "__pycache__", ".pytest_cache", "*.egg-info", ".ruff_cache"
    )
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


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
    result = snakemake("-n", "--forceall", "--quiet", "rules")
    assert result.returncode == 0, result.stderr
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
        # one switch at a time (MWG claim 1): 8 MWG variants and two pairs, 5 seeds each
        (
            "protocols",
            " ".join(
                f"results/protocols/{e}/{a}/seed{s}/metrics.csv"
                for e, archs in (
                    (
                        "mwg",
                        (
                            "nmrnn",
                            "lrrnn",
                            "lrrnn_qr_inv_n",
                            "lrrnn_inv_n",
                            "lrrnn_qr_inv_n_long",
                            "nmrnn_qr_inv_n",
                            "lrrnn_householder",
                            "nmrnn_householder",
                        ),
                    ),
                    ("mwg_reset", ("nmrnn", "lrrnn")),
                    ("mwg_select", ("nmrnn", "lrrnn")),
                )
                for a in archs
                for s in range(5)
            ),  # fmt: skip
            60,
        ),
        # multitask claim 3, one switch at a time: the LR-RNN's normalisation (LR-RNN only)
        # and the data protocol (NM-RNN and LR-RNN), stage 1 and transfer, 5 seeds each
        (
            "protocols",
            " ".join(
                f"results/protocols/{e}/{a}/seed{s}/metrics.csv"
                for e, archs in (
                    ("multitask_transfer_lr_qr_inv_n", ("lrrnn",)),
                    ("multitask_transfer_data", ("nmrnn", "lrrnn")),
                )
                for a in archs
                for s in range(5)
            ),  # fmt: skip
            30,
        ),
    ],
)
def test_local_profiles_plan(profile, target, expected):
    result = snakemake(
        "-n", "--forceall", "--quiet", "rules", "--profile", f"profiles/{profile}", *target.split()
    )
    assert result.returncode == 0, result.stderr
    assert job_counts(result.stdout + result.stderr)["train"] == expected


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


def test_curves_table_bins_each_run(tmp_path):
    from nmrnn.steps import curves_table

    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("step,loss\n" + "".join(f"{t},{t}\n" for t in range(10)))
    checks = {3: 0.5, 9: 0.25}
    second.write_text("step,loss,validation_loss\n"
                      + "".join(f"{t},1,{checks.get(t, '')}\n" for t in range(10)))  # fmt: skip
    out = tmp_path / "curves.csv"
    curves_table([str(first), str(second)], [("mwg", "lstm", 0), ("eft", "lstm", 3)], str(out), 4)
    table = pd.read_csv(out)
    a = table[table["experiment"] == "mwg"]
    assert list(a["step_start"]) == [0, 3, 6, 8] and list(a["step_end"]) == [3, 6, 8, 10]
    assert list(a["train_loss"]) == [1.0, 4.0, 6.5, 8.5]
    assert a["validation_loss"].isna().all()
    b = table[table["experiment"] == "eft"]
    assert list(b["seed"].unique()) == [3]
    assert np.isnan(b["validation_loss"].iloc[0]) and b["validation_loss"].iloc[1] == 0.5
    assert b["validation_loss"].iloc[3] == 0.25
    with pytest.raises(ValueError, match="runs named"):
        curves_table([str(first)], [], str(out), 4)


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("smoke") / "repo")
    args = ["--profile", "profiles/smoke"]
    if REFERENCE.exists():
        args += ["--config", f"reference_testset={REFERENCE}"]
    result = snakemake(*args, cwd=repo, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return repo, args


def test_smoke_run_makes_every_figure(smoke_repo):
    repo, _ = smoke_repo
    figures = repo / SMOKE / "figures"
    for fig in ("fig2", "fig3", "fig4", "fig5"):
        for ext in ("png", "pdf"):
            f = figures / f"{fig}.{ext}"
            assert f.exists() and f.stat().st_size > 1000, f
    claims = (figures / "claims.csv").read_text().splitlines()
    assert len(claims) > 5
    for table in ("mwg", "multitask", "eft", "theory"):
        assert (figures / "metrics" / f"{table}.csv").stat().st_size > 0
    provenance = json.loads((figures / "PROVENANCE.json").read_text())
    assert provenance["training_wall_s_sum"] > 0
    assert provenance["training_blocks_last_attempt_only"] == 0  # every job's time recorded
    # EFT: final and validation-selected parameters scored; curves with validation losses
    eft = pd.read_csv(figures / "metrics" / "eft.csv")
    assert set(eft["checkpoint"]) == {"final", "selected"}
    assert (eft.groupby("checkpoint").size() == eft.groupby("checkpoint").size().iloc[0]).all()
    curves = pd.read_csv(figures / "metrics" / "eft_curves.csv")
    assert curves["validation_loss"].notna().any() and curves["train_loss"].notna().all()
    assert curves.groupby(["arch", "seed"])["step_end"].max().nunique() == 1
    mwg_curves = pd.read_csv(figures / "metrics" / "mwg_curves.csv")
    assert mwg_curves["validation_loss"].isna().all() and len(mwg_curves) > 0


def test_second_run_has_nothing_to_do(smoke_repo):
    repo, args = smoke_repo
    result = snakemake(*args, "-n", cwd=repo)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_redoing_one_seed_reruns_only_that_seed(smoke_repo):
    """Snakemake does not regenerate a deleted intermediate file while everything downstream is
    up to date, so one seed is redone by forcing its file: that seed's export and evaluation and
    their downstream rerun, nothing else (no training, no other seed)."""
    repo, args = smoke_repo
    target = f"{SMOKE}/mwg/lrrnn/seed1/params.npz"
    result = snakemake(*args, "-n", "--forcerun", target, cwd=repo)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-3000:]
    counts = job_counts(text)
    assert counts.get("train", 0) == 0 and counts.get("task_data", 0) == 0
    assert counts["export_seed"] == 1 and counts["evaluate"] == 1
    # downstream of the seed: its table, the figure's analysis and plot, claims, provenance
    assert counts["metrics_table"] == 1 and counts["analyse"] == 1 and counts["plot"] == 1
    assert counts["curves_table"] == 1
    assert counts["claims_table"] == 1 and counts["provenance"] == 1
    assert f"output: {target}" in text


def planned_outputs(text: str, rule: str) -> set[str]:
    """The output files of the jobs of ``rule`` in a dry run's listing."""
    found = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        if m and m.group(1) == rule:
            out = re.search(r"^\s+output: (.+)$", block, flags=re.M)
            found |= {f.strip() for f in out.group(1).split(",")} if out else set()
    return found


def plan_with(repo: Path, args: list[str], overlay: dict) -> str:
    """A dry run of the smoke workflow with ``overlay`` merged over its config files."""
    extra = repo / "overlay.yaml"
    extra.write_text(yaml.safe_dump(overlay))
    configfiles = ["config.yaml", "profiles/smoke/smoke.yaml", str(extra)]
    result = snakemake(*args, "-n", "--configfile", *configfiles, cwd=repo)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-3000:]
    return text


def test_config_files_merged_in_another_order_change_nothing(smoke_repo):
    """Params are compared by their text: the same settings reached through another list of
    config files (config.yaml given again, before the overlay) must not look changed."""
    repo, args = smoke_repo
    files = ["config.yaml", "profiles/smoke/smoke.yaml"]
    result = snakemake(*args, "-n", "--configfile", *files, cwd=repo)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_more_seeds_train_only_the_new_seeds(smoke_repo):
    """Raising MWG's seeds from 2 to 3 (2 seeds per job in the smoke profile) plans one new block
    per architecture and the new seed's task data; nothing trained is redone."""
    repo, args = smoke_repo
    text = plan_with(repo, args, {"experiments": {"mwg": {"seeds": 3}}})
    archs = ("nmrnn", "nmrnn_rank1", "lrrnn", "vanilla", "lstm")
    assert planned_outputs(text, "train") == {f"{SMOKE}/mwg/{a}/train/block1.npz" for a in archs}
    assert planned_outputs(text, "task_data") == {f"{SMOKE}/mwg/data/seed2.npz"}


def test_changing_one_architecture_retrains_only_it(smoke_repo):
    repo, args = smoke_repo
    stages = [{"name": "all", "trainable": "all", "steps": 50000, "learning_rate": 0.005}]
    text = plan_with(repo, args, {"experiments": {"mwg": {"archs": {"lstm": {"stages": stages}}}}})
    assert planned_outputs(text, "train") == {f"{SMOKE}/mwg/lstm/train/block0.npz"}
    assert planned_outputs(text, "task_data") == set()


def test_report_is_generated(smoke_repo):
    repo, args = smoke_repo
    report = repo / "report.html"
    result = snakemake(*args, "--report", str(report), cwd=repo)
    assert result.returncode == 0, result.stderr[-3000:]
    assert report.stat().st_size > 10_000

"""The Snakemake pipeline end to end: the smoke run, its idempotence, a one-seed rerun, config
changes that retrain only what they touch, and the report. The smoke run happens once, in a copy
of the repository, so the committed figures/ are never touched. Dry-run-only checks are in
``test_pipeline_plans.py``."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake_cli import ROOT, job_counts, snakemake

pytestmark = pytest.mark.pipeline

REFERENCE = ROOT.parent / "shared" / "reference" / "nm-rnn-multitask-testset"
SMOKE = "results/smoke"


def copy_repo(dest: Path) -> Path:
    """The working tree without generated files (results, caches)."""
    ignore = shutil.ignore_patterns(
        ".git", "results", ".snakemake", "__pycache__", ".pytest_cache", "*.egg-info", ".ruff_cache"
    )
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


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
    # the run's own wall time, from its one invocation, and one commit for all its training
    run = provenance["run"]
    assert len(run["invocations"]) == 1 and run["invocations_without_end"] == 0
    assert run["run_wall_s"] > 0 and run["invocations"][0]["cores"] >= 1
    assert run["idle_core_s"] == pytest.approx(
        run["run_wall_s"] * run["invocations"][0]["cores"] - provenance["training_wall_s_sum"],
        abs=0.2,
    )
    assert len(provenance["training_commits"]) == 1
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

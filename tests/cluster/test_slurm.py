"""End-to-end SLURM submission (issue 8) against a throw-away local cluster.

The module-scoped fixture starts a single-node SLURM cluster with slurmdbd
accounting (tests/cluster/slurm_up.sh) and stops it afterwards
(tests/cluster/slurm_down.sh).  Each test copies the repository into a
temporary directory and runs the smoke workflow through the SLURM executor:

    snakemake --workflow-profile profiles/smoke --profile profiles/slurm-ci

Only root on Debian can start the cluster; elsewhere the tests are skipped.
Run with:  python -m pytest tests/cluster -m cluster
Set NMRNN_KEEP_CLUSTER=1 to leave the cluster running afterwards.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# the workflow under test; overridable only to exercise this test on a stand-in
REPO = Path(os.environ.get("NMRNN_CLUSTER_TEST_REPO", HERE.parents[1]))

# --- assumptions about the pipeline; change here if the pipeline changes ------
SMOKE = "results/smoke"  # results_dir of profiles/smoke
# rules whose jobs are submitted to SLURM (everything else is a localrule)
SUBMITTED_RULES = {"train"}
TRAIN_RULE = "train"
# the resumable checkpoint of one training job, relative to the workflow
# directory; {fields} are the train rule's wildcards.  If the wildcard names
# differ, every file matching the template with fields replaced by '*' counts.
CHECKPOINT_TEMPLATE = SMOKE + "/{experiment}/{arch}/train/block{block}.checkpoint.npz"
# printed by the training script when it resumes (rule log and SLURM log)
RESUME_MARKER = "resumed from checkpoint"
# figures the smoke run must (re)create
FIGURE_GLOBS = (SMOKE + "/figures/*.png", "figures/*.png")
# what the cancel-and-retry test runs: one figure's part of the DAG (the multitask one: two
# training stages, the longest smoke training jobs) is enough to exercise retry and resume,
# and keeps CI short; the first test runs the whole smoke workflow.
RETRY_TARGET = "fig4"
PROFILE_ARGS = ["--workflow-profile", "profiles/smoke", "--profile", "profiles/slurm-ci"]
# the shared multitask reference test set, passed like tests/test_pipeline.py does
REFERENCE = REPO.parent / "shared" / "reference" / "nm-rnn-multitask-testset"
if REFERENCE.exists():
    PROFILE_ARGS += ["--config", f"reference_testset={REFERENCE}"]
# keys that, set in the (workflow) smoke profile, override the SLURM profile
CLOBBERING_KEYS = ("executor", "default-resources", "set-resources", "resources")

SNAKEMAKE_TIMEOUT = (
    1500  # s, one run: 21 training jobs, 2 at a time (bounded so CI stays inside 90 min)
)
CLUSTER_UP_TIMEOUT = 900  # s, includes apt-get install on a fresh machine
CHECKPOINT_WAIT = 180  # s, how long to wait for a checkpoint before cancelling
CMD_TIMEOUT = 30  # s, any single squeue/sacct/scancel call

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0,
        reason="SLURM cluster tests need root (they install and start slurm/munge/mariadb)",
    ),
    pytest.mark.skipif(
        not Path("/etc/debian_version").exists(),
        reason="SLURM cluster tests need Debian (no /etc/debian_version)",
    ),
]


# --- helpers -----------------------------------------------------------------
def run(cmd: list[str], timeout: int = CMD_TIMEOUT, **kw) -> subprocess.CompletedProcess:
    """Run a command bounded by `timeout -k 10`, capturing text output."""
    return subprocess.run(
        ["timeout", "-k", "10", str(timeout), *cmd],
        capture_output=True,
        text=True,
        **kw,
    )


def tail(path: Path, n: int = 80) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError as e:
        return f"<cannot read {path}: {e}>"


def daemon_logs_tail(n: int = 15) -> str:
    return "\n".join(
        f"--- {p}\n{tail(Path(p), n)}"
        for p in ("/var/log/slurm/slurmctld.log", "/var/log/slurm/slurmd.log")
    )


def slurm_logs_tail(workdir: Path, n: int = 40) -> str:
    out = [
        f"--- {p.relative_to(workdir)}\n{tail(p, n)}"
        for p in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))[-4:]
    ]
    return "\n".join([*out, daemon_logs_tail()])


def copy_repo(dest: Path) -> Path:
    """Copy the working tree (tracked and untracked, not ignored) into dest."""
    ls = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    for rel in filter(None, ls.stdout.decode().split("\0")):
        src = REPO / rel
        if not src.is_file():  # deleted in the working tree, or a submodule
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    return dest


def snakemake_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    # jobs inherit this through sbatch --export=ALL: use the copied sources
    src = str(workdir / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("SNAKEMAKE_PROFILE", None)
    return env


def snakemake_cmd(*extra: str, targets: tuple[str, ...] = ()) -> list[str]:
    # targets after "--": PROFILE_ARGS may end with --config, which would take them as values
    return [
        "timeout",
        "-k",
        "10",
        str(SNAKEMAKE_TIMEOUT),
        sys.executable,
        "-m",
        "snakemake",
        *PROFILE_ARGS,
        *extra,
        *(("--", *targets) if targets else ()),
    ]


def check_smoke_profile(workdir: Path) -> None:
    import yaml

    for name in ("config.yaml", "profile.yaml"):
        p = workdir / "profiles" / "smoke" / name
        if p.exists():
            keys = set((yaml.safe_load(p.read_text()) or {}).keys())
            bad = sorted(keys.intersection(CLOBBERING_KEYS))
            assert not bad, (
                f"profiles/smoke/{name} sets {bad}: as --workflow-profile these keys "
                "replace the SLURM profile's values (account, partition, executor). "
                "Keep executor/resources out of the smoke profile."
            )
            return
    pytest.fail("profiles/smoke/config.yaml does not exist (the pipeline is not ready)")


def run_id(log_text: str) -> str:
    m = re.search(r"SLURM run ID: (\S+)", log_text)
    assert m, "no 'SLURM run ID' in the snakemake output: was the slurm executor used?"
    return m.group(1)


def parse_jobs(log_text: str) -> dict[str, dict]:
    """Map SLURM job id -> {snakemake jobid, rule, wildcards, log, output}."""
    blocks: dict[str, dict] = {}
    current: dict | None = None
    for line in log_text.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            current = {"rule": m.group(1), "wildcards": {}, "log": [], "output": []}
            continue
        if current is None:
            continue
        s = line.strip()
        if s.startswith("jobid: "):
            blocks[s.split()[1]] = current
        elif s.startswith("wildcards: "):
            for kv in s[len("wildcards: ") :].split(", "):
                k, _, v = kv.partition("=")
                current["wildcards"][k] = v
        elif s.startswith("log: "):
            current["log"] = [x.split(" (")[0] for x in s[len("log: ") :].split(", ")]
        elif s.startswith("output: "):
            current["output"] = s[len("output: ") :].split(", ")
    jobs = {}
    for sm_id, slurm_id in re.findall(
        r"Job (\d+) has been submitted with SLURM jobid (\d+)", log_text
    ):
        info = dict(blocks.get(sm_id, {"rule": "?", "wildcards": {}, "log": [], "output": []}))
        info["snakemake_jobid"] = sm_id
        jobs[slurm_id] = info
    return jobs


def sacct_states(rid: str, since: dt.datetime) -> dict[str, tuple[str, str]]:
    """SLURM job id -> (comment, state) for all jobs of one snakemake run."""
    res = run(
        [
            "sacct",
            "-X",
            "-n",
            "-P",
            "--name",
            rid,
            "-S",
            since.strftime("%Y-%m-%dT%H:%M:%S"),
            "-E",
            "now",
            "-o",
            "JobIdRaw,Comment,State",
        ]
    )
    assert res.returncode == 0, f"sacct failed: {res.stderr}"
    out = {}
    for line in res.stdout.splitlines():
        jid, comment, state = line.split("|", 2)
        out[jid] = (comment, state.split()[0])  # 'CANCELLED by 0' -> 'CANCELLED'
    return out


def wait_for_sacct(rid: str, since: dt.datetime, ids: set[str], timeout: int = 60) -> dict:
    """sacct lags slurmctld by a moment: wait until it knows every job."""
    deadline = time.monotonic() + timeout
    while True:
        states = sacct_states(rid, since)
        if ids <= set(states) and all(s not in ("RUNNING", "PENDING") for _, s in states.values()):
            return states
        if time.monotonic() > deadline:
            return states
        time.sleep(1)


def new_figures(workdir: Path, since: float) -> list[Path]:
    found = set()
    for pattern in FIGURE_GLOBS:
        found.update(Path(p) for p in glob.glob(str(workdir / pattern), recursive=True))
    return sorted(p for p in found if p.stat().st_mtime >= since)


def assert_up_to_date(workdir: Path, *targets: str) -> None:
    res = subprocess.run(
        snakemake_cmd("-n", targets=targets),
        cwd=workdir,
        env=snakemake_env(workdir),
        capture_output=True,
        text=True,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"dry-run failed:\n{out[-4000:]}"
    assert "Nothing to be done" in out, f"second run is not a no-op:\n{out[-4000:]}"


def checkpoint_paths(workdir: Path, wildcards: dict[str, str]) -> list[Path]:
    try:
        return [workdir / CHECKPOINT_TEMPLATE.format(**wildcards)]
    except (KeyError, IndexError):
        pattern = re.sub(r"\{[^}]*\}", "*", CHECKPOINT_TEMPLATE)
        return [Path(p) for p in glob.glob(str(workdir / pattern))]


def assert_train_jobs_completed(jobs: dict, states: dict) -> None:
    submitted_rules = {info["rule"] for info in jobs.values()}
    assert submitted_rules <= SUBMITTED_RULES, (
        f"rules {sorted(submitted_rules - SUBMITTED_RULES)} were submitted to SLURM; "
        f"only {sorted(SUBMITTED_RULES)} should be (make the others localrules)"
    )
    train = {jid: info for jid, info in jobs.items() if info["rule"] == TRAIN_RULE}
    assert train, "no training job was submitted to SLURM"
    missing = set(jobs) - set(states)
    assert not missing, f"jobs {sorted(missing)} are missing from sacct"
    # every training job (by comment = rule + wildcards) ended COMPLETED once
    by_comment: dict[str, list[str]] = {}
    for jid in train:
        comment, state = states[jid]
        assert comment.startswith(f"rule_{TRAIN_RULE}"), (jid, comment)
        by_comment.setdefault(comment, []).append(state)
    not_done = {c: s for c, s in by_comment.items() if "COMPLETED" not in s}
    assert not not_done, f"training jobs without a COMPLETED attempt: {not_done}"


# --- fixtures ----------------------------------------------------------------
@pytest.fixture(scope="module")
def slurm_cluster():
    up = run(["bash", str(HERE / "slurm_up.sh")], timeout=CLUSTER_UP_TIMEOUT)
    if up.returncode != 0:
        pytest.fail(
            f"slurm_up.sh failed (rc={up.returncode}):\n{up.stdout}\n{up.stderr}\n"
            + daemon_logs_tail()
        )
    print(up.stderr.strip().splitlines()[-1])
    yield
    if os.environ.get("NMRNN_KEEP_CLUSTER") != "1":
        down = run(["bash", str(HERE / "slurm_down.sh")], timeout=180)
        print(down.stderr)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    wd = copy_repo(tmp_path / "repo")
    check_smoke_profile(wd)
    return wd


# --- tests -------------------------------------------------------------------
def test_smoke_workflow_runs_on_slurm(slurm_cluster, workdir: Path):
    since = dt.datetime.now() - dt.timedelta(minutes=5)
    t0 = time.time()
    log = workdir / "snakemake_slurm.log"
    with log.open("w") as fh:
        res = subprocess.run(
            snakemake_cmd(),
            cwd=workdir,
            env=snakemake_env(workdir),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    text = log.read_text(errors="replace")
    assert res.returncode == 0, (
        f"snakemake failed (rc={res.returncode}):\n{tail(log, 120)}\n{slurm_logs_tail(workdir)}"
    )

    rid = run_id(text)
    jobs = parse_jobs(text)
    states = wait_for_sacct(rid, since, set(jobs))
    assert_train_jobs_completed(jobs, states)
    assert all(s == "COMPLETED" for _, s in states.values()), f"not all COMPLETED: {states}"

    figures = new_figures(workdir, t0)
    assert figures, f"no figures/*.png written by the run:\n{tail(log)}"
    print(f"{len(jobs)} SLURM jobs COMPLETED, {len(figures)} figures, {time.time() - t0:.0f} s")

    assert_up_to_date(workdir)


def test_cancelled_training_job_is_retried_and_resumes(slurm_cluster, workdir: Path):
    since = dt.datetime.now() - dt.timedelta(minutes=5)
    t0 = time.time()
    log = workdir / "snakemake_slurm.log"
    fh = log.open("w")
    proc = subprocess.Popen(
        snakemake_cmd(targets=(RETRY_TARGET,)),
        cwd=workdir,
        env=snakemake_env(workdir),
        stdout=fh,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    cancelled: str | None = None
    had_checkpoint = False
    try:
        rid = None
        deadline = time.monotonic() + SNAKEMAKE_TIMEOUT
        tried: set[str] = set()
        while cancelled is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            if rid is None:
                m = re.search(r"SLURM run ID: (\S+)", log.read_text(errors="replace"))
                if not m:
                    continue
                rid = m.group(1)
            q = run(["squeue", "-h", "--name", rid, "-o", "%i|%T|%k"])
            running = [
                line.split("|")[0]
                for line in q.stdout.splitlines()
                if line.split("|")[1] == "RUNNING"
                and line.split("|")[2].startswith(f"rule_{TRAIN_RULE}")
                and line.split("|")[0] not in tried
            ]
            if not running:
                continue
            jid = running[0]
            tried.add(jid)
            # give the job a chance to write its first checkpoint
            info = parse_jobs(log.read_text(errors="replace")).get(jid, {})
            ck_deadline = time.monotonic() + CHECKPOINT_WAIT
            while time.monotonic() < ck_deadline:
                if any(p.exists() for p in checkpoint_paths(workdir, info.get("wildcards", {}))):
                    break
                st = run(["squeue", "-h", "-j", jid, "-o", "%T"]).stdout.strip()
                if st != "RUNNING":
                    break
                time.sleep(0.5)
            had_checkpoint = any(
                p.exists() for p in checkpoint_paths(workdir, info.get("wildcards", {}))
            )
            st = run(["squeue", "-h", "-j", jid, "-o", "%T"]).stdout.strip()
            if st != "RUNNING":
                continue  # finished before we could cancel it: try the next one
            sc = run(["scancel", jid])
            assert sc.returncode == 0, f"scancel {jid} failed: {sc.stderr}"
            cancelled = jid
            # The job may have finished training between the check above and the scancel (it
            # writes its output, then deletes the checkpoint): what the retry must resume from
            # is the checkpoint left once the job is gone.
            gone = time.monotonic() + 60
            while time.monotonic() < gone:
                if run(["squeue", "-h", "-j", jid, "-o", "%T"]).stdout.strip() != "RUNNING":
                    break
                time.sleep(0.2)
            had_checkpoint = had_checkpoint and any(
                p.exists() for p in checkpoint_paths(workdir, info.get("wildcards", {}))
            )
        if cancelled is None:
            pytest.fail(
                "could not scancel a RUNNING training job: every training job finished "
                "before it could be cancelled (is the smoke training too short?)\n" + tail(log)
            )
        rc = proc.wait(timeout=SNAKEMAKE_TIMEOUT + 30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        fh.close()

    text = log.read_text(errors="replace")
    assert rc == 0, (
        f"snakemake did not recover from scancel of job {cancelled} (rc={rc}):\n"
        f"{tail(log, 120)}\n{slurm_logs_tail(workdir)}"
    )
    assert "Trying to restart job" in text, "snakemake did not retry the cancelled job"

    jobs = parse_jobs(text)
    states = wait_for_sacct(run_id(text), since, set(jobs))
    assert states[cancelled][1] == "CANCELLED", states[cancelled]
    assert_train_jobs_completed(jobs, states)

    # the retry of the cancelled job: same comment, later job id, COMPLETED
    comment = states[cancelled][0]
    retries = [j for j, (c, s) in states.items() if c == comment and int(j) > int(cancelled)]
    assert retries, f"no resubmission of {comment} after job {cancelled}"
    retry = max(retries, key=int)
    assert states[retry][1] == "COMPLETED", states[retry]

    if had_checkpoint:
        info = jobs.get(retry, {})
        candidates = [workdir / p for p in info.get("log", [])]
        candidates += list((workdir / ".snakemake" / "slurm_logs").rglob(f"{retry}.log"))
        texts = {str(p): p.read_text(errors="replace") for p in candidates if p.is_file()}
        assert any(RESUME_MARKER in t for t in texts.values()), (
            f"job {cancelled} was cancelled after its checkpoint was written, but the "
            f"retry {retry} did not log '{RESUME_MARKER}'. Looked in: {sorted(texts)}"
        )
        print(f"job {cancelled} cancelled after its checkpoint; retry {retry} resumed")
    else:
        print(f"job {cancelled} was cancelled before writing a checkpoint: no resume expected")

    assert new_figures(workdir, t0), "no figures/*.png written by the run"
    assert_up_to_date(workdir, RETRY_TARGET)

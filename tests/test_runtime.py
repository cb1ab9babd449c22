"""nmrnn.runtime.limit_cpu_threads: a job's XLA CPU backend keeps to the cores it was given, the
user's own settings win, and a started backend is left alone (the settings are read only when it
starts)."""

import os
import subprocess
import sys

SCRIPT = """
import os, sys
from nmrnn.runtime import limit_cpu_threads
if sys.argv[2] == "started":
    import jax
    jax.numpy.zeros(1).block_until_ready()
applied = limit_cpu_threads(None if sys.argv[1] == "None" else int(sys.argv[1]))
if sys.argv[2] == "count":
    import jax
    jax.numpy.ones(1000).sum().block_until_ready()
    print(len(os.listdir("/proc/self/task")))
print(applied, os.environ.get("PJRT_NPROC", "-"), os.environ.get("XLA_FLAGS", ""))
"""


def run(threads, state="fresh", env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PJRT_NPROC", "NPROC")}
    env.update(env_extra or {})
    env.setdefault("JAX_PLATFORMS", "cpu")
    lines = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(threads), state],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    out = lines[-1].split(maxsplit=2)
    result = (out[0] == "True", out[1], out[2].strip() if len(out) > 2 else "")
    return (int(lines[0]), *result) if state == "count" else result


def test_one_thread_sizes_the_pool_and_unthreads_eigen():
    assert run(1) == (True, "1", "--xla_cpu_multi_thread_eigen=false")


def test_more_threads_size_the_pool_to_the_job():
    assert run(2) == (True, "2", "")


def test_no_thread_count_changes_nothing():
    assert run(None) == (False, "-", "")  # 0 is refused (it would mean every core): issue 28


def test_user_settings_win_and_are_kept():
    user = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true --foo=1", "PJRT_NPROC": "3"}
    assert run(1, env_extra=user) == (False, "3", "--xla_cpu_multi_thread_eigen=true --foo=1")
    assert run(1, env_extra={"NPROC": "2"})[:2] == (True, "-")  # NPROC is XLA's too


def test_other_user_flags_are_extended():
    applied, _, flags = run(1, env_extra={"XLA_FLAGS": "--xla_dump_to=/tmp/x"})
    assert applied
    assert flags == "--xla_dump_to=/tmp/x --xla_cpu_multi_thread_eigen=false"


def test_started_backend_is_left_alone():
    assert run(1, state="started") == (False, "-", "")


def test_the_pool_really_gets_the_thread_count():
    # XLA names no thread after the pool size, so count the process's threads: a bigger pool
    # adds workers (the pool is what kept two busy in a one-core job before).
    one = run(1, state="count")[0]
    four = run(4, state="count")[0]
    assert four > one


CODEGEN = """
import os, sys
from nmrnn.runtime import tune_cpu_codegen
if sys.argv[1] == "started":
    import jax
    jax.numpy.zeros(1).block_until_ready()
print(tune_cpu_codegen(), "|", os.environ.get("XLA_FLAGS", ""))
"""


def run_codegen(state="fresh", xla_flags=None):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    env.setdefault("JAX_PLATFORMS", "cpu")
    out = subprocess.run(
        [sys.executable, "-c", CODEGEN, state], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()[-1]
    applied, flags = out.split("|")
    return applied.strip() == "True", flags.strip()


def test_codegen_flags_are_added_before_the_backend_starts():
    assert run_codegen() == (True, "--xla_cpu_prefer_vector_width=512")
    assert run_codegen(xla_flags="--foo=1") == (True, "--foo=1 --xla_cpu_prefer_vector_width=512")


def test_codegen_flags_of_the_user_win_and_a_started_backend_is_left_alone():
    user = "--xla_cpu_prefer_vector_width=256"
    assert run_codegen(xla_flags=user) == (False, user)
    assert run_codegen("started") == (False, "")

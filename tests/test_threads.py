"""limit_cpu_threads: one-threaded XLA for one-core jobs, and never a silent no-op surprise."""

import os
import subprocess
import sys

SCRIPT = """
import os, sys
from nmrnn.pipeline import limit_cpu_threads
if sys.argv[2] == "started":
    import jax
    jax.numpy.zeros(1).block_until_ready()
print(limit_cpu_threads(int(sys.argv[1])), os.environ.get("XLA_FLAGS", ""))
"""


def run(threads, state="fresh", flags=None):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if flags is not None:
        env["XLA_FLAGS"] = flags
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(threads), state],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split(maxsplit=1)
    return out[0] == "True", (out[1].strip() if len(out) > 1 else "")


def test_one_thread_sets_flags_before_backend_starts():
    applied, flags = run(1)
    assert applied
    assert "--xla_cpu_multi_thread_eigen=false" in flags
    assert "intra_op_parallelism_threads=1" in flags


def test_more_threads_keep_the_thread_pool():
    assert run(2) == (False, "")


def test_user_flags_win_and_are_kept():
    applied, flags = run(1, flags="--xla_cpu_multi_thread_eigen=true --foo=1")
    assert not applied
    assert flags == "--xla_cpu_multi_thread_eigen=true --foo=1"


def test_other_user_flags_are_extended():
    applied, flags = run(1, flags="--xla_dump_to=/tmp/x")
    assert applied
    assert flags.startswith("--xla_dump_to=/tmp/x ")


def test_started_backend_is_left_alone():
    assert run(1, state="started") == (False, "")

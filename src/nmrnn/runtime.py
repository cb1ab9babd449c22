"""What every pipeline job does around its work: a log file that also receives the traceback of
a failure (and one line on the console), XLA's CPU thread pool kept to the job's cores, and the
on-disk cache of compiled programs. Nothing here is specific to one step (see :mod:`nmrnn.steps`).
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def log_to(path: str | Path) -> Iterator[Any]:
    """Send this step's output to its log file (and progress lines to stderr as well).

    Yields a ``log(line)`` function. An exception goes to the log with its traceback and to the
    console as one line naming the problem; the step then exits with status 1.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    console = sys.stderr
    with open(path, "w", buffering=1) as handle:
        sys.stderr = handle

        def log(line: str) -> None:
            print(line, file=handle, flush=True)
            print(line, file=console, flush=True)

        try:
            yield log
        except Exception as error:  # noqa: BLE001 - reported in one line, details in the log
            traceback.print_exc(file=handle)
            log(f"ERROR: {type(error).__name__}: {error}")
            sys.stderr = console
            raise SystemExit(1) from None
        finally:
            sys.stderr = console


SINGLE_THREAD_XLA_FLAGS = ("--xla_cpu_multi_thread_eigen=false",)
# Size of the thread pools of XLA's CPU client (read once, when the backend starts; without it the
# pools get one thread per CPU of the process's affinity mask, whatever the job was given).
POOL_SIZE_VARIABLES = ("PJRT_NPROC", "NPROC")


def _backend_started() -> bool:
    """Whether JAX's backend has started: XLA reads its thread and code-generation settings
    only then, so later changes to them have no effect."""
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


def limit_cpu_threads(threads: int | None) -> bool:
    """Keep a job's XLA CPU backend to the ``threads`` cores it was given.

    XLA's CPU client runs a program's operations on a pool of worker threads sized to every CPU
    the process may use, whatever XLA's other threading flags say: a job given one core of a
    2-core machine kept two workers busy (1.6 cores, measured), so two such jobs side by side
    slowed each other down (docs/runtime.md). This sets the pool size (``PJRT_NPROC``) to
    ``threads`` and, for one thread, keeps Eigen's matrix products unthreaded. The user's own
    ``PJRT_NPROC``/``NPROC`` or ``XLA_FLAGS`` threading flag wins; nothing is changed once
    JAX's backend has started (these are read only then). Returns whether anything was set.
    ``threads`` None: no limit; 0, a negative number or a non-integer is a ValueError.
    """
    import os

    if threads is None:
        return False
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        # 0 would mean no limit at all (every core), the opposite of what was asked.
        raise ValueError(f"threads must be None or a whole number >= 1, got {threads!r}")
    if _backend_started():
        return False
    applied = False
    if not any(name in os.environ for name in POOL_SIZE_VARIABLES):
        os.environ["PJRT_NPROC"] = str(threads)
        applied = True
    current = os.environ.get("XLA_FLAGS", "")
    if threads == 1 and not any(f.split("=")[0] in current for f in SINGLE_THREAD_XLA_FLAGS):
        os.environ["XLA_FLAGS"] = " ".join([current, *SINGLE_THREAD_XLA_FLAGS]).strip()
        applied = True
    return applied


# Code generation of XLA's CPU programs: LLVM may use the full 512-bit vectors of AVX-512 (XLA's
# default prefers 256 bits). On the 2-core AMD EPYC workstation (Zen 4) the training iteration of
# the multitask models was ~5-10% faster with it (docs/runtime.md); without AVX-512 it changes
# nothing. It changes the rounding of trained parameters (like any change of the vector code).
CODEGEN_XLA_FLAGS = ("--xla_cpu_prefer_vector_width=512",)


def tune_cpu_codegen() -> bool:
    """Add :data:`CODEGEN_XLA_FLAGS` to ``XLA_FLAGS`` before JAX's backend starts. A flag the user
    already set in ``XLA_FLAGS`` (any value) wins; nothing changes once the backend has started.
    Returns whether anything was set."""
    import os

    if _backend_started():
        return False
    current = os.environ.get("XLA_FLAGS", "")
    names = {f.split("=")[0] for f in current.split()}
    missing = [f for f in CODEGEN_XLA_FLAGS if f.split("=")[0] not in names]
    if missing:
        os.environ["XLA_FLAGS"] = " ".join([current, *missing]).strip()
    return bool(missing)


def use_compilation_cache(directory: str | Path | None) -> None:
    """Keep compiled XLA programs on disk, so every seed block, restart and evaluation of the same
    (experiment, architecture, stage) reuses one compilation instead of compiling again."""
    if not directory:
        return
    import jax

    Path(directory).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

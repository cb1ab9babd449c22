"""Test selection shared by the whole suite.

The SLURM cluster tests (``tests/cluster``, marked ``cluster``) start a throw-away cluster and run
only when asked for by name (``python -m pytest tests/cluster -m cluster``); any other marker
expression, such as the fast loop's ``-m "not pipeline"``, leaves them out.

Compiled XLA programs are kept in pytest's cache folder (``.pytest_cache/d/jax``), so a second
run of the suite compiles almost nothing (``tests/test_rollouts.py`` and ``tests/test_models.py``:
191 s cold, 42 s warm on 2 cores). The programs are the same either way; ``-p no:cacheprovider``
or ``NMRNN_TEST_JAX_CACHE=0`` turns it off. The tests compile with the jobs' XLA CPU code
generation flags (:func:`nmrnn.runtime.tune_cpu_codegen`), so the gradient and rollout tests check
the code the pipeline trains with.

The suite runs on several workers (pytest-xdist, ``addopts`` in ``pyproject.toml``), one test file
per worker at a time. Under it the pipeline tests are put first, so the smoke run, the longest
file, starts at once on one worker while the others go through the unit tests; ``-n 0`` runs
everything in one process in file order.
"""

from __future__ import annotations

import os


def pytest_configure(config):
    # The pipeline's jobs compile with these XLA CPU flags (nmrnn.runtime): so do the tests.
    from nmrnn.runtime import tune_cpu_codegen

    tune_cpu_codegen()
    cache = getattr(config, "cache", None)
    if cache is None or os.environ.get("NMRNN_TEST_JAX_CACHE") == "0":
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", str(cache.mkdir("jax")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_collection_modifyitems(config, items):
    if "cluster" in (config.getoption("markexpr") or ""):
        return
    cluster = [item for item in items if item.get_closest_marker("cluster")]
    if cluster:
        config.hook.pytest_deselected(items=cluster)
        items[:] = [item for item in items if not item.get_closest_marker("cluster")]
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker sorts alike: same collection
        items.sort(key=lambda item: item.get_closest_marker("pipeline") is None)

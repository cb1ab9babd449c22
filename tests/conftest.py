"""Test selection shared by the whole suite.

The SLURM cluster tests (``tests/cluster``, marked ``cluster``) start a throw-away cluster and run
only when asked for by name (``python -m pytest tests/cluster -m cluster``); any other marker
expression, such as the fast loop's ``-m "not pipeline"``, leaves them out.
"""

from __future__ import annotations


def pytest_collection_modifyitems(config, items):
    if "cluster" in (config.getoption("markexpr") or ""):
        return
    cluster = [item for item in items if item.get_closest_marker("cluster")]
    if cluster:
        config.hook.pytest_deselected(items=cluster)
        items[:] = [item for item in items if not item.get_closest_marker("cluster")]

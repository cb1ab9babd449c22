"""Shared fixtures of the figure tests."""

from pathlib import Path

import pytest

from nmrnn.figures.common import RunFiles

FILE_NAMES = {"params": "params.npz", "losses": "losses.csv", "meta": "meta.json"}


@pytest.fixture(scope="session")
def pipeline_files():
    """``build(experiments, root)``: the :class:`RunFiles` the analyse rule would give for a
    results folder ``root`` in the pipeline's layout (every arch and seed of every experiment)."""

    def build(experiments, root) -> RunFiles:
        root = Path(root)
        runs = [(e, a, s) for e, exp in experiments.items() for a in exp["archs"]
                for s in range(exp["seeds"])]  # fmt: skip
        data_runs = [(e, s) for e, exp in experiments.items() for s in range(exp["seeds"])]
        files = {
            kind: [root / e / a / f"seed{s}" / name for e, a, s in runs]
            for kind, name in FILE_NAMES.items()
        }
        data = [root / e / "data" / f"seed{s}.npz" for e, s in data_runs]
        return RunFiles.from_lists(runs, files, data_runs, data)

    return build

"""The figure registry: every figure names its experiments, table and functions, and the workflow
takes its figure names, tables and wildcard constraints from it (no figure list of its own)."""

import inspect
import re
from pathlib import Path

from nmrnn import claims
from nmrnn.config import read_yaml
from nmrnn.figures import CLAIMS_BY_TABLE, REGISTRY

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "workflow" / "rules"


def test_every_figure_has_experiments_table_and_functions():
    assert list(REGISTRY) == ["fig2", "fig3", "fig4", "fig5"]
    experiments = read_yaml(ROOT / "config.yaml")["experiments"]
    for name, figure in REGISTRY.items():
        assert figure.name == name
        assert all(e in experiments for e in figure.experiments), name
        assert figure.table and isinstance(figure.table, str)
        for step in ("analyse", "claims", "plot"):
            function = getattr(figure, step)
            assert callable(function), (name, step)
            assert function.__module__ == f"nmrnn.figures.{name}.{step}", (name, step)
        assert list(inspect.signature(figure.analyse).parameters) == ["experiments", "files"]
        assert list(inspect.signature(figure.plot).parameters)[:2] == ["analysis", "metrics"]
        # a table comes from the per-seed metrics of trained experiments, or from the analysis
        assert bool(figure.experiments) != bool(figure.write_table), name
        assert set(figure.run_files) <= {"params", "losses", "meta"}
        assert bool(figure.run_files) == bool(figure.experiments), name
    tables = [f.table for f in REGISTRY.values()]
    assert len(set(tables)) == len(tables)
    assert CLAIMS_BY_TABLE == {f.table: f.claims for f in REGISTRY.values()}


def test_generic_claims_code_imports_no_figure():
    source = inspect.getsource(claims)
    assert "nmrnn.figures" not in source.replace("``nmrnn.figures", "")
    assert "importlib" not in source


def _alternatives():
    """common.smk's own _alternatives, run on its own (the wildcard constraint builder)."""
    text = (RULES / "common.smk").read_text()
    source = re.search(r"^def _alternatives\(names\):\n(?:    .*\n)+", text, re.M).group(0)
    namespace = {"re": re}
    exec(source, namespace)
    return namespace["_alternatives"]


def test_the_workflows_figure_names_and_constraints_come_from_the_registry():
    common = (RULES / "common.smk").read_text()
    assert "from nmrnn.figures import REGISTRY" in common
    assert "FIGURE_NAMES = tuple(REGISTRY)" in common
    assert "figure=_alternatives(FIGURE_NAMES)," in common
    constraint = _alternatives()(tuple(REGISTRY))
    assert all(re.fullmatch(constraint, name) for name in REGISTRY)
    assert not re.fullmatch(constraint, "fig6") and not re.fullmatch(constraint, "fig")
    # no figure or table list written anywhere else in the workflow
    texts = [p.read_text() for p in sorted(RULES.glob("*.smk"))] + [
        (ROOT / "Snakefile").read_text()
    ]
    for text in texts:
        assert not re.search(r"fig\d\s*\|", text)
        assert not re.search(r"""["'](mwg|multitask|eft|theory)["']\s*,\s*["']""", text)
        assert not re.search(r"""["']fig\d["']\s*:""", text)
    # each registry figure keeps its target rule (figures/ paths and `snakemake figN` unchanged)
    figures = (RULES / "figures.smk").read_text()
    for name in REGISTRY:
        assert re.search(
            rf"^rule {name}:\n    input:\n        f\"{{FIGURES}}/{name}.png\"", figures, re.M
        )


ANALYSE_IN_A_FRESH_PROCESS = """
import os, sys
from nmrnn.figures import analyse_figure
analyse_figure("fig2", {}, [], {}, [], [], sys.argv[1], threads=1)
print(os.environ.get("PJRT_NPROC", "-"), "|", os.environ.get("XLA_FLAGS", ""))
"""


def test_analysis_pins_threads_and_vector_width_like_training(tmp_path):
    # Its float32 results depended on the XLA flags of the shell that started it (the Figure 2
    # theory check gave 1.67e-7 with XLA's defaults, 1.57e-7 with the training jobs' flags).
    import os
    import subprocess
    import sys

    from nmrnn.io import load_tree

    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PJRT_NPROC", "NPROC")}
    env["JAX_PLATFORMS"] = "cpu"
    out = tmp_path / "fig2.npz"
    printed = subprocess.run(
        [sys.executable, "-c", ANALYSE_IN_A_FRESH_PROCESS, str(out)],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.splitlines()[-1]  # fmt: skip
    pool, flags = (part.strip() for part in printed.split("|"))
    assert pool == "1"
    assert "--xla_cpu_prefer_vector_width=512" in flags.split()
    assert "--xla_cpu_multi_thread_eigen=false" in flags.split()
    assert load_tree(str(out))  # the analysis itself was written

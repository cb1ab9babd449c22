"""README.md and docs/: every generated table equals what the committed CSVs give, a changed CSV
makes its table stale, and every relative link resolves (file and heading)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from nmrnn import doctables

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = doctables.documents(ROOT)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def test_documents_exist_and_readme_is_short():
    assert (ROOT / "README.md").is_file()
    assert len(DOCUMENTS) > 1, "no docs/*.md"
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= 200, f"README.md has {lines} lines (at most 200; move detail to docs/)"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_generated_tables_match_the_committed_csvs(path):
    text = path.read_text()
    assert text == doctables.render(text, ROOT, path.name), (
        f"{path.relative_to(ROOT)}: a generated table differs from its CSV; "
        "run `python -m nmrnn.doctables` and commit the result"
    )


def test_the_readme_and_results_have_generated_tables():
    assert "<!-- table:summary -->" in (ROOT / "README.md").read_text()
    for name in ("claims", "mwg", "eft", "multitask", "theory"):
        assert f"<!-- table:{name}" in (ROOT / "docs/results.md").read_text()
    assert "<!-- table:protocols" in (ROOT / "docs/protocols.md").read_text()


@pytest.fixture
def copy(tmp_path):
    """README, docs and figures in a scratch folder, generated blocks up to date."""
    shutil.copytree(ROOT / "figures", tmp_path / "figures")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    assert doctables.main([str(tmp_path)]) == 0
    return tmp_path


def test_a_changed_csv_with_unchanged_documents_fails_the_check(copy, capsys):
    assert doctables.main([str(copy), "--check"]) == 0
    claims = pd.read_csv(copy / "figures/claims.csv")
    claims.loc[claims["claim"] == "1-shorter", "holds"] = ~claims["holds"].astype(bool)
    claims.to_csv(copy / "figures/claims.csv", index=False)
    assert doctables.main([str(copy), "--check"]) == 1
    assert "README.md: stale" in capsys.readouterr().err
    assert doctables.main([str(copy)]) == 0  # regenerated ...
    assert doctables.main([str(copy), "--check"]) == 0  # ... and up to date again


def test_a_changed_metrics_table_makes_its_block_stale(copy):
    mwg = pd.read_csv(copy / "figures/metrics/mwg.csv")
    mwg["mse"] *= 2
    mwg.to_csv(copy / "figures/metrics/mwg.csv", index=False)
    assert copy / "docs/results.md" in doctables.stale(copy)


def test_interval_and_p_holds_columns_appear_only_when_present(copy):
    path = copy / "figures/protocols/eft/protocols.csv"
    assert "| P(holds) |" in doctables.protocols_table(copy, "figures/protocols/eft")
    bare = pd.read_csv(path).drop(columns=["ratio_ci_low", "ratio_ci_high", "p_holds"])
    bare.to_csv(path, index=False)
    table = doctables.protocols_table(copy, "figures/protocols/eft")
    assert "P(holds)" not in table and "95% interval" not in table
    assert table.splitlines()[2].endswith("| holds |")


def test_protocols_table_keeps_the_rows_of_the_claim_it_names(copy):
    # one table holding two claims' rows (as a profile that compares both would write)
    both = pd.concat(
        pd.read_csv(copy / f"figures/protocols/{part}/protocols.csv") for part in ("mwg", "eft")
    )
    (copy / "figures/both").mkdir()
    both.to_csv(copy / "figures/both/protocols.csv", index=False)
    table = doctables.protocols_table(copy, "figures/both 4")
    assert "Sub-claims in each cell: 4-lstm." in table and "1-shorter" not in table
    assert "Sub-claims in each cell: 1-" in doctables.protocols_table(copy, "figures/both 1")
    with pytest.raises(doctables.DocTableError, match="no rows for claim 7"):
        doctables.protocols_table(copy, "figures/both 7")


def test_seeds_table_gives_the_seeds_an_undecided_verdict_needs(copy):
    path = copy / "figures/seeds/matched/protocols.csv"
    seeds = pd.read_csv(path).head(3)
    seeds["seeds_to_decide"] = [float("nan"), 50.0, float("inf")]
    seeds.to_csv(path, index=False)
    rows = doctables.seeds_table(copy, "matched").splitlines()
    assert rows[0].endswith("| seeds to decide |")
    assert [row.split(" | ")[-1] for row in rows[2:]] == [" |", "50 |", "> 200 |"]


def test_outside_checks_fill_their_column(copy):
    assert "| 1-shorter " in doctables.summary(copy, None)
    rows = [  # two NM-RNN keys and one LR-RNN key of the authors' own code, and an EFT run
        ("1", "nmrnn", 13, "final", "mse_shorter", "generated", "", 0.001),
        ("1", "nmrnn", 1, "final", "mse_shorter", "generated", "", 0.003),
        ("1", "lrrnn", 13, "final", "mse_shorter", "generated", "", 0.01),
        ("1", "lrrnn", 13, "final", "mse_longer", "generated", "", 0.5),
        ("4", "lstm", 0, "final", "mse", "generated", "", 2.0),
    ]
    columns = ["claim", "arch", "key", "checkpoint", "metric", "testset", "task", "value"]
    pd.DataFrame(rows, columns=columns).to_csv(copy / "figures/outside.csv", index=False)
    lines = doctables.summary(copy, None).splitlines()

    def cell(claim):
        return next(line for line in lines if line.startswith(f"| {claim} ")).split(" | ")[-1]

    assert cell("1-shorter") == "final: 0.002 vs 0.01 (2 / 1 keys) |"
    assert cell("1-longer") == "not run |"  # no NM-RNN run on that metric
    assert cell("4-lstm") == "not run |"
    assert cell("2-vanilla") == "not run |"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- table:nosuch -->\n<!-- /table -->\n", "unknown table 'nosuch'"),
        ("<!-- table:summary -->\nno end\n", "without its '<!-- /table -->'"),
        ("<!-- table:protocols -->\n<!-- /table -->\n", "table protocols needs a folder"),
        ("<!-- table:comparisons -->\n<!-- /table -->\n", "table comparisons needs a folder"),
        ("<!-- table:claims figures/nowhere -->\n<!-- /table -->\n", "figures/nowhere/claims.csv"),
    ],
)
def test_a_bad_block_is_named_in_one_line(text, message):
    with pytest.raises(doctables.DocTableError, match=re.escape(message)) as error:
        doctables.render(text, ROOT, "doc.md")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (("figures/claims.csv", b"a,b\n1,2\n"), "README.md: <!-- table:summary --> reads a column"),
        (("figures/claims.csv", b""), "figures/claims.csv: not a readable CSV table"),
        (("docs/results.md", b"\xff"), "docs/results.md: not UTF-8 text"),
    ],
)
def test_a_damaged_table_or_document_is_one_line(copy, capsys, damage, message):
    relative, content = damage
    path = copy / relative
    path.write_bytes(content if relative.endswith(".csv") else path.read_bytes() + content)
    assert doctables.main([str(copy), "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", path.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    broken = []
    for target in LINK.findall(FENCE.sub("", path.read_text())):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{path.relative_to(ROOT)}: broken links: {', '.join(broken)}"


def provenance(run: dict | None) -> dict:
    record = {
        "training_jobs": 3,
        "training_wall_s_sum": 5400.0,
        "cpu_count": 2,
        "device": "cpu:cpu",
        "jax_version": "0.10.2",
        "training_commits": ["abcdef0123-dirty"],
    }
    return record if run is None else {**record, "run": run}


def test_the_run_table_reads_the_run_from_provenance(tmp_path):
    run = {
        "invocations": [
            {"started": "A", "ended": "B", "wall_s": 3000.0, "cores": 2},
            {"started": "C", "ended": "D", "wall_s": 600.0, "cores": 2},
        ],
        "run_wall_s": 3600.0,
        "idle_core_s": 1800.0,  # 2 cores x 3600 s - 5400 s of training
    }
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures/PROVENANCE.json").write_text(json.dumps(provenance(run)))
    table = doctables.run_table(tmp_path, None)
    assert "| wall time (start to end of the run) | 1 h 00 min |" in table
    assert "| invocations | 2 (A to B, C to D) |" in table
    assert "| training-job time (sum) | 1 h 30 min |" in table
    assert "| idle core time (cores × wall − training) | 30 min |" in table
    assert "| commit of the training jobs | abcdef0-dirty |" in table
    assert "| machine | 2 CPUs, cpu:cpu, JAX 0.10.2 |" in table  # written before cpu_model
    record = {**provenance(run), "cpu_model": "AMD EPYC 9R14"}
    (tmp_path / "figures/PROVENANCE.json").write_text(json.dumps(record))
    table = doctables.run_table(tmp_path, None)
    assert "| machine | 2 CPUs (AMD EPYC 9R14), cpu:cpu, JAX 0.10.2 |" in table


def test_the_run_table_names_what_it_lacks(tmp_path):
    with pytest.raises(doctables.DocTableError, match="needs figures/PROVENANCE.json"):
        doctables.run_table(tmp_path, None)
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures/PROVENANCE.json").write_text(json.dumps(provenance(None)))
    with pytest.raises(doctables.DocTableError, match="has no 'run' section"):
        doctables.run_table(tmp_path, None)


def test_the_comparisons_table_names_both_sides(tmp_path):
    # fmt: off
    row = {"claim": "4-lstm", "variant": "EFT: GRU vs LSTM", "protocol": "extension",
           "nm": "eft/gru", "baseline": "eft/lstm", "n_nm": 10, "n_baseline": 9,
           "median_nm": 0.0607, "median_baseline": 0.0674, "ratio": 0.9, "p_value": 0.4,
           "holds": True, "ratio_ci_low": 0.274, "ratio_ci_high": 2.86, "p_holds": 0.79}
    # fmt: on
    (tmp_path / "figures/x").mkdir(parents=True)
    pd.DataFrame([row]).to_csv(tmp_path / "figures/x/protocols.csv", index=False)
    table = doctables.comparisons_table(tmp_path, "figures/x")
    assert (
        "| EFT: GRU vs LSTM | 4-lstm | eft/gru (10) | eft/lstm (9) | 0.0607 | 0.0674 "
        "| 0.9 [0.274, 2.86] | 0.4 | yes | 0.79 |"
    ) in table


def test_the_outside_summary_aggregates_keys(tmp_path):
    base = {"claim": 4, "code": "authors", "experiment": "eft", "arch": "lstm",
            "checkpoint": "selected", "metric": "mse", "testset": "generated", "task": None,
            "authors_n": 10, "authors_min": 0.02, "authors_median": 0.1, "authors_max": 30.0,
            "matched_n": 10, "matched_min": 0.01, "matched_median": 0.07,
            "matched_max": 0.3}  # fmt: skip
    rows = [{**base, "key": k, "value": v} for k, v in ((0, 0.04), (1, 0.01), (2, 0.07))]
    # stage-1 multitask rows keep the atan2 rule only
    stage1 = {**base, "claim": 3, "experiment": "multitask", "arch": "nmrnn", "task": "delay_pro"}
    rows += [{**stage1, "key": 13, "metric": m, "value": 99.0}
             for m in ("percent_correct_atan2", "percent_correct_arctan")]  # fmt: skip
    (tmp_path / "figures").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "figures/outside.csv", index=False)
    table = doctables.outside_summary(tmp_path, None)
    assert (
        "| 4 | eft / lstm | selected | mse | generated | 0.04 (0.01–0.07, 3 keys) "
        "| 0.1 (0.02–30, n = 10) | 0.07 (0.01–0.3, n = 10) |"
    ) in table
    assert "percent_correct_atan2" in table and "percent_correct_arctan" not in table

"""The tables of numbers in README.md and docs/*.md, generated from the committed CSVs.

A generated block is the text between a line ``<!-- table:NAME [ARG] -->`` and the next
``<!-- /table -->``; NAME picks a function of :data:`TABLES`, ARG (optional) its argument, e.g.
the folder of a run's outputs (``figures`` or ``figures/authors``) or a claim number.
``python -m nmrnn.doctables [ROOT]`` rewrites every block of ``ROOT/README.md`` and
``ROOT/docs/*.md`` from the tables under ``ROOT/figures``; ``--check`` rewrites nothing and
exits 1 naming each file whose blocks differ from their tables (``tests/test_docs.py`` runs it,
so a changed CSV with unchanged documents fails a test).

Columns that a table may or may not have yet (``p_holds``, ``ratio_ci_low``, ``ratio_ci_high``
of the claims and protocols tables; ``checkpoint`` of a metrics table) are shown when present.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from nmrnn.claims import SEED_COUNTS

BLOCK = re.compile(
    r"^<!-- table:(?P<name>[\w-]+)(?: (?P<arg>[^\n]+?))? -->\n(?P<body>.*?)^<!-- /table -->$",
    re.MULTILINE | re.DOTALL,
)
OPENING = re.compile(r"^<!-- table:", re.MULTILINE)

# The claims of the summary table, in the paper's order, with a short reading of each; a claim
# of claims.csv that is not listed here (other than a -selected or 4-config- row) is shown with
# its own statement.
SHORT_CLAIMS = {
    "1-shorter": "MWG: the NM-RNN extrapolates to shorter intervals better than the LR-RNN",
    "1-longer": "MWG: the same on longer intervals",
    "1-trained": "MWG: both fit the trained intervals",
    "2-vanilla": "MWG: the NM-RNN extrapolates at least as well as the vanilla RNN",
    "2-lstm": "MWG: the NM-RNN extrapolates comparably to the LSTM (ratio in [1/3, 3])",
    "3-lrrnn": "Multitask: retraining only its neuromodulation, the NM-RNN transfers to "
    "Memory Anti better than the LR-RNN",
    "3-frozen-testset": "Multitask: the same on the authors' frozen test set",
    "3-vanilla": "Multitask: the same against the vanilla RNN",
    "3-lstm": "Multitask: the same against the LSTM",
    "4-lrrnn": "EFT: the best NM-RNN beats the LR-RNN",
    "4-vanilla": "EFT: the best NM-RNN beats the vanilla RNN",
    "4-lstm": "EFT: the best NM-RNN reaches LSTM-level MSE",
    "5-decay": "Theory: mode decay matches its closed form",
    "5-lstm": "Theory: an LSTM reproduces the linear NM-RNN",
    "5-lstm-readout": "Theory: and its output",
}
ARCH_ORDER = ("nmrnn", "nmrnn_rank1", "lrrnn", "vanilla", "lstm")


class DocTableError(ValueError):
    """A block names an unknown table, or a table it needs is missing or malformed."""


def number(x: float) -> str:
    """Three significant digits, as the claims table prints its per-seed values."""
    return f"{float(x):.3g}"


def read(root: Path, relative: str) -> pd.DataFrame:
    path = root / relative
    if not path.is_file():
        raise DocTableError(f"{relative}: no such table (run the pipeline that writes it)")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        detail = " ".join(str(error).split())
        raise DocTableError(f"{relative}: not a readable CSV table ({detail})") from None


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def truth(value) -> bool:
    return str(value).strip().lower() == "true"


def verdict(row: pd.Series) -> str:
    """'yes' / '**no**', with P(holds) when the table has it."""
    text = "yes" if truth(row["holds"]) else "**no**"
    if "p_holds" in row.index and pd.notna(row["p_holds"]):
        text += f" (P {float(row['p_holds']):.2f})"
    return text


def ordered_archs(archs) -> list[str]:
    """The NM-RNNs first, then the baselines in ARCH_ORDER, then any other."""
    names = set(archs)

    def key(arch: str) -> tuple:
        rank = ARCH_ORDER.index(arch) if arch in ARCH_ORDER else len(ARCH_ORDER)
        return (not arch.startswith("nmrnn"), rank, arch)

    return sorted(names, key=key)


def base_claims(claims: pd.DataFrame) -> list[str]:
    """Claim ids without the -selected and per-configuration rows, in the table's order."""
    ids = [
        c for c in claims["claim"] if not c.endswith("-selected") and not c.startswith("4-config-")
    ]
    listed = [c for c in SHORT_CLAIMS if c in ids]
    return listed + [c for c in ids if c not in SHORT_CLAIMS]


def claim_cell(claims: pd.DataFrame, claim: str) -> str:
    """Verdict on the final parameters and, where the table has one, on the selected ones."""
    by_id = claims.set_index("claim")
    if claim not in by_id.index:
        return "not run"
    text = verdict(by_id.loc[claim])
    if f"{claim}-selected" in by_id.index:
        text += " / " + verdict(by_id.loc[f"{claim}-selected"])
    return text


# The outside check's metric behind each claim (figures/outside.csv: metric, testset, task) and
# the baseline the NM-RNN is compared with; the NM-RNN side is every ``nmrnn*`` architecture.
OUTSIDE_METRICS = {
    "1-shorter": ("mse_shorter", "generated", "", "lrrnn"),
    "1-longer": ("mse_longer", "generated", "", "lrrnn"),
    "1-trained": ("mse_trained", "generated", "", "lrrnn"),
    "3-lrrnn": ("percent_correct_atan2", "generated", "memory_anti", "lrrnn"),
    "3-frozen-testset": ("percent_correct_atan2", "authors_frozen", "memory_anti", "lrrnn"),
    "4-lstm": ("mse", "generated", "", "lstm"),
    "4-lrrnn": ("mse", "generated", "", "lrrnn"),
}


def outside_cell(outside: pd.DataFrame | None, claim: str) -> str:
    """The authors' own code on a claim: the median of the NM-RNN's runs vs the baseline's, and
    how many runs each (their keys), per checkpoint; 'not run' where either side has none. With
    so few keys a side this is a comparison of values, not a verdict."""
    if outside is None or claim not in OUTSIDE_METRICS:
        return "not run"
    metric, testset, task, baseline = OUTSIDE_METRICS[claim]
    rows = outside[
        (outside["claim"].astype(str).str.split("-").str[0] == claim.split("-")[0])
        & (outside["metric"] == metric)
        & (outside["testset"] == testset)
        & (outside["task"].astype("string").fillna("") == task)
    ]
    nm = rows["arch"].astype(str).str.startswith("nmrnn")
    cells = []
    for checkpoint, part in rows.groupby("checkpoint", sort=False):
        ours, theirs = (
            part.loc[nm[part.index], "value"],
            part.loc[part["arch"] == baseline, "value"],
        )
        if len(ours) and len(theirs):
            cells.append(
                f"{checkpoint}: {number(ours.median())} vs {number(theirs.median())} "
                f"({len(ours)} / {len(theirs)} keys)"
            )
    return "; ".join(cells) if cells else "not run"


def outside_summary(root: Path, arg: str | None) -> str:
    """``figures/outside.csv`` across keys: per claim, experiment, architecture, checkpoint and
    metric, their code's values (median, min–max, number of keys) beside this project's per-seed
    values of the same metric under the ``authors`` protocol and the matched one. Stage-1
    multitask rows are given for the atan2 rule only (the per-key table has both rules)."""
    table = read(root, "figures/outside.csv")
    table["task"] = table["task"].astype("string").fillna("")
    table["testset"] = table["testset"].astype("string").fillna("")
    stage1_arctan = (table["experiment"] == "multitask") & (
        table["metric"] == "percent_correct_arctan"
    )
    table = table[~stage1_arctan]
    keys = ["claim", "experiment", "arch", "checkpoint", "metric", "testset", "task"]
    rows = []
    for group, part in table.groupby(keys, sort=False):
        claim, experiment, arch, checkpoint, metric, testset, task = group
        first = part.iloc[0]
        values = part["value"]
        ours = [
            f"{number(first[f'{side}_median'])} ({number(first[f'{side}_min'])}–"
            f"{number(first[f'{side}_max'])}, n = {int(first[f'{side}_n'])})"
            if pd.notna(first[f"{side}_median"])
            else "–"
            for side in ("authors", "matched")
        ]
        rows.append([
            str(claim), f"{experiment} / {arch}", str(checkpoint), str(metric),
            ", ".join(x for x in (testset, task) if x),
            f"{number(values.median())} ({number(values.min())}–{number(values.max())}, "
            f"{values.size} keys)",
            *ours,
        ])  # fmt: skip
    header = ["claim", "experiment / arch", "checkpoint", "metric", "test set, task",
              "their code: median (min–max)", "`authors` protocol seeds: median (min–max)",
              "matched seeds: median (min–max)"]  # fmt: skip
    return markdown(header, rows)


def summary(root: Path, arg: str | None) -> str:
    """One row per claim: its verdict under the matched protocol, the authors' protocol and,
    where an outside check exists, the authors' own code."""
    matched = read(root, "figures/claims.csv")
    authors = read(root, "figures/authors/claims.csv")
    has_outside = (root / "figures/outside.csv").is_file()
    outside = read(root, "figures/outside.csv") if has_outside else None
    statements = dict(zip(matched["claim"], matched["statement"], strict=True))
    rows = [
        [
            claim,
            SHORT_CLAIMS.get(claim, str(statements.get(claim, ""))),
            claim_cell(matched, claim),
            claim_cell(authors, claim),
            outside_cell(outside, claim),
        ]
        for claim in base_claims(matched)
    ]
    header = [
        "claim",
        "what it says",
        "matched",
        "authors' protocol",
        "authors' code: NM-RNN vs baseline",
    ]
    return markdown(header, rows)


def claims_table(root: Path, arg: str | None) -> str:
    """Every row of a claims table (``ARG/claims.csv``): values, p-value, verdict and, when
    present, the bootstrap interval of the median ratio and P(holds)."""
    claims = read(root, f"{arg or 'figures'}/claims.csv")
    header = ["claim", "values (median across seeds)", "p", "holds"]
    has_ci = {"ratio_ci_low", "ratio_ci_high"} <= set(claims.columns)
    has_p_holds = "p_holds" in claims.columns
    if has_ci:
        header.append("ratio, 95% interval")
    if has_p_holds:
        header.append("P(holds)")
    rows = []
    for _, row in claims.iterrows():
        cells = [
            row["claim"],
            str(row["values"]),
            number(row["p_value"]) if pd.notna(row["p_value"]) else "",
            "yes" if truth(row["holds"]) else "**no**",
        ]
        if has_ci:
            cells.append(ratio_interval(row))
        if has_p_holds:
            cells.append(f"{float(row['p_holds']):.2f}" if pd.notna(row["p_holds"]) else "")
        rows.append(cells)
    return markdown(header, rows)


def ratio_interval(row: pd.Series, with_ratio: bool = True) -> str:
    """'ratio [low, high]' (or the interval alone), blank where the row has no interval."""
    if pd.isna(row.get("ratio_ci_low")) or pd.isna(row.get("ratio_ci_high")):
        return ""
    shown = with_ratio and "ratio" in row.index and pd.notna(row["ratio"])
    ratio = f"{number(row['ratio'])} " if shown else ""
    return f"{ratio}[{number(row['ratio_ci_low'])}, {number(row['ratio_ci_high'])}]"


def protocols_table(root: Path, arg: str | None) -> str:
    """The claim tests under each variant of ``<FOLDER>/protocols.csv`` (ARG: ``FOLDER`` or
    ``FOLDER CLAIM``, e.g. ``figures/protocols/eft`` or ``figures 1``: a run's
    ``protocols.output_dir``, and the claim number whose rows to keep); the sub-claims of a
    variant share a row, separated by ' / '."""
    parts = (arg or "").split()
    if len(parts) not in (1, 2):
        raise DocTableError(
            "table protocols needs a folder and optionally a claim number, e.g. "
            "<!-- table:protocols figures/protocols/eft -->"
        )
    path = f"{parts[0]}/protocols.csv"
    table = read(root, path)
    if len(parts) == 2:
        table = table[table["claim"].astype(str).str.split("-").str[0] == parts[1]]
        if table.empty:
            raise DocTableError(f"{path}: no rows for claim {parts[1]}")
    subclaims = list(dict.fromkeys(table["claim"]))
    extra = [c for c in ("ratio_ci_low", "p_holds") if c in table.columns]
    header = [
        "variant",
        "kind",
        "NM-RNN",
        "baseline",
        "median NM-RNN",
        "median baseline",
        "ratio",
        "p",
        "holds",
    ]
    if "ratio_ci_low" in extra:
        header.append("ratio: 95% interval")
    if "p_holds" in extra:
        header.append("P(holds)")
    rows = []
    for variant, group in table.groupby("variant", sort=False):
        group = group.set_index("claim").reindex([c for c in subclaims if c in set(group["claim"])])

        def joined(column: str, fmt: Callable = number, group=group) -> str:
            return " / ".join(fmt(v) for v in group[column])

        cells = [
            str(variant),
            str(group["protocol"].iloc[0]),
            f"`{group['nm'].iloc[0]}`",
            f"`{group['baseline'].iloc[0]}`",
            joined("median_nm"),
            joined("median_baseline"),
            joined("ratio"),
            joined("p_value", lambda p: f"{float(p):.2g}"),
            joined("holds", lambda h: "yes" if truth(h) else "**no**"),
        ]
        if "ratio_ci_low" in extra:
            cells.append(" / ".join(ratio_interval(r, False) for _, r in group.iterrows()))
        if "p_holds" in extra:
            cells.append(joined("p_holds", lambda p: f"{float(p):.2f}" if pd.notna(p) else ""))
        rows.append(cells)
    caption = f"Sub-claims in each cell: {' / '.join(subclaims)}.\n\n"
    return caption + markdown(header, rows)


def seeds_table(root: Path, arg: str | None) -> str:
    """The claim tests of ``figures/seeds/<ARG>/protocols.csv`` (profiles/seeds: ARG ``matched``,
    profiles/seeds-authors: ``authors``), each pair at the paper's seed count and at the full
    count, with the ratio's 95% interval and P(holds)."""
    if arg not in ("matched", "authors"):
        raise DocTableError(
            "table seeds needs 'matched' or 'authors', e.g. <!-- table:seeds matched -->"
        )
    table = read(root, f"figures/seeds/{arg}/protocols.csv")
    header = ["claim", "variant", "seeds", "median NM-RNN", "median baseline"]
    estimate = "seeds_to_decide" in table.columns
    rows = [
        [str(r["claim"]), str(r["variant"]), f"{int(r['n_nm'])} / {int(r['n_baseline'])}",
         number(r["median_nm"]), number(r["median_baseline"]), *test_cells(r)]
        + ([seeds_to_decide(r["seeds_to_decide"])] if estimate else [])
        for _, r in table.iterrows()
    ]  # fmt: skip
    return markdown(header + TEST_HEADER + (["seeds to decide"] if estimate else []), rows)


def seeds_to_decide(value: Any) -> str:
    """``nmrnn.claims.seeds_to_decide`` as a cell: blank for a decided row, '> N' past the
    largest count it tries."""
    if pd.isna(value):
        return ""
    if math.isinf(float(value)):
        return f"> {max(SEED_COUNTS)}"
    return str(int(value))


TEST_HEADER = ["ratio [95% interval]", "p", "holds", "P(holds)"]


def test_cells(row: pd.Series) -> list[str]:
    """A claim test's ratio with its interval, p-value, verdict and P(holds)."""
    return [
        ratio_interval(row),
        f"{float(row['p_value']):.2g}",
        "yes" if truth(row["holds"]) else "**no**",
        f"{float(row['p_holds']):.2f}",
    ]


def comparisons_table(root: Path, arg: str | None) -> str:
    """Every comparison of ``<ARG>/protocols.csv`` (a run's ``protocols.output_dir``, e.g.
    ``figures/extension``) with its two sides named: the first side's median across seeds
    against the second's, under the test of the claim it names."""
    if not arg:
        raise DocTableError(
            "table comparisons needs a folder, e.g. <!-- table:comparisons figures/extension -->"
        )
    table = read(root, f"{arg}/protocols.csv")
    header = ["variant", "claim test", "first side (seeds)", "second side (seeds)",
              "median first", "median second"]  # fmt: skip
    return markdown(header + TEST_HEADER, [
        [str(r["variant"]), str(r["claim"]), f"{r['nm']} ({int(r['n_nm'])})",
         f"{r['baseline']} ({int(r['n_baseline'])})", number(r["median_nm"]),
         number(r["median_baseline"]), *test_cells(r)]
        for _, r in table.iterrows()
    ])  # fmt: skip


def checkpoints(metrics: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(metrics["checkpoint"])) if "checkpoint" in metrics.columns else [""]


def at_checkpoint(metrics: pd.DataFrame, checkpoint: str) -> pd.DataFrame:
    return metrics if not checkpoint else metrics[metrics["checkpoint"] == checkpoint]


def arch_label(arch: str, checkpoint: str) -> str:
    return f"{arch} ({checkpoint})" if checkpoint else arch


def mwg_table(root: Path, arg: str | None) -> str:
    """MWG: per architecture (and checkpoint), the median across seeds of each seed's mean MSE
    over the intervals of a group, as the claims compute it."""
    metrics = read(root, f"{arg or 'figures'}/metrics/mwg.csv")
    groups = [g for g in ("trained", "shorter", "longer") if g in set(metrics["group"])]
    rows = []
    for checkpoint in checkpoints(metrics):
        part = at_checkpoint(metrics, checkpoint)
        per_seed = part.groupby(["arch", "group", "seed"])["mse"].mean()
        for arch in ordered_archs(part["arch"]):
            seeds = part.loc[part["arch"] == arch, "seed"].nunique()
            n_parameters = part.loc[part["arch"] == arch, "n_parameters"].iloc[0]
            medians = [number(per_seed.loc[arch, group].median()) for group in groups]
            rows.append([arch_label(arch, checkpoint), str(n_parameters), str(seeds), *medians])
    header = ["architecture", "parameters", "seeds", *(f"MSE {g}" for g in groups)]
    return markdown(header, rows)


def spread(values: pd.Series, fmt: Callable = number) -> str:
    return f"{fmt(values.median())} ({fmt(values.min())}–{fmt(values.max())})"


def eft_table(root: Path, arg: str | None) -> str:
    """EFT: per architecture and checkpoint, the test MSE's median (min–max) across seeds."""
    metrics = read(root, f"{arg or 'figures'}/metrics/eft.csv")
    points = checkpoints(metrics)
    rows = []
    for arch in ordered_archs(metrics["arch"]):
        mine = metrics[metrics["arch"] == arch]
        cells = [arch, str(mine["n_parameters"].iloc[0]), str(mine["seed"].nunique())]
        cells += [spread(at_checkpoint(mine, point)["mse"]) for point in points]
        rows.append(cells)
    header = ["architecture", "parameters", "seeds"]
    header += [f"test MSE, {point or 'final'} parameters: median (min–max)" for point in points]
    return markdown(header, rows)


def percent(x: float) -> str:
    return f"{float(x):.1f}"


def multitask_table(root: Path, arg: str | None) -> str:
    """Multitask: per architecture (and checkpoint), percent correct (atan2 rule, median across
    seeds) on the stage-1 tasks and on Memory Anti after transfer: its seeds, the authors' frozen
    test set, the authors' arctan rule; and the parameters retrained in transfer."""
    metrics = read(root, f"{arg or 'figures'}/metrics/multitask.csv")
    stage1 = [t for t in ("delay_pro", "delay_anti", "memory_pro") if t in set(metrics["task"])]
    rows = []
    for checkpoint in checkpoints(metrics):
        part = at_checkpoint(metrics, checkpoint)
        for arch in ordered_archs(part["arch"]):
            mine = part[part["arch"] == arch].sort_values("seed")

            def correct(stage, testset, task, column="percent_correct", mine=mine) -> pd.Series:
                chosen = mine[
                    (mine["stage"] == stage) & (mine["testset"] == testset) & (mine["task"] == task)
                ]
                return chosen[column]

            transfer = correct("transfer", "generated", "memory_anti")
            arctan = correct("transfer", "generated", "memory_anti", "percent_correct_arctan")
            frozen = correct("transfer", "authors_frozen", "memory_anti")
            retrained = mine.loc[mine["stage"] == "transfer", "n_trainable"]
            rows.append(
                [
                    arch_label(arch, checkpoint),
                    *(percent(correct("train_tasks", "generated", t).median()) for t in stage1),
                    percent(transfer.median()),
                    ", ".join(percent(v) for v in transfer),
                    percent(frozen.median()) if len(frozen) else "",
                    percent(arctan.median()),
                    str(retrained.iloc[0]) if len(retrained) else "",
                ]
            )
    header = [
        "architecture",
        *(t.replace("_", " ").title() for t in stage1),
        "Memory Anti after transfer",
        "per seed",
        "frozen test set",
        "arctan rule",
        "retrained",
    ]
    return markdown(header, rows)


def theory_table(root: Path, arg: str | None) -> str:
    """Figure 2's checks of the theory: value, tolerance, passed."""
    theory = read(root, f"{arg or 'figures'}/metrics/theory.csv")
    rows = [
        [
            f"`{r['check']}`",
            number(r["value"]),
            number(r["tolerance"]),
            "yes" if truth(r["passed"]) else "**no**",
        ]
        for _, r in theory.iterrows()
    ]
    return markdown(["check", "value", "tolerance", "passed"], rows)


def hours(seconds: float) -> str:
    """'1 h 52 min' (or '14 min') from seconds."""
    minutes = int(round(float(seconds) / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def short_commit(commit: str) -> str:
    """'1ae5e2f' or '1ae5e2f-dirty' (a working tree that differed from the commit)."""
    return commit[:7] + ("-dirty" if commit.endswith("-dirty") else "")


def run_table(root: Path, arg: str | None) -> str:
    """How a run's outputs came about, from its ``PROVENANCE.json`` (``ARG/PROVENANCE.json``,
    default ``figures``): the run's wall time over its invocations, the training-job time, the
    idle core time, the machine and the commit(s) its training jobs ran at."""
    folder = arg or "figures"
    path = root / folder / "PROVENANCE.json"
    if not path.is_file():
        raise DocTableError(f"table run needs {folder}/PROVENANCE.json, which is missing")
    try:
        record = json.loads(path.read_text())
    except ValueError as error:
        raise DocTableError(f"{folder}/PROVENANCE.json is not JSON ({error})") from None
    run = record.get("run")
    if not run or not run.get("invocations"):
        raise DocTableError(
            f"{folder}/PROVENANCE.json has no 'run' section (written by a run with the "
            f"invocation hooks of workflow/rules/common.smk)"
        )
    invocations = run["invocations"]
    cores = sorted({inv.get("cores") for inv in invocations if inv.get("cores")})
    spans = ", ".join(f"{inv['started']} to {inv['ended'] or 'killed'}" for inv in invocations)
    commits = record.get("training_commits") or [record.get("git_commit", "unknown")]
    cpu = f" ({record['cpu_model']})" if record.get("cpu_model") else ""
    rows = [
        ["wall time (start to end of the run)", hours(run["run_wall_s"])],
        ["invocations", f"{len(invocations)} ({spans})"],
        ["cores", ", ".join(str(c) for c in cores) or "unknown"],
        ["training jobs", str(record["training_jobs"])],
        ["training-job time (sum)", hours(record["training_wall_s_sum"])],
        ["idle core time (cores × wall − training)", hours(run["idle_core_s"])],
        ["commit of the training jobs", ", ".join(short_commit(c) for c in commits)],
        ["machine", f"{record.get('cpu_count')} CPUs{cpu}, {record.get('device')}, "
                    f"JAX {record.get('jax_version')}"],
    ]  # fmt: skip
    return markdown(["", f"{folder}/PROVENANCE.json"], rows)


TABLES: dict[str, Callable[[Path, str | None], str]] = {
    "summary": summary,
    "claims": claims_table,
    "protocols": protocols_table,
    "seeds": seeds_table,
    "comparisons": comparisons_table,
    "mwg": mwg_table,
    "eft": eft_table,
    "multitask": multitask_table,
    "theory": theory_table,
    "run": run_table,
    "outside": outside_summary,
}


def render(text: str, root: Path, source: str = "<text>") -> str:
    """``text`` with every generated block rewritten from the tables under ``root``."""
    if len(OPENING.findall(text)) != len(BLOCK.findall(text)):
        raise DocTableError(f"{source}: a '<!-- table:NAME -->' line without its '<!-- /table -->'")

    def rewrite(match: re.Match) -> str:
        name, arg = match["name"], match["arg"]
        if name not in TABLES:
            raise DocTableError(f"{source}: unknown table {name!r} (known: {', '.join(TABLES)})")
        opening = f"<!-- table:{name}{' ' + arg if arg else ''} -->"
        try:
            table = TABLES[name](root, arg)
        except KeyError as error:  # a table without a column this block reads
            raise DocTableError(
                f"{source}: {opening} reads a column its table lacks: {error}"
            ) from None
        return f"{opening}\n{table}<!-- /table -->"

    return BLOCK.sub(rewrite, text)


def documents(root: Path) -> list[Path]:
    """README.md and every markdown file under docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def text_of(path: Path) -> str:
    """A document's text (DocTableError naming it if it is not UTF-8)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DocTableError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None


def stale(root: Path) -> list[Path]:
    """The documents whose generated blocks differ from their tables."""
    texts = {path: text_of(path) for path in documents(root) if path.is_file()}
    return [
        path
        for path, text in texts.items()
        if render(text, root, str(path.relative_to(root))) != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nmrnn.doctables", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("root", nargs="?", default=".", help="the repository (default: .)")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a block is stale"
    )
    args = parser.parse_args(argv)
    root = Path(args.root)
    if not (root / "README.md").is_file():
        parser.error(f"{root}: not the repository (no README.md there)")
    try:
        changed = stale(root)
        if not args.check:
            for path in changed:
                path.write_text(render(text_of(path), root, str(path.relative_to(root))))
    except DocTableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    for path in changed:
        action = "stale" if args.check else "rewritten"
        print(f"{path.relative_to(root)}: {action}", file=sys.stderr if args.check else sys.stdout)
    if args.check and changed:
        print("run `python -m nmrnn.doctables` to regenerate them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The protocol comparison table: the claim tests of SPEC §6 under labelled variants."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nmrnn.io import UnreadableFile
from nmrnn.protocols import COLUMNS, protocol_table, protocols_provenance, write_protocols

GROUP_OF = {4: "shorter", 14: "trained", 22: "longer"}


def metrics(experiment, arch, mse_by_group, seeds=5, checkpoint=None):
    rows = []
    for seed in range(seeds):
        for interval, group in GROUP_OF.items():
            row = {"experiment": experiment, "arch": arch, "seed": seed, "interval": interval,
                   "group": group, "mse": mse_by_group[group] * (1 + 0.1 * seed)}  # fmt: skip
            if checkpoint:
                row["checkpoint"] = checkpoint
            rows.append(row)
    return pd.DataFrame(rows)


RUN = pd.concat([
    metrics("mwg", "nmrnn", {"shorter": 1e-3, "trained": 1e-5, "longer": 1e-3}),
    metrics("mwg", "lrrnn", {"shorter": 1e-3, "trained": 1e-5, "longer": 1e-3}),
    metrics("mwg", "lrrnn_weak", {"shorter": 1e-1, "trained": 3e-4, "longer": 1e-1}),
])  # fmt: skip
AUTHORS = pd.concat([
    metrics("mwg", "nmrnn", {"shorter": 2e-3, "trained": 2e-5, "longer": 2e-3}, checkpoint="final"),
    metrics("mwg", "nmrnn", {"shorter": 1e-3, "trained": 1e-5, "longer": 1e-3},
            checkpoint="selected"),
    metrics("mwg", "lrrnn", {"shorter": 5e-2, "trained": 5e-2, "longer": 5e-2}, checkpoint="final"),
    metrics("mwg", "lrrnn", {"shorter": 5e-2, "trained": 5e-2, "longer": 5e-2},
            checkpoint="selected"),
])  # fmt: skip
COMPARISONS = [
    {"variant": "matched", "protocol": "matched", "nm": {"arch": "nmrnn"},
     "baseline": {"arch": "lrrnn"}},
    {"variant": "weak baseline", "nm": {"arch": "nmrnn"}, "baseline": {"arch": "lrrnn_weak"}},
    {"variant": "authors", "protocol": "authors",
     "nm": {"table": "authors", "arch": "nmrnn", "checkpoint": "selected"},
     "baseline": {"table": "authors", "arch": "lrrnn", "checkpoint": "selected"}},
]  # fmt: skip


def test_each_variant_is_tested_as_in_the_claims_table():
    table, points = protocol_table(RUN, {"authors": AUTHORS}, COMPARISONS)
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == 9  # 3 variants x 3 claims
    rows = table.set_index(["variant", "claim"])
    # equal distributions: extrapolation claims do not hold; both fit the trained intervals
    assert not rows.loc[("matched", "1-longer"), "holds"]
    assert rows.loc[("matched", "1-longer"), "ratio"] == pytest.approx(1.0)
    assert rows.loc[("matched", "1-trained"), "holds"]
    # a 100x worse baseline: NM-RNN below it (one-sided MWU on 5 vs 5 seeds, p ~ 0.004)
    assert rows.loc[("weak baseline", "1-shorter"), "holds"]
    assert rows.loc[("weak baseline", "1-shorter"), "p_value"] < 0.01
    assert rows.loc[("weak baseline", "1-trained"), "holds"]  # 3e-4 < 0.01: it still fits
    # the other run's table, selected parameters only
    authors = rows.loc[("authors", "1-longer")]
    assert authors["median_nm"] == pytest.approx(1e-3 * 1.2)
    assert authors["n_nm"] == 5 and authors["holds"]
    assert not rows.loc[("authors", "1-trained"), "holds"]  # the baseline does not fit
    nm, base = points[("weak baseline", "1-longer")]
    assert len(nm) == len(base) == 5


def test_a_missing_side_is_named():
    bad = [{"variant": "x", "nm": {"arch": "nmrnn"}, "baseline": {"arch": "lrrnn_missing"}}]
    with pytest.raises(ValueError, match="mwg/lrrnn_missing"):
        protocol_table(RUN, {}, bad)
    selected = [{"variant": "x", "nm": {"arch": "nmrnn", "checkpoint": "selected"},
                 "baseline": {"arch": "lrrnn"}}]  # fmt: skip
    with pytest.raises(ValueError, match="selected"):
        protocol_table(RUN, {}, selected)
    with pytest.raises(ValueError, match="no protocol comparisons"):
        protocol_table(RUN, {}, [])


def test_write_protocols_writes_table_and_figure(tmp_path):
    run_file, authors_file = tmp_path / "run.csv", tmp_path / "authors.csv"
    RUN.to_csv(run_file, index=False)
    AUTHORS.to_csv(authors_file, index=False)
    csv, png = tmp_path / "out" / "protocols.csv", tmp_path / "out" / "protocols.png"
    table = write_protocols([str(run_file)], {"authors": str(authors_file)}, COMPARISONS,
                            str(csv), str(png))  # fmt: skip
    assert png.stat().st_size > 10_000
    again = pd.read_csv(csv)
    assert list(again["variant"]) == list(table["variant"])
    np.testing.assert_allclose(again["ratio"], table["ratio"], rtol=1e-5)


def _meta(path, experiment, arch, seed, commit, wall_s, all_attempts=None):
    meta = {"experiment": experiment, "arch": arch, "seed": seed, "git_commit": commit,
            "wall_s": wall_s}  # fmt: skip
    if all_attempts is not None:
        meta["train_s_all_attempts"] = all_attempts
    path.write_text(json.dumps(meta))
    return str(path)


def test_provenance_names_each_runs_seeds_commits_and_training_time(tmp_path):
    metas = [
        _meta(tmp_path / "a.json", "mwg", "lrrnn", 1, "c2", 10.0, all_attempts=25.0),
        _meta(tmp_path / "b.json", "mwg", "lrrnn", 0, "c1", 20.0, all_attempts=20.0),
        _meta(tmp_path / "c.json", "mwg", "nmrnn", 0, "c1", 7.5),  # trained before it was recorded
    ]
    prov = protocols_provenance(metas, {"authors": "figures/authors/metrics/mwg.csv"})
    lr, nm = prov["runs"]["mwg/lrrnn"], prov["runs"]["mwg/nmrnn"]
    assert lr == {"seeds": [0, 1], "git_commits": ["c2", "c1"], "training_s": 45.0,
                  "last_attempt_only": 0}  # fmt: skip
    assert nm["training_s"] == 7.5 and nm["last_attempt_only"] == 1
    assert prov["training_s_sum"] == 52.5
    assert prov["tables"] == {"authors": "figures/authors/metrics/mwg.csv"}
    assert "git_commit" in prov["rendered_by"]


def test_provenance_names_a_broken_meta_file(tmp_path):
    bad = tmp_path / "meta.json"
    bad.write_text('{"experiment": "mwg"}')
    with pytest.raises(UnreadableFile, match="meta.json"):
        protocols_provenance([str(bad)], {})


def test_provenance_refuses_a_meta_file_of_another_seed(tmp_path):
    path = tmp_path / "results" / "mwg" / "lrrnn" / "seed0" / "meta.json"
    path.parent.mkdir(parents=True)
    _meta(path, "mwg", "lrrnn", 1, "c1", 1.0, all_attempts=1.0)  # seed 1's, copied over seed 0
    with pytest.raises(UnreadableFile, match="seed1.*seed0|seed0.*seed1"):
        protocols_provenance([str(path)], {})


def test_write_protocols_writes_the_provenance_beside_the_table(tmp_path):
    run_file = tmp_path / "run.csv"
    RUN.to_csv(run_file, index=False)
    metas = [_meta(tmp_path / f"{arch}{s}.json", "mwg", arch, s, "c1", 1.0, 1.0)
             for arch in ("nmrnn", "lrrnn") for s in range(5)]  # fmt: skip
    out = tmp_path / "out"
    comparisons = [c for c in COMPARISONS if all("table" not in c[k] for k in ("nm", "baseline"))]
    write_protocols([str(run_file)], {}, comparisons, str(out / "p.csv"), str(out / "p.png"),
                    meta_files=metas, provenance_out=str(out / "p.json"))  # fmt: skip
    prov = json.loads((out / "p.json").read_text())
    assert prov["runs"]["mwg/nmrnn"]["seeds"] == [0, 1, 2, 3, 4]
    assert prov["training_s_sum"] == 10.0


def test_eft_side_best_is_the_lowest_median_nmrnn_configuration():
    rows = []
    for arch, level in (("nmrnn_a", 5.0), ("nmrnn_b", 1.0), ("lstm", 0.1), ("lrrnn", 35.0)):
        for seed in range(10):
            for checkpoint, factor in (("final", 1.0), ("selected", 0.5)):
                rows.append(
                    {
                        "experiment": "eft",
                        "arch": arch,
                        "seed": seed,
                        "checkpoint": checkpoint,
                        "mse": level * factor * (1 + 0.01 * seed),
                    }
                )
    table = pd.DataFrame(rows)  # fmt: skip
    comparisons = [
        {"variant": "v", "nm": {"table": "t", "arch": "best", "checkpoint": "selected"},
         "baseline": {"table": "t", "arch": "lstm", "checkpoint": "selected"}},
        {"variant": "w", "claims": ["4-lrrnn"], "nm": {"table": "t", "arch": "best"},
         "baseline": {"table": "t", "arch": "lrrnn"}},
    ]  # fmt: skip
    result, _ = protocol_table(pd.DataFrame(), {"t": table}, comparisons)
    lstm = result[result["claim"] == "4-lstm"].iloc[0]
    assert lstm["nm"] == "t:nmrnn_b (selected)"
    assert lstm["median_nm"] == pytest.approx(0.5 * 1.045, rel=1e-3)
    assert not lstm["holds"]  # 10x the LSTM's MSE: not LSTM level
    lrrnn = result[result["claim"] == "4-lrrnn"].iloc[0]
    assert lrrnn["holds"] and lrrnn["p_value"] < 1e-3


def test_eft_sides_of_a_run_that_also_holds_mwg_rows_are_tested_on_the_eft_claim():
    # A run's metrics combine MWG rows (with interval groups) and EFT rows (none): an EFT side
    # is still tested on claim 4-lstm, not on the MWG claims.
    eft = pd.DataFrame(
        [
            {"experiment": "eft_select", "arch": arch, "seed": seed, "checkpoint": checkpoint,
             "mse": level * (1 + 0.01 * seed)}
            for arch, level in (("nmrnn_a", 1.0), ("lstm", 1.2))
            for seed in range(10)
            for checkpoint in ("final", "selected")
        ]
    )  # fmt: skip
    run = pd.concat([RUN, eft], ignore_index=True)
    comparisons = [
        {"variant": "eft", "nm": {"experiment": "eft_select", "arch": "best"},
         "baseline": {"experiment": "eft_select", "arch": "lstm"}},
    ]  # fmt: skip
    result, _ = protocol_table(run, {}, comparisons)
    assert list(result["claim"]) == ["4-lstm"]
    assert result.iloc[0]["nm"] == "eft_select/nmrnn_a" and result.iloc[0]["holds"]


def multitask(experiment, arch, anti_accuracy, retrained):
    """Per-seed multitask rows: the four tasks after stage 1 and Memory Anti after transfer,
    on both test sets (the frozen set 5 points lower)."""
    rows = []
    for seed, acc in enumerate(anti_accuracy):
        for testset, shift in (("generated", 0.0), ("authors_frozen", -5.0)):
            rows.append({"experiment": "multitask", "arch": arch, "seed": seed,
                         "stage": "train_tasks", "testset": testset, "task": "memory_anti",
                         "percent_correct": 99.0, "n_trainable": 1500})  # fmt: skip
            rows.append({"experiment": experiment, "arch": arch, "seed": seed,
                         "stage": "transfer", "testset": testset, "task": "memory_anti",
                         "percent_correct": acc + shift, "n_trainable": retrained})  # fmt: skip
    return pd.DataFrame(rows)


def test_multitask_sides_are_tested_on_transfer_accuracy_and_retrained_parameters():
    run = pd.concat([
        RUN,  # MWG rows of the same run: no accuracy, not mixed in
        multitask("multitask_transfer", "nmrnn", [90, 91, 92, 93, 94], 84),
        multitask("multitask_transfer", "lrrnn", [60, 61, 62, 63, 64], 609),
        multitask("multitask_transfer", "lrrnn_few", [60, 61, 62, 63, 64], 50),
    ])  # fmt: skip
    comparisons = [
        {"variant": "v", "nm": {"experiment": "multitask_transfer", "arch": "nmrnn"},
         "baseline": {"experiment": "multitask_transfer", "arch": "lrrnn"}},
        {"variant": "baseline retrains fewer",
         "nm": {"experiment": "multitask_transfer", "arch": "nmrnn"},
         "baseline": {"experiment": "multitask_transfer", "arch": "lrrnn_few"}},
        {"variant": "reversed", "nm": {"experiment": "multitask_transfer", "arch": "lrrnn"},
         "baseline": {"experiment": "multitask_transfer", "arch": "nmrnn"}},
        # another run's table holds stage-1 and transfer rows of every architecture
        {"variant": "table", "nm": {"table": "t", "arch": "nmrnn"},
         "baseline": {"table": "t", "arch": "lrrnn"}},
    ]  # fmt: skip
    other = pd.concat([
        multitask("multitask_transfer", "nmrnn", [70, 71, 72, 73, 74], 84),
        multitask("multitask_transfer", "lrrnn", [90, 91, 92, 93, 94], 609),
    ])  # fmt: skip
    table, points = protocol_table(run, {"t": other}, comparisons)
    rows = table.set_index(["variant", "claim"])
    assert set(table["claim"]) == {"3-transfer", "3-frozen-testset"}
    v = rows.loc[("v", "3-transfer")]
    assert v["median_nm"] == 92 and v["median_baseline"] == 62  # transfer rows, not stage 1
    assert v["p_value"] < 0.01 and v["holds"]
    assert rows.loc[("v", "3-frozen-testset"), "median_nm"] == 87
    # more accurate but not retraining fewer parameters: the claim does not hold
    assert not rows.loc[("baseline retrains fewer", "3-transfer"), "holds"]
    assert not rows.loc[("reversed", "3-transfer"), "holds"]  # one-sided: less accurate
    nm, base = points[("v", "3-transfer")]
    assert list(nm) == [90, 91, 92, 93, 94]
    other_run = rows.loc[("table", "3-transfer")]
    assert other_run["median_nm"] == 72 and other_run["median_baseline"] == 92
    assert not other_run["holds"]


def test_a_comparison_side_must_be_a_claim_experiment():
    from nmrnn.config import ConfigError, read_yaml, validate

    paper = read_yaml(Path(__file__).resolve().parents[1] / "config.yaml")
    side = {"experiment": "multitask_transfer", "arch": "nmrnn"}
    comparison = {"variant": "v", "nm": side, "baseline": {**side, "arch": "lrrnn"}}
    validate({**paper, "protocols": {"comparisons": [comparison]}})  # transfer: claim 3
    stage1 = {**comparison, "nm": {**side, "experiment": "multitask"}}
    with pytest.raises(ConfigError, match="comparisons.0.nm.experiment: 'multitask'"):
        validate({**paper, "protocols": {"comparisons": [stage1]}})


def test_a_comparison_can_test_the_first_seeds_only():
    run = pd.concat([
        metrics("mwg", "nmrnn", {"shorter": 1e-3, "trained": 1e-5, "longer": 1e-3}, seeds=8),
        metrics("mwg", "lrrnn", {"shorter": 1e-1, "trained": 1e-5, "longer": 1e-1}, seeds=8),
    ])  # fmt: skip
    pair = {"nm": {"arch": "nmrnn"}, "baseline": {"arch": "lrrnn"}, "claims": ["1-shorter"]}
    comparisons = [{"variant": "first 3", "seeds": 3, **pair}, {"variant": "all", **pair}]
    table, points = protocol_table(run, {}, comparisons)
    rows = table.set_index("variant")
    assert (rows.loc["first 3", "n_nm"], rows.loc["first 3", "n_baseline"]) == (3, 3)
    assert rows.loc["all", "n_nm"] == 8
    assert rows.loc["first 3", "median_nm"] == pytest.approx(1e-3 * 1.1)  # seeds 0, 1, 2
    assert list(points[("first 3", "1-shorter")][0].index) == [0, 1, 2]


def test_the_protocol_profiles_share_results_without_sharing_an_experiment():
    # profiles/protocols/* all train into results/protocols/: an experiment configured by two of
    # them (even identically) would let one profile's run replace the other's trained seeds
    import yaml

    root = Path(__file__).resolve().parents[1]
    paper = yaml.safe_load((root / "config.yaml").read_text())
    owners: dict[str, str] = {}
    outputs = set()
    parts = sorted((root / "profiles/protocols").glob("*/protocols.yaml"))
    assert {p.parent.name for p in parts} == {"mwg", "eft", "multitask", "multitask-data"}
    for path in parts:
        config = yaml.safe_load(path.read_text())
        assert config["results_dir"] == "results/protocols"
        outputs.add(config["protocols"]["output_dir"])
        # config.yaml's experiments stay on unless the part turns them off
        experiments = {**dict.fromkeys(paper["experiments"], "on"), **config["experiments"]}
        for name, settings in experiments.items():
            if settings is None:
                continue
            assert name not in owners, f"{name}: in {owners.get(name)} and {path.parent.name}"
            owners[name] = path.parent.name
        # every trained side of a comparison is an experiment of this part
        for comparison in config["protocols"]["comparisons"]:
            for side in (comparison["nm"], comparison["baseline"]):
                if "table" not in side:
                    assert owners.get(side.get("experiment", "mwg")) == path.parent.name
    assert len(outputs) == len(parts)  # each part writes its own table

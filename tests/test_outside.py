"""The outside check (nmrnn.outside): a folder in the exported layout, written here from this
project's own networks under the authors' parameter names, must be read back, pass the forward
check and score exactly what this project's evaluation gives; bad folders are refused with one
line naming the problem."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from nmrnn import config as cfg
from nmrnn import experiments as ex
from nmrnn import outside
from nmrnn.configfile import read_yaml
from nmrnn.evaluation import evaluate

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config.yaml"
OVERLAY = ROOT / "profiles" / "authors" / "authors.yaml"


@pytest.fixture(scope="module")
def base():
    return cfg.load(CONFIG, read_yaml(OVERLAY))


def _own_network(base, experiment, arch, seed=3):
    """This project's initial network of one architecture under the authors' settings (its
    variables, its model, and the experiments with no selection, as the outside check uses)."""
    exp = ex.parse(cfg.scaled_experiments(base), experiment)
    model = exp.arch(arch).model
    U = exp.U  # a transfer's model reads the new context column too
    variables = model.init(jax.random.key(seed), jnp.zeros((1, 2, U)))
    variables = jax.tree_util.tree_map(np.asarray, dict(variables))
    return model, variables, U


def _write_run(folder, name, manifest, model, variables, inputs, checkpoints=("final",),
               readout_rows=None):  # fmt: skip
    """One run in the exported layout; 'their' outputs are this project's model's outputs."""
    run = folder / name
    run.mkdir(parents=True)
    params, initial = outside.from_variables(manifest["authors_model"], variables)
    y = np.asarray(model.apply(variables, jnp.asarray(inputs))["y"])
    if readout_rows is not None:  # their MWG LR-RNN: three readout channels, row 0 is ours
        params["readout_weights"] = np.concatenate([params["readout_weights"]] * 3)
        params["readout_bias"] = np.concatenate([params["readout_bias"]] * 3)
        y = np.concatenate([y] * 3, axis=-1)
        manifest = {**manifest, "readout_rows": readout_rows}
    np.savez(run / "initial_state.npz", **initial)
    np.save(run / "check_inputs.npy", np.asarray(inputs, np.float32))
    for ck in checkpoints:
        (run / ck).mkdir()
        np.savez(run / ck / "params.npz", **params)
        np.save(run / ck / "check_outputs.npy", y)
    full = {"authors_commit": "test", "changes": ["none"], "checkpoints": list(checkpoints),
            **manifest}  # fmt: skip
    (run / "manifest.json").write_text(json.dumps(full))
    return run


def _expected(base, experiment, arch, variables, reference=None):
    experiments = cfg.scaled_experiments(base)
    for name in {experiment, experiments[experiment].get("pretrained", experiment)}:
        experiments[name].pop("select_best", None)
    data = ex.make_task_data(ex.data_spec(experiment, base["experiments"][experiment]), 0)
    return evaluate(ex.parse(experiments, experiment), arch, 0, variables, data, reference)


def test_eft_nmrnn_and_lstm_score_as_the_project(base, tmp_path):
    folder = tmp_path / "runs"
    inputs = np.asarray(jax.random.randint(jax.random.key(1), (4, 26, 1), -10, 11), np.float32)
    own = {}
    for arch, model_name in (("nmrnn_5_13_12", "eft_nmrnn"), ("lstm", "eft_lstm")):
        model, variables, _ = _own_network(base, "eft", arch)
        own[arch] = variables
        man = {"claim": "4", "experiment": "eft", "arch": arch, "authors_model": model_name,
               "key": 7}  # fmt: skip
        _write_run(folder, f"eft_{arch}", man, model, variables, inputs, ("final", "selected"))
    table = outside.outside_table(folder, CONFIG, OVERLAY, references={})
    assert len(table) == 4 and set(table["checkpoint"]) == {"final", "selected"}
    assert (table["forward_max_diff"] == 0).all()
    for arch, variables in own.items():
        expected = _expected(base, "eft", arch, variables)["mse"].iloc[0]
        got = table[table["arch"] == arch]["value"].to_numpy()
        np.testing.assert_array_equal(got, [expected, expected])


def test_mwg_lrrnn_three_channels_scored_on_channel_0(base, tmp_path):
    model, variables, _ = _own_network(base, "mwg", "lrrnn")
    assert variables["params"]["L"].shape[0] == 106  # the authors profile's matched N ...
    from nmrnn.tasks.mwg import test_set

    inputs = np.asarray(test_set().inputs)
    man = {"claim": "1", "experiment": "mwg", "arch": "lrrnn", "authors_model": "lrrnn_qr_inv_n",
           "key": 13}  # fmt: skip
    _write_run(tmp_path, "mwg_lrrnn", man, model, variables, inputs, ("selected",), [0])
    table = outside.outside_table(tmp_path, CONFIG, OVERLAY, references={})
    frame = _expected(base, "mwg", "lrrnn", variables)  # ... sized from the parameters: 106
    for group in ("shorter", "trained", "longer"):
        value = table[table["metric"] == f"mse_{group}"]["value"].item()
        assert value == frame[frame["group"] == group]["mse"].mean()


def test_multitask_transfer_both_test_sets(base, tmp_path):
    model, variables, U = _own_network(base, "multitask_transfer", "nmrnn")
    assert U == 7 and model.x_inputs == 3 and model.qr_sign == "householder"
    inputs = np.asarray(jax.random.normal(jax.random.key(2), (3, 100, U)), np.float32)
    man = {"claim": "3", "experiment": "multitask_transfer", "arch": "nmrnn",
           "authors_model": "context_nmrnn", "key": 13}  # fmt: skip
    _write_run(tmp_path, "mt", man, model, variables, inputs, ("selected",))
    table = outside.outside_table(tmp_path, CONFIG, OVERLAY, references={})
    reference = str(CONFIG.parent / base["reference_testset"])
    have_ref = (Path(reference) / "test_inputs.npy").is_file()
    frame = _expected(
        base, "multitask_transfer", "nmrnn", variables, reference if have_ref else None
    )
    assert set(table["testset"]) == set(frame["testset"])
    for _, row in frame.iterrows():
        got = table[(table["testset"] == row["testset"]) & (table["task"] == row["task"])]
        got = got.set_index("metric")["value"]
        assert got["percent_correct_atan2"] == row["percent_correct"]
        assert got["percent_correct_arctan"] == row["percent_correct_arctan"]


def _seed_table(folder, values):
    folder.mkdir(exist_ok=True)
    frame = pd.DataFrame({"experiment": "eft", "arch": "lstm", "seed": range(len(values)),
                          "checkpoint": "final", "mse": values, "n_parameters": 490})  # fmt: skip
    frame.to_csv(folder / "eft.csv", index=False)


def _lstm_run(base, tmp_path):
    """One exported EFT LSTM run in ``tmp_path/runs``, and the MSE this project scores it at."""
    model, variables, _ = _own_network(base, "eft", "lstm")
    inputs = np.zeros((2, 26, 1), np.float32)
    man = {"claim": "4", "experiment": "eft", "arch": "lstm", "authors_model": "eft_lstm", "key": 0}
    _write_run(tmp_path / "runs", "r", man, model, variables, inputs, ("final",))
    return _expected(base, "eft", "lstm", variables)["mse"].iloc[0]


def test_placement_among_project_seeds(base, tmp_path):
    value = _lstm_run(base, tmp_path)
    refs = tmp_path / "authors"
    seeds = [value * 0.5, value * 0.9, value * 2.0, value * 3.0]
    _seed_table(refs, seeds)
    table = outside.outside_table(tmp_path / "runs", CONFIG, OVERLAY, references={"authors": refs})
    row = table.iloc[0]
    assert row["authors_n"] == 4 and row["authors_below"] == 2 and row["authors_place"] == "inside"
    assert row["authors_median"] == pytest.approx(np.median(seeds))
    assert outside.placement(value * 0.1, np.array(seeds))["place"] == "below"
    assert outside.placement(value * 9, np.array(seeds))["place"] == "above"


def test_refresh_places_the_same_values_among_new_seeds(base, tmp_path):
    value = _lstm_run(base, tmp_path)
    refs = {"authors": tmp_path / "a", "matched": tmp_path / "m"}
    _seed_table(refs["authors"], [value * 0.5, value * 2.0])
    _seed_table(refs["matched"], [value * 3.0, value * 4.0, value * 5.0])
    old = outside.outside_table(tmp_path / "runs", CONFIG, OVERLAY, references=refs)
    assert old.iloc[0]["matched_place"] == "below" and old.iloc[0]["authors_place"] == "inside"
    # both protocols retrained: other seeds, other counts
    _seed_table(refs["authors"], [value * 0.1, value * 0.2, value * 0.3, value * 0.4])
    _seed_table(refs["matched"], [value * 0.5, value * 2.0])
    new = outside.refresh_references(old, CONFIG, OVERLAY, references=refs)
    fresh = outside.outside_table(tmp_path / "runs", CONFIG, OVERLAY, references=refs)
    pd.testing.assert_frame_equal(new, fresh, check_dtype=False)
    row = new.iloc[0]
    assert row["value"] == old.iloc[0]["value"]
    assert (row["authors_n"], row["authors_place"], row["authors_below"]) == (4, "above", 4)
    assert (row["matched_n"], row["matched_place"], row["matched_below"]) == (2, "inside", 1)


def test_refresh_command_line(tmp_path, capsys):
    assert outside.main(["--refresh", "--out", str(tmp_path / "none.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "none.csv: no such file to refresh" in err
    for argv in ([], ["--refresh", str(tmp_path)]):  # neither, or both
        with pytest.raises(SystemExit):
            outside.main(argv)
        assert "give either a folder of exported runs or --refresh" in capsys.readouterr().err


def test_committed_table_is_placed_among_the_committed_seeds(tmp_path):
    """figures/outside.csv places their values among the seeds of figures/metrics and
    figures/authors/metrics as they are now (a retrained protocol needs a refresh)."""
    csv = ROOT / "figures" / "outside.csv"
    if not csv.is_file():
        pytest.skip("figures/outside.csv not present")
    committed = pd.read_csv(csv)
    refs = {k: ROOT / v for k, v in outside.REFERENCES.items()}
    refreshed = outside.refresh_references(committed, CONFIG, OVERLAY, references=refs)
    refreshed.to_csv(tmp_path / "r.csv", index=False)  # the same round trip as the file
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "r.csv"), committed, check_dtype=False, obj=(
            "figures/outside.csv is stale: run `python -m nmrnn.outside --refresh --docs "
            "docs/outside.md`"
        ),
    )  # fmt: skip


def test_missing_files_named(base, tmp_path, capsys):
    model, variables, _ = _own_network(base, "eft", "lstm")
    man = {"claim": "4", "experiment": "eft", "arch": "lstm", "authors_model": "eft_lstm", "key": 0}
    run = _write_run(tmp_path, "r", man, model, variables, np.zeros((1, 26, 1)), ("final",))
    (run / "final" / "check_outputs.npy").unlink()
    with pytest.raises(outside.OutsideError, match=r"outside run .*r: missing final/check_outputs"):
        outside.run_folders(tmp_path)
    assert outside.main([str(tmp_path), "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing final/check_outputs.npy" in err
    assert not (tmp_path / "o.csv").exists()
    (run / "manifest.json").unlink()
    with pytest.raises(outside.OutsideError, match="missing manifest.json"):
        outside.run_folders(tmp_path)


def test_damaged_array_and_bad_docs_page_are_one_line_before_anything_is_written(
    base, tmp_path, capsys
):
    model, variables, _ = _own_network(base, "eft", "lstm")
    man = {"claim": "4", "experiment": "eft", "arch": "lstm", "authors_model": "eft_lstm", "key": 0}
    run = _write_run(tmp_path / "runs", "r", man, model, variables, np.zeros((1, 26, 1)))
    out = tmp_path / "o.csv"
    page = tmp_path / "page.md"
    page.write_text("no markers\n")
    for docs, named in ((tmp_path / "none.md", "none.md: no such page for --docs"),
                        (page, "no outside-table markers")):  # fmt: skip
        assert outside.main([str(tmp_path / "runs"), "--out", str(out), "--docs", str(docs)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and named in err
        assert not out.exists()
    (run / "initial_state.npz").write_bytes(b"")
    assert outside.main([str(tmp_path / "runs"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "initial_state.npz: unreadable (the file is empty)" in err
    assert not out.exists()


def test_forward_mismatch_refused(base, tmp_path):
    model, variables, _ = _own_network(base, "eft", "nmrnn_5_13_12")
    man = {"claim": "4", "experiment": "eft", "arch": "nmrnn_5_13_12", "authors_model": "eft_nmrnn",
           "key": 0}  # fmt: skip
    inputs = np.ones((2, 26, 1), np.float32)
    run = _write_run(tmp_path, "bad", man, model, variables, inputs, ("final",))
    y = np.load(run / "final" / "check_outputs.npy")
    np.save(run / "final" / "check_outputs.npy", y + 1e-3)
    with pytest.raises(outside.OutsideError, match=r"differs .* for bad/final"):
        outside.outside_table(tmp_path, CONFIG, OVERLAY, references={})


def test_unknown_parameter_named(base, tmp_path):
    model, variables, _ = _own_network(base, "eft", "lstm")
    man = {"claim": "4", "experiment": "eft", "arch": "lstm", "authors_model": "eft_lstm", "key": 0}
    run = _write_run(tmp_path, "r", man, model, variables, np.zeros((1, 26, 1)), ("final",))
    params = dict(np.load(run / "final" / "params.npz"))
    params["weights_xx"] = params.pop("weights_iu")
    np.savez(run / "final" / "params.npz", **params)
    with pytest.raises(
        outside.OutsideError, match=r"missing \['weights_iu'\], unexpected \['weights_xx'\]"
    ):
        outside.outside_table(tmp_path, CONFIG, OVERLAY, references={})


def test_docs_table_is_generated_from_the_csv(tmp_path):
    """docs/outside.md holds exactly the table that figures/outside.csv gives (so the numbers
    cannot drift); update_docs rewrites only the block between the markers."""
    csv, page = ROOT / "figures" / "outside.csv", ROOT / "docs" / "outside.md"
    if not csv.is_file() or not page.is_file():
        pytest.skip("figures/outside.csv or docs/outside.md not present")
    table = pd.read_csv(csv)
    assert outside.docs_block(page.read_text(), page) == outside.markdown_table(table)
    copy = tmp_path / "page.md"
    copy.write_text(f"intro\n{outside.DOCS_START}\nold\n{outside.DOCS_END}\nafter\n")
    outside.update_docs(copy, table.head(2))
    text = copy.read_text()
    assert text.startswith("intro\n") and text.endswith("\nafter\n")
    assert outside.docs_block(text) == outside.markdown_table(table.head(2))
    with pytest.raises(outside.OutsideError, match="no outside-table markers"):
        outside.docs_block("no markers here", "x.md")


def test_float64_outputs_check_the_equations_beyond_float32_rounding(base, tmp_path):
    """Their outputs in float64: this project's model runs in float64 too, so float64 outputs of
    the same equations pass a 1e-9 bound, and float32 outputs stored as float64 (rounding
    differences only, ~1e-7) do not."""
    model, variables, _ = _own_network(base, "eft", "nmrnn_5_13_12")
    inputs = np.random.default_rng(0).normal(0.0, 5.0, (4, 26, 1)).astype(np.float32)
    with jax.enable_x64(True):
        tree = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), variables)
        y64 = np.asarray(model.apply(tree, jnp.asarray(inputs, jnp.float64))["y"])
    assert y64.dtype == np.float64
    y32 = np.asarray(model.apply(variables, jnp.asarray(inputs))["y"], np.float64)
    assert outside.forward_difference(model, variables, inputs, y64) < 1e-12
    assert outside.forward_difference(model, variables, inputs, y32.astype(np.float32)) < 1e-5
    assert 1e-9 < outside.forward_difference(model, variables, inputs, y32) < 1e-5

    man = {"claim": "4", "experiment": "eft", "arch": "nmrnn_5_13_12", "authors_model": "eft_nmrnn",
           "key": 0}  # fmt: skip
    run = _write_run(tmp_path, "r64", man, model, variables, inputs, ("final",))
    np.save(run / "final" / "check_outputs.npy", y32)  # float32 values, stored as float64
    with pytest.raises(outside.OutsideError, match=r"r64/final \(.* > 1e-09\)"):
        outside.outside_table(tmp_path, CONFIG, OVERLAY, references={})

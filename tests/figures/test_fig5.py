"""Figure 5 (Element Finder Task): claim logic on synthetic metrics, the analysis helpers against
known answers, and analyse() + plot() end to end on tiny networks in the pipeline's file layout."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from nmrnn import claims as cl
from nmrnn import experiments as ex
from nmrnn.architectures import parameter_count
from nmrnn.figures.fig5 import analyse as fig5
from nmrnn.figures.fig5 import claims as claims5
from nmrnn.figures.fig5 import plot as plot5
from nmrnn.io import file_identity, load_tree, save_tree, taskdata_tree
from nmrnn.tasks import eft

CONFIGS = ("nmrnn_5_18_8", "nmrnn_10_14_5")


def _metrics(levels: dict[str, float], seeds: int = 6, spread: float = 0.05) -> pd.DataFrame:
    """One row per (arch, seed): MSE = level × (1 + spread × (seed - mean))."""
    rows = []
    for arch, level in levels.items():
        for s in range(seeds):
            mse = level * (1 + spread * (s - seeds / 2))
            rows.append({"experiment": "eft", "arch": arch, "seed": s, "mse": mse})
    return pd.DataFrame(rows)


def _by_id(rows):
    return {r["claim"]: r for r in rows}


GOOD = {"nmrnn_5_18_8": 3.0, "nmrnn_10_14_5": 1.0, "lstm": 0.9, "lrrnn": 20.0, "vanilla": 30.0}


def test_claims_hold_when_the_nmrnn_is_clearly_better():
    rows = claims5.claims(_metrics(GOOD))
    assert all(tuple(r) == cl.COLUMNS for r in rows)
    by = _by_id(rows)
    assert set(by) == {"4-lstm", "4-lrrnn", "4-vanilla"} | {f"4-config-{c}" for c in CONFIGS}
    assert by["4-lstm"]["holds"] is True and by["4-lrrnn"]["holds"] is True
    assert by["4-vanilla"]["holds"] is True
    assert "nmrnn_10_14_5" in by["4-lstm"]["values"]  # the best config is the one compared
    assert "selection" in by["4-lstm"]["detail"] and "per seed" in by["4-lstm"]["detail"]
    assert by["4-lrrnn"]["p_value"] < cl.ALPHA
    assert by["4-config-nmrnn_10_14_5"]["holds"] is True
    assert by["4-config-nmrnn_5_18_8"]["holds"] is False  # 3.0 / 0.9 > 1.5
    assert "1.5" in by["4-lstm"]["statement"]


def test_claims_fail_with_the_numbers_when_the_nmrnn_is_worse():
    levels = {"nmrnn_5_18_8": 20.0, "nmrnn_10_14_5": 25.0, "lstm": 1.0, "lrrnn": 10.0,
              "vanilla": 12.0}  # fmt: skip
    by = _by_id(claims5.claims(_metrics(levels)))
    assert not any(r["holds"] for r in by.values())
    assert "nmrnn_5_18_8 19.5" in by["4-lstm"]["values"] and by["4-lrrnn"]["p_value"] > 0.5


def test_lstm_level_needs_a_network_that_learned():
    """Both at chance: the ratio is 1 but the claim must not hold."""
    chance = eft.CHANCE_MSE
    levels = {"nmrnn_10_14_5": chance, "lstm": chance}
    by = _by_id(claims5.claims(_metrics(levels)))
    assert by["4-lstm"]["holds"] is False
    levels = {"nmrnn_10_14_5": 1.4, "lstm": 1.0}  # within the factor
    assert _by_id(claims5.claims(_metrics(levels)))["4-lstm"]["holds"] is True
    levels = {"nmrnn_10_14_5": 1.6, "lstm": 1.0}
    assert _by_id(claims5.claims(_metrics(levels)))["4-lstm"]["holds"] is False


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")  # format_values, all-NaN
def test_claims_skip_missing_architectures_and_survive_nans():
    frame = _metrics({"nmrnn_10_14_5": 1.0, "lrrnn": 20.0})
    assert [r["claim"] for r in claims5.claims(frame)] == ["4-lrrnn"]
    assert claims5.claims(_metrics({"lstm": 1.0, "lrrnn": 2.0})) == []
    assert claims5.claims(pd.DataFrame(columns=["experiment", "arch", "seed", "mse"])) == []
    frame = _metrics(GOOD)
    frame.loc[(frame["arch"] == "nmrnn_10_14_5") & (frame["seed"] == 0), "mse"] = np.nan
    by = _by_id(claims5.claims(frame))
    assert by["4-lrrnn"]["holds"] is True and np.isfinite(by["4-lrrnn"]["p_value"])
    assert "NaN" in by["4-lrrnn"]["detail"]
    # a config whose every seed is NaN cannot be the best one
    frame.loc[frame["arch"] == "nmrnn_10_14_5", "mse"] = np.nan
    assert "nmrnn_5_18_8" in _by_id(claims5.claims(frame))["4-lstm"]["values"]


# --- helpers ------------------------------------------------------------------------------------


def test_pearson_and_best_of():
    assert fig5.pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert fig5.pearson([1, 2, 3, 4], [-1, -2, -3, -4]) == pytest.approx(-1.0)
    assert np.isnan(fig5.pearson([1, 1, 1, 1], [1, 2, 3, 4]))
    mse = {"a": np.array([1.0, 5.0, 9.0]), "b": np.array([np.nan, 2.0, 3.0]), "c": [np.nan]}
    assert claims5.best_of(mse, ["a", "b", "c"]) == "b"
    assert claims5.best_of(mse, ["c"]) is None


def test_switch_contrast_finds_a_gain_step_after_the_queried_element():
    T, K = eft.T, 3
    queries = (2, 10, 18)
    s = np.zeros((len(queries), T, K))
    for i, q in enumerate(queries):
        s[i, q + 2 :, 1] = 1.0  # component 1 switches off→on one step after the element
    c = fig5.switch_contrast(s, queries)
    assert c["around"] == pytest.approx(1 / K / 3) and c["elsewhere"] == 0.0
    np.testing.assert_allclose(c["profile"], [0, 0, 0, 0, 0, 1 / K, 0, 0, 0])
    assert fig5.strongest_switching_gain(s, queries) == 1
    np.testing.assert_allclose(fig5.gain_changes(s)[0, 4], 1 / K)
    assert np.isnan(fig5.gain_changes(s)[0, 0])


def test_dynamics_summary_on_ideal_trajectories():
    rng = np.random.default_rng(1)
    n, T = 20, eft.T
    queries = np.asarray(fig5.QUERY_SWEEP, float)
    values = np.asarray(fig5.VALUE_SWEEP, float)
    z = np.broadcast_to(queries[:, None, None], (len(queries), n, T)) + 0.01 * rng.standard_normal(
        (len(queries), n, T)
    )
    s = np.zeros((len(queries), n, T, 2))
    for i, q in enumerate(fig5.QUERY_SWEEP):
        s[i, :, q + 1 :, 0] = 1.0
    y = np.zeros((len(values), n, T))
    y[:, :, fig5.VALUE_SWEEP_QUERY + 1 :] = values[:, None, None]
    summ = fig5.dynamics_summary(z, s, y + 0.01 * rng.standard_normal(y.shape))
    assert summ["z_q_corr_late"] > 0.99 and summ["z_q_corr_early"] > 0.99
    assert summ["s_change_ratio"] == np.inf or summ["s_change_ratio"] > 100
    assert summ["x_value_corr_final"] > 0.99 and summ["x_final_rmse"] < 0.05


# --- end to end on tiny networks ---------------------------------------------------------------


def _tiny_experiments():
    stages = [{"name": "all", "trainable": "all", "steps": 2, "learning_rate": 1e-2}]
    small = {"tau_x": 2, "tau_z": 10, "feedback": True}
    archs = {
        "nmrnn_2_4_2": {"model": "nmrnn", "settings": {"M": 2, "N": 4, "K": 2, **small}},
        "nmrnn_3_3_2": {"model": "nmrnn", "settings": {"M": 3, "N": 3, "K": 2, **small}},
        "lstm": {"model": "lstm", "settings": {"N": "match"}},
    }
    for spec in archs.values():
        spec["stages"] = stages
    exp = {"task": "eft", "seeds": 2, "normalisation": "inv_n", "init_scheme": "eft",
           "match_reference": "nmrnn_2_4_2", "batch": 16, "test_batch": 64,
           "optimizer": {"kind": "adam", "eps": 1e-7}, "archs": archs}  # fmt: skip
    return {"eft": exp}


def _random_variables(model, seed):
    """Variables with the model's structure, without compiling model.init."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 2, 1)))
    rng = np.random.default_rng(seed)
    return {
        col: {k: (0.5 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in tree.items()}
        for col, tree in shapes.items()
    }


def _write_run(root, experiments, selection: bool, pipeline_files):
    """A results folder with the pipeline's layout: data, params and losses of 2 seeds × 3 archs
    (random variables: the analysis does not care whether they were trained). With
    ``selection``, also selected parameters, their step and a validation column, as the export
    of a run with checkpoint selection writes them."""
    exp = ex.parse(experiments, "eft")
    for seed in range(exp.settings["seeds"]):
        data = ex.make_task_data(exp.data, seed)
        path = root / "eft" / "data" / f"seed{seed}.npz"
        save_tree(path, {k: taskdata_tree(v) for k, v in data.items()}, file_identity(path))
        for i, (arch, spec) in enumerate(exp.archs.items()):
            model = spec.model
            folder = root / "eft" / arch / f"seed{seed}"
            variables = _random_variables(model, 10 * seed + i)
            loss = 37.0 * np.exp(-np.arange(450) / (100 + 50 * i)) + seed
            if selection:
                chosen = _random_variables(model, 1000 + 10 * seed + i)
                variables["selected_params"] = {k: 0.1 * v for k, v in chosen["params"].items()}
                lines = "".join(f"eft,{arch},{seed},{t},{v:.6g},{v + 1 if t % 10 == 9 else ''}\n"
                                for t, v in enumerate(loss))  # fmt: skip
                header = "experiment,arch,seed,step,loss,validation_loss\n"
            else:
                lines = "".join(f"eft,{arch},{seed},{t},{v:.6g}\n" for t, v in enumerate(loss))
                header = "experiment,arch,seed,step,loss\n"
            save_tree(folder / "params.npz", variables, file_identity(folder / "params.npz"))
            (folder / "losses.csv").write_text(header + lines)
            if selection:
                meta = {"experiment": "eft", "arch": arch, "seed": seed, "selected_step": 100 + i}
                (folder / "meta.json").write_text(json.dumps(meta))
    return experiments, root, fig5.analyse(experiments, pipeline_files(experiments, root))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, pipeline_files):
    return _write_run(
        tmp_path_factory.mktemp("results"), _tiny_experiments(), False, pipeline_files
    )


@pytest.fixture(scope="module")
def tiny_selected_run(tmp_path_factory, pipeline_files):
    experiments = _tiny_experiments()
    experiments["eft"]["select_best"] = {"every": 10, "trials": 32}
    return _write_run(tmp_path_factory.mktemp("results"), experiments, True, pipeline_files)


def test_analyse_returns_what_the_figure_needs(tiny_run, tmp_path):
    experiments, root, analysis = tiny_run
    save_tree(tmp_path / "fig5.npz", analysis)
    loaded = load_tree(tmp_path / "fig5.npz")
    archs = list(experiments["eft"]["archs"])
    assert list(loaded["meta"]["archs"]) == archs
    assert list(loaded["meta"]["is_nmrnn"]) == [True, True, False]
    exp = ex.parse(experiments, "eft")
    for arch in archs:
        info = loaded["archs"][arch]
        assert info["mse"].shape == (2,) and np.all(np.isfinite(info["mse"]))
        assert info["curve_steps"].shape == info["curve_median"].shape == (fig5.N_CURVE_POINTS,)
        assert np.all(info["curve_q25"] <= info["curve_q75"])
        assert int(info["n_parameters"]) == parameter_count(exp.archs[arch].model, n_inputs=1)
    # the curve of arch 0 decays from 37 (seed 0) / 38 (seed 1): median of the first bin
    assert loaded["archs"]["nmrnn_2_4_2"]["curve_median"][0] == pytest.approx(37.5, rel=0.02)

    dyn = loaded["dynamics"]
    best = str(dyn["arch"])
    medians = {a: np.median(loaded["archs"][a]["mse"]) for a in ("nmrnn_2_4_2", "nmrnn_3_3_2")}
    assert best == min(medians, key=medians.get)
    assert float(dyn["seed_mse"]) == loaded["archs"][best]["mse"].min()
    Q, V, T = len(fig5.QUERY_SWEEP), len(fig5.VALUE_SWEEP), eft.T
    K = experiments["eft"]["archs"][best]["settings"]["K"]
    assert dyn["query_sweep"]["z_pc1"].shape == (Q, T)
    assert dyn["query_sweep"]["s"].shape == (Q, T, K)
    assert dyn["value_sweep"]["y"].shape == (V, T)
    assert 0 <= int(dyn["s_component"]) < K
    for key in ("z_q_corr_late", "s_change_ratio", "x_value_corr_final", "x_final_rmse"):
        assert dyn["summary"][key].shape == ()
    assert loaded["task"]["inputs"].shape == (T,)
    q = int(loaded["task"]["query"])
    assert loaded["task"]["inputs"][q + 1] == loaded["task"]["value"]


def test_analysis_mse_is_the_evaluation_mse(tiny_run):
    """The analysis recomputes the metrics table's number from the data files."""
    from nmrnn.evaluation import evaluate

    experiments, root, analysis = tiny_run
    arch = "lstm"
    params = load_tree(root / "eft" / arch / "seed1" / "params.npz")
    data = load_tree(root / "eft" / "data" / "seed1.npz")
    row = evaluate(ex.parse(experiments, "eft"), arch, 1, params, data)
    assert analysis["archs"][arch]["mse"][1] == pytest.approx(float(row["mse"].iloc[0]), rel=1e-5)


def test_plot_writes_png_and_pdf(tiny_run, tmp_path):
    experiments, _, analysis = tiny_run
    metrics = pd.DataFrame(
        [{"experiment": "eft", "arch": a, "seed": s, "mse": float(analysis["archs"][a]["mse"][s]),
          "n_parameters": int(analysis["archs"][a]["n_parameters"])}
         for a in experiments["eft"]["archs"] for s in range(2)]
    )  # fmt: skip
    save_tree(tmp_path / "fig5.npz", analysis)
    png, pdf = tmp_path / "out" / "fig5.png", tmp_path / "out" / "fig5.pdf"
    plot5.plot(load_tree(tmp_path / "fig5.npz"), metrics, str(png), str(pdf))
    assert png.stat().st_size > 10_000 and pdf.stat().st_size > 5_000
    # metrics missing an arch and no NM-RNN dynamics: still draws
    reduced = {k: v for k, v in load_tree(tmp_path / "fig5.npz").items() if k != "dynamics"}
    plot5.plot(reduced, metrics[metrics["arch"] != "lstm"], str(png), str(pdf))
    assert png.stat().st_size > 10_000


def test_display_names_and_colours():
    assert plot5.display_name("nmrnn_5_18_8", False) == "NM-RNN 5/18/8"
    assert plot5.display_name("lstm") == "LSTM"
    colors = plot5.arch_colors(["nmrnn_a", "nmrnn_b", "lstm", "lrrnn", "vanilla"],
                               [True, True, False, False, False])  # fmt: skip
    assert colors["nmrnn_a"] == "#d62728" and colors["lstm"] == "#2ca02c"
    assert colors["lrrnn"] == "#1f77b4" and colors["vanilla"] == "#7f7f7f"
    assert len(set(colors.values())) == 5


def test_selected_parameters_are_scored_next_to_the_final_ones(tiny_selected_run, tmp_path):
    """A run with checkpoint selection: evaluation rows, analysis, dynamics, claims and plot use
    both parameter sets, each scored on the same test trials."""
    from nmrnn.evaluation import evaluate

    experiments, root, analysis = tiny_selected_run
    data = load_tree(root / "eft" / "data" / "seed1.npz")
    assert data["validation"]["inputs"].shape[0] == 32
    assert not np.array_equal(data["validation"]["inputs"][:8], data["test"]["inputs"][:8])
    rows = {}
    exp = ex.parse(experiments, "eft")
    for arch in exp.archs:
        for seed in (0, 1):
            frame = evaluate(exp, arch, seed,
                             load_tree(root / "eft" / arch / f"seed{seed}" / "params.npz"),
                             load_tree(root / "eft" / "data" / f"seed{seed}.npz"))  # fmt: skip
            assert list(frame["checkpoint"]) == ["final", "selected"]
            rows[arch, seed] = frame
    info = analysis["archs"]["lstm"]
    assert info["mse_selected"][1] == pytest.approx(rows["lstm", 1]["mse"].iloc[1], rel=1e-5)
    assert info["mse"][1] == pytest.approx(rows["lstm", 1]["mse"].iloc[0], rel=1e-5)
    assert info["mse_selected"][1] != pytest.approx(info["mse"][1], rel=1e-3)
    assert list(info["selected_step"]) == [102, 102]
    # validation curves: bins of 450 / 200 steps hold at most one check each; bins without one
    # are NaN, bins with one hold loss + 1
    curves = info["validation_curves"]
    assert curves.shape == info["curves"].shape
    assert np.isnan(curves).any() and np.isfinite(curves).any()
    # the dynamics use the selected parameters of the config with the lowest selected median
    dyn = analysis["dynamics"]
    assert str(dyn["checkpoint"]) == "selected"
    medians = {a: np.median(analysis["archs"][a]["mse_selected"])
               for a in ("nmrnn_2_4_2", "nmrnn_3_3_2")}  # fmt: skip
    assert str(dyn["arch"]) == min(medians, key=medians.get)

    metrics = pd.concat(rows.values(), ignore_index=True)
    ids = [r["claim"] for r in claims5.claims(metrics)]
    assert "4-lstm" in ids and "4-lstm-selected" in ids
    by = _by_id(claims5.claims(metrics))
    assert "checkpoint selection" in by["4-lstm-selected"]["statement"]
    assert "validation" in by["4-lstm-selected"]["metric"]
    png, pdf = tmp_path / "fig5.png", tmp_path / "fig5.pdf"
    save_tree(tmp_path / "fig5.npz", analysis)
    plot5.plot(load_tree(tmp_path / "fig5.npz"), metrics, str(png), str(pdf))
    assert png.stat().st_size > 10_000


def test_experiment_selection_needs_eft_and_validation_trials():
    from nmrnn.config import ConfigError
    from nmrnn.training import Selection

    def parsed(**changes):
        return ex.parse({"eft": dict(_tiny_experiments()["eft"], **changes)}, "eft")

    exp = parsed(select_best={"every": 5, "trials": 8})
    data = [ex.make_task_data(exp.data, s) for s in range(2)]
    chooser = ex.selection(exp, data)
    assert isinstance(chooser, Selection) and chooser.every == 5
    assert chooser.batch.inputs.shape[:2] == (2, 8)
    assert ex.selection(parsed(), data) is None  # not configured
    with pytest.raises(ConfigError, match="regenerate"):
        ex.selection(exp, [{"test": d["test"]} for d in data])
    with pytest.raises(ConfigError, match="available for the eft and decision task"):
        ex.selection(parsed(select_best={"every": 5, "trials": 8}, task="mwg"), data)
    # the authors' rule needs no validation trials, and MWG has it too
    on_train = {"every": 5, "on": "train"}
    chooser = ex.selection(parsed(select_best=on_train), [{"test": d["test"]} for d in data])
    assert chooser.on == "train" and chooser.batch is None
    assert ex.selection(parsed(task="mwg", select_best=on_train), []).on == "train"
    assert ex.selection(parsed(task="multitask", select_best=on_train), []).on == "train"

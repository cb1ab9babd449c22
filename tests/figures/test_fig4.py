"""Figure 4: the claim logic on synthetic metrics, the PCA helpers on known answers, and
analyse() + plot() end to end on tiny untrained networks written in the pipeline's layout."""

import copy
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from nmrnn import claims as cl
from nmrnn import config as C
from nmrnn import experiments as ex
from nmrnn.figures.fig4 import analyse as an
from nmrnn.figures.fig4 import claims as claims4
from nmrnn.figures.fig4 import plot as pl
from nmrnn.io import file_identity, load_tree, save_tree, taskdata_tree
from nmrnn.tasks import multitask as mt
from nmrnn.tasks.common import TaskData

CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


# ----------------------------------------------------------------------------- claims


def _metrics(acc: dict, trainable: dict, frozen: dict | None = None, seeds=5) -> pd.DataFrame:
    """Tidy transfer rows: acc[arch] = per-seed Memory Anti percent correct."""
    rows = []
    for testset, table in (("generated", acc), ("authors_frozen", frozen or {})):
        for arch, vals in table.items():
            for seed, v in enumerate(vals[:seeds]):
                rows.append({"experiment": "multitask_transfer", "arch": arch, "seed": seed,
                             "stage": "transfer", "testset": testset, "task": "memory_anti",
                             "trials": 500, "percent_correct": v, "percent_correct_arctan": v,
                             "loss": 0.1, "n_trainable": trainable[arch],
                             "n_parameters": 1500})  # fmt: skip
    # stage-1 rows must not enter the claim
    rows.append({"experiment": "multitask", "arch": "lrrnn", "seed": 0, "stage": "train_tasks",
                 "testset": "generated", "task": "delay_pro", "trials": 200,
                 "percent_correct": 100.0, "percent_correct_arctan": 100.0, "loss": 0.0,
                 "n_trainable": 1482, "n_parameters": 1482})  # fmt: skip
    return pd.DataFrame(rows)


TRAINABLE = {"nmrnn": 84, "lrrnn": 609, "vanilla": 245, "lstm": 448}
GOOD = [90.0, 92.0, 95.0, 88.0, 91.0]
BAD = [20.0, 35.0, 10.0, 25.0, 30.0]


def _by_id(rows):
    return {r["claim"]: r for r in rows}


def test_claims_hold_when_nmrnn_is_better_with_fewer_parameters():
    frame = _metrics({"nmrnn": GOOD, "lrrnn": BAD, "vanilla": BAD, "lstm": BAD}, TRAINABLE,
                     frozen={"nmrnn": GOOD, "lrrnn": BAD})  # fmt: skip
    rows = _by_id(claims4.claims(frame))
    assert set(rows) == {"3-lrrnn", "3-vanilla", "3-lstm", "3-frozen-testset"}
    for row in rows.values():
        assert set(row) == set(cl.COLUMNS)
        assert row["holds"] is True
        assert row["p_value"] < cl.ALPHA
    assert "84" in rows["3-lrrnn"]["values"] and "609" in rows["3-lrrnn"]["values"]
    assert "90.0" in rows["3-lrrnn"]["detail"]  # per-seed values


def test_claims_fail_when_accuracy_is_not_greater():
    frame = _metrics({"nmrnn": BAD, "lrrnn": GOOD, "vanilla": BAD}, TRAINABLE)
    rows = _by_id(claims4.claims(frame))
    assert rows["3-lrrnn"]["holds"] is False and rows["3-lrrnn"]["p_value"] > 0.5
    assert rows["3-vanilla"]["holds"] is False  # equal accuracy is not "exceeds"
    assert "3-lstm" not in rows and "3-frozen-testset" not in rows  # absent → skipped


def test_claims_fail_without_fewer_retrained_parameters():
    frame = _metrics({"nmrnn": GOOD, "lrrnn": BAD}, {**TRAINABLE, "nmrnn": 1000})
    row = _by_id(claims4.claims(frame))["3-lrrnn"]
    assert row["p_value"] < cl.ALPHA and row["holds"] is False


def test_claims_robust_to_nans_and_missing_archs():
    frame = _metrics({"nmrnn": [90.0, np.nan, 95.0, 92.0, 93.0], "lrrnn": [10.0] * 5}, TRAINABLE)
    rows = _by_id(claims4.claims(frame))
    assert list(rows) == ["3-lrrnn"] and rows["3-lrrnn"]["holds"] is True
    assert claims4.claims(_metrics({"lrrnn": BAD}, TRAINABLE)) == []
    assert claims4.claims(pd.DataFrame()) == []
    nan_trainable = _metrics({"nmrnn": GOOD, "lrrnn": BAD}, {**TRAINABLE, "lrrnn": np.nan})
    assert _by_id(claims4.claims(nan_trainable))["3-lrrnn"]["holds"] is False


def test_claim3_helpers_pick_transfer_rows_and_decide_as_the_claims_table():
    """The public pieces protocols.py reuses: Memory Anti after transfer on one test set, the
    per-seed accuracy, the retrained count and the rule (one-sided test AND fewer retrained)."""
    frame = _metrics({"nmrnn": GOOD, "lrrnn": BAD}, TRAINABLE, frozen={"nmrnn": BAD})
    generated = claims4.transfer_rows(frame, "generated")
    assert set(generated["task"]) == {"memory_anti"} and set(generated["stage"]) == {"transfer"}
    assert len(generated) == 10 and len(claims4.transfer_rows(frame, "authors_frozen")) == 5
    bare = generated.drop(columns=["stage", "testset"])  # a table of transfer rows only
    assert len(claims4.transfer_rows(bare)) == 10
    with pytest.raises(ValueError, match="unknown test set 'frozen'"):
        claims4.transfer_rows(frame, "frozen")
    acc = claims4.per_seed_accuracy(generated, "nmrnn")
    assert list(acc.index) == list(range(5)) and list(acc) == GOOD
    assert claims4.retrained(generated, "lrrnn") == 609
    assert np.isnan(claims4.retrained(generated.assign(n_trainable=np.nan), "lrrnn"))
    won = claims4.transfer_test(acc, claims4.per_seed_accuracy(generated, "lrrnn"), 84, 609)
    assert won["better"] and won["fewer"] and won["holds"] and won["p_value"] < cl.ALPHA
    costly = claims4.transfer_test(acc, claims4.per_seed_accuracy(generated, "lrrnn"), 700, 609)
    assert costly["better"] and not costly["fewer"] and not costly["holds"]
    assert not claims4.transfer_test(acc, acc, 84, 609)["holds"]  # equal is not greater


# ----------------------------------------------------------------------------- helpers


def test_separation_and_angle_tuning_known_values():
    a = np.array([[0.0], [2.0]])  # mean 1, var 2
    b = np.array([[4.0], [6.0]])  # mean 5, var 2
    in_a = np.array([1, 1, 0, 0], bool)
    sep = an.separation(np.vstack([a, b]), in_a, ~in_a)
    np.testing.assert_allclose(sep, [4.0 / np.sqrt(2.0)])
    assert np.isnan(an.separation(a, np.array([1, 0], bool), np.array([0, 1], bool))).all()

    angle = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    noise = np.random.default_rng(1).normal(size=200)
    r2 = an.angle_r2(np.stack([np.cos(angle) + 2, 3 * np.sin(angle + 1), noise], 1), angle)
    np.testing.assert_allclose(r2[:2], 1.0, atol=1e-12)
    assert r2[2] < 0.1


def test_pca_epoch_finds_ring_and_pro_anti_axis():
    """States on a ring in two dims plus a Pro/Anti offset in a third, smaller one: the ring
    PCs are the first two and the Pro/Anti separation peaks on PC3."""
    rng = np.random.default_rng(2)
    n = 300
    task = np.tile([0, 1, 2], n // 3)
    theta = rng.uniform(0, 2 * np.pi, n)
    x = np.zeros((n, 5, 20))
    state = np.zeros((n, 20))
    state[:, 0], state[:, 1] = 4 * np.cos(theta), 4 * np.sin(theta)
    state[:, 2] = np.where(task == 1, 1.0, -1.0)
    state += 0.05 * rng.normal(size=state.shape)
    x[:, 3] = state
    ev = {"task": task, "theta": theta, "answer": np.mod(theta + np.pi * (task == 1), 2 * np.pi)}
    out = an._pca_epoch(x, ev, np.full(n, 3))
    assert list(out["ring_pcs"]) == [0, 1]
    assert int(np.nanargmax(out["separation_pro_anti"])) == 2
    assert out["separation_pro_anti"][2] > 10
    assert out["angle_r2_theta"][0] > 0.95 and out["angle_r2_theta"][2] < 0.05


def test_small_helpers():
    assert an.median_index([3.0, 1.0, 2.0]) == 2
    assert an.median_index([5.0, np.nan, 1.0, 9.0]) == 2  # NaN ranks lowest; lower median
    assert an.typical_trial(np.array([10, 50, 30, 70, 40]), np.array([0, 0, 0, 1, 1]), 0) == 2
    assert an.typical_trial(np.array([1]), np.array([0]), 3) == -1
    y = np.array([[0.8, 1.0, 0.0], [0.0, 0.0, -1.0], [0, -1.0, 0.0]])
    np.testing.assert_allclose(an.decoded_angle(y), [np.pi / 2, np.pi, 3 * np.pi / 2])
    ex_trials = an.example_trials()
    assert ex_trials.inputs.shape == (4, mt.T, 7)
    assert list(ex_trials.events["task"]) == [0, 1, 2, 3]
    assert np.ptp(ex_trials.events["theta"]) == 0  # one θ for the four tasks


# ----------------------------------------------------------------------------- end to end


def _tiny_experiments(archs=("nmrnn", "lrrnn")):
    tiny = {"seeds": 2, "pool_per_task": 4, "test_per_task": 6}
    settings = {"nmrnn": {"N": 8, "M": 3, "K": 2, "tau_x": 10, "tau_z": 100},
                "lrrnn": {"N": "match", "K": 2, "tau_x": 10}}  # fmt: skip
    cfg = C.load(CONFIG, {"experiments": {
        "multitask": {**tiny, "archs": {a: {"settings": settings[a]} for a in settings}},
        "multitask_transfer": {"seeds": 2, "pool": 4, "test_trials": 8}}})  # fmt: skip
    exps = C.scaled_experiments(cfg)
    for name in ("mwg", "eft"):
        exps.pop(name)
    for name in ("multitask", "multitask_transfer"):
        exps[name]["archs"] = {a: s for a, s in exps[name]["archs"].items() if a in archs}
    return exps


def _random_variables(model, n_inputs: int, rng) -> dict:
    """Untrained variables of the model's shapes (traced, never compiled: keeps the test fast)."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 2, n_inputs)))
    params = {k: rng.normal(size=v.shape) / np.sqrt(v.shape[-1])
              for k, v in shapes["params"].items()}  # fmt: skip
    constants = {k: np.full(v.shape, 0.1) for k, v in shapes["constants"].items()}
    return {"params": params, "constants": constants}


def _write_untrained_run(exps, root: Path):
    """Untrained stage-1 variables, the same widened by a 0.1 context column for transfer, and
    task data (6 trials of each training task, 8 Memory Anti trials), in the results layout."""
    tasks = np.r_[np.repeat([0, 1, 2], 6), np.full(8, mt.MEMORY_ANTI)]
    trials = jax.tree.map(np.asarray, mt.sample_trials(jax.random.key(0), tasks, n_contexts=4))
    first = TaskData(*(a[:18] for a in trials[:3]), {k: v[:18] for k, v in trials.events.items()})
    first = first._replace(inputs=first.inputs[..., :6])
    second = TaskData(*(a[18:] for a in trials[:3]), {k: v[18:] for k, v in trials.events.items()})
    rng = np.random.default_rng(0)
    stage1 = ex.parse(exps, "multitask")
    for seed in range(2):
        for name, data in (("multitask", first), ("multitask_transfer", second)):
            tree = {"train": taskdata_tree(data), "test": taskdata_tree(data)}
            path = root / name / "data" / f"seed{seed}.npz"
            save_tree(path, tree, file_identity(path))
        for arch, spec in stage1.archs.items():
            model = spec.model
            v = _random_variables(model, 6, rng)
            path = root / "multitask" / arch / f"seed{seed}" / "params.npz"
            save_tree(path, v, file_identity(path))
            inputs = set(model.PARAM_GROUPS["inputs"])
            wide = {
                k: np.concatenate([a, np.full(a.shape[:-1] + (1,), 0.1)], -1)
                if k in inputs and a.shape[-1] == 6
                else a
                for k, a in v["params"].items()
            }
            path = root / "multitask_transfer" / arch / f"seed{seed}" / "params.npz"
            save_tree(path, {**v, "params": wide}, file_identity(path))


def _fake_metrics(exps) -> pd.DataFrame:
    rows = []
    for arch in exps["multitask"]["archs"]:
        for seed in range(2):
            for testset in ("generated", "authors_frozen"):
                for task in mt.TASK_NAMES[:3]:
                    rows.append({"experiment": "multitask", "arch": arch, "seed": seed,
                                 "stage": "train_tasks", "testset": testset, "task": task,
                                 "percent_correct": 50.0 + 10 * seed})  # fmt: skip
                rows.append({"experiment": "multitask_transfer", "arch": arch, "seed": seed,
                             "stage": "transfer", "testset": testset, "task": "memory_anti",
                             "percent_correct": 30.0 + 20 * seed,
                             "n_trainable": {"nmrnn": 84, "lrrnn": 609}[arch]})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    exps = _tiny_experiments()
    _write_untrained_run(exps, root)
    return exps, root


def test_analyse_and_plot_end_to_end(tiny_run, tmp_path, pipeline_files):
    exps, root = tiny_run
    analysis = an.analyse(exps, pipeline_files(exps, root))
    save_tree(tmp_path / "fig4.npz", analysis)  # must be storable (no pickles, no objects)
    loaded = load_tree(tmp_path / "fig4.npz")
    assert loaded["tasks"]["inputs"].shape == (4, mt.T, 7)
    assert loaded["gains"]["s"].shape == (4, mt.T, 2)  # 3 stage-1 tasks + Memory Anti
    assert list(loaded["gains"]["task"]) == [0, 1, 2, 3]
    assert int(loaded["nmrnn_seed"]) in (0, 1)
    pre = loaded["pca"]["pre_go"]
    assert pre["scores"].shape == (18, 6) and pre["separation_pro_anti"].shape == (6,)
    assert set(loaded["outputs"]) == {"nmrnn", "lrrnn"}
    assert loaded["outputs"]["nmrnn"]["decoded_last"].shape == (8,)
    assert loaded["outputs"]["nmrnn"]["y"].shape == (mt.T, 3)

    metrics = _fake_metrics(exps)
    png, pdf = tmp_path / "fig4.png", tmp_path / "fig4.pdf"
    pl.plot(loaded, metrics, str(png), str(pdf))
    assert png.stat().st_size > 10_000 and pdf.stat().st_size > 10_000


def test_plot_tolerates_missing_panels(tmp_path):
    png, pdf = tmp_path / "empty.png", tmp_path / "empty.pdf"
    empty = {"tasks": {}, "gains": {}, "pca": {}, "outputs": {}}
    pl.plot(empty, pd.DataFrame(), str(png), str(pdf))
    assert png.stat().st_size > 0 and pdf.stat().st_size > 0


def test_analyse_without_nmrnn(tiny_run, tmp_path, pipeline_files):
    exps, root = tiny_run
    only_lr = copy.deepcopy(exps)
    for name in ("multitask", "multitask_transfer"):
        only_lr[name]["archs"] = {"lrrnn": only_lr[name]["archs"]["lrrnn"]}
    only_lr["multitask"]["archs"]["lrrnn"]["settings"]["N"] = (
        ex.parse(exps, "multitask").archs["lrrnn"].settings["N"]
    )  # the size matched to the (now absent) NM-RNN
    analysis = an.analyse(only_lr, pipeline_files(only_lr, root))
    assert analysis["gains"] == {} and analysis["pca"] == {} and int(analysis["nmrnn_seed"]) == -1
    assert list(analysis["outputs"]) == ["lrrnn"]
    pl.plot(analysis, pd.DataFrame(), str(tmp_path / "a.png"), str(tmp_path / "a.pdf"))
    assert (tmp_path / "a.png").stat().st_size > 0


def test_transfer_panel_labels_do_not_overlap():
    # the measured retrained counts: LSTM (448) and LR-RNN (609) sit close on the log axis
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc = {arch: GOOD for arch in TRAINABLE}
    fig, ax = plt.subplots(figsize=(5, 3.5))
    pl._draw_transfer_accuracy(ax, _metrics(acc, TRAINABLE, frozen=acc))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts if "retrained" in t.get_text()]
    plt.close(fig)
    assert len(boxes) == len(TRAINABLE)
    overlapping = [
        (i, j) for i in range(len(boxes)) for j in range(i) if boxes[i].overlaps(boxes[j])
    ]
    assert not overlapping


def test_selected_parameters_are_scored_claimed_and_carried_into_transfer():
    """With select_best on: train (the authors' rule) multitask metrics have final and selected
    rows, claims are made for both, and the transfer starts from the selected parameters."""
    from nmrnn.evaluation import evaluate, expected_table

    final = _metrics({"nmrnn": GOOD, "lrrnn": BAD}, TRAINABLE).assign(checkpoint="final")
    chosen = _metrics({"nmrnn": BAD, "lrrnn": GOOD}, TRAINABLE).assign(checkpoint="selected")
    rows = _by_id(claims4.claims(pd.concat([final, chosen], ignore_index=True)))
    assert rows["3-lrrnn"]["holds"] and not rows["3-lrrnn-selected"]["holds"]

    exps = _tiny_experiments()
    for name in exps:
        exps[name]["select_best"] = {"on": "train", "every": 1}
    parsed = {}
    stage1 = ex.parse(exps, "multitask", parsed)
    model = stage1.archs["nmrnn"].model
    rng = np.random.default_rng(1)
    variables = _random_variables(model, 6, rng)
    variables["selected_params"] = _random_variables(model, 6, rng)["params"]
    data = ex.make_task_data(stage1.data, 0)
    frame = evaluate(stage1, "nmrnn", 0, variables, data)
    assert list(frame.columns) == expected_table(stage1, "nmrnn")["columns"]
    assert list(frame["checkpoint"]) == ["final"] * 3 + ["selected"] * 3

    transfer = ex.parse(exps, "multitask_transfer", parsed)
    assert transfer.source is stage1  # read once
    start = ex.initial_variables(transfer, "nmrnn", [0], [variables])
    widened = np.asarray(start["params"]["B_z"][0])
    np.testing.assert_allclose(widened[:, :-1], variables["selected_params"]["B_z"], rtol=1e-6)

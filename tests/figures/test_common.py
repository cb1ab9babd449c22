"""The figures' shared helpers: the files an analysis is given, running a network, PCA, loss
binning, and the drawing conventions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.figure import Figure

from nmrnn.architectures import build_model
from nmrnn.figures import common, style
from nmrnn.steps import bin_losses, step_bins


def test_run_files_pair_each_run_with_its_files_and_name_what_is_missing():
    files = common.RunFiles.from_lists(
        [("mwg", "nmrnn", 0), ["mwg", "lrrnn", "1"]],
        {"params": ["a.npz", "b.npz"], "losses": ["a.csv", "b.csv"]},
        [("mwg", 0)],
        ["d0.npz"],
    )
    assert files.file("mwg", "lrrnn", 1) == "b.npz"
    assert files.file("mwg", "nmrnn", 0, "losses") == "a.csv"
    assert files.task_data("mwg", 0) == "d0.npz"
    with pytest.raises(FileNotFoundError, match="meta file of mwg/nmrnn seed 0"):
        files.file("mwg", "nmrnn", 0, "meta")
    with pytest.raises(FileNotFoundError, match="task data of mwg seed 1"):
        files.task_data("mwg", 1)
    with pytest.raises(ValueError):  # a list of files that does not match the runs
        common.RunFiles.from_lists([("mwg", "nmrnn", 0)], {"params": []})


def test_runner_overrides_nmrnn_gains_only_when_asked():
    model = build_model({"model": "nmrnn", "N": 6, "M": 2, "K": 2, "tau_x": 2, "tau_z": 4, "O": 1})
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 2, 3)))
    inputs = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 3))
    run = common.runner(model)
    free = run(common.jnp_tree(variables), inputs)
    held = run(variables, inputs, jnp.full((2, 5, 2), 0.3), jnp.array([True, False]))
    np.testing.assert_allclose(np.asarray(held["s"][..., 0]), 0.3)
    # the same program as the figures' former per-figure runners: identical numbers
    former = jax.jit(lambda v, i: model.apply(v, i))(variables, inputs)
    np.testing.assert_array_equal(np.asarray(free["y"]), np.asarray(former["y"]))


def test_loss_bins_are_the_curves_tables_bins():
    bins = step_bins(10, 4)
    assert [list(b) for b in bins] == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    loss = np.arange(10.0)
    steps, values = common.bin_curve(loss, 4)
    rows = bin_losses(loss, None, 4)
    np.testing.assert_allclose(values, [r[2] for r in rows])
    np.testing.assert_allclose(steps, [b.mean() for b in bins])


def test_bin_curve_averages_contiguous_bins():
    steps, values = common.bin_curve(np.arange(10.0), 5)
    np.testing.assert_allclose(steps, [0.5, 2.5, 4.5, 6.5, 8.5])
    np.testing.assert_allclose(values, [0.5, 2.5, 4.5, 6.5, 8.5])
    steps, values = common.bin_curve([3.0, np.nan, 1.0], 200)  # shorter than n_points: unchanged
    np.testing.assert_allclose(steps, [0, 1, 2])
    assert np.isnan(values[1]) and values[2] == 1.0
    steps, values = common.bin_curve(np.ones(20_000), 200)
    assert steps.shape == values.shape == (200,)


def test_pca_recovers_a_known_direction():
    rng = np.random.default_rng(0)
    direction = np.array([3.0, 4.0, 0.0]) / 5.0
    data = np.outer(rng.standard_normal(500) * 5, direction) + 0.01 * rng.standard_normal((500, 3))
    out = common.pca(data + 7.0)
    np.testing.assert_allclose(np.abs(out["components"][0]), direction, atol=1e-3)
    assert out["explained"][0] > 0.999 and out["explained"].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(out["mean"], data.mean(0) + 7.0)


def test_pca_recovers_known_axes_and_variances():
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    latent = rng.normal(size=(4000, 3)) * np.array([3.0, 2.0, 1.0])
    X = latent @ basis[:, :3].T + 5.0
    fit = common.pca(X, 6)
    assert fit["components"].shape == (6, 10)
    for k in range(3):
        assert abs(abs(fit["components"][k] @ basis[:, k]) - 1) < 1e-2
    np.testing.assert_allclose(fit["explained"][:3], np.array([9, 4, 1]) / 14, atol=0.02)
    np.testing.assert_allclose(fit["explained"][3:], 0, atol=1e-12)
    np.testing.assert_allclose(fit["components"] @ fit["components"].T, np.eye(6), atol=1e-10)
    np.testing.assert_allclose(fit["scores"] @ fit["components"] + fit["mean"], X, atol=1e-9)


def test_pca_keeps_every_component_without_a_count():
    rng = np.random.default_rng(1)
    fit = common.pca(rng.normal(size=(50, 4)))
    assert fit["components"].shape == (4, 4) and fit["scores"].shape == (50, 4)
    assert fit["explained"].sum() == pytest.approx(1.0)


def test_style_names_colours_letters_and_saves(tmp_path):
    assert style.arch_label("lrrnn") == "LR-RNN" and style.arch_label("other") == "other"
    assert set(style.ARCH_LABELS) == set(style.ARCH_COLORS)
    fig = Figure(figsize=(2, 2))
    ax = fig.add_subplot()
    style.panel_letter(fig, ax, "A", dx=0.04, dy=0.01)
    style.empty_panel(fig.add_subplot(2, 2, 4), "nothing")
    assert [t.get_text() for t in fig.texts] == ["A"]
    style.save_figure(fig, tmp_path / "a" / "f.png", tmp_path / "b" / "f.pdf", dpi=50)
    assert (tmp_path / "a" / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "b" / "f.pdf").read_bytes()[:4] == b"%PDF"

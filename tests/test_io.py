"""The pipeline's files: written atomically, and refused naming the file (with what to do) when
they are cut short, corrupt or hold other rows or steps than the config implies (issue #16)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from nmrnn.io import (
    UnreadableFile,
    atomic_path,
    atomic_paths,
    load_task_data,
    load_tree,
    save_tree,
    write_csv,
    write_json,
    write_text,
)
from nmrnn.steps import collect_tables, curves_table, export_seed, write_provenance

# The metrics tables' expectations per task are tested in test_evaluation.py; here one MWG
# experiment gives the tables to collect.
ARCH = {"settings": {"N": 4}, "stages": [{"trainable": "all", "steps": 1, "learning_rate": 0.01}]}
EXPERIMENTS = {
    "mwg": {
        "task": "mwg",
        "archs": {"lstm": {"model": "lstm", **ARCH}, "nmrnn": {"model": "vanilla", **ARCH}},
    }
}


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


# ----------------------------------------------------------------------------- npz


@pytest.fixture
def tree_file(tmp_path):
    path = tmp_path / "params.npz"
    save_tree(path, {"params": {"w": np.arange(200.0).reshape(10, 20), "b": np.ones(3)}})
    return path


def test_tree_round_trip_leaves_no_temporary_file(tree_file):
    tree = load_tree(tree_file)
    assert tree["params"]["w"].shape == (10, 20)
    assert leftovers(tree_file.parent) == []


@pytest.mark.parametrize("size", [0, 10, 300, -20])
def test_truncated_npz_is_named(tree_file, size):
    data = tree_file.read_bytes()
    tree_file.write_bytes(data[:size])
    with pytest.raises(UnreadableFile) as error:
        load_tree(tree_file)
    message = one_line(error)
    assert message.startswith(f"{tree_file}: ")
    assert "empty" in message if size == 0 else "truncated or corrupt" in message
    assert "--force" in message and "regenerate it with `snakemake" in message


def test_random_bytes_are_named(tmp_path):
    path = tmp_path / "params.npz"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(UnreadableFile) as error:
        load_tree(path)
    message = one_line(error)
    assert str(path) in message and "pickled" in message and "--force" in message


def test_corrupt_member_is_named(tree_file):
    data = bytearray(tree_file.read_bytes())
    data[120] ^= 0xFF  # inside the first array's data: a CRC error on reading it
    tree_file.write_bytes(bytes(data))
    with pytest.raises(UnreadableFile, match="truncated or corrupt") as error:
        load_tree(tree_file)
    assert str(tree_file) in one_line(error)


def test_npy_under_an_npz_name_is_named(tmp_path):
    path = tmp_path / "params.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.ones(3))
    with pytest.raises(UnreadableFile, match="not an .npz archive"):
        load_tree(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing file"):
        load_tree(tmp_path / "absent.npz")


def test_hint_replaces_the_default_advice(tree_file):
    tree_file.write_bytes(b"")
    with pytest.raises(UnreadableFile) as error:
        load_tree(tree_file, hint="run this")
    assert one_line(error).endswith("; run this")


# ----------------------------------------------------------------------------- task data


def task_tree(n=4):
    return {
        "inputs": np.zeros((n, 5, 3), np.float32),
        "targets": np.zeros((n, 5, 1), np.float32),
        "mask": np.ones((n, 5, 1), np.float32),
        "events": {"interval": np.arange(n)},
    }


def test_task_data_loads_as_taskdata(tmp_path):
    from nmrnn.tasks.common import TaskData

    path = tmp_path / "mwg" / "data" / "seed0.npz"
    save_tree(path, {"train": task_tree(), "test": task_tree(2)}, {"experiment": "mwg", "seed": 0})
    data = load_task_data(path, splits=("test",))
    assert set(data) == {"train", "test"}
    assert isinstance(data["test"], TaskData) and data["test"].inputs.shape == (2, 5, 3)
    assert list(data["train"].events["interval"]) == [0, 1, 2, 3]


def test_unreadable_task_data_names_the_command_that_regenerates_it(tmp_path):
    path = tmp_path / "mwg" / "data" / "seed0.npz"
    save_tree(path, {"train": task_tree(), "test": task_tree(2)})
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(UnreadableFile) as error:
        load_task_data(path)
    message = one_line(error)
    assert message.startswith(f"{path}: not a complete .npz archive")
    assert f"`snakemake {path} --force`" in message


def test_task_data_without_a_split_or_fields_is_refused(tmp_path):
    path = tmp_path / "seed0.npz"
    save_tree(path, {"train": task_tree()})
    with pytest.raises(UnreadableFile, match="no 'test' split.*snakemake .* --force"):
        load_task_data(path, splits=("test",))
    save_tree(path, {"test": {"inputs": np.zeros((2, 5, 3))}})
    with pytest.raises(UnreadableFile, match="'test' is not task data"):
        load_task_data(path)


# ----------------------------------------------------------------------------- atomic writes


def test_writers_leave_only_their_file(tmp_path):
    write_json(tmp_path / "a" / "meta.json", {"x": np.float32(1.5), "y": np.arange(2)})
    write_text(tmp_path / "a" / "notes.md", "hello\n")
    write_csv(tmp_path / "a" / "t.csv", pd.DataFrame({"a": [1, 2]}), index=False)
    folder = tmp_path / "a"
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "notes.md", "t.csv"]
    assert json.loads((folder / "meta.json").read_text()) == {"x": 1.5, "y": [0, 1]}
    assert (folder / "t.csv").read_text() == "a\n1\n2\n"


def test_failed_writes_keep_the_previous_file(tmp_path):
    meta = tmp_path / "meta.json"
    write_json(meta, {"ok": 1})
    with pytest.raises(TypeError, match="not JSON serialisable"):
        write_json(meta, {"bad": object()})
    assert json.loads(meta.read_text()) == {"ok": 1}

    params = tmp_path / "params.npz"
    save_tree(params, {"w": np.ones(2)})
    with pytest.raises(TypeError, match="Python objects"):
        save_tree(params, {"w": np.array([object()])})
    assert load_tree(params)["w"].tolist() == [1.0, 1.0]

    table = tmp_path / "t.csv"
    write_text(table, "a\n1\n")
    with pytest.raises(RuntimeError), atomic_path(table) as tmp:
        tmp.write_text("a\n2\n3")  # half written when the step fails
        raise RuntimeError("interrupted")
    assert table.read_text() == "a\n1\n"
    assert leftovers(tmp_path) == []


def test_figures_are_written_under_a_temporary_name_of_their_format(tmp_path):
    from matplotlib.figure import Figure

    png, pdf = tmp_path / "fig.png", tmp_path / "fig.pdf"
    with atomic_paths(png, pdf) as (tmp_png, tmp_pdf):
        assert tmp_png.parent == tmp_path and tmp_png.suffix == ".png"
        fig = Figure()
        fig.add_subplot().plot([0, 1])
        fig.savefig(tmp_png)
        fig.savefig(tmp_pdf)
        assert not png.exists()
    assert png.read_bytes()[:4] == b"\x89PNG" and pdf.read_bytes()[:4] == b"%PDF"
    assert leftovers(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="was not written"), atomic_paths(png) as _:
        pass


# ----------------------------------------------------------------------------- metrics tables


def mwg_metrics(folder, arch, seed):
    from nmrnn.tasks import mwg

    intervals = list(mwg.TEST_INTERVALS)
    frame = pd.DataFrame(
        {
            "experiment": "mwg",
            "arch": arch,
            "seed": seed,
            "interval": intervals,
            "group": [mwg.interval_group(i) for i in intervals],
            "mse": [0.001 * (i + 1) / 3 for i in range(len(intervals))],
            "produced_interval": [np.nan if k == 0 else i / 0.9 for k, i in enumerate(intervals)],
            "n_parameters": 1059,
        }
    )
    path = folder / "mwg" / arch / f"seed{seed}" / "metrics.csv"
    write_csv(path, frame, index=False)
    return str(path)


@pytest.fixture
def metrics_files(tmp_path):
    from nmrnn.evaluation import expected_table
    from nmrnn.experiments import parse

    files = [mwg_metrics(tmp_path, a, s) for a in ("nmrnn", "lstm") for s in (0, 1)]
    exp = parse(EXPERIMENTS, "mwg")
    expected = {f: expected_table(exp, f.split(os.sep)[-3]) for f in files}
    return files, expected


def test_good_metrics_make_the_same_table_as_before(metrics_files, tmp_path):
    files, expected = metrics_files
    out = tmp_path / "figures" / "mwg.csv"
    collect_tables(files, str(out), expected)
    before = pd.concat([pd.read_csv(f) for f in files], ignore_index=True).to_csv(index=False)
    assert out.read_bytes() == before.encode()
    assert len(pd.read_csv(out)) == 48
    collect_tables(files, str(out))  # without expectations: the same table
    assert out.read_bytes() == before.encode()
    assert leftovers(out.parent) == []


def test_metrics_cut_mid_row_are_named(metrics_files, tmp_path):
    files, expected = metrics_files
    path = files[3]
    data = open(path, "rb").read()
    with open(path, "wb") as handle:
        handle.write(data[:400])
    out = tmp_path / "figures" / "mwg.csv"
    with pytest.raises(UnreadableFile) as error:
        collect_tables(files, str(out), expected)
    message = one_line(error)
    assert message.startswith(f"{path}: it ends in the middle of a line (cut short at 400 bytes)")
    assert message.endswith("(plus the --profile or --cores you run the pipeline with)")
    assert not out.exists()


def test_metrics_cut_at_a_line_end_are_named(metrics_files, tmp_path):
    files, expected = metrics_files
    path = files[1]
    lines = open(path).read().splitlines(keepends=True)
    open(path, "w").write("".join(lines[:-1]))
    with pytest.raises(UnreadableFile, match="11 rows where the config gives 12") as error:
        collect_tables(files, str(tmp_path / "mwg.csv"), expected)
    assert one_line(error).startswith(f"{path}: ")


def test_metrics_missing_a_required_value_are_named(metrics_files, tmp_path):
    files, expected = metrics_files
    path = files[0]
    text = open(path).read().replace(",1059\n", ",\n", 1)
    open(path, "w").write(text)
    with pytest.raises(UnreadableFile, match=r"no n_parameters value on line 2 \(cut short\?\)"):
        collect_tables(files, str(tmp_path / "mwg.csv"), expected)
    # a NaN produced interval (the network never ramps) is a value the table may hold
    assert pd.read_csv(files[1])["produced_interval"].isna().sum() == 1


def test_metrics_with_other_columns_or_no_table_are_named(metrics_files, tmp_path):
    files, expected = metrics_files
    frame = pd.read_csv(files[2]).drop(columns="group")
    frame.to_csv(files[2], index=False)
    with pytest.raises(UnreadableFile, match="columns experiment,arch,seed,interval,mse"):
        collect_tables(files, str(tmp_path / "mwg.csv"), expected)
    open(files[2], "w").write("")
    with pytest.raises(UnreadableFile, match="the file is empty"):
        collect_tables(files, str(tmp_path / "mwg.csv"), expected)
    open(files[2], "wb").write(b'a,b\n"1,2\n')
    with pytest.raises(UnreadableFile, match="not a readable CSV table"):
        collect_tables(files, str(tmp_path / "mwg.csv"))
    with pytest.raises(ValueError, match="no expected rows"):
        collect_tables(files, str(tmp_path / "mwg.csv"), {})


# ----------------------------------------------------------------------------- loss curves


def write_block(
    path, steps=(30, 20), seeds=(0, 1), validation=False, losses_steps=None, times=None
):
    n = sum(steps) if losses_steps is None else losses_steps
    S = len(seeds)
    losses = (np.arange(S * n, dtype=np.float32).reshape(S, n) + 1) / 7
    meta = {
        "experiment": "mwg",
        "arch": "lstm",
        "experiment_settings": {"archs": {"lstm": {"stages": [{"steps": s} for s in steps]}}},
        **(times or {}),
    }
    block = {
        "variables": {"params": {"w": np.ones((S, 3))}},
        "losses": losses,
        "seeds": np.asarray(seeds),
        "meta": np.asarray(json.dumps(meta)),
    }
    if validation:
        checked = np.full_like(losses, np.nan)
        checked[:, 9::10] = losses[:, 9::10] + 1
        block.update(
            selected_params={"w": 2 * np.ones((S, 3))},
            selected_step=np.asarray([10, 20]),
            validation_losses=checked,
        )
    save_tree(path, block)
    return losses


def old_losses_csv(losses, validation=None) -> str:
    """losses.csv as export_seed wrote it before the atomic writes."""
    text = "step,loss" if validation is None else "step,loss,validation_loss"
    for step, value in enumerate(losses):
        text += f"\n{step},{value:.7g}"
        if validation is not None:
            checked = validation[step]
            text += f",{checked:.7g}" if np.isfinite(checked) else ","
    return text + "\n"


@pytest.mark.parametrize("validation", [False, True])
def test_export_writes_the_same_files(tmp_path, validation):
    block = tmp_path / "train" / "block0.npz"
    losses = write_block(block, validation=validation)
    out = tmp_path / "mwg" / "lstm" / "seed1"
    export_seed(str(block), 1, str(out / "params.npz"), str(out / "meta.json"),
                str(out / "losses.csv"))  # fmt: skip
    checked = load_tree(block)["validation_losses"][1] if validation else None
    # As before, with whose curve it is first on every line (issue 28).
    old = old_losses_csv(losses[1], checked).splitlines()
    new = (out / "losses.csv").read_text().splitlines()
    assert new == ["experiment,arch,seed," + old[0]] + [f"mwg,lstm,1,{line}" for line in old[1:]]
    assert json.loads((out / "meta.json").read_text())["seed"] == 1
    assert load_tree(out / "params.npz")["params"]["w"].shape == (3,)
    assert leftovers(out) == []


def test_export_refuses_a_block_without_its_steps(tmp_path):
    block = tmp_path / "block0.npz"
    write_block(block, losses_steps=40)
    out = tmp_path / "mwg" / "lstm" / "seed0"
    with pytest.raises(UnreadableFile) as error:
        export_seed(str(block), 0, str(out / "params.npz"), str(out / "meta.json"),
                    str(out / "losses.csv"))  # fmt: skip
    assert one_line(error).startswith(f"{block}: losses of shape (2, 40) but 2 seeds x 50 steps")
    assert not out.exists() or list(out.iterdir()) == []


def loss_file(folder, name, n, validation=False):
    losses = 1.0 / (np.arange(n) + 1.0)
    checked = np.where(np.arange(n) % 10 == 9, losses + 1, np.nan) if validation else None
    path = folder / name / "losses.csv"
    write_text(path, old_losses_csv(losses, checked))
    return str(path)


@pytest.fixture
def loss_files(tmp_path):
    files = [loss_file(tmp_path, "a", 140), loss_file(tmp_path, "b", 100, validation=True)]
    runs = [("mwg", "lstm", 0), ("eft", "lstm", 1)]
    return files, runs, [140, 100]


def old_curves_table(inputs, runs, bins) -> bytes:
    """curves_table as it was before the checks."""
    from nmrnn.steps import bin_losses

    rows = []
    for path, (experiment, arch, seed) in zip(inputs, runs, strict=True):
        curve = pd.read_csv(path)
        validation = curve["validation_loss"] if "validation_loss" in curve else None
        for start, end, loss, checked in bin_losses(curve["loss"], validation, bins):
            rows.append((experiment, arch, int(seed), start, end, loss, checked))
    columns = ["experiment", "arch", "seed", "step_start", "step_end", "train_loss",
               "validation_loss"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).to_csv(index=False, float_format="%.6g").encode()


def test_good_curves_make_the_same_table_as_before(loss_files, tmp_path):
    files, runs, steps = loss_files
    out = tmp_path / "figures" / "mwg_curves.csv"
    curves_table(files, runs, str(out), 8, steps)
    assert out.read_bytes() == old_curves_table(files, runs, 8)
    curves_table(files, runs, str(out), 8)  # without step counts: the same table
    assert out.read_bytes() == old_curves_table(files, runs, 8)
    assert leftovers(out.parent) == []


def test_curve_cut_at_a_line_end_names_the_steps_found_and_expected(loss_files, tmp_path):
    files, runs, steps = loss_files
    lines = open(files[0]).read().splitlines(keepends=True)
    open(files[0], "w").write("".join(lines[:53]))  # header and steps 0..51
    out = tmp_path / "curves.csv"
    with pytest.raises(UnreadableFile) as error:
        curves_table(files, runs, str(out), 8, steps)
    message = one_line(error)
    assert message.startswith(f"{files[0]}: 52 steps (steps 0..51) where mwg/lstm trains 140 ")
    assert "--force" in message and not out.exists()


def test_curve_cut_mid_line_is_named(loss_files, tmp_path):
    files, runs, steps = loss_files
    data = open(files[1], "rb").read()
    open(files[1], "wb").write(data[:700])
    with pytest.raises(UnreadableFile, match="ends in the middle of a line") as error:
        curves_table(files, runs, str(tmp_path / "curves.csv"), 8, steps)
    assert one_line(error).startswith(f"{files[1]}: ")


def test_curve_with_other_steps_is_named(loss_files, tmp_path):
    files, runs, steps = loss_files
    text = open(files[0]).read().replace("\n7,", "\n8,", 1)
    open(files[0], "w").write(text)
    with pytest.raises(UnreadableFile, match=r"steps are not 0, 1, 2, .*line 9 is off"):
        curves_table(files, runs, str(tmp_path / "curves.csv"), 8, steps)
    with pytest.raises(ValueError, match="1 step counts for 2 runs"):
        curves_table(files, runs, str(tmp_path / "curves.csv"), 8, [140])


def test_provenance_counts_every_attempt_of_a_resumed_job(tmp_path):
    """A job killed and resumed spent its checkpoint's time plus the resumed run's; a block
    written before that was recorded counts its last attempt only, and the count says so."""
    blocks = [tmp_path / f"block{i}.npz" for i in range(3)]
    write_block(blocks[0], times={"wall_s": 10.0, "train_s_all_attempts": 10.0})
    write_block(blocks[1], times={"wall_s": 5.0, "train_s_all_attempts": 65.0})  # resumed
    write_block(blocks[2], times={"wall_s": 7.0})  # older code: this attempt only
    out = tmp_path / "PROVENANCE.json"
    write_provenance({"seeds_per_job": 1}, [str(b) for b in blocks], str(out))
    record = json.loads(out.read_text())
    assert record["training_jobs"] == 3
    assert record["training_wall_s_sum"] == 82.0
    assert record["training_blocks_last_attempt_only"] == 1
    assert record["config"] == {"seeds_per_job": 1}
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an archive")
    with pytest.raises(UnreadableFile, match="bad.npz"):
        write_provenance({}, [str(bad)], str(out))

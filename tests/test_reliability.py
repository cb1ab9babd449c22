"""Issue 28 (reliability, second pass): no code from a config file, no non-finite number past
start-up, files that know whose they are, every entry point's errors in one line. Each test
names the case it guards; every one failed on the code before its fix."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from config_cases import PAPER, mwg_only, the_error

from nmrnn.config import ConfigError, read_yaml, validate

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------ case 1: YTE in an overlay


EVIL = """__use_yte__: true
step_scale: ?open({marker!r}, "w").write("x") and 0.5
"""


def test_case1_read_yaml_refuses_yte(tmp_path):
    marker = tmp_path / "pwned"
    evil = write(tmp_path / "evil.yaml", EVIL.format(marker=str(marker)))
    with pytest.raises(ConfigError, match="__use_yte__"):
        read_yaml(evil)
    assert not marker.exists()


def test_case1_yte_key_spelt_with_escapes_is_refused(tmp_path):
    # "\x5f_use_yte__" is the same key after YAML unescapes it; a text search would miss it.
    evil = write(tmp_path / "evil.yaml", '"\\x5f_use_yte__": true\nstep_scale: 0.5\n')
    with pytest.raises(ConfigError, match="__use_yte__"):
        read_yaml(evil)


@pytest.mark.parametrize("flag", ["--configfile", "--configfiles", "--configfile="])
def test_case1_dry_run_never_runs_an_overlay(tmp_path, flag):
    """`snakemake -n --configfile evil.yaml` stops before Snakemake reads the file with YTE."""
    marker = tmp_path / "pwned"
    evil = write(tmp_path / "evil.yaml", EVIL.format(marker=str(marker)))
    given = [flag + str(evil)] if flag.endswith("=") else [flag, str(evil)]
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", *given],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert not marker.exists(), "the overlay's code ran"
    assert run.returncode != 0
    assert "__use_yte__" in run.stderr


def test_case1_overlay_of_a_profile_is_checked_too(tmp_path):
    marker = tmp_path / "pwned"
    evil = write(tmp_path / "evil.yaml", EVIL.format(marker=str(marker)))
    profile = tmp_path / "prof"
    profile.mkdir()
    write(profile / "config.yaml", f"configfiles:\n  - {evil}\n")
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--profile", str(profile)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert not marker.exists(), "the overlay's code ran"
    assert run.returncode != 0 and "__use_yte__" in run.stderr


# ------------------------------------------------------------------ case 2: NaN and infinity


@pytest.mark.parametrize(
    "update, key",
    [
        ({"step_scale": math.nan}, "step_scale"),
        ({"step_scale": math.inf}, "step_scale"),
    ],
)
def test_case2_top_level_non_finite(update, key):
    message = the_error(mwg_only(**update))
    assert key in message and "finite" in message


@pytest.mark.parametrize(
    "path, value",
    [
        (("archs", "nmrnn", "settings", "tau_z"), math.inf),
        (("archs", "nmrnn", "settings", "tau_x"), math.nan),
        (("input_noise_std",), math.nan),
        (("archs", "nmrnn", "stages", 0, "learning_rate"), math.nan),
    ],
)
def test_case2_experiment_non_finite(path, value):
    config = mwg_only()
    node = config["experiments"]["mwg"]
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    message = the_error(config)
    assert "finite" in message and str(path[-1]) in message


def test_case2_json_written_is_valid(tmp_path):
    from nmrnn.io import write_json

    write_json(tmp_path / "a.json", {"x": float("nan"), "y": [np.float32("inf")], "z": 1.5})
    text = (tmp_path / "a.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    loaded = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert loaded["z"] == 1.5 and loaded["x"] is None and loaded["y"] == [None]


# ------------------------------------------------------------------ case 4: 1e-2 read as text


def test_case4_exponent_without_dot_says_how_to_write_it():
    config = mwg_only()
    config["experiments"]["mwg"]["archs"]["nmrnn"]["stages"][0]["learning_rate"] = "1e-2"
    message = the_error(config)
    assert "1.0e-2" in message and "learning_rate" in message


# ------------------------------------------------------------------ case 5: the checker's errors


def run_checker(*files):
    return subprocess.run(
        [sys.executable, "-m", "nmrnn.config", *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_case5_checker_error_raised_outside_config_is_one_line(tmp_path):
    # No LR-RNN size up to the search's limit reaches this NM-RNN's parameter count: the error
    # comes from nmrnn.architectures, which raises the package's ConfigError.
    config = mwg_only()
    config["experiments"]["mwg"]["archs"]["nmrnn"]["settings"]["N"] = 100_000
    overlay = write(tmp_path / "c.yaml", yaml.safe_dump(config))
    run = run_checker(overlay)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "experiments.mwg" in run.stderr


# ------------------------------------------------------------------ case 7: duplicate keys


def test_case7_duplicate_key_names_both_lines(tmp_path):
    f = write(tmp_path / "d.yaml", "step_scale: 0.5\nseeds_per_job: 2\nstep_scale: 0.1\n")
    with pytest.raises(ConfigError) as err:
        read_yaml(f)
    message = str(err.value)
    assert "step_scale" in message and "line 1" in message and "line 3" in message


def test_case7_nested_duplicate_key(tmp_path):
    f = write(tmp_path / "d.yaml", "experiments:\n  mwg:\n    seeds: 2\n    seeds: 3\n")
    with pytest.raises(ConfigError, match=r"seeds.*line 3.*line 4"):
        read_yaml(f)


# ------------------------------------------------------------------ case 8: shell-expanded paths


@pytest.mark.parametrize("key", ["results_dir", "figures_dir"])
@pytest.mark.parametrize("value", ["~", "~/results", "$HOME/results", "res*", "-rf", "a{b}"])
def test_case8_paths_a_shell_would_expand(key, value):
    message = the_error(mwg_only(**{key: value}))
    assert key in message and "write" in message


def test_case8_protocols_output_dir():
    config = mwg_only(protocols={"output_dir": "~/figs"})
    assert "protocols.output_dir" in the_error(config)


# ------------------------------------------------------------------ case 10: the benchmark's CLI


@pytest.mark.parametrize(
    "args, option",
    [
        (["--seeds", "0"], "--seeds"),
        (["--seeds", "-1"], "--seeds"),
        (["--seeds", "abc"], "--seeds"),
        (["--seeds", ""], "--seeds"),
        (["--chunks", "0"], "--chunks"),
        (["--steps", "0"], "--steps"),
        (["--threads", "0"], "--threads"),
        (["--jobs", "0"], "--jobs"),
        (["--config", "missing.yaml"], "--config"),
    ],
)
def test_case10_bench_options_are_checked_by_the_parser(args, option, capsys):
    from nmrnn import bench

    with pytest.raises(SystemExit) as exit_:
        bench.main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert option in last and "Traceback" not in err


def test_case10_bench_config_error_is_one_line(tmp_path, capsys):
    from nmrnn import bench

    bad = write(tmp_path / "c.yaml", "step_scale: .nan\n")
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--config", str(bad)])
    assert exit_.value.code == 2
    assert "step_scale" in capsys.readouterr().err.strip().splitlines()[-1]


# ------------------------------------------------------------------ case 6: sizes that cannot fit


def test_case6_a_model_too_large_for_the_machine_is_refused_at_start_up():
    config = mwg_only()
    config["experiments"]["mwg"]["archs"]["vanilla"]["settings"]["N"] = 100_000
    message = the_error(config)
    assert "experiments.mwg.archs.vanilla.settings.N" in message
    assert "GB" in message and "memory" in message


def test_case6_estimate_grows_with_seeds_per_job_and_the_paper_fits():
    from nmrnn.experiments import memory_estimate, parse

    exp = parse(validate(mwg_only())["experiments"], "mwg")
    one = memory_estimate(exp, "vanilla", seeds_per_job=1)
    five = memory_estimate(exp, "vanilla", seeds_per_job=5)
    assert 4 * one < five <= 5 * one
    assert one < 1e9  # the paper's sizes: far below a gigabyte


# ------------------------------------------------------------------ case 9: files know whose


def exported(root: Path, experiment="mwg", arch="lstm", seeds=(0, 1)):
    """Per-seed files of a tiny training block, exported into ``root``'s layout."""
    from nmrnn.io import save_tree
    from nmrnn.steps import export_seed

    S, n = len(seeds), 5
    meta = {"experiment": experiment, "arch": arch, "run": "fp0123",
            "experiment_settings": {"archs": {arch: {"stages": [{"steps": n}]}}}}  # fmt: skip
    block = root / experiment / arch / "train" / "block0.npz"
    save_tree(block, {
        "variables": {"params": {"w": np.arange(S * 3.0).reshape(S, 3)}},
        "losses": np.ones((S, n), np.float32), "seeds": np.asarray(seeds),
        "meta": np.asarray(json.dumps(meta)),
    })  # fmt: skip
    for s in seeds:
        out = root / experiment / arch / f"seed{s}"
        export_seed(str(block), s, str(out / "params.npz"), str(out / "meta.json"),
                    str(out / "losses.csv"))  # fmt: skip
    return root / experiment / arch


def test_case9_params_copied_from_another_seed_is_refused(tmp_path):
    from nmrnn.io import UnreadableFile, load_tree

    runs = exported(tmp_path)
    assert load_tree(runs / "seed0" / "params.npz")["params"]["w"].tolist() == [0, 1, 2]
    (runs / "seed0" / "params.npz").write_bytes((runs / "seed1" / "params.npz").read_bytes())
    with pytest.raises(UnreadableFile) as err:
        load_tree(runs / "seed0" / "params.npz")
    message = str(err.value)
    assert "mwg/lstm/seed1" in message and "mwg/lstm/seed0" in message and "\n" not in message


def test_case9_identity_is_not_a_parameter_collection(tmp_path):
    from nmrnn.io import load_tree

    runs = exported(tmp_path)
    assert set(load_tree(runs / "seed1" / "params.npz")) == {"params"}
    assert json.loads((runs / "seed1" / "meta.json").read_text())["run"] == "fp0123"


def test_case9_edited_arch_column_of_metrics_is_refused(tmp_path):
    from nmrnn.io import UnreadableFile
    from nmrnn.steps import collect_tables

    path = tmp_path / "mwg" / "nmrnn" / "seed0" / "metrics.csv"
    path.parent.mkdir(parents=True)
    path.write_text("experiment,arch,seed,mse\nmwg,lstm,0,0.5\nmwg,lstm,0,0.6\n")
    with pytest.raises(UnreadableFile, match=r"holds mwg/lstm/seed0 but its path is mwg/nmrnn"):
        collect_tables([str(path)], str(tmp_path / "out.csv"))
    assert not (tmp_path / "out.csv").exists()


def test_case9_losses_of_another_arch_are_refused(tmp_path):
    from nmrnn.io import UnreadableFile
    from nmrnn.steps import curves_table

    lstm = exported(tmp_path, arch="lstm")
    target = tmp_path / "mwg" / "nmrnn" / "seed0" / "losses.csv"
    target.parent.mkdir(parents=True)
    target.write_text((lstm / "seed0" / "losses.csv").read_text())
    with pytest.raises(UnreadableFile, match="holds mwg/lstm/seed0"):
        curves_table([str(target)], [("mwg", "nmrnn", 0)], str(tmp_path / "c.csv"), bins=2)


def test_case9_meta_of_another_seed_is_refused(tmp_path):
    from nmrnn.io import UnreadableFile, read_seed_json

    runs = exported(tmp_path)
    (runs / "seed0" / "meta.json").write_text((runs / "seed1" / "meta.json").read_text())
    with pytest.raises(UnreadableFile, match="holds mwg/lstm/seed1 but its path is"):
        read_seed_json(runs / "seed0" / "meta.json")


def test_case9_task_data_of_another_seed_is_refused(tmp_path):
    from nmrnn.io import UnreadableFile, load_task_data, save_tree

    tree = {"test": {"inputs": np.zeros((2, 3, 1)), "targets": np.zeros((2, 3, 1)),
                     "mask": np.ones((2, 3, 1))}}  # fmt: skip
    save_tree(tmp_path / "mwg" / "data" / "seed0.npz", tree, {"experiment": "mwg", "seed": 1})
    with pytest.raises(UnreadableFile, match="holds mwg/seed1 but its path is mwg/seed0"):
        load_task_data(tmp_path / "mwg" / "data" / "seed0.npz")


def test_case9_a_block_of_another_arch_is_not_exported_under_this_one(tmp_path):
    from nmrnn.io import UnreadableFile
    from nmrnn.steps import export_seed

    lstm = exported(tmp_path, arch="lstm")
    out = tmp_path / "mwg" / "vanilla" / "seed0"
    with pytest.raises(UnreadableFile, match="holds mwg/lstm/seed0 but its path is mwg/vanilla"):
        export_seed(str(lstm / "train" / "block0.npz"), 0, str(out / "params.npz"),
                    str(out / "meta.json"), str(out / "losses.csv"))  # fmt: skip
    assert not out.exists() or not list(out.iterdir())


def test_case9_an_old_file_says_how_to_migrate_and_stamping_keeps_its_time(tmp_path):
    import os

    from nmrnn.io import UnreadableFile, load_tree, main

    path = tmp_path / "mwg" / "lstm" / "seed0" / "params.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, **{"params/w": np.ones(3)})  # as export_seed wrote it before
    os.utime(path, (1_000_000_000, 1_000_000_000))
    with pytest.raises(UnreadableFile, match=r"written before.*python -m nmrnn.io --stamp"):
        load_tree(path)
    losses = path.with_name("losses.csv")
    losses.write_text("step,loss\n0,1.5\n1,1.25\n")
    assert main(["--stamp", str(path), str(losses)]) == 0
    assert path.stat().st_mtime == 1_000_000_000
    assert load_tree(path)["params"]["w"].tolist() == [1, 1, 1]
    assert losses.read_text().splitlines()[1] == "mwg,lstm,0,0,1.5"


def _npy_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.arange(3))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("params.npz", b"", "the file is empty"),
        ("params.npz", b"PK\x03\x04 cut", "not a complete .npz archive"),
        ("params.npz", None, "a single .npy array, not an .npz archive"),
        ("losses.csv", b"", "the file is empty"),
        ("losses.csv", b"\xff\xfe", "codec can't decode"),
    ],
)
def test_case9_stamping_a_damaged_file_is_one_line_naming_it(tmp_path, capsys, name, content,
                                                             problem):  # fmt: skip
    from nmrnn.io import main

    path = tmp_path / "mwg" / "lstm" / "seed0" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(_npy_bytes() if content is None else content)
    assert main(["--stamp", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: {path}: ") and problem in err, err


# ------------------------------------------------------------------ case 11: the package API


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"tau_x": "10"}, "tau_x"),
        ({"tau_x": math.inf}, "tau_x"),
        ({"tau_z": math.nan}, "tau_z"),
        ({"N": 16.0}, "N"),
        ({"feedback": "yes"}, "feedback"),
        ({"readout_bias": 1}, "readout_bias"),
        ({"x_inputs": "2"}, "x_inputs"),
        ({"x_inputs": 0}, "x_inputs"),
        ({"init_scheme": 3}, "init_scheme"),
    ],
)
def test_case11_nmrnn_arguments_checked_where_they_enter(kwargs, named):
    from nmrnn.models import NMRNN

    settings = {"N": 16, "M": 3, "K": 2, "O": 1, **kwargs}
    with pytest.raises(ValueError, match=named) as err:
        NMRNN(**settings)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("model", ["VanillaRNN", "LRRNN"])
def test_case11_baselines_refuse_infinite_and_text_time_constants(model):
    import nmrnn.models as models

    cls = getattr(models, model)
    extra = {"K": 2} if model == "LRRNN" else {}
    for bad in ("10", math.inf, -1.0):
        with pytest.raises(ValueError, match="tau_x"):
            cls(N=8, O=1, tau_x=bad, **extra)
    cls(N=8, O=1, tau_x=np.float32(5.0), **extra)  # a numpy number is a number


def test_case11_masked_mse_mask_non_negative_with_positive_sum():
    import jax.numpy as jnp

    from nmrnn.tasks.common import masked_mse

    y = jnp.ones((1, 2, 1))
    with pytest.raises(ValueError, match="negative"):
        masked_mse(y, 0 * y, jnp.asarray([[[1.0], [-1.0]]]))
    with pytest.raises(ValueError, match="negative"):
        masked_mse(y, 0 * y, jnp.asarray([[[2.0], [-1.0]]]))
    with pytest.raises(ValueError, match="not finite"):
        masked_mse(y, 0 * y, jnp.asarray([[[1.0], [jnp.nan]]]))
    assert float(masked_mse(y, 0 * y, jnp.asarray([[[1.0], [0.0]]]))) == 1.0


# ------------------------------------------------------------------ hostile pass: folders, sizes


@pytest.mark.parametrize(
    "top, named",
    [
        ({"results_dir": "out", "figures_dir": "out"}, "results_dir"),
        ({"results_dir": "figures/res"}, "inside figures_dir"),
        ({"results_dir": ".."}, "folder holding it"),
        ({"figures_dir": "src"}, "'src'"),
        ({"results_dir": "workflow/res"}, "'workflow'"),
        ({"results_dir": ".git"}, "'.git'"),
        ({"protocols": {"output_dir": "tests/out"}}, "'tests'"),
        ({"reference_testset": "~/testset"}, "reference_testset"),
        ({"reference_testset": "no/such/folder"}, "reference_testset"),
    ],
)
def test_hostile_folders_refused(top, named):
    assert named in the_error(mwg_only(**top))


def test_reference_testset_without_its_files_refused(tmp_path):
    # a folder that exists but does not hold the test set would be skipped without a word
    (tmp_path / "test_inputs.npy").write_bytes(b"")
    message = the_error(mwg_only(reference_testset=str(tmp_path)))
    assert message.startswith("reference_testset: ")
    assert "has no test_outputs.npy, test_labels.npy" in message


def test_hostile_figures_inside_results_still_allowed():
    # The smoke profile's layout: results/smoke with its figures under it.
    validate(mwg_only(results_dir="results/smoke", figures_dir="results/smoke/figures"))


@pytest.mark.parametrize("tau", [0.5, 1e-300])
def test_hostile_time_constant_below_one_step(tau):
    config = mwg_only()
    config["experiments"]["mwg"]["archs"]["nmrnn"]["settings"]["tau_x"] = tau
    assert "at least 1" in the_error(config)


@pytest.mark.parametrize("top, steps", [({"step_scale": 1e300}, None), ({}, 10**12)])
def test_hostile_step_counts_that_cannot_be_kept(top, steps):
    config = mwg_only(**top)
    if steps:
        config["experiments"]["mwg"]["archs"]["nmrnn"]["stages"][0]["steps"] = steps
    message = the_error(config)
    assert "stages" in message and "steps" in message and len(message) < 400


# ------------------------------------------------------------------ hostile pass: API and CLI


def test_hostile_optimizer_infinite_weight_decay_and_clip():
    from nmrnn.training import Optimizer

    with pytest.raises(ValueError, match="weight_decay must be finite"):
        Optimizer(weight_decay=math.inf)
    with pytest.raises(ValueError, match="clip must be finite"):
        Optimizer(clip=math.inf)


def test_hostile_build_model_from_a_list():
    from nmrnn.architectures import build_model

    with pytest.raises(ConfigError, match="must be a mapping"):
        build_model(["vanilla"])


def test_hostile_binary_config_file_is_one_line(tmp_path):
    f = tmp_path / "b.yaml"
    f.write_bytes(b"\xff\xfe\x00garbage")
    run = run_checker(f)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "UTF-8" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_hostile_duplicate_key_on_one_line_names_columns(tmp_path):
    f = write(tmp_path / "d.json", '{"step_scale": 0.5, "step_scale": 0.1}')
    with pytest.raises(ConfigError, match=r"line 1, column 2 and line 1, column 21"):
        read_yaml(f)


def test_hostile_doctables_on_a_folder_that_is_not_the_repository(tmp_path, capsys):
    from nmrnn.doctables import main

    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "nowhere"), "--check"])
    assert exit_.value.code == 2 and "not the repository" in capsys.readouterr().err


def test_hostile_params_trained_under_other_settings_are_named(tmp_path):
    import jax
    import jax.numpy as jnp

    from nmrnn.architectures import build_model
    from nmrnn.io import UnreadableFile, save_tree
    from nmrnn.steps import evaluate_seed

    exps = validate(mwg_only())["experiments"]
    small = build_model({"model": "lstm", "N": 4, "O": 1})  # the config matches a larger N
    variables = jax.tree.map(np.asarray, small.init(jax.random.key(0), jnp.zeros((1, 2, 3))))
    params = tmp_path / "mwg" / "lstm" / "seed0" / "params.npz"
    save_tree(params, variables, {"experiment": "mwg", "arch": "lstm", "seed": 0, "run": "x"})
    out = tmp_path / "mwg" / "lstm" / "seed0" / "metrics.csv"
    with pytest.raises(UnreadableFile, match=r"params\.npz: holds params/.* of shape") as err:
        evaluate_seed(exps, "mwg", "lstm", 0, str(params), str(tmp_path / "none.npz"), str(out))
    assert "\n" not in str(err.value) and not out.exists()


def test_hostile_protocol_table_paths_written_out():
    config = mwg_only(protocols={"tables": {"authors": "~/figures/metrics/mwg.csv"}})
    assert "protocols.tables.authors" in the_error(config)


def test_hostile_a_seed_outside_the_config_is_no_rule_not_a_traceback():
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "results/mwg/nmrnn/seed99/metrics.csv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode != 0
    assert "No rule to produce results/mwg/nmrnn/seed99/metrics.csv" in run.stderr + run.stdout
    assert "InputFunctionException" not in run.stderr + run.stdout


@pytest.mark.parametrize("threads", [0, -2, 1.5, "2", True])
def test_hostile_thread_limit_that_would_mean_every_core(threads):
    from nmrnn.runtime import limit_cpu_threads

    with pytest.raises(ValueError, match="threads must be"):
        limit_cpu_threads(threads)


@pytest.mark.parametrize(
    "profile", sorted(p.name for p in (ROOT / "profiles").iterdir() if p.is_dir())
)
def test_hostile_every_profile_passes_the_start_up_check(profile):
    from nmrnn.overlays import config_files_of, refuse_unsafe_files

    files = config_files_of(["--profile", str(ROOT / "profiles" / profile)])
    refuse_unsafe_files(files)  # exits on a bad file
    if files:
        merged: dict = {}
        from nmrnn.config import merge

        for f in [ROOT / "config.yaml", *[ROOT / f for f in files]]:
            merged = merge(merged, read_yaml(f))
        validate(merged)


@pytest.mark.parametrize(
    "t_measure, interval", [(10, 500), (10, -5), (-1, 12), (10, 0), (10.5, 12)]
)
def test_hostile_mwg_trials_outside_the_trial_are_refused(t_measure, interval):
    from nmrnn.tasks import mwg

    with pytest.raises(ValueError, match="mwg.trials"):
        mwg.trials(np.array([t_measure]), np.array([interval]))


def test_hostile_mwg_sets_too_short_for_their_ramps():
    from nmrnn.tasks import mwg

    with pytest.raises(ValueError, match="inside T = 5"):
        mwg.training_set(T=5)
    assert mwg.test_set().inputs.shape == (12, mwg.T, 3)  # the paper's sets fit


@pytest.mark.parametrize(
    "call",
    [
        lambda eft, k: eft.sample_batch(k, 0),
        lambda eft, k: eft.sample_batch(k, -1),
        lambda eft, k: eft.fixed_query_set(k, 99, 4),
        lambda eft, k: eft.fixed_query_set(k, -1, 4),
        lambda eft, k: eft.fixed_query_value_set(k, 3, 11, 4),
    ],
)
def test_hostile_eft_sets_with_arguments_out_of_range(call):
    import jax

    from nmrnn.tasks import eft

    with pytest.raises(ValueError, match="eft: "):
        call(eft, jax.random.key(0))


@pytest.mark.parametrize(
    "call, named",
    [
        (lambda mt, k: mt.sample_trials(k, [7]), "task ids"),
        (lambda mt, k: mt.sample_trials(k, [-1]), "task ids"),
        (lambda mt, k: mt.sample_trials(k, [], 4), "task ids"),
        (lambda mt, k: mt.sample_trials(k, [0], noise_std=math.nan), "noise_std"),
        (lambda mt, k: mt.sample_trials(k, [0], noise_std=-1.0), "noise_std"),
        (lambda mt, k: mt.training_pool(k, 0), "n_per_task"),
        (lambda mt, k: mt.transfer_pool(k, n=0), "n must be"),
    ],
)
def test_hostile_multitask_trials_of_no_task_are_refused(call, named):
    import jax

    from nmrnn.tasks import multitask

    with pytest.raises(ValueError, match=named):
        call(multitask, jax.random.key(0))


@pytest.mark.parametrize("interval", [float("nan"), 18.5, "12"])
def test_hostile_interval_group_of_no_whole_interval(interval):
    from nmrnn.tasks import mwg

    with pytest.raises(ValueError, match="whole number of steps"):
        mwg.interval_group(interval)
    assert mwg.interval_group(np.int64(18)) == "trained"


def test_hostile_an_analysis_of_another_figure_is_refused(tmp_path):
    from nmrnn.io import UnreadableFile, load_tree, save_tree

    save_tree(tmp_path / "analysis" / "fig4.npz", {"x": np.ones(2)}, {"figure": "fig3"})
    with pytest.raises(UnreadableFile, match="holds fig3 but its path is fig4"):
        load_tree(tmp_path / "analysis" / "fig4.npz")
    save_tree(tmp_path / "analysis" / "fig3.npz", {"x": np.ones(2)}, {"figure": "fig3"})
    assert set(load_tree(tmp_path / "analysis" / "fig3.npz")) == {"x"}


def test_hostile_a_transfer_from_itself_or_another_transfer():
    config = {"experiments": {"multitask_transfer": json.loads(json.dumps(
        PAPER["experiments"]["multitask_transfer"]))}}  # fmt: skip
    config["experiments"]["multitask_transfer"]["pretrained"] = "multitask_transfer"
    assert "is itself a transfer" in the_error(config)


@pytest.mark.parametrize(
    "key, value", [("results_dir", "README.md"), ("figures_dir", "config.yaml")]
)
def test_hostile_an_output_folder_that_is_a_file(key, value, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert "is a file, not a folder" in the_error(mwg_only(**{key: value}))

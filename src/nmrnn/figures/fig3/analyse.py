"""Figure 3 (Measure-Wait-Go): trajectories of the trained networks on the 12 test intervals, the
rank-1 network's gain against the optimal-gain theory (SPEC §4), ablations of the NM-RNN's gains,
from the trained MWG networks whose files the workflow rule gives (:class:`RunFiles`). The claims
are in :mod:`nmrnn.figures.fig3.claims`, the drawing in :mod:`nmrnn.figures.fig3.plot`.

``analyse`` returns a nested dict of numpy arrays (saved to ``analysis/fig3.npz``)::

    meta/      archs (names present), experiment, test intervals, groups, t_measure, t_go
    task/      inputs (12, T, 3), targets (12, T) of the test set
    archs/<a>/ seeds, mse (S, 12), trained_mse (S,), best_seed, y_best (12, T)
    nmrnn/     seed, s (12, T, K), y (12, T), y_zero and y_premeasure (K, 12, T),
               mse_zero and mse_premeasure (K, 12), mse_intact (12,)
    rank1/     seed, intervals (n,), t_go (n,), s_trained, s_exact, s_approx, s_approx_discrete,
               y_trained, y_theory (n, T; NaN up to go), corr_* and rmse_* (n,), ...

Times are absolute steps of the trial (0..T-1); ``t_go`` aligns them to the go pulse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from nmrnn import theory
from nmrnn.experiments import parse
from nmrnn.figures.common import RunFiles, jnp_tree, runner
from nmrnn.figures.fig3.claims import EXPERIMENT, target_variance
from nmrnn.io import load_tree, tree_taskdata
from nmrnn.models import NMRNN
from nmrnn.tasks import mwg
from nmrnn.tasks.common import trial_mse

ARCH_ORDER = ("nmrnn", "nmrnn_rank1", "lrrnn", "vanilla", "lstm")
ABLATED_NMRNN = "nmrnn"
RANK1 = "nmrnn_rank1"
THEORY_INTERVALS = (8, 14, 22)
GROUPS = ("shorter", "trained", "longer")


# ---------------------------------------------------------------------------------- running


def _run(run, model, variables, inputs) -> dict[str, np.ndarray]:
    """Intact trajectories (no gain overridden)."""
    inputs = jnp.asarray(inputs)
    if isinstance(model, NMRNN):
        s_fix = jnp.zeros(inputs.shape[:2] + (model.K,), jnp.float32)
        return _numpy(run(variables, inputs, s_fix, jnp.zeros(model.K, bool)))
    return _numpy(run(variables, inputs))


def _numpy(tree) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in tree.items()}


def premeasure_override(s: np.ndarray, t_measure: np.ndarray) -> np.ndarray:
    """Gains held from the measure pulse on at their value just before it.

    s: (batch, T, K) intact gains; t_measure: (batch,). Returns (batch, T, K): s_t for t < t_m,
    s_{t_m - 1} for t ≥ t_m (per trial).
    """
    s = np.asarray(s)
    out = s.copy()
    for b, tm in enumerate(np.asarray(t_measure).astype(int)):
        out[b, tm:] = s[b, max(tm - 1, 0)]
    return out


def ablations(run, variables, inputs, s, t_measure) -> dict[str, np.ndarray]:
    """Outputs of an NM-RNN with each gain s_k ablated, one at a time.

    ``zero``: s_k ≡ 0 for the whole trial; ``premeasure``: s_k held from the measure pulse on at
    its value just before it (:func:`premeasure_override`). Other gains run freely.
    ``run``: :func:`nmrnn.figures.common.runner` of the NM-RNN. Returns y_zero, y_premeasure:
    (K, batch, T) (first output channel).
    """
    K = s.shape[-1]
    held = premeasure_override(s, t_measure)
    conditions = {"zero": np.zeros_like(s), "premeasure": held}
    out = {}
    for name, s_fix in conditions.items():
        ys = []
        for k in range(K):
            mask = np.zeros(K, bool)
            mask[k] = True
            y = run(variables, jnp.asarray(inputs), jnp.asarray(s_fix, jnp.float32), mask)["y"]
            ys.append(np.asarray(y)[..., 0])
        out[f"y_{name}"] = np.stack(ys)
    return out


# ---------------------------------------------------------------------------------- theory


def rank1_theory(
    model, variables, traj: Mapping[str, np.ndarray], test, intervals: Sequence[int]
) -> dict[str, np.ndarray]:
    """The rank-1 network's gain after go against the optimal-gain theory (SPEC §4).

    For each test trial of the given intervals: x_go = x at the go step, the target ramp after go,
    and the input drive B_x u after go (zero in MWG, passed anyway) give the exact optimal gain
    (:func:`nmrnn.theory.optimal_gain_exact`, tanh network) and the approximate formula (continuous,
    SPEC §4, and its Euler form). Each is compared with the trained s(t) over every post-go step
    (``*_postgo``) and over the ramp only (the I steps after go, ``*_ramp``).

    Returns arrays (n, T), NaN at and before go, plus per-interval statistics (n,).
    """
    params = theory.rank1_parameters(variables, model)
    B_x = np.asarray(variables["params"]["B_x"], np.float64)
    inputs = np.asarray(test.inputs, np.float64)
    targets = np.asarray(test.targets, np.float64)[..., 0]
    all_intervals = np.asarray(test.events["interval"]).astype(int)
    t_go_all = np.asarray(test.events["t_go"]).astype(int)
    T = targets.shape[1]
    chosen = [i for i in intervals if i in set(all_intervals.tolist())]
    n = len(chosen)
    keys = ("s_trained", "s_exact", "s_approx", "s_approx_discrete", "y_trained", "y_theory",
            "target")  # fmt: skip
    out = {k: np.full((n, T), np.nan) for k in keys}
    stats: dict[str, list] = {}
    t_go_out = []
    for j, interval in enumerate(chosen):
        b = int(np.flatnonzero(all_intervals == interval)[0])
        tg = int(t_go_all[b])
        t_go_out.append(tg)
        post = slice(tg + 1, T)
        x_go = np.asarray(traj["x"][b, tg], np.float64)
        f = targets[b, post]
        drive = inputs[b, post, : B_x.shape[1]] @ B_x.T
        s_exact = theory.optimal_gain_exact(
            params, x_go, f, tau_x=model.tau_x, phi="tanh", drive=drive
        )
        _, y_theory = theory.rank1_rollout(
            params, x_go, s_exact, tau_x=model.tau_x, phi="tanh", drive=drive
        )
        out["s_exact"][j, post] = s_exact
        out["y_theory"][j, post] = y_theory
        out["s_approx"][j, post] = theory.optimal_gain_approx(
            params, x_go, f, tau_x=model.tau_x, continuous=True
        )
        out["s_approx_discrete"][j, post] = theory.optimal_gain_approx(
            params, x_go, f, tau_x=model.tau_x
        )
        out["s_trained"][j, post] = np.asarray(traj["s"][b, post, 0], np.float64)
        out["y_trained"][j, post] = np.asarray(traj["y"][b, post, 0], np.float64)
        out["target"][j, post] = f
        ramp = slice(tg + 1, min(tg + 1 + interval, T))
        for theory_name in ("exact", "approx"):
            for seg_name, seg in (("postgo", post), ("ramp", ramp)):
                a = out["s_trained"][j, seg]
                t = out[f"s_{theory_name}"][j, seg]
                corr, rmse = agreement(a, t)
                stats.setdefault(f"corr_{theory_name}_{seg_name}", []).append(corr)
                stats.setdefault(f"rmse_{theory_name}_{seg_name}", []).append(rmse)
        inside = s_exact[np.isfinite(s_exact)]
        stats.setdefault("exact_fraction_in_unit_interval", []).append(
            float(np.mean((inside > 0) & (inside < 1))) if inside.size else np.nan
        )
        stats.setdefault("theory_rollout_max_error", []).append(
            float(np.nanmax(np.abs(y_theory - f)))
        )
        stats.setdefault("trained_output_mse_postgo", []).append(
            float(np.mean((out["y_trained"][j, post] - f) ** 2))
        )
    result = {**out, **{k: np.asarray(v, np.float64) for k, v in stats.items()}}
    result["intervals"] = np.asarray(chosen, np.int64)
    result["t_go"] = np.asarray(t_go_out, np.int64)
    result["r_dot_ell"] = np.asarray(float(params.r @ params.ell))
    result["c_dot_ell"] = np.asarray(float(params.c @ params.ell))
    result["d"] = np.asarray(params.d)
    return result


def agreement(trained, predicted) -> tuple[float, float]:
    """Pearson correlation and RMSE of two curves over their common finite steps (NaN if < 3)."""
    a, b = np.asarray(trained, float), np.asarray(predicted, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return np.nan, np.nan
    a, b = a[ok], b[ok]
    rmse = float(np.sqrt(np.mean((a - b) ** 2)))
    if a.std() == 0 or b.std() == 0:
        return np.nan, rmse
    return float(np.corrcoef(a, b)[0, 1]), rmse


# ---------------------------------------------------------------------------------- analyse


def analyse(experiments: Mapping[str, Any], files: RunFiles) -> dict:
    """Everything Figure 3 draws, from the trained MWG networks of every seed (see module doc).

    ``files``: the parameters of every (mwg, arch, seed) and the task data of every seed."""
    exp = parse(experiments, EXPERIMENT)
    seeds = list(range(int(exp.settings["seeds"])))
    archs = [a for a in ARCH_ORDER if a in exp.archs] + [
        a for a in exp.archs if a not in ARCH_ORDER
    ]
    test = tree_taskdata(load_tree(files.task_data(EXPERIMENT, seeds[0]))["test"])
    intervals = np.asarray(test.events["interval"]).astype(int)
    groups = np.asarray([mwg.interval_group(i) for i in intervals])
    trained = groups == "trained"
    result: dict[str, Any] = {
        "meta": {
            "experiment": np.asarray(EXPERIMENT),
            "archs": np.asarray(archs),
            "intervals": intervals,
            "groups": groups,
            "t_measure": np.asarray(test.events["t_measure"]).astype(int),
            "t_go": np.asarray(test.events["t_go"]).astype(int),
            "target_variance": np.asarray(target_variance()),
        },
        "task": {
            "inputs": np.asarray(test.inputs),
            "targets": np.asarray(test.targets)[..., 0],
            "input_names": np.asarray(mwg.INPUT_NAMES),
        },
        "archs": {},
    }
    for arch in archs:
        model = exp.archs[arch].model
        run = runner(model)
        mses, trajs, variables_of = [], [], []
        for seed in seeds:
            variables = jnp_tree(load_tree(files.file(EXPERIMENT, arch, seed, "params")))
            test_s = tree_taskdata(load_tree(files.task_data(EXPERIMENT, seed))["test"])
            traj = _run(run, model, variables, test_s.inputs)
            mses.append(trial_mse(traj["y"], test_s))
            trajs.append(traj)
            variables_of.append(variables)
        mses = np.asarray(mses)
        trained_mse = mses[:, trained].mean(axis=1)
        best = int(np.nanargmin(trained_mse)) if np.isfinite(trained_mse).any() else 0
        result["archs"][arch] = {
            "seeds": np.asarray(seeds),
            "mse": mses,
            "trained_mse": trained_mse,
            "best_seed": np.asarray(seeds[best]),
            "y_best": trajs[best]["y"][..., 0],
        }
        if arch == ABLATED_NMRNN:
            traj = trajs[best]
            abl = ablations(run, variables_of[best], test.inputs, traj["s"],
                            result["meta"]["t_measure"])  # fmt: skip
            targets = result["task"]["targets"]
            result["nmrnn"] = {
                "seed": np.asarray(seeds[best]),
                "s": traj["s"],
                "y": traj["y"][..., 0],
                **abl,
                "mse_intact": ((traj["y"][..., 0] - targets) ** 2).mean(axis=-1),
                "mse_zero": ((abl["y_zero"] - targets) ** 2).mean(axis=-1),
                "mse_premeasure": ((abl["y_premeasure"] - targets) ** 2).mean(axis=-1),
            }
        if arch == RANK1:
            theory_out = rank1_theory(model, variables_of[best], trajs[best], test,
                                      THEORY_INTERVALS)  # fmt: skip
            result["rank1"] = {"seed": np.asarray(seeds[best]), **theory_out}
    return result

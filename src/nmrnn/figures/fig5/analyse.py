"""Figure 5 (Element Finder Task): test MSE and training curves of every architecture, the
dynamics of the best NM-RNN configuration (z, s and x across query indices and target values),
from the files the workflow rule gives (:class:`RunFiles`). Claim 4 is checked in
:mod:`nmrnn.figures.fig5.claims`; the figure is drawn by :mod:`nmrnn.figures.fig5.plot`.

``analyse`` returns a nested dict of numpy arrays (saved to ``analysis/fig5.npz``)::

    meta/      archs (names, config order), is_nmrnn (bool per arch), experiment, chance_mse
    task/      inputs (T,), query, value, target of one example trial
    archs/<a>/ seeds (S,), mse (S,) final-step test MSE, n_parameters,
               curve_steps (P,), curve_median, curve_q25, curve_q75 (P,), curves (S, P);
               with checkpoint selection also mse_selected (S,) (test MSE of the parameters
               with the lowest validation loss), selected_step (S,), validation_curves (S, P)
    dynamics/  arch, seed, checkpoint (final / selected), queries (Q,), query_value,
               values (V,), value_query, s_component,
               query_sweep/ (value fixed), value_sweep/ (query fixed), query_random/ (values
               random): z_pc1 (C, T), s (C, T, K), y (C, T) trial means
               z_pc/ mean (M,), components (M', M), explained (M',)
               summary/ quantitative checks of "z encodes q", "s switches at the queried step",
               "x holds the value" (see :func:`dynamics_summary`)

Time is the trial step t = 0..25: t = 0 carries the query q, t = 1..25 the elements, so the
queried element arrives at t = q + 1 and is scored at t = 25.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nmrnn import experiments as ex
from nmrnn.figures.common import RunFiles, bin_curve, jnp_tree, pca, runner
from nmrnn.figures.fig5.claims import EXPERIMENT, best_of
from nmrnn.io import load_tree, read_csv_checked, read_seed_json, tree_taskdata
from nmrnn.tasks import eft
from nmrnn.tasks.common import selected_variables, trial_mse

N_CURVE_POINTS = 200
QUERY_SWEEP = (2, 6, 10, 14, 18, 22)
QUERY_SWEEP_VALUE = 5
VALUE_SWEEP = tuple(range(eft.VALUE_MIN, eft.VALUE_MAX + 1, 4))  # -10, -6, ..., 10
VALUE_SWEEP_QUERY = 10
TRIALS_PER_CONDITION = 256
SWEEP_SEED = 5  # key of the random (non-queried) elements of the sweeps
EXAMPLE_SEED = 3  # key of the example trial of panel A
EXAMPLE_QUERY = 14
LATE_STEPS = 5  # "late" z: the last LATE_STEPS steps of the trial

# ---------------------------------------------------------------------------------- helpers


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two 1-d samples; NaN if either is constant or non-finite."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def gain_changes(s: np.ndarray) -> np.ndarray:
    """Mean absolute change of the gains between consecutive steps.

    s: (..., T, K). Returns (..., T) with entry t = mean_k |s_t - s_{t-1}| (NaN at t = 0).
    """
    s = np.asarray(s, float)
    d = np.abs(np.diff(s, axis=-2)).mean(axis=-1)
    return np.concatenate([np.full(d.shape[:-1] + (1,), np.nan), d], axis=-1)


def switch_contrast(s: np.ndarray, queries: Sequence[int], first_step: int = 2) -> dict:
    """How much more the gains change around the queried step than elsewhere.

    s: (Q, T, K) trial-averaged gains of trials querying ``queries`` (Q,). Around the queried step
    = t ∈ {q + 1, q + 2, q + 3} (the change into the step that carries the queried element and
    the two after it: the element reaches z through x one step later, and z is slow); elsewhere
    = every other t ≥ ``first_step`` (t = 1 follows the query pulse itself).
    Returns around, elsewhere (mean |Δs|), ratio, and the profile aligned to the queried step:
    lags (-4..4), profile (mean |Δs| at t = q + 1 + lag, over the queries where t is in range).
    """
    change = gain_changes(s)  # (Q, T)
    T = change.shape[-1]
    around, elsewhere = [], []
    lags = np.arange(-4, 5)
    aligned = np.full((len(queries), lags.size), np.nan)
    for i, q in enumerate(queries):
        window = {q + 1, q + 2, q + 3}
        for t in range(first_step, T):
            (around if t in window else elsewhere).append(change[i, t])
        for j, lag in enumerate(lags):
            t = q + 1 + lag
            if 1 <= t < T:
                aligned[i, j] = change[i, t]
    around_m = float(np.nanmean(around)) if around else float("nan")
    else_m = float(np.nanmean(elsewhere)) if elsewhere else float("nan")
    with np.errstate(all="ignore"):
        profile = np.nanmean(aligned, axis=0)
    return {
        "around": around_m,
        "elsewhere": else_m,
        "ratio": around_m / else_m if else_m > 0 else (np.inf if around_m > 0 else np.nan),
        "lags": lags,
        "profile": profile,
    }


def strongest_switching_gain(s: np.ndarray, queries: Sequence[int]) -> int:
    """Index of the gain whose change around the queried step is largest relative to elsewhere
    (``switch_contrast`` per component). s: (Q, T, K)."""
    ratios = []
    for k in range(s.shape[-1]):
        c = switch_contrast(s[..., k : k + 1], queries)
        ratios.append(c["around"] - c["elsewhere"])
    ratios = np.nan_to_num(np.asarray(ratios), nan=-np.inf)
    return int(np.argmax(ratios))


def read_losses(path: str | Path, column: str = "loss") -> np.ndarray | None:
    """One column of a ``losses.csv`` per step (``loss``: training loss; ``validation_loss``:
    NaN where not computed); None if the file has no such column. Whose curve it is is checked
    against ``path`` (:func:`nmrnn.io.read_csv_checked`)."""
    frame = read_csv_checked(path)
    if column not in frame.columns:
        return None
    return frame[column].to_numpy(float)


# ---------------------------------------------------------------------------------- dynamics


def sweep_sets(n: int = TRIALS_PER_CONDITION, seed: int = SWEEP_SEED) -> dict:
    """The trials of panels D–F (lists of TaskData, one per condition; other elements random).

    ``query``: the value ``QUERY_SWEEP_VALUE`` at each query index of ``QUERY_SWEEP`` (drawn);
    ``value``: each value of ``VALUE_SWEEP`` at query ``VALUE_SWEEP_QUERY`` (drawn);
    ``query_random``: the same query indices with a random queried element, for the summary: with
    a fixed value the trial mean of the input itself steps at t = q + 1, which would move the
    trial-averaged z and s there even in an untrained network.
    """
    kq, kv, kr = jax.random.split(jax.random.key(seed), 3)
    return {
        "query": [
            eft.fixed_query_value_set(jax.random.fold_in(kq, i), q, QUERY_SWEEP_VALUE, n)
            for i, q in enumerate(QUERY_SWEEP)
        ],
        "value": [
            eft.fixed_query_value_set(jax.random.fold_in(kv, i), VALUE_SWEEP_QUERY, v, n)
            for i, v in enumerate(VALUE_SWEEP)
        ],
        "query_random": [
            eft.fixed_query_set(jax.random.fold_in(kr, i), q, n) for i, q in enumerate(QUERY_SWEEP)
        ],
    }


def _trajectories(run, variables, sets) -> dict[str, np.ndarray]:
    """Stack each condition's trajectories: z (C, n, T, M), s (C, n, T, K), y (C, n, T)."""
    outs = [run(variables, jnp.asarray(d.inputs)) for d in sets]
    return {
        "z": np.stack([np.asarray(o["z"]) for o in outs]),
        "s": np.stack([np.asarray(o["s"]) for o in outs]),
        "y": np.stack([np.asarray(o["y"])[..., 0] for o in outs]),
    }


def dynamics_summary(
    z_pc1: np.ndarray, s_random: np.ndarray, y_values: np.ndarray
) -> dict[str, Any]:
    """The three statements of panels D–F as numbers.

    z_pc1: (Q, n, T) single-trial z on its first PC and s_random: (Q, n, T, K) gains, for the
    queries ``QUERY_SWEEP`` with random queried elements; y_values: (V, n, T) outputs y = C x for
    the values ``VALUE_SWEEP`` at query ``VALUE_SWEEP_QUERY``.

    z encodes q: Pearson r across single trials between q and z on PC1, per step
    (``z_q_corr_by_t`` (T,)), averaged over t = 1..5 after the query pulse (``z_q_corr_early``)
    and over the last ``LATE_STEPS`` steps (``z_q_corr_late``).
    s switches at the queried step: :func:`switch_contrast` of the trial-averaged gains
    (``s_change_around``, ``s_change_elsewhere``, ``s_change_ratio``, ``s_change_profile``).
    x holds the value: Pearson r across single trials between the value and y per step
    (``x_value_corr_by_t``), at the last step (``x_value_corr_final``) and averaged over the steps
    after the queried one (``x_value_corr_hold``); RMS error of y(25) against the value
    (``x_final_rmse``).
    """
    queries = np.asarray(QUERY_SWEEP, float)
    values = np.asarray(VALUE_SWEEP, float)
    T = z_pc1.shape[-1]
    q_trials = np.repeat(queries, z_pc1.shape[1])
    z_corr = np.array([pearson(z_pc1[:, :, t], q_trials) for t in range(T)])
    v_trials = np.repeat(values, y_values.shape[1])
    y_corr = np.array([pearson(y_values[:, :, t], v_trials) for t in range(T)])
    contrast = switch_contrast(np.asarray(s_random).mean(axis=1), QUERY_SWEEP)
    y_final = y_values[:, :, -1]
    with np.errstate(all="ignore"):
        return {
            "z_q_corr_by_t": z_corr,
            "z_q_corr_early": float(np.nanmean(z_corr[1:6])),
            "z_q_corr_late": float(np.nanmean(z_corr[-LATE_STEPS:])),
            "s_change_around": contrast["around"],
            "s_change_elsewhere": contrast["elsewhere"],
            "s_change_ratio": contrast["ratio"],
            "s_change_lags": contrast["lags"],
            "s_change_profile": contrast["profile"],
            "x_value_corr_by_t": y_corr,
            "x_value_corr_final": float(y_corr[-1]),
            "x_value_corr_hold": float(np.nanmean(y_corr[VALUE_SWEEP_QUERY + 2 :])),
            "x_final_rmse": float(np.sqrt(np.mean((y_final - values[:, None]) ** 2))),
        }


def nmrnn_dynamics(model, variables, n: int = TRIALS_PER_CONDITION) -> dict:
    """z, s and y = C x of one NM-RNN across query indices (fixed value) and values (fixed query).

    z is projected on the first PC of the trial-averaged z of the queries with random values (all
    steps), its sign chosen so that the projection grows with q. Returns trial means for plotting
    (``query_sweep``, ``value_sweep``: z_pc1 (C, T), s (C, T, K), y (C, T)) and the numbers of
    :func:`dynamics_summary` computed on single trials.
    """
    run = runner(model)
    variables = jnp_tree(variables)
    sets = sweep_sets(n)
    traj = {name: _trajectories(run, variables, data) for name, data in sets.items()}
    z_random = traj["query_random"]["z"]
    fit = pca(z_random.mean(axis=1).reshape(-1, z_random.shape[-1]))
    pcs = {k: fit[k] for k in ("mean", "components", "explained")}
    proj = {name: (t["z"] - pcs["mean"]) @ pcs["components"][0] for name, t in traj.items()}
    q_trials = np.repeat(np.asarray(QUERY_SWEEP, float), n)
    with np.errstate(all="ignore"):
        sign = np.nanmean([pearson(proj["query_random"][:, :, t], q_trials)
                           for t in range(1, z_random.shape[2])])  # fmt: skip
    if np.isfinite(sign) and sign < 0:
        pcs["components"] = -pcs["components"]
        proj = {name: -p for name, p in proj.items()}
    s_random = traj["query_random"]["s"]
    return {
        "queries": np.asarray(QUERY_SWEEP),
        "query_value": np.asarray(QUERY_SWEEP_VALUE),
        "values": np.asarray(VALUE_SWEEP),
        "value_query": np.asarray(VALUE_SWEEP_QUERY),
        "trials_per_condition": np.asarray(n),
        "s_component": np.asarray(strongest_switching_gain(s_random.mean(axis=1), QUERY_SWEEP)),
        **{
            out: {
                "z_pc1": proj[name].mean(axis=1),
                "s": traj[name]["s"].mean(axis=1),
                "y": traj[name]["y"].mean(axis=1),
            }
            for out, name in (
                ("query_sweep", "query"),
                ("value_sweep", "value"),
                ("query_random", "query_random"),
            )
        },
        "z_pc": pcs,
        "summary": dynamics_summary(proj["query_random"], s_random, traj["value"]["y"]),
    }


# ---------------------------------------------------------------------------------- analyse


def example_trial(seed: int = EXAMPLE_SEED) -> dict[str, np.ndarray]:
    """One EFT trial for panel A (query ``EXAMPLE_QUERY``, random elements): inputs (T,), query,
    value (= the target at the last step), target (T,)."""
    data = eft.fixed_query_set(jax.random.key(seed), EXAMPLE_QUERY, 1)
    return {
        "inputs": np.asarray(data.inputs)[0, :, 0],
        "query": np.asarray(data.events["query"])[0],
        "value": np.asarray(data.events["value"])[0],
        "target": np.asarray(data.targets)[0, :, 0],
    }


def analyse(experiments: Mapping[str, Any], files: RunFiles) -> dict:
    """Test MSE, training curves and the best NM-RNN's dynamics for Figure 5 (see module doc).

    ``files``: the parameters, losses and metadata of every (eft, arch, seed) and the task data of
    every seed."""
    exp = ex.parse(experiments, EXPERIMENT)
    seeds = list(range(int(exp.settings["seeds"])))
    archs = list(exp.archs)
    tests = {s: tree_taskdata(load_tree(files.task_data(EXPERIMENT, s))["test"]) for s in seeds}

    out: dict[str, Any] = {"archs": {}}
    mse: dict[str, np.ndarray] = {}
    selected_mse: dict[str, np.ndarray] = {}
    models: dict[str, Any] = {}
    for arch in archs:
        model = exp.archs[arch].model
        models[arch] = model
        run = runner(model)
        vals, curves, chosen, chosen_step, checks = [], [], [], [], []
        for s in seeds:
            variables = load_tree(files.file(EXPERIMENT, arch, s, "params"))
            losses = files.file(EXPERIMENT, arch, s, "losses")
            vals.append(_test_mse(run, variables, tests[s]))
            curves.append(bin_curve(read_losses(losses), N_CURVE_POINTS))
            selected = selected_variables(variables)
            if selected is not None:
                chosen.append(_test_mse(run, selected, tests[s]))
                meta = read_seed_json(files.file(EXPERIMENT, arch, s, "meta"))
                chosen_step.append(meta["selected_step"])
                checks.append(bin_curve(read_losses(losses, "validation_loss"), N_CURVE_POINTS)[1])
        mse[arch] = np.asarray(vals)
        length = min(len(c[0]) for c in curves)
        steps = curves[0][0][:length]
        stacked = np.stack([c[1][:length] for c in curves])
        with np.errstate(all="ignore"):
            quantiles = np.nanquantile(stacked, [0.25, 0.5, 0.75], axis=0)
        out["archs"][arch] = {
            "seeds": np.asarray(seeds),
            "mse": mse[arch],
            "n_parameters": np.asarray(exp.archs[arch].n_parameters),
            "curve_steps": steps,
            "curves": stacked,
            "curve_q25": quantiles[0],
            "curve_median": quantiles[1],
            "curve_q75": quantiles[2],
        }
        if len(chosen) == len(seeds):
            selected_mse[arch] = np.asarray(chosen)
            out["archs"][arch].update(
                mse_selected=selected_mse[arch],
                selected_step=np.asarray(chosen_step),
                validation_curves=np.stack([c[:length] for c in checks]),
            )

    nm_archs = [a for a in archs if exp.archs[a].kind == "nmrnn"]
    out["meta"] = {
        "experiment": np.asarray(EXPERIMENT),
        "archs": np.asarray(archs),
        "is_nmrnn": np.asarray([a in nm_archs for a in archs]),
        "chance_mse": np.asarray(eft.CHANCE_MSE),
    }
    out["task"] = example_trial()
    # The dynamics come from the selected parameters where every NM-RNN has them (the final ones
    # of an unstable run may have drifted back to chance).
    use_selected = bool(nm_archs) and all(a in selected_mse for a in nm_archs)
    scores = selected_mse if use_selected else mse
    best = best_of(scores, nm_archs)
    if best is not None:
        finite = np.where(np.isfinite(scores[best]), scores[best], np.inf)
        seed = seeds[int(np.argmin(finite))]
        variables = load_tree(files.file(EXPERIMENT, best, seed, "params"))
        if use_selected:
            variables = selected_variables(variables)
        out["dynamics"] = {
            "arch": np.asarray(best),
            "seed": np.asarray(seed),
            "checkpoint": np.asarray("selected" if use_selected else "final"),
            "arch_median_mse": np.asarray(float(np.nanmedian(scores[best]))),
            "seed_mse": np.asarray(scores[best][seeds.index(seed)]),
            **nmrnn_dynamics(models[best], variables),
        }
    return out


def _test_mse(run, variables, test) -> float:
    y = np.asarray(run(jnp_tree(variables), jnp.asarray(test.inputs))["y"])
    return float(trial_mse(y, test).mean())

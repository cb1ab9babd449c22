"""One training engine for every model, task and protocol of the paper.

S seeds train together as a leading ``vmap`` axis of one jitted program. Steps run in jitted chunks
(``lax.scan``); after each chunk the engine prints a progress line, checks the losses for NaN/inf
and
writes a checkpoint, so a killed run resumes where it stopped and ends bit-identical to an
uninterrupted one (every random draw is keyed by (seed, step), never by how the run was split).
Staged protocols (train the low-rank part, then the neuromodulatory part, then everything) are
optax masks over named parameter groups, not separate loops.

Optionally (:class:`Selection`) the engine scores every seed on a fixed validation batch every few
steps and keeps the parameters with the lowest validation loss next to the final ones: early
stopping on held-out trials, never on the test set nor on a training minibatch.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nmrnn import checkpoints
from nmrnn.architectures import parameter_groups
from nmrnn.tasks.common import TaskData, masked_mse

Array = jax.Array
BatchFn = Callable[[Any, Array], TaskData]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the seed and the step."""


@dataclasses.dataclass(frozen=True)
class Stage:
    """One phase of a protocol: which parameter group trains, for how many steps, at which rate.

    ``trainable`` is ``"all"`` or a group of the model's ``PARAM_GROUPS`` (``"lowrank"``,
    ``"neuromod"``, ``"inputs"``).
    """

    name: str
    trainable: str
    steps: int
    learning_rate: float

    def __post_init__(self):
        if not isinstance(self.trainable, str) or not self.trainable:
            raise ValueError(
                f"Stage {self.name!r}: trainable must be 'all' or the name of a parameter group "
                f"(a string such as 'lowrank', 'neuromod', 'inputs'), got {self.trainable!r}"
            )
        if isinstance(self.steps, bool) or not isinstance(self.steps, (int, np.integer)):
            raise ValueError(f"Stage {self.name!r}: steps must be an integer, got {self.steps!r}")
        if self.steps < 1:
            raise ValueError(f"Stage {self.name!r}: steps must be at least 1, got {self.steps}")
        if (
            isinstance(self.learning_rate, bool)
            or not isinstance(self.learning_rate, (int, float, np.integer, np.floating))
            or not 0 < self.learning_rate < float("inf")
        ):
            raise ValueError(
                f"Stage {self.name!r}: learning_rate must be a positive finite number "
                f"(zero or negative rates do not descend), got {self.learning_rate!r}"
            )


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """Optimizer settings (SPEC §3).

    ``kind="clip_adamw"``: clip each gradient element to ±clip, then AdamW(weight_decay).
    ``kind="adam"``: plain Adam with ``eps`` (EFT). ``reset_every``: re-initialise the optimizer
    state every that many steps of a stage (the authors' loop did this every 1000 steps;
    ``None`` keeps it, the default).
    """

    kind: str = "clip_adamw"
    clip: float = 1.0
    weight_decay: float = 1e-4
    eps: float = 1e-8
    reset_every: int | None = None

    def __post_init__(self):
        if self.kind not in ("clip_adamw", "adam"):
            raise ValueError(f"unknown optimizer kind {self.kind!r} (use 'clip_adamw' or 'adam')")
        for name in ("clip", "eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ValueError(f"Optimizer: {name} must be a positive number, got {value!r}")
            if not value > 0:
                raise ValueError(f"Optimizer: {name} must be positive, got {value!r}")
            if not np.isfinite(value):
                raise ValueError(f"Optimizer: {name} must be finite, got {value!r}")
        wd = self.weight_decay
        if isinstance(wd, bool) or not isinstance(wd, (int, float, np.number)) or not wd >= 0:
            raise ValueError(f"Optimizer: weight_decay must be a number >= 0, got {wd!r}")
        if not np.isfinite(wd):
            raise ValueError(f"Optimizer: weight_decay must be finite, got {wd!r}")
        if self.reset_every is not None and (
            isinstance(self.reset_every, bool)
            or not isinstance(self.reset_every, (int, np.integer))
            or self.reset_every < 1
        ):
            raise ValueError(
                f"Optimizer: reset_every must be None or an integer >= 1, got {self.reset_every!r}"
            )

    def make(self, learning_rate: float) -> optax.GradientTransformation:
        if self.kind == "clip_adamw":
            return optax.chain(
                optax.clip(self.clip),
                optax.adamw(learning_rate, eps=self.eps, weight_decay=self.weight_decay),
            )
        if self.kind == "adam":
            return optax.adam(learning_rate, eps=self.eps)
        raise ValueError(f"unknown optimizer kind {self.kind!r} (use 'clip_adamw' or 'adam')")


@dataclasses.dataclass(frozen=True)
class Selection:
    """Keep each seed's parameters with the lowest loss: early stopping.

    ``on="validation"`` (held-out trials): the loss on the fixed ``batch`` (a :class:`TaskData`
    with a leading seed axis, each seed's own held-out trials) after every ``every``-th step and
    after the last step of the run, over the whole run.

    ``on="train"`` (the authors' rule): the training loss of the step's own batch, computed
    before that step's update, every ``every``-th step of a stage and at its last step; the
    parameters after that update are kept. Per stage: a stage ends by handing its selected
    parameters to the next stage (the authors' staged loop did), and the last stage's selection
    is the run's. ``batch`` is not used.

    Ties keep the earlier parameters; a NaN loss never wins.
    """

    every: int
    batch: TaskData | None = None
    on: str = "validation"

    def __post_init__(self):
        if isinstance(self.every, bool) or int(self.every) < 1:
            raise ValueError(
                f"selection interval must be a positive number of steps, got {self.every}"
            )
        if self.on not in ("validation", "train"):
            raise ValueError(f"Selection.on must be 'validation' or 'train', got {self.on!r}")
        if self.on == "validation" and self.batch is None:
            raise ValueError("Selection on='validation' needs a validation batch")


class TrainResult(NamedTuple):
    variables: dict  # final variables, every leaf with a leading seed axis (S, ...)
    losses: np.ndarray  # (S, total_steps) training loss per step
    wall_s: float  # wall time of this call, compile included
    compile_s: float  # seconds spent compiling (ahead of time, once per stage and chunk length)
    resumed_from: int  # step the run resumed from (0 for a fresh run)
    # With a Selection (else None): validation loss (S, total_steps), NaN where not computed;
    # the variables with the lowest validation loss; the step after which each seed's were taken.
    validation_losses: np.ndarray | None = None
    best_variables: dict | None = None
    best_step: np.ndarray | None = None
    # Training time over every attempt: this call's wall time plus what earlier attempts had
    # spent up to their last checkpoint (None: resumed from a checkpoint that did not record it).
    total_s: float | None = None
    # The run's fingerprint (:func:`run_fingerprint`; None when no checkpoint was requested):
    # what the per-seed files of the run record as theirs.
    fingerprint: str | None = None


def trainable_mask(model: nn.Module, params: Mapping[str, Any], trainable: str) -> dict:
    """Bool tree over ``params``: True for the parameters of group ``trainable`` (or ``"all"``)."""
    if trainable == "all":
        return jax.tree.map(lambda _: True, params)
    groups = parameter_groups(model)
    if trainable not in groups:
        raise ValueError(
            f"model {type(model).__name__} has no parameter group {trainable!r}; "
            f"it has {sorted(groups) + ['all']}"
        )
    names = set(groups[trainable])
    return {k: jax.tree.map(lambda _, k=k: k in names, v) for k, v in params.items()}


def count_trainable(model: nn.Module, params: Mapping[str, Any], trainable: str) -> int:
    """How many numbers a stage with ``trainable`` updates (per seed, if params are unstacked)."""
    mask = trainable_mask(model, params, trainable)
    return int(
        sum(
            p.size for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask), strict=True) if m
        )
    )


def _masked(tx: optax.GradientTransformation, mask: dict) -> optax.GradientTransformation:
    labels = jax.tree.map(lambda m: "train" if m else "freeze", mask)
    return optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, labels)


def loss_fn(model: nn.Module) -> Callable[[dict, dict, TaskData], Array]:
    """Masked MSE of the model's outputs on a batch, as a function of (params, constants, batch)."""

    def loss(params, constants, batch: TaskData):
        outputs = model.apply({"params": params, "constants": constants}, batch.inputs)["y"]
        return masked_mse(outputs, batch.targets, batch.mask)

    return loss


# ----------------------------------------------------------------------------- engine


def _stage_runner(
    model,
    stage: Stage,
    optimizer: Optimizer,
    batch_fn: BatchFn,
    params_template,
    selection: Selection | None = None,
    last_step: int = -1,
):
    """Jitted chunk runner for one stage: (params, constants, opt_state, best, data, validation,
    keys, steps, stage_steps) → (params, opt_state, best, losses (chunk, S), validation losses
    (chunk, S), NaN where not computed). ``best`` holds the selected parameters, their validation
    loss and step; without a selection, ``best`` and the validation losses are ``None``.
    Compiled once per stage and chunk length."""
    mask = trainable_mask(model, params_template, stage.trainable)
    tx = _masked(optimizer.make(stage.learning_rate), mask)
    loss = loss_fn(model)

    def one_seed(params, constants, opt_state, data, key, step):
        batch = batch_fn(data, jax.random.fold_in(key, step))
        value, grads = jax.value_and_grad(loss)(params, constants, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    step_all = jax.vmap(one_seed, in_axes=(0, 0, 0, 0, 0, None))
    reset_all = jax.vmap(tx.init)
    validate_all = jax.vmap(loss)

    def keep_better(params, constants, best, validation, step):
        return keep_lower(params, best, validate_all(params, constants, validation), step)

    def keep_lower(params, best, value, step):
        better = value < best["loss"]  # NaN never wins; ties keep the earlier parameters

        def pick(new, old):
            return jnp.where(better.reshape(better.shape + (1,) * (new.ndim - 1)), new, old)

        best = {
            "params": jax.tree.map(pick, params, best["params"]),
            "loss": jnp.where(better, value, best["loss"]),
            "step": jnp.where(better, step + 1, best["step"]),
        }
        return best, value

    def chunk(params, constants, opt_state, best, data, validation, keys, steps, stage_steps):
        def body(carry, xs):
            params, opt_state, best = carry
            step, stage_step = xs
            if optimizer.reset_every:
                fresh = reset_all(params)
                do_reset = (stage_step % optimizer.reset_every == 0) & (stage_step > 0)
                opt_state = jax.tree.map(lambda a, b: jnp.where(do_reset, a, b), fresh, opt_state)
            params, opt_state, value = step_all(params, constants, opt_state, data, keys, step)
            if selection is None:
                return (params, opt_state, best), (value, None)
            if selection.on == "train":
                due = ((stage_step + 1) % selection.every == 0) | (stage_step == stage.steps - 1)
                best, checked = jax.lax.cond(
                    due,
                    lambda b: keep_lower(params, b, value, step),
                    lambda b: (b, jnp.full_like(value, jnp.nan)),
                    best,
                )
                return (params, opt_state, best), (value, checked)
            due = ((step + 1) % selection.every == 0) | (step == last_step)
            best, checked = jax.lax.cond(
                due,
                lambda b: keep_better(params, constants, b, validation, step),
                lambda b: (b, jnp.full_like(value, jnp.nan)),
                best,
            )
            return (params, opt_state, best), (value, checked)

        (params, opt_state, best), (losses, checked) = jax.lax.scan(
            body, (params, opt_state, best), (steps, stage_steps)
        )
        return params, opt_state, best, losses, checked

    return jax.jit(chunk, donate_argnums=(0, 2, 3)), reset_all


def _progress_line(tag: str, stage: Stage, step: int, total: int, losses: np.ndarray, rate: float):
    last = losses[-1]
    if last.size <= 5:
        shown = " ".join(f"{v:.4g}" for v in last)
        body = f"loss [{shown}]"
    else:
        q = np.quantile(last, [0.0, 0.5, 1.0])
        body = f"loss min {q[0]:.4g} median {q[1]:.4g} max {q[2]:.4g} (S={last.size})"
    line = f"{tag}stage {stage.name} step {step}/{total} {body} | {rate:.1f} steps/s"
    if step < total and rate > 0:
        line += f", ~{_duration((total - step) / rate)} left"
    return line


def _duration(seconds: float) -> str:
    """A rough human duration: '<1 min', '12 min', '3 h 05 min'."""
    minutes = round(seconds / 60)
    if minutes < 1:
        return "<1 min"
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def train(
    model: nn.Module,
    variables: dict,
    stages: Sequence[Stage],
    optimizer: Optimizer,
    batch_fn: BatchFn,
    data: Any,
    data_keys: Array,
    *,
    chunk_size: int = 1000,
    checkpoint: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    tag: str = "",
    selection: Selection | None = None,
    fingerprint_extra: Any = None,
) -> TrainResult:
    """Train S seeds of ``model`` through ``stages``.

    Args:
        model: a flax module from :mod:`nmrnn.models`.
        variables: ``{"params": ..., "constants": ...}`` with a leading seed axis S on every leaf.
        stages: the protocol, run in order; the optimizer state starts fresh at each stage.
        optimizer: optimizer settings.
        batch_fn: ``batch_fn(data_one_seed, key) -> TaskData``, a pure JAX function giving the batch
            of one step (e.g. the full MWG set, a draw from a pool, a fresh EFT batch).
        data: pytree with a leading seed axis S (each seed's own pool); may be ``None``.
        data_keys: (S,) PRNG keys, one per seed; the batch of step t uses ``fold_in(key, t)``.
        chunk_size: steps per jitted chunk (a progress line, a NaN check and a checkpoint each).
        checkpoint: path of the checkpoint file; if it exists the run resumes from it.
        log: where progress lines go (default: stderr).
        tag: prefix of progress lines (e.g. ``"mwg/nmrnn "``).
        selection: also keep each seed's variables with the lowest validation loss
            (``TrainResult.best_variables``); see :class:`Selection`.
        fingerprint_extra: JSON-able settings that shape the batches beyond ``data`` and
            ``data_keys`` (batch size, noise, ...): part of the run's fingerprint, so a
            checkpoint written under other settings is never resumed.

    Checkpoints (:mod:`nmrnn.checkpoints`): the file holds the run's fingerprint. A checkpoint of
    another run, or one that cannot be read, is moved aside (``*.stale.npz``, ``*.corrupt.npz``)
    with a warning and the run starts from step 0. The last checkpoint (at the final step) is
    kept; a rerun of the same run with the same package code returns its result without
    training (so a training block deleted by a rerun is restored at no cost).

    Raises:
        TrainingDiverged: the loss of some seed became NaN/inf; the last good checkpoint is kept.
    """
    _check_chunk_size(chunk_size)
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    _check_seed_axes(variables, data, data_keys)
    _check_finite_inputs(variables, data, selection)
    start = time.perf_counter()
    params = jax.tree.map(jnp.copy, variables["params"])
    S = jax.tree.leaves(params)[0].shape[0]
    total = int(sum(s.steps for s in stages))
    boundaries = np.cumsum([0] + [s.steps for s in stages])
    template_one = jax.tree.map(lambda a: a[0], params)
    runners = [
        _stage_runner(model, st, optimizer, batch_fn, template_one, selection, total - 1)
        for st in stages
    ]
    run = _RunState(
        params=params,
        constants=variables["constants"],
        best=None if selection is None else _no_selection_yet(params, S),
        losses=np.zeros((S, 0), np.float32),
        checked=np.zeros((S, 0), np.float32),
    )
    loop = _Loop(
        batch_fn=batch_fn,
        data=data,
        validation=None if selection is None else selection.batch,
        data_keys=jnp.asarray(data_keys),
        chunk_size=chunk_size,
        handoff=selection is not None and selection.on == "train",
        total=total,
        log=log,
        tag=tag,
        start=start,
    )
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        fingerprint = checkpoints.run_fingerprint(
            model, stages, optimizer, params, run.constants, data_keys, selection,
            data=data, extra=fingerprint_extra,
        )  # fmt: skip
        loop = loop._replace(
            checkpoint=checkpoint, fingerprint=fingerprint, code=checkpoints.code_digest()
        )
        checkpoints.restore_set_aside(checkpoint, fingerprint, total, log, tag)
        meta = checkpoints.resumable_meta(checkpoint, fingerprint, loop.code, total, log, tag)
        if meta is not None:
            _resume(run, loop, meta, runners, boundaries)
    resumed_from = run.done

    compile_s = 0.0
    for i, stage in enumerate(stages):
        lo, hi = int(boundaries[i]), int(boundaries[i + 1])
        if run.done >= hi:
            continue  # finished before a resume (its optimizer state is not the next stage's)
        compile_s += _run_stage(run, loop, stage, runners[i], lo, hi, last=i == len(stages) - 1)
        run.opt_state = None
    return _result(run, loop, compile_s, resumed_from)


class _Loop(NamedTuple):
    """What every chunk of a run reads and nothing changes: the data, the keys, the checkpoint."""

    batch_fn: BatchFn
    data: Any
    validation: TaskData | None
    data_keys: Array
    chunk_size: int
    handoff: bool  # a stage ends by handing its selected parameters to the next (Selection)
    total: int
    log: Callable[[str], None]
    tag: str
    start: float  # perf_counter() when train() was called
    checkpoint: Path | None = None
    fingerprint: str | None = None
    code: str | None = None


@dataclasses.dataclass
class _RunState:
    """What a run carries from chunk to chunk, and what its checkpoint holds."""

    params: Any
    constants: Any
    best: dict | None  # with a selection: the selected params, their loss and step
    losses: np.ndarray  # (S, done)
    checked: np.ndarray  # (S, done) validation losses, NaN where not computed
    opt_state: Any = None  # None: start the stage's optimizer afresh
    done: int = 0  # steps trained
    earlier_s: float | None = 0.0  # training time of earlier attempts (None: not recorded)


def _check_chunk_size(chunk_size: Any) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size}")


def _no_selection_yet(params: Any, S: int) -> dict:
    return {
        "params": jax.tree.map(jnp.copy, params),
        "loss": jnp.full((S,), jnp.inf, jnp.float32),
        "step": jnp.zeros((S,), jnp.int32),
    }


def _resume(run: _RunState, loop: _Loop, meta: dict, runners, boundaries) -> None:
    """Load the run's checkpoint (whose ``meta`` says it can be resumed) into ``run``; a damaged
    one is set aside and the run starts from step 0."""
    step = int(meta["step"])
    S = run.losses.shape[0]
    stage_i = max(int(np.searchsorted(boundaries, step, side="left")) - 1, 0)  # ran step - 1
    template = {
        "params": run.params,
        "constants": run.constants,
        "opt_state": runners[stage_i][1](run.params),
    }
    if run.best is not None:
        template["best_params"] = run.best["params"]
    try:
        state = checkpoints.load_checkpoint(loop.checkpoint, template)
        if state["losses"].shape != (S, step):
            raise ValueError(f"losses of shape {state['losses'].shape}, not {(S, step)}")
    except Exception as error:  # noqa: BLE001 - a damaged checkpoint is set aside
        checkpoints.set_aside_unreadable(loop.checkpoint, error, loop.log, loop.tag)
        return
    run.done = step
    run.params, run.constants, run.losses = state["params"], state["constants"], state["losses"]
    if run.best is not None:
        run.best = {
            "params": state["best_params"],
            "loss": jnp.asarray(state["best_loss"]),
            "step": jnp.asarray(state["best_step"]),
        }
        run.checked = state["validation_losses"]
    run.opt_state = state["opt_state"] if step > boundaries[stage_i] else None
    run.earlier_s = meta.get("elapsed_s")
    loop.log(f"{loop.tag}resumed from checkpoint {loop.checkpoint} at step {step}/{loop.total}")


def _run_stage(run: _RunState, loop: _Loop, stage: Stage, runner, lo: int, hi: int, last: bool):
    """Train ``stage`` (steps ``lo``..``hi`` of the run) from ``run.done`` on, chunk by chunk:
    each chunk is checked for NaN, logged and checkpointed. Returns the seconds spent compiling."""
    run_chunk, reset = runner
    if run.opt_state is None or run.done == lo:
        run.opt_state = reset(run.params)
    compiled = {}  # chunk length -> executable, compiled ahead of time so its cost is measured
    compile_s = 0.0
    while run.done < hi:
        n = min(loop.chunk_size, hi - run.done)
        steps = jnp.arange(run.done, run.done + n)
        args = (run.params, run.constants, run.opt_state, run.best, loop.data, loop.validation,
                loop.data_keys, steps, steps - lo)  # fmt: skip
        if n not in compiled:
            t0 = time.perf_counter()
            compiled[n] = run_chunk.lower(*args).compile()
            compile_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        new_params, new_opt, new_best, chunk_losses, chunk_checked = compiled[n](*args)
        chunk_losses = np.asarray(chunk_losses).T  # (S, n)
        elapsed = time.perf_counter() - t0
        if not np.all(np.isfinite(chunk_losses)):
            raise _diverged(run, loop, stage, chunk_losses)
        run.params, run.opt_state, run.best = new_params, new_opt, new_best
        run.losses = np.concatenate([run.losses, chunk_losses], axis=1)
        if chunk_checked is not None:
            run.checked = np.concatenate([run.checked, np.asarray(chunk_checked).T], axis=1)
        run.done += n
        loop.log(_progress_line(loop.tag, stage, run.done, loop.total, chunk_losses.T, n / elapsed))
        if loop.handoff and run.done == hi and not last:
            _hand_off_selection(run, loop, stage)
        if loop.checkpoint is not None:
            _save(run, loop)
    return compile_s


def _diverged(run: _RunState, loop: _Loop, stage: Stage, chunk_losses) -> TrainingDiverged:
    """The error of a chunk whose losses are not all finite: seed, step, what was kept, cause."""
    seed_i, step_i = np.argwhere(~np.isfinite(chunk_losses))[0]
    if loop.checkpoint is None:
        kept = "no checkpoint was requested"
    elif loop.checkpoint.exists():
        kept = f"last good checkpoint (step {run.done}) kept in {loop.checkpoint}"
    else:
        kept = "no checkpoint was written yet (it diverged in the first chunk)"
    cause = _divergence_cause(loop.batch_fn, loop.data, loop.data_keys, seed_i, run.done + step_i)
    return TrainingDiverged(
        f"{loop.tag}loss is {chunk_losses[seed_i, step_i]} for seed index {seed_i} "
        f"at step {run.done + step_i} (stage {stage.name}, learning rate "
        f"{stage.learning_rate:g}); {kept}. {cause}"
    )


def _hand_off_selection(run: _RunState, loop: _Loop, stage: Stage) -> None:
    """The authors' staged loop: the next stage starts from this stage's selection."""
    S = run.losses.shape[0]
    run.params = jax.tree.map(jnp.copy, run.best["params"])
    run.best = {**run.best, "loss": jnp.full((S,), jnp.inf, jnp.float32)}
    chosen = np.asarray(run.best["step"]).tolist()
    loop.log(
        f"{loop.tag}stage {stage.name}: the next stage starts from the parameters with "
        f"the lowest training loss (after steps {chosen})"
    )


def _save(run: _RunState, loop: _Loop) -> None:
    elapsed = None if run.earlier_s is None else run.earlier_s + time.perf_counter() - loop.start
    state = {
        "params": run.params,
        "constants": run.constants,
        "opt_state": run.opt_state,
        "losses": run.losses,
        "meta": {
            "step": run.done,
            "total": loop.total,
            "protocol": loop.fingerprint,
            "code": loop.code,
            "elapsed_s": elapsed,
        },
    }
    if run.best is not None:
        state.update(
            best_params=run.best["params"],
            best_loss=run.best["loss"],
            best_step=run.best["step"],
            validation_losses=run.checked,
        )
    checkpoints.save_checkpoint(loop.checkpoint, state)


def _result(run: _RunState, loop: _Loop, compile_s: float, resumed_from: int) -> TrainResult:
    final = {"params": jax.device_get(run.params), "constants": jax.device_get(run.constants)}
    wall = time.perf_counter() - loop.start
    total_s = None if run.earlier_s is None else run.earlier_s + wall
    common = dict(total_s=total_s, fingerprint=loop.fingerprint)
    if run.best is None:
        return TrainResult(final, run.losses, wall, compile_s, resumed_from, **common)
    chosen = {"params": jax.device_get(run.best["params"]), "constants": final["constants"]}
    return TrainResult(final, run.losses, wall, compile_s, resumed_from, run.checked, chosen,
                       np.asarray(run.best["step"]), **common)  # fmt: skip


def _not_finite(tree: Any, what: str) -> str | None:
    """'<what><path>' of the first leaf of ``tree`` with a NaN or infinite entry (or empty, as
    '... is empty'), or None when every leaf is finite and non-empty."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        array = np.asarray(jax.device_get(leaf))
        name = f"{what}{jax.tree_util.keystr(path)}"
        if array.ndim and array.size == 0:
            return f"{name} is empty (shape {array.shape})"
        if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
            bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
            return f"{name} is not finite ({bad} of {array.size} entries NaN or infinite)"
    return None


def _check_seed_axes(variables: Any, data: Any, data_keys: Any) -> None:
    """``variables`` hold ``params`` and ``constants``, and every leaf of them, of ``data`` and
    ``data_keys`` has the same leading seed axis S: one line naming the first that does not
    (vmap would fail deep inside the program)."""
    if not isinstance(variables, Mapping) or not {"params", "constants"} <= set(variables):
        have = sorted(variables) if isinstance(variables, Mapping) else type(variables).__name__
        raise ValueError(f"variables must hold 'params' and 'constants' (init_seeds), got {have}")
    leaves = jax.tree_util.tree_leaves_with_path(variables["params"])
    if not leaves:
        raise ValueError("variables['params'] holds no arrays")
    S = np.shape(leaves[0][1])[:1]

    def leaves_of(tree, what):
        return [(f"{what}{jax.tree_util.keystr(p)}", leaf)
                for p, leaf in jax.tree_util.tree_leaves_with_path(tree)]  # fmt: skip

    named = leaves_of(variables["params"], "variables['params']")
    named += leaves_of(variables["constants"], "variables['constants']")
    named += leaves_of(data, "data") if data is not None else []
    named.append(("data_keys", data_keys))
    for name, leaf in named:
        if np.shape(leaf)[:1] != S:
            raise ValueError(
                f"{name} has shape {np.shape(leaf)}, whose leading (seed) axis is not the "
                f"{S[0] if S else 'missing'} seeds of {named[0][0]}; every leaf carries one "
                f"entry per seed"
            )


def _check_finite_inputs(variables: Mapping[str, Any], data: Any, selection) -> None:
    """Refuse, naming the array, initial variables or data that are not finite or are empty: the
    loss would be NaN from the first step and the cause is not the learning rate."""
    checks = [(variables.get("params"), "variables['params']"),
              (variables.get("constants"), "variables['constants']"), (data, "data")]  # fmt: skip
    if selection is not None:
        checks.append((selection.batch, "selection.batch"))
    for tree, what in checks:
        problem = _not_finite(tree, what)
        if problem:
            raise ValueError(f"training input {problem}; nothing was trained")


def _divergence_cause(batch_fn, data, data_keys, seed: int, step: int) -> str:
    """What a non-finite loss of ``seed`` at ``step`` points to: the batch of that step (rebuilt
    as the training step built it) if it is not finite (noise or data settings), the starting
    point if it is the first step, else the learning rate."""
    key = jax.random.fold_in(jnp.asarray(data_keys)[seed], step)
    seed_data = None if data is None else jax.tree.map(lambda a: a[seed], data)
    problem = _not_finite(batch_fn(seed_data, key), "batch")
    if problem:
        return (
            f"The {problem.replace('batch.', 'batch ', 1)} (its data or noise settings, e.g. a "
            f"NaN noise level), not a learning-rate problem"
        )
    if step == 0:
        return (
            "It was not finite at the first step, before any update: not the learning rate; "
            "check the model's settings (time constants, sizes)"
        )
    return "A lower learning_rate usually helps"


def init_seeds(model: nn.Module, init_keys: Array, example_inputs: Array) -> dict:
    """Initial variables for each key in ``init_keys`` (S,), stacked on a leading seed axis."""
    return jax.vmap(lambda k: model.init(k, example_inputs))(init_keys)


def seed_keys(seed: int) -> tuple[Array, Array]:
    """Independent (init, data) PRNG keys for one seed."""
    init_key, data_key = jax.random.split(jax.random.key(seed))
    return init_key, data_key


def unstack(tree, i: int):
    """Seed ``i`` of a tree with a leading seed axis."""
    return jax.tree.map(lambda a: a[i], tree)

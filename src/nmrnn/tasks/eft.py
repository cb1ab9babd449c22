"""Element Finder Task: a query index q followed by 25 random integers; the network must report
the q-th integer at the final step."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from nmrnn.tasks.common import Task, TaskData, run, selected_variables, selects_on, trial_mse

N_ELEMENTS = 25
T = N_ELEMENTS + 1  # step 0 carries the query, steps 1..25 the elements
VALUE_MIN, VALUE_MAX = -10, 10
# Loss of always predicting 0: E[v^2] = Var(U{-10..10}) = ((21^2 - 1) / 12) = 110/3.
CHANCE_MSE = ((VALUE_MAX - VALUE_MIN + 1) ** 2 - 1) / 12.0


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"eft: {name} must be a whole number of trials >= 1, got {value!r}")


def _check_query(query) -> None:
    """A concrete query index is one of the 25 elements (a traced one cannot be checked)."""
    if isinstance(query, jax.core.Tracer):
        return
    if not np.all((np.asarray(query) >= 0) & (np.asarray(query) < N_ELEMENTS)):
        raise ValueError(f"eft: query must be an element index 0..{N_ELEMENTS - 1}, got {query!r}")


def _check_value(value) -> None:
    if isinstance(value, jax.core.Tracer):
        return
    if not np.all((np.asarray(value) >= VALUE_MIN) & (np.asarray(value) <= VALUE_MAX)):
        raise ValueError(f"eft: value must be in {VALUE_MIN}..{VALUE_MAX}, got {value!r}")


def _assemble(query: jax.Array, elements: jax.Array) -> TaskData:
    """Build a batch from queries (batch,) and elements (batch, 25)."""
    batch = query.shape[0]
    inputs = jnp.concatenate([query[:, None], elements], axis=1).astype(jnp.float32)[..., None]
    value = elements[jnp.arange(batch), query]
    last = (jnp.arange(T) == T - 1).astype(jnp.float32)[None, :, None]
    targets = last * value.astype(jnp.float32)[:, None, None]
    mask = jnp.broadcast_to(last, (batch, T, 1))
    events = {"query": query.astype(jnp.int32), "value": value.astype(jnp.int32)}
    return TaskData(inputs, targets, mask, events)


def _elements(key: jax.Array, n: int) -> jax.Array:
    return jax.random.randint(key, (n, N_ELEMENTS), VALUE_MIN, VALUE_MAX + 1, dtype=jnp.int32)


def sample_batch(key: jax.Array, batch: int = 128) -> TaskData:
    """A fresh batch: q ~ U{0..24} at t=0, elements ~ U{-10..10} at t=1..25.

    Returns inputs (batch, 26, 1), targets (batch, 26, 1) holding inputs[q + 1] at the last step
    (0 elsewhere), mask (batch, 26, 1) equal to 1 only at the last step; events query, value.
    """
    _check_count("batch", batch)
    return _sample_batch(key, batch)


@partial(jax.jit, static_argnames=("batch",))
def _sample_batch(key: jax.Array, batch: int = 128) -> TaskData:
    """The jitted body of :func:`sample_batch` (arguments checked there)."""
    k_query, k_elements = jax.random.split(key)
    query = jax.random.randint(k_query, (batch,), 0, N_ELEMENTS, dtype=jnp.int32)
    return _assemble(query, _elements(k_elements, batch))


def fixed_query_set(key: jax.Array, query: int, n: int) -> TaskData:
    """n trials that all query index `query` (0..24); elements random. Shapes as `sample_batch`."""
    _check_count("n", n)
    _check_query(query)
    return _fixed_query_set(key, query, n)


@partial(jax.jit, static_argnames=("n",))
def _fixed_query_set(key: jax.Array, query: int, n: int) -> TaskData:
    """The jitted body of :func:`fixed_query_set` (arguments checked there)."""
    query = jnp.full((n,), query, dtype=jnp.int32)
    return _assemble(query, _elements(key, n))


def fixed_query_value_set(key: jax.Array, query: int, value: int, n: int) -> TaskData:
    """n trials querying index `query` whose queried element is forced to `value`; the other
    elements are random. Shapes as `sample_batch`."""
    _check_count("n", n)
    _check_query(query)
    _check_value(value)
    return _fixed_query_value_set(key, query, value, n)


@partial(jax.jit, static_argnames=("n",))
def _fixed_query_value_set(key: jax.Array, query: int, value: int, n: int) -> TaskData:
    """The jitted body of :func:`fixed_query_value_set` (arguments checked there)."""
    elements = _elements(key, n).at[:, query].set(value)
    return _assemble(jnp.full((n,), query, dtype=jnp.int32), elements)


# ----------------------------------------------------------------------------- the pipeline's task


def eft_rows(model, variables, test: TaskData) -> pd.DataFrame:
    """Test MSE of the final parameters and, with checkpoint selection, of the selected ones
    (column ``checkpoint``: ``final`` / ``selected``)."""
    rows = []
    candidates = {"final": variables, "selected": selected_variables(variables)}
    for name, chosen in candidates.items():
        if chosen is not None:
            y = run(model, chosen, test.inputs)["y"]
            rows.append({"checkpoint": name, "mse": float(trial_mse(y, test).mean())})
    return pd.DataFrame(rows)


class ElementFinder(Task):
    """Fresh batches every step; a held-out test batch (and validation batch, with selection on
    validation trials); scored by the test MSE of the final (and selected) parameters."""

    name = "eft"
    label = "EFT"
    columns = ("experiment", "arch", "seed", "checkpoint", "mse", "n_parameters")
    may_be_empty = frozenset({"mse"})
    select_on = ("validation", "train")
    comparable = True
    best_arch = True

    def dimensions(self, exp):
        return 1, 1

    def make_data(self, exp, key):
        _, k_test = jax.random.split(key)
        data = {"test": sample_batch(k_test, exp["test_batch"])}
        if selects_on(exp) == "validation":  # held out from training and test: its own key
            trials = int(exp["select_best"]["trials"])
            data["validation"] = sample_batch(jax.random.fold_in(key, 2), trials)
        return data

    def batch_function(self, exp, arch=None):
        size = exp["batch"]
        return lambda data, key: sample_batch(key, size)

    def expected_rows(self, exp, reference=False):
        return 2 if "select_best" in exp else 1

    def evaluation_rows(self, exp, model, variables, test, *, where, reference=None, **_):
        return eft_rows(model, variables, test)


TASKS = (ElementFinder(),)

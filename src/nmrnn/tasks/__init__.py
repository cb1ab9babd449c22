"""The tasks: Measure-Wait-Go, the four-task set and the Element Finder Task of the paper, and a
perceptual-decision example (:mod:`nmrnn.tasks.decision`, not in the paper).

Each generator returns a `TaskData` pytree with arrays laid out (batch, time, channel). Each
module of :data:`MODULES` also provides the pipeline's view of its task(s), :class:`Task`
instances in its ``TASKS`` tuple, which this registry enters in :data:`TASKS` by name.
A new task is one module plus its name in the import line and :data:`MODULES` below.
"""

from __future__ import annotations

from nmrnn.errors import ConfigError
from nmrnn.tasks import decision, eft, multitask, mwg
from nmrnn.tasks.common import TASKS, Task, TaskData, concatenate, masked_mse, take

# The task modules, in the order the registry lists them.
MODULES = (mwg, multitask, eft, decision)

for _module in MODULES:
    for _task in _module.TASKS:
        if _task.name in TASKS:
            raise RuntimeError(f"task {_task.name!r} is registered twice ({_module.__name__})")
        TASKS[_task.name] = _task


def get_task(name: str) -> Task:
    """The registered task of this name; ConfigError naming the choices if there is none."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


__all__ = [
    "MODULES",
    "TASKS",
    "Task",
    "TaskData",
    "concatenate",
    "get_task",
    "masked_mse",
    "take",
]

"""Task generators of the paper: Measure-Wait-Go, the four-task set, and the Element Finder Task.

Each generator returns a `TaskData` pytree with arrays laid out (batch, time, channel).
"""

from nmrnn.tasks import eft, multitask, mwg
from nmrnn.tasks.common import TaskData, concatenate, masked_mse, take

__all__ = ["TaskData", "concatenate", "eft", "masked_mse", "multitask", "mwg", "take"]

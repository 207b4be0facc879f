"""How each argument is read: one parser per argument, shared by the front door and the
backends' fast lanes.

A parser answers what an argument means, or None where it does not take it; the front
door turns that None into the error (naming the argument and the fix), a fast lane
into "decline" (the front door then decides, with its errors). So both lanes read
every argument by the same rule.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal, TypeVar

import numpy as np

REDUCTIONS = ("none", "sum", "mean", "weighted_mean")

#: an array of the caller's library: each loss returns the type of its logits
ArrayT = TypeVar("ArrayT")
Reduction = Literal["none", "sum", "mean", "weighted_mean"]
TorchReduction = Literal["none", "mean", "sum"]
Validate = bool | Literal["always"]


def validate_mode(validate: Any) -> bool | None:
    """Whether values are checked (``True`` and ``"always"``: yes; ``False``: no), or
    None for anything else."""
    if validate is True or (type(validate) is str and validate == "always"):
        return True
    return False if validate is False else None


def number(value: Any) -> float | None:
    """A Python float for Python and NumPy real scalars (bools included); None for
    anything else (arrays, lists, complex numbers)."""
    t = type(value)
    if t is float or t is int:
        return float(value)
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, np.generic):
        return float(value.item()) if value.dtype.kind in "biuf" else None
    if isinstance(value, numbers.Real) and not hasattr(value, "__array_namespace__"):
        return float(value)
    return None


def weight_ok(f: float) -> bool:
    """The rule for a weight given as a number (``pos_weight``, ``weight``): finite and
    non-negative (NaN fails)."""
    return 0.0 <= f < math.inf


def pos_weight_number(pos_weight: Any, checked: bool) -> float | None:
    """``pos_weight`` given as nothing (1) or as a Python number, as a float; None for
    anything else, and for a number the checks refuse."""
    if pos_weight is None:
        return 1.0
    t = type(pos_weight)
    if t is not float and t is not int:
        return None
    q = float(pos_weight)
    return None if checked and not weight_ok(q) else q

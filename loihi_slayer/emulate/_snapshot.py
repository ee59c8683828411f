"""Value snapshots of mutable file records, to tell whether they changed since a run.

The emulator derives each layer's neuron parameters from its record (checking every
value against the hardware ranges) and keeps them for later runs. Records are mutable
dataclasses holding scalars, strings and NumPy arrays, which a caller may edit in place
between runs; a snapshot copies their values into an immutable form that compares
equal exactly when the values are equal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np


def snapshot(value: Any) -> Any:
    """An immutable copy of ``value`` that compares equal to the snapshot of an equal
    value: arrays as ``(dtype, shape, bytes)``, mappings as sorted items, sequences and
    dataclass records field by field, NumPy scalars as Python ones."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value),) + tuple(
            snapshot(getattr(value, f.name)) for f in dataclasses.fields(value)
        )
    if isinstance(value, Mapping):
        return ("map",) + tuple(sorted((str(k), snapshot(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__,) + tuple(snapshot(v) for v in value)
    if hasattr(value, "detach"):  # a torch tensor
        return snapshot(value.detach().cpu().numpy())
    return value

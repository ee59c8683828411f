"""Conversion between tonic event arrays and :class:`~loihi_slayer.io.Event`, both ways.

`tonic <https://tonic.readthedocs.io>`_ datasets yield events as numpy
structured arrays with fields ``x``, ``y`` (2-D sensors), ``t`` (microseconds)
and ``p`` (polarity), and a ``sensor_size`` of ``(W, H, P)``. These helpers need
only numpy; tonic itself (``pip install loihi_slayer[data]``) is needed only to
load its datasets. An :class:`Event` bins into the time-last ``(P, H, W, T)``
tensors the blocks train on; tonic's ``ToFrame`` gives the same counts as
``(T, P, H, W)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ParameterError, ParameterTypeError
from .events import Event

__all__ = ["TONIC_DTYPE", "from_tonic", "to_tonic"]

#: tonic's event dtype for 2-D sensors (as ``tonic.datasets.NMNIST.dtype``).
TONIC_DTYPE = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])


def from_tonic(
    events: np.ndarray, sensor_size: Sequence[int] | None = None, t_unit: str = "us"
) -> Event:
    """Events of a tonic structured array (times in ``t_unit``, tonic's default µs).

    Parameters
    ----------
    events
        Structured array with fields ``x``, ``t``, ``p`` and, for 2-D sensors, ``y``.
    sensor_size
        tonic ``(W, H, P)``; checked against the events when given.
    t_unit
        Unit of ``t``: ``'s'``, ``'ms'``, ``'us'`` or ``'ns'``.

    Returns
    -------
    Event
        Events with times in milliseconds, polarity as the channel.
    """
    return Event.from_structured(events, t_unit, sensor_size=sensor_size)


def to_tonic(event: Event, dtype: Any = None, t_unit: str = "us") -> np.ndarray:
    """A tonic structured array of ``event`` (times rounded to whole ``t_unit``).

    Parameters
    ----------
    event
        The events.
    dtype
        Target structured dtype, e.g. a tonic dataset's ``dtype``; default
        :data:`TONIC_DTYPE` for 2-D events and its ``x, t, p`` fields for 1-D.
        Values that do not fit a narrower field raise :class:`ParameterError`.
    t_unit
        Unit of the output ``t``.

    Returns
    -------
    numpy.ndarray
        The structured array, in ``event``'s order.
    """
    if not isinstance(event, Event):
        raise ParameterTypeError(f"to_tonic needs an Event, got {type(event).__name__}")
    src = event.to_structured(t_unit, np.int64)
    if dtype is None:
        dtype = np.dtype([(n, TONIC_DTYPE[n]) for n in src.dtype.names])
    dtype = np.dtype(dtype)
    if dtype.names is None or set(dtype.names) != set(src.dtype.names):
        raise ParameterTypeError(
            f"dtype must be structured with fields {list(src.dtype.names)}, got {dtype}"
        )
    out = np.zeros(len(src), dtype)
    for name in dtype.names:
        target = dtype[name]
        values = src[name]
        if target.kind in "iu" and values.size:
            info = np.iinfo(target)
            if values.min() < info.min or values.max() > info.max:
                raise ParameterError(
                    f"to_tonic: field {name!r} spans {values.min()}..{values.max()}, outside "
                    f"{target} [{info.min}, {info.max}]"
                )
        elif target.kind == "b" and values.size and not np.all(np.isin(values, (0, 1))):
            raise ParameterError(f"to_tonic: field {name!r} must be 0/1 for a bool field")
        out[name] = values
    return out

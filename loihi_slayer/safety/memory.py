"""Refuse allocations sized by a user's value before they are made.

A step count of ``10**12`` in a golden case, or a ``10**6 x 10**6`` input, must
end in a clear message (the value and the bytes it would need), not in numpy's
"Unable to allocate 7 TiB" or the kernel's OOM killer.

Environment
-----------
``LOIHI_SLAYER_MAX_BYTES``
    Memory budget of one such allocation in bytes (default: 3/4 of the
    machine's physical memory).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ParameterError

__all__ = ["check_allocation", "check_run_memory", "format_bytes", "memory_limit"]


def memory_limit() -> int:
    """Largest allocation (bytes) the library makes on a user's behalf."""
    env = os.environ.get("LOIHI_SLAYER_MAX_BYTES")
    if env:
        with contextlib.suppress(ValueError):
            return max(1, int(float(env)))
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        total = 8 << 30
    return int(total * 3 // 4)


def format_bytes(n: int) -> str:
    """``123456789`` -> ``'123456789 bytes (117.7 MiB)'``."""
    units = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    value, k = float(n), 0
    while value >= 1024 and k < len(units) - 1:
        value /= 1024
        k += 1
    return f"{n} bytes" if k == 0 else f"{n} bytes ({value:.1f} {units[k]})"


def check_allocation(
    what: str | Callable[[], str], shapes: Iterable[Iterable[int]], itemsize: int = 8
) -> int:
    """Check that arrays of ``shapes`` fit the memory budget.

    Parameters
    ----------
    what
        The user's value that sizes the arrays, for the message, e.g.
        ``"num_steps = 1000000000000 for 37 neurons"``, or a function returning it (made
        only for the error: a check on every forward pass then formats nothing).
    shapes
        Shapes of the arrays that would be allocated (Python ints: no overflow).
    itemsize
        Bytes per element.

    Returns
    -------
    int
        The bytes needed.

    Raises
    ------
    ParameterError
        The arrays would need more than :func:`memory_limit` bytes.
    """
    need = sum(math.prod(int(d) for d in shape) for shape in shapes) * int(itemsize)
    limit = memory_limit()
    if need > limit:
        if callable(what):
            what = what()
        raise ParameterError(
            f"{what} would need {format_bytes(need)} of memory, more than the limit of "
            f"{format_bytes(limit)} (set LOIHI_SLAYER_MAX_BYTES to change it)"
        )
    return need


#: int64 arrays an emulated layer holds per neuron and step (input, state traces, output).
_ARRAYS_PER_LAYER = 4


def check_run_memory(emulator: Any, num_steps: int) -> int:
    """Check that emulating ``num_steps`` steps fits the memory budget.

    The estimate counts, per layer, :data:`_ARRAYS_PER_LAYER` int64 arrays of
    ``(neurons, num_steps)`` plus the input stream of ``(*input_shape, num_steps)``.

    Parameters
    ----------
    emulator
        A :class:`~loihi_slayer.emulate.Emulator` (``shapes``, ``input_shape``).
    num_steps
        Steps to run.

    Returns
    -------
    int
        The bytes needed.

    Raises
    ------
    ParameterError
        Naming ``num_steps``, the neuron count and the bytes needed.
    """
    steps = int(num_steps)
    shapes = [tuple(s) + (steps,) for s in emulator.shapes for _ in range(_ARRAYS_PER_LAYER)]
    shapes.append(tuple(emulator.input_shape) + (steps,))
    neurons = sum(math.prod(s) for s in emulator.shapes)
    return check_allocation(
        f"num_steps = {steps} for {neurons} neurons in {len(emulator.shapes)} layers", shapes
    )

"""Reductions written as plain loops, for kernels compiled with ``parallel=True``.

Inside such a kernel numba turns array operations into parallel loops of their own:
``a.sum()``, ``a.max()`` and ``np.zeros(n)`` each become a parallel region, which at
every call wakes the worker threads, splits a few values among them and joins them
again, beside the kernel's one ``prange`` loop; each is also a loop function of its own
to compile. The N-MNIST dense-2 forward (``_narrow_product._forward_parallel``) ran four
regions a call and the dense input's int8 conversion (``_int_product._to_int8_parallel``)
four, where one was meant. numba leaves ``range`` loops as they are, so these helpers
(inlined) reduce a kernel's per-job results on the calling thread after its ``prange``
loop; a kernel whose jobs each write their own slot of a result array makes it with
``np.empty``.
"""

from __future__ import annotations

from numba import njit

from .._numba_cache import guard_cache_writes

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = ["serial_max", "serial_sum"]


@njit(inline="always", cache=True)
def serial_sum(a):
    """The sum of the integer array ``a`` (any shape and layout) as int64, by a loop."""
    total = 0
    for value in a.flat:
        total += value
    return total


@njit(inline="always", cache=True)
def serial_max(a, start):
    """The largest of ``start`` and the values of the 1-D array ``a`` (``start`` where it
    is empty), by a loop; ``start`` of ``a``'s dtype keeps that type."""
    top = start
    for i in range(a.shape[0]):
        top = max(top, a[i])
    return top

"""int64 copies of large integer arrays on the worker threads (:mod:`.workers`).

The emulator hands recorded traces out as int64 while its kernels keep spikes in
int8: every recorded layer is widened once per run. For large arrays that copy is
bound by the first touch of the fresh int64 memory (the kernel zeroes each new page),
which one thread does at about half the rate two do: PilotNet-size spikes, 6 M values
per run, took 11.5 ms through ``ndarray.astype`` and 6.6 ms on 2 threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._numba_cache import guard_cache_writes
from . import workers

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

#: values below which the copy stays on one thread: waking a worker costs more than it
#: saves on small arrays (int8 -> int64 into kept memory, one thread against two:
#: 846 720 values 81 / 100 us, 2 M 311 / 242 us)
PARALLEL_MIN = 1 << 20


@njit(nogil=True, cache=True)
def _widen(src, out, lo, hi):
    """``out[i] = src[i]`` for ``lo <= i < hi`` over the flat C-contiguous arrays."""
    s = src.reshape(-1)
    o = out.reshape(-1)
    for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: the loop vectorises
        o[i] = s[i]


@njit(parallel=True, cache=True)
def _widen_parallel(src, out, parts):
    """:func:`_widen` over the ranges ``parts`` (``(k, 2)``) in a ``prange``."""
    for k in prange(parts.shape[0]):
        _widen(src, out, parts[k, 0], parts[k, 1])


def as_int64(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a`` as int64: ``a`` itself when it is already, a copy otherwise (large
    C-contiguous integer arrays copied on the worker threads), into ``out`` where
    given (an int64 array of ``a``'s shape, e.g. kept memory: no fresh pages)."""
    if a.dtype == np.int64:
        return a
    if out is None:
        out = np.empty(a.shape, np.int64)
    elif out.shape != a.shape or out.dtype != np.int64:
        raise ValueError(
            f"as_int64: out has shape {out.shape} and dtype {out.dtype}; expected "
            f"{a.shape} and int64"
        )
    compiled = (
        a.flags.c_contiguous
        and out.flags.c_contiguous
        and a.dtype.kind in "iub"
        and a.dtype.itemsize < 8
    )
    if not compiled:
        np.copyto(out, a, casting="unsafe")
        return out
    # below PARALLEL_MIN still the compiled copy, on one thread (846 720 int8 -> int64
    # values into kept memory: 81 us, np.copyto 157 us)
    workers.run_shared(
        _widen, a.size, a.size, a, out, min_work=PARALLEL_MIN, parallel=_widen_parallel
    )
    return out

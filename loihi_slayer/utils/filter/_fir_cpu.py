r"""CPU kernels of the causal FIR filter in time and of its adjoint (float32 rows).

.. math::

    y[r, t] = \sum_{k=0}^{L-1} h[k]\, x[r, t-k], \qquad
    g_x[r, s] = \sum_{k=0}^{L-1} h[k]\, g[r, s+k]

(zeros outside ``[0, T)``): :func:`~loihi_slayer.utils.filter.conv`'s sum and its input
gradient, one job per row, multiply-adds fused. Each output of the filter sums its
terms oldest input first (``k`` from ``L - 1`` down), as the depthwise ``conv1d`` it
replaces does (the same bits on the Zen 4 VM); each output of the adjoint ``k`` up.

* **Direct** (:func:`_direct_row`): the row, padded with zeros, is read at ``t + j`` for
  :data:`WIDTH` consecutive outputs at a time, whose sums stay in vector registers over
  the taps ``c[j]`` (one load and one multiply-add per tap and vector): the filter is
  the correlation with the reversed taps after ``L - 1`` zeros, the adjoint the
  correlation with the taps themselves, zeros after the row.
* **Events** (:func:`_scatter_row`): a sparse row (spikes) adds ``x[s] · h`` into the
  outputs ``s .. s + L - 1`` for each non-zero ``x[s]`` only, ``s`` from the first step
  on, so that every output still receives its terms oldest first: the zero terms it
  skips would add nothing (the caller takes this path only for a finite filter, where
  ``0 · h[k]`` is a zero), and both paths give the same bits.

A row takes the events where at most :data:`SCATTER_MAX_DENSITY` of its values are
non-zero. The SpikeTime loss of the Oxford example (200 rows of 2000 steps, 100 taps)
filters its output spikes (8 % non-zero) and target spikes (3 %) and takes the
gradient of the first: 6.4 ms a step in ``torch.nn.functional.conv1d`` (depthwise, its
backward 4 ms of it) on the 2-core Zen 4 VM.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..._numba_cache import guard_cache_writes
from ...fixed._stack import stack_empty_f32

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = ["SCATTER_MAX_DENSITY", "WIDTH", "causal_rows", "adjoint_rows"]

#: outputs of one block of the direct sum (eight AVX-512 vectors of float32 sums)
WIDTH = 128
#: largest fraction of non-zero values for which a row goes by events: the events cost
#: about their count times the taps, the direct sum the row's length times the taps in
#: whole vectors (200 rows of 2000 random spikes, 100 taps, Zen 4, 2 threads, scratch
#: ``scat.py``: events 0.32 ms at 3 % non-zero, 0.48 at 8 %, 0.61 at 12 %, 0.72 at
#: 15 %; direct 0.66 whatever the values)
SCATTER_MAX_DENSITY = 0.12


@njit(inline="always", cache=True)
def _direct_row(src, r, c, front, out):
    """``out[r, t] = Σ_k c[k] · s[t + k]``, ``s`` row ``r`` of ``src`` after ``front``
    zeros, zeros after it. Unsigned indices: no wrap-around test in the vector loops."""
    steps = src.shape[1]
    taps = c.shape[0]
    ur = np.uint64(r)
    buf = np.zeros(steps + taps - 1 + WIDTH, np.float32)
    for t in range(np.uint64(steps)):
        buf[np.uint64(front) + t] = src[ur, t]
    acc = stack_empty_f32(WIDTH)
    for t0 in range(0, steps, WIDTH):
        for i in range(WIDTH):
            acc[i] = 0
        for k in range(np.uint64(taps)):
            ck = c[k]
            at = np.uint64(t0) + k
            for i in range(np.uint64(WIDTH)):
                acc[i] += ck * buf[at + i]
        for i in range(np.uint64(min(WIDTH, steps - t0))):
            out[ur, np.uint64(t0) + i] = acc[i]


@njit(inline="always", cache=True)
def _scatter_row(x, r, h, out):
    """``out[r] = h ⊛ x[r]`` (causal) from the non-zero values of row ``r``, the first
    first (see the module)."""
    steps = x.shape[1]
    taps = np.uint64(h.shape[0])
    ur = np.uint64(r)
    for t in range(np.uint64(steps)):
        out[ur, t] = 0
    for s in range(np.uint64(steps)):
        v = x[ur, s]
        if v != 0:
            for k in range(min(taps, np.uint64(steps) - s)):
                out[ur, s + k] += v * h[k]


@njit(inline="always", cache=True)
def _nonzero(x, r):
    n = 0
    for t in range(np.uint64(x.shape[1])):
        n += x[np.uint64(r), t] != 0
    return n


@njit(inline="always", cache=True)
def _causal_row(x, r, h, hf, scatter_max, out):
    if _nonzero(x, r) <= scatter_max * x.shape[1]:
        _scatter_row(x, r, h, out)
    else:
        _direct_row(x, r, hf, h.shape[0] - 1, out)


@njit(parallel=True, fastmath={"contract"}, cache=True)
def _causal_parallel(x, h, hf, scatter_max, out):
    for r in prange(x.shape[0]):
        _causal_row(x, r, h, hf, scatter_max, out)


@njit(fastmath={"contract"}, cache=True)
def _causal_serial(x, h, hf, scatter_max, out):
    for r in range(x.shape[0]):
        _causal_row(x, r, h, hf, scatter_max, out)


@njit(parallel=True, fastmath={"contract"}, cache=True)
def _adjoint_parallel(g, h, out):
    for r in prange(g.shape[0]):
        _direct_row(g, r, h, 0, out)


@njit(fastmath={"contract"}, cache=True)
def _adjoint_serial(g, h, out):
    for r in range(g.shape[0]):
        _direct_row(g, r, h, 0, out)


def causal_rows(
    x: np.ndarray,
    h: np.ndarray,
    out: np.ndarray,
    parallel: bool = True,
    scatter_max: float | None = None,
) -> None:
    """``out[r, t] = Σ_k h[k] · x[r, t - k]`` for the C-contiguous float32 ``(R, T)`` rows
    ``x`` and the finite float32 taps ``h`` (see the module); ``scatter_max``: the
    largest fraction of non-zero values a row takes the events at (0: never, 1: always;
    None: :data:`SCATTER_MAX_DENSITY`)."""
    limit = SCATTER_MAX_DENSITY if scatter_max is None else scatter_max
    kernel = _causal_parallel if parallel else _causal_serial
    kernel(x, h, np.ascontiguousarray(h[::-1]), np.float64(limit), out)


def adjoint_rows(g: np.ndarray, h: np.ndarray, out: np.ndarray, parallel: bool = True) -> None:
    """``out[r, s] = Σ_k h[k] · g[r, s + k]`` (the adjoint of :func:`causal_rows`) for the
    C-contiguous float32 ``(R, T)`` rows ``g``."""
    (_adjoint_parallel if parallel else _adjoint_serial)(g, h, out)

"""Parallel kernels run one parallel region a call, and reduce on the calling thread.

Inside a ``parallel=True`` kernel numba makes ``a.sum()``, ``a.max()`` and
``np.zeros(n)`` parallel loops of their own, each a parallel region at every call
(:mod:`loihi_slayer.fixed._serial`). The kernels below are compiled afresh (numba's
cache keeps no parallel diagnostics) and their top-level parallel loops counted; their
results are checked against their serial twins or against NumPy.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from numba.parfors.parfor import Parfor

from loihi_slayer.fixed._serial import serial_max, serial_sum
from loihi_slayer.synapse import _event_product, _int_product, _narrow_product


def _fresh_regions(kernel, *args):
    """``kernel(*args)`` compiled afresh (no cache) and the number of its top-level
    parallel loops, each a parallel region at every call."""
    fresh = numba.njit(parallel=True)(kernel.py_func)
    result = fresh(*args)
    diagnostics = next(iter(fresh.overloads.values())).metadata["parfor_diagnostics"]
    blocks = diagnostics.func_ir.blocks.values()
    return result, sum(isinstance(stmt, Parfor) for block in blocks for stmt in block.body)


def _spikes(rng, shape, density=0.2):
    return (rng.random(shape) < density).astype(np.float32)


def test_narrow_forward_is_one_region():
    rng = np.random.default_rng(1)
    x = _spikes(rng, (6, 40, 37))
    w2 = rng.integers(-8, 8, (10, 40)).astype(np.float32)
    z, z_serial = np.empty((6, 10, 37), np.float32), np.empty((6, 10, 37), np.float32)
    result, regions = _fresh_regions(_narrow_product._forward_parallel, x, w2, z)
    assert regions == 1
    assert result == _narrow_product._forward_serial(x, w2, z_serial) == (0, 1)
    # the product by hand: float64 sums of small integers are exact
    np.testing.assert_array_equal(z, np.einsum("oi,bit->bot", w2.astype(np.float64), x))


@pytest.mark.parametrize("time_major", [False, True])
def test_int8_operand_is_one_region(time_major):
    rng = np.random.default_rng(2)
    x = _spikes(rng, (5, 30, 23)) * rng.integers(-3, 4, (5, 30, 23))
    x[1, 2, 3] = 120.0  # the largest |q|
    kernel = _int_product._TO_OPERAND[time_major, True]
    if time_major:  # (I, B, T) view of (I, T, B) memory, as the operand pass makes it
        out = np.empty((30, 23, 5), np.int8).transpose(0, 2, 1)
    else:
        out = np.empty((30, 5, 23), np.int8)
    counts = np.empty((5, 30), np.int32)
    (refused, top, nonzero), regions = _fresh_regions(kernel, x, out, counts)
    assert regions == 1
    assert (refused, top, nonzero) == (0, 120, np.count_nonzero(x))
    np.testing.assert_array_equal(counts, np.count_nonzero(x, axis=2))
    np.testing.assert_array_equal(out, x.transpose(1, 0, 2).astype(np.int8))
    x[0, 0, 0] = 0.5  # not an integer: refused
    (refused, _, _), _ = _fresh_regions(kernel, x, out, counts)
    assert refused > 0


def test_nonzero_count_is_one_region():
    rng = np.random.default_rng(3)
    a = _spikes(rng, 1000).reshape(-1)
    count, regions = _fresh_regions(_event_product._nonzero_count, a, 64)
    assert regions == 1 and count == np.count_nonzero(a)
    empty, _ = _fresh_regions(_event_product._nonzero_count, a[:0], 64)
    assert empty == 0


@numba.njit
def _reduce(a, b):
    return serial_sum(a), serial_sum(b), serial_max(a[:, 1], np.int32(-50)), serial_max(b[:0], 7)


def test_serial_reductions():
    a = np.arange(-12, 12, dtype=np.int32).reshape(8, 3)
    b = np.arange(10**9, 10**9 + 6, dtype=np.int32)  # their sum leaves int32
    total_a, total_b, top, empty_top = _reduce(a, b)
    assert total_a == int(a.sum()) and total_b == int(b.astype(np.int64).sum())
    assert top == 10 and empty_top == 7

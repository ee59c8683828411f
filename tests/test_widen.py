"""``fixed._widen.as_int64``: the emulator's int64 traces, widened on the worker threads.
Expected values: NumPy's own ``astype(np.int64)`` (C's integer conversion)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loihi_slayer.fixed import _widen, workers

DTYPES = [np.int8, np.int16, np.int32, np.uint8, np.uint16, np.uint32, np.bool_]


def _values(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    if dtype is np.bool_:
        return rng.random(shape) < 0.3
    info = np.iinfo(dtype)
    a = rng.integers(info.min, int(info.max) + 1, shape, dtype=dtype)
    flat = a.reshape(-1)
    flat[: min(4, flat.size)] = [info.min, info.max, 0, -1 if info.min < 0 else 1][: flat.size]
    return a


@settings(max_examples=30, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    rows=st.integers(0, 40),
    steps=st.integers(1, 50),
    seed=st.integers(0, 2**32 - 1),
)
def test_small_arrays_widen_exactly(dtype, rows, steps, seed):
    a = _values(dtype, (rows, steps), seed)
    got = _widen.as_int64(a)
    assert got.dtype == np.int64 and got.shape == a.shape
    np.testing.assert_array_equal(got, a.astype(np.int64))


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_arrays_take_the_parallel_copy_and_widen_exactly(dtype, count, monkeypatch):
    """Shared among 1-3 workers (inside ``on_pool``, as in an emulator run): the shares
    cover the array once, each value widened; outside, the ``prange`` form."""
    calls = []
    real = _widen._widen
    monkeypatch.setattr(workers, "TILE_WORKERS", count)
    monkeypatch.setattr(
        _widen, "_widen", lambda s, o, lo, hi: (calls.append((lo, hi)), real(s, o, lo, hi))
    )
    # an odd size: the shares differ in length
    a = _values(dtype, (_widen.PARALLEL_MIN // 32 + 3, 33), 5)
    with workers.on_pool():
        got = _widen.as_int64(a)
    assert sorted(calls) == workers.shares(a.size, count)
    assert got.dtype == np.int64 and not np.shares_memory(got, a)
    np.testing.assert_array_equal(got, a.astype(np.int64))
    # outside an emulator run: the prange form over the same ranges, the same values
    monkeypatch.setattr(_widen, "_widen", real)  # (the prange form compiles against it)
    ranges = []
    par = _widen._widen_parallel
    monkeypatch.setattr(
        _widen, "_widen_parallel", lambda s, o, p: (ranges.append(p.tolist()), par(s, o, p))
    )
    np.testing.assert_array_equal(_widen.as_int64(a), a.astype(np.int64))
    assert ranges == ([] if count == 1 else [[list(r) for r in workers.shares(a.size, count)]])


def test_int64_is_returned_as_it_is_and_strided_input_is_copied():
    a = np.arange(12, dtype=np.int64).reshape(3, 4)
    assert _widen.as_int64(a) is a
    big = _values(np.int8, (_widen.PARALLEL_MIN // 16, 32), 6)[:, ::2]  # not contiguous
    np.testing.assert_array_equal(_widen.as_int64(big), big.astype(np.int64))


@pytest.mark.parametrize("rows", [3, _widen.PARALLEL_MIN // 32 + 3])
def test_widens_into_the_given_memory(rows):
    """``out=``: the values land in the given int64 array (small: one thread, large: the
    parallel copy), which is returned; an array of another shape or dtype is refused."""
    a = _values(np.int8, (rows, 33), 7)
    out = np.full(a.shape, 99, np.int64)
    assert _widen.as_int64(a, out) is out
    np.testing.assert_array_equal(out, a.astype(np.int64))
    for bad in (np.zeros((rows, 32), np.int64), np.zeros(a.shape, np.int32)):
        with pytest.raises(ValueError, match="as_int64: out has shape"):
            _widen.as_int64(a, bad)

"""Row runs 16 steps a vector (``autograd/_row_runs.py``, issue 8): every value the plain
loop's, bit for bit, at every run length (shorter than a vector, whole vectors, an
overlapping last vector), at NaN, inf, -0.0 and subnormals, in float32 (vectors) and
float64 (the loop). Expected values from NumPy in the same dtype."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from loihi_slayer.autograd._row_runs import any_nonzero, pool2x2_run, zero_row

SPECIAL = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, 3e38, -3e38, 1.0]


@njit
def _pool(x, r0, r2, t0, tn, w, seg, j):
    pool2x2_run(x, r0, r2, t0, tn, w, seg, j)


@njit
def _nonzero(a, j, t0, tn):
    return any_nonzero(a, j, t0, tn)


@njit
def _zero(out, n):
    zero_row(out, n)


def _values(rng, shape, dtype, special):
    a = rng.standard_normal(shape).astype(dtype)
    a[rng.random(shape) < 0.5] = 0
    if special:
        flat = a.reshape(-1)
        picks = rng.integers(0, flat.size, max(1, flat.size // 8))
        flat[picks] = rng.choice(np.array(SPECIAL, dtype), picks.size)
    return a


@settings(max_examples=80, deadline=None)
@given(
    steps=st.integers(1, 90),
    t0=st.integers(0, 20),
    dtype=st.sampled_from([np.float32, np.float64]),
    special=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_pool2x2_run_is_the_loop(steps, t0, dtype, special, seed):
    rng = np.random.default_rng(seed)
    t0 = min(t0, steps - 1)
    tn = steps - t0
    x = _values(rng, (6, steps), dtype, special)
    w = dtype(rng.choice([0.5, -3.0, 1e-30, 7.0]))
    seg = np.full((3, 96), 9.0, dtype)
    _pool(x, 0, 3, t0, tn, w, seg, 1)
    t = slice(t0, steps)
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf, overflow: as the kernel
        expect = ((x[0, t] + x[1, t]) + (x[3, t] + x[4, t])) * w
    assert np.array_equal(seg[1, :tn].view(f"i{seg.itemsize}"), expect.view(f"i{seg.itemsize}"))
    assert np.all(seg[1, tn:] == 9.0) and np.all(seg[[0, 2]] == 9.0)  # nothing else written


@settings(max_examples=80, deadline=None)
@given(
    tn=st.integers(1, 90),
    t0=st.integers(0, 30),
    dtype=st.sampled_from([np.float32, np.float64]),
    where=st.integers(-1, 89),
    value=st.sampled_from(SPECIAL),
)
def test_any_nonzero_is_the_count(tn, t0, dtype, where, value):
    a = np.zeros((3, 120), dtype)
    a[0] = a[2] = 1.0  # the rows around it are not read
    a[1, :t0] = a[1, t0 + tn :] = 5.0  # nor the values outside the run
    if 0 <= where < tn:
        a[1, t0 + where] = value
    expect = bool(np.count_nonzero(a[1, t0 : t0 + tn]))  # NaN counts, -0.0 does not
    assert _nonzero(a, 1, t0, tn) == expect


@pytest.mark.parametrize("cols", [1, 15, 16, 17, 60, 64, 65])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_zero_row_writes_that_row_only(cols, dtype):
    out = np.full((3, cols), 7, dtype)
    if dtype != np.uint8:
        out[1, ::3] = -0.0
    _zero(out, 1)
    assert np.array_equal(out[1].view(f"u{out.itemsize}"), np.zeros(cols, f"u{out.itemsize}"))  # +0
    assert np.all(out[[0, 2]] == 7)

"""The event convolution's register sums (:mod:`loihi_slayer.fixed._gather_add`) against
NumPy's float32 arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from numba.core.errors import TypingError

from loihi_slayer.fixed._gather_add import (
    gather_add_16,
    gather_add_32,
    gather_add_48,
    gather_add_64,
)


@njit(cache=False)
def _add(width, acc, a0, w, w0, stride, chans, vals, e0, e1):
    if width == 16:
        gather_add_16(acc, a0, w, w0, stride, chans, vals, e0, e1)
    elif width == 32:
        gather_add_32(acc, a0, w, w0, stride, chans, vals, e0, e1)
    elif width == 48:
        gather_add_48(acc, a0, w, w0, stride, chans, vals, e0, e1)
    else:
        gather_add_64(acc, a0, w, w0, stride, chans, vals, e0, e1)


@settings(max_examples=80, deadline=None)
@given(
    width=st.sampled_from([16, 32, 48, 64]),
    channels=st.integers(1, 9),
    events=st.integers(0, 9),
    start=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
    integers=st.booleans(),
)
def test_runs_match_numpy(width, channels, events, start, seed, integers):
    """``acc[a0 : a0 + width]`` gains the sum of the listed channels' scaled weight runs
    (events ``start .. start + events`` of the lists only; none: unchanged), each
    product and sum rounded to float32, integer-valued operands exactly; nothing else
    changes."""
    rng = np.random.default_rng(seed)
    stride = width + int(rng.integers(0, 20))
    w_len = (channels - 1) * stride + width + 7
    acc_len = width + 11
    if integers:  # the convolution's case: exact in any order
        w = rng.integers(-(2**7), 2**7, w_len).astype(np.float32)
        vals = rng.integers(-(2**9), 2**9, start + events).astype(np.float32)
        acc = rng.integers(-(2**20), 2**20, acc_len).astype(np.float32)
    else:
        w = rng.standard_normal(w_len).astype(np.float32)
        vals = rng.standard_normal(start + events).astype(np.float32)
        acc = rng.standard_normal(acc_len).astype(np.float32)
    chans = rng.integers(0, channels, start + events).astype(np.int32)
    a0, w0 = int(rng.integers(0, 12)), int(rng.integers(0, 8))
    expected = acc.copy()
    total = np.zeros(width, np.float32)
    for k in range(start, start + events):  # the intrinsic's order: event by event
        base = w0 + int(chans[k]) * stride
        total = total + vals[k] * w[base : base + width]
    expected[a0 : a0 + width] = expected[a0 : a0 + width] + total
    _add(width, acc, a0, w, w0, stride, chans, vals, start, start + events)
    np.testing.assert_array_equal(acc, expected)


def test_other_dtypes_are_refused():
    """Only float32 sums, weights and values: float64 sums do not type (no conversion)."""
    with pytest.raises(TypingError):
        _add(
            16,
            np.zeros(16),
            0,
            np.zeros(16, np.float32),
            0,
            16,
            np.zeros(1, np.int32),
            np.ones(1, np.float32),
            0,
            1,
        )

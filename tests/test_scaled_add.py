"""The 16-lane multiply-add of the event convolution against NumPy's float32 arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from numba.core.errors import TypingError

from loihi_slayer.fixed._scaled_add import scaled_add


@njit(cache=False)
def _add_runs(acc, a_offsets, w, w_offsets, values):
    for j in range(a_offsets.shape[0]):
        scaled_add(acc, a_offsets[j], w, w_offsets[j], values[j])


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(16, 200),
    calls=st.integers(1, 12),
    scale=st.sampled_from([1.0, 2.0**10, 2.0**23, 3.4e38]),
)
def test_runs_of_16_match_numpy(seed, size, calls, scale):
    """Every call adds ``v * w[w0:w0+16]`` to ``acc[a0:a0+16]`` with float32 rounding
    (overlapping runs, ends of the arrays, values up to float32's largest), and nothing
    outside the runs changes."""
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):  # values past float32's range become inf: kept
        acc = (rng.standard_normal(size) * scale).astype(np.float32)
        w = (rng.standard_normal(size) * scale).astype(np.float32)
    a_off = rng.integers(0, size - 15, calls).astype(np.uint64)
    a_off[0] = size - 16  # the last whole run
    w_off = rng.integers(0, size - 15, calls).astype(np.int64)
    values = rng.standard_normal(calls).astype(np.float32)
    expected = acc.copy()
    with np.errstate(over="ignore", invalid="ignore"):
        for a0, w0, v in zip(a_off, w_off, values, strict=True):
            run = slice(int(a0), int(a0) + 16)
            expected[run] = expected[run] + v * w[w0 : w0 + 16]
        _add_runs(acc, a_off, w, w_off, values)
    np.testing.assert_array_equal(acc, expected)


def test_other_dtypes_are_refused():
    """Only float32 operands: a float64 sum array does not type (no silent conversion)."""
    with pytest.raises(TypingError):
        _add_runs(
            np.zeros(16),
            np.zeros(1, np.int64),
            np.zeros(16, np.float32),
            np.zeros(1, np.int64),
            np.ones(1, np.float32),
        )

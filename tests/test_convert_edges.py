"""The float -> chip-integer conversion at its edges (``autograd._convert``).

With a limit of ``2**31`` the conversion runs through int32 (AVX2 has no vector
double -> int64), with ``rint = 2**31`` itself wrapped and restored; with a larger one
through two exact int32 halves.
Expected values: Python's ``round`` (ties to even, exact on floats)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loihi_slayer.autograd import _convert

EDGES = [
    2.0**31 - 0.5,  # a tie: rounds up to 2**31, still accepted
    2.0**31 - 0.75,
    2.0**31 - 1.5,  # a tie: 2**31 - 2
    -(2.0**31) + 0.5,  # a tie: -2**31 + 0 (even)
    -(2.0**31) + 0.25,
    -(2.0**31 - 1.5),
    2.0**31,  # refused (limit 2**31), accepted beyond
    -(2.0**31),
    2.0**32 + 0.5,
    -(2.0**40) - 1.5,
    0.5,
    -2.5,
    0.0,
    -0.0,
]


@pytest.mark.parametrize("limit", [2.0**31, 2.0**41])
def test_conversion_at_the_int32_edges(limit):
    x = torch.tensor(EDGES, dtype=torch.float64)
    got, bad = _convert.to_int(x, 1.0, limit)
    want = [round(v) if abs(v) < limit else 0 for v in EDGES]
    assert got.tolist() == want
    assert bad == sum(abs(v) >= limit for v in EDGES)
    assert got.tolist()[0] == 2**31  # the wrapped value restored


def test_state_float_is_exact_over_the_24_bit_state():
    """``state_float`` (int64 -> float64 through int32) over the state range and int32's."""
    from numba import njit

    @njit
    def convert(a, out):
        for i in range(a.shape[0]):
            out[i] = _convert.state_float(a[i])

    a = np.array([0, 1, -1, 2**23 - 1, -(2**23), 2**31 - 1, -(2**31), 12345678], np.int64)
    out = np.empty(a.shape, np.float64)
    convert(a, out)
    assert out.tolist() == [float(v) for v in a.tolist()]


def test_int_float_rounds_every_int64_as_numpy_does():
    """``int_float`` (two exact int32 halves, one rounding) against NumPy's int64 ->
    float64 conversion: past 2**53 (ties to even), the int64 extremes, random values."""
    from numba import njit

    @njit
    def convert(a, out):
        for i in range(a.shape[0]):
            out[i] = _convert.int_float(a[i])

    edges = [0, 1, -1, 2**31, -(2**31) - 1, 2**32 - 1, 2**53 + 1, 2**53 + 3, -(2**53) - 1]
    edges += [2**62 + 2**9, 2**63 - 1, -(2**63), -(2**63) + 1025, 0xFFFFFFFF, -0x80000000]
    rng = np.random.default_rng(4)
    a = np.concatenate(
        [np.array(edges, np.int64), rng.integers(-(2**63), 2**63 - 1, 2000, dtype=np.int64)]
    )
    out = np.empty(a.shape, np.float64)
    convert(a, out)
    assert np.array_equal(out, a.astype(np.float64))

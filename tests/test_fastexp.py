"""The vectorisable float64 exponential of the surrogate gradients (``_fastexp``)
against NumPy's ``exp`` (an independent implementation): within one unit in the last
place everywhere it is used (``x <= 0``), subnormal results and the underflow edge
included, exactly at the special values, and the same bits whether numba inlines it
into a vectorised loop or calls it on one value."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit, prange

from loihi_slayer.autograd._fastexp import exp_nonpos

#: the smallest positive subnormal: the spacing of results below the normal range
TINY = np.nextafter(0.0, 1.0)


def _ulps(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``|got - ref|`` in units of the last place of ``ref`` (at least the subnormal step)."""
    return np.abs(got - ref) / np.maximum(np.spacing(np.abs(ref)), TINY)


# not cached: numba's cache would not see an edit of the inlined exp_nonpos
@njit(parallel=True)
def _flat(x, out):
    for k in prange(x.shape[0]):
        out[k] = exp_nonpos(x[k])


def _check(x: np.ndarray) -> None:
    got = np.empty_like(x)
    _flat(x, got)
    ref = np.exp(x)
    assert _ulps(got, ref).max() <= 1.0, x[np.argmax(_ulps(got, ref))]
    one_by_one = np.array([exp_nonpos(v) for v in x])
    assert np.array_equal(got.view(np.int64), one_by_one.view(np.int64))


@settings(max_examples=60, deadline=None)
@given(
    x=st.lists(
        st.one_of(
            st.floats(-800.0, 0.0),
            st.floats(-746.0, -700.0),  # subnormal results and the underflow edge
            st.floats(-1e-6, 0.0),  # tiny arguments: results next to 1
            st.floats(-30.0, 0.0),
        ),
        min_size=1,
        max_size=300,
    )
)
def test_within_one_ulp_of_numpy(x):
    _check(np.array(x, np.float64))


def test_dense_sweeps_and_reduction_boundaries():
    """Dense sweeps of the whole range, and arguments at the range reduction's
    boundaries (``x = (k + 1/2) ln 2``, where ``k`` changes) and at its ends."""
    rng = np.random.default_rng(0)
    halves = (np.arange(-1080, 1) + 0.5) * math.log(2.0)
    edges = np.concatenate([np.nextafter(halves, -np.inf), halves, np.nextafter(halves, 0.0)])
    sweep = np.concatenate(
        [
            -rng.random(200_000) * 760.0,
            -rng.random(50_000) * 40.0,
            np.linspace(-745.2, -745.0, 20_001),  # where results round to 0 or the tiniest
            np.linspace(-708.5, -708.3, 20_001),  # where results leave the normal range
        ]
    )
    _check(np.concatenate([edges[edges <= 0.0], sweep]))


def test_special_values():
    x = np.array([0.0, -0.0, -TINY, -np.inf, np.nan, -745.14, -745.13, -760.0, -1e300])
    got = np.empty_like(x)
    _flat(x, got)
    ref = np.exp(x)
    assert np.array_equal(got, ref, equal_nan=True)
    assert got[4] != got[4] and math.isnan(exp_nonpos(math.nan))
    assert exp_nonpos(0.0) == 1.0 and exp_nonpos(-math.inf) == 0.0

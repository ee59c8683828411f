"""The vector helpers of the CUBA backward (``autograd/_lane_scan.py``) against NumPy:
the 16-lane reverse scans (a float64 recurrence; fused multiply-adds round once, so
float tolerance), the 16-value copy and scaled product (bit for bit: the same float32
operations), and the scalar fused multiply-add (exactly the float64 product-sum
rounded once to float32, which it is when that sum is exact in float64)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from loihi_slayer.autograd._lane_scan import copy16, fma32, mul32, reverse_scans, scale16


@njit(cache=False)
def _scans(lanes, steps, coef):
    reverse_scans(lanes, steps, coef)


@njit(cache=False)
def _copy(src, s_at, dst, d_at):
    copy16(src, s_at, dst, d_at)


@njit(cache=False)
def _scale(x, x_at, a, g, g_at):
    scale16(x, x_at, a, g, g_at)


@njit(cache=False)
def _fma(a, b, c):
    return fma32(a, b, c)


@njit(cache=False)
def _mul(a, b):
    return mul32(a, b)


def _reference_scans(s: np.ndarray, av: np.ndarray, ai: np.ndarray) -> np.ndarray:
    """``g_u`` of the two reverse recurrences, in float64 (``s``: ``(T, 16)``)."""
    gv = np.zeros(16)
    gu = np.zeros(16)
    out = np.zeros(s.shape)
    for t in range(s.shape[0] - 1, -1, -1):
        gv = s[t] + av * gv
        gu = gv + ai * gu
        out[t] = gu
    return out


@settings(max_examples=40, deadline=None)
@given(steps=st.integers(0, 70), seed=st.integers(0, 2**31 - 1))
def test_reverse_scans_are_the_recurrences(steps, seed):
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((steps, 16)).astype(np.float32)
    decays = rng.choice([0, 1, 205, 411, 4095, 4096], size=32)
    coef = (1.0 - decays / 4096.0).astype(np.float32)
    lanes = s.reshape(-1).copy()
    _scans(lanes, steps, coef)
    want = _reference_scans(s.astype(np.float64), coef[:16].astype(np.float64), coef[16:])
    got = lanes.reshape(steps, 16)
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    assert np.allclose(got, want, rtol=1e-5, atol=1e-5 * scale)


def test_reverse_scans_leave_other_values_and_zero_steps_alone():
    lanes = np.arange(48, dtype=np.float32)
    coef = np.full(32, 0.5, np.float32)
    _scans(lanes, 0, coef)
    assert np.array_equal(lanes, np.arange(48, dtype=np.float32))
    _scans(lanes, 1, coef)  # one step: g_u = g_v = s, the later steps untouched
    assert np.array_equal(lanes, np.arange(48, dtype=np.float32))
    _scans(lanes, 2, coef)  # step 0: s0 + s1/2 + s1/2 (g_v and g_u of step 1 both s1)
    want0 = np.arange(16) + 0.5 * np.arange(16, 32) + 0.5 * np.arange(16, 32)
    assert np.array_equal(lanes[:16], want0.astype(np.float32))
    assert np.array_equal(lanes[16:], np.arange(16, 48, dtype=np.float32))


@settings(max_examples=30, deadline=None)
@given(at=st.integers(0, 40), to=st.integers(0, 40), seed=st.integers(0, 2**31 - 1))
def test_copy16_and_scale16_move_sixteen_values(at, to, seed):
    rng = np.random.default_rng(seed)
    src = rng.standard_normal((4, 16)).astype(np.float32)  # 2-D: flat offsets
    dst = np.full(60, np.nan, np.float32)
    _copy(src, at % 48, dst, to)
    want = np.full(60, np.nan, np.float32)
    want[to : to + 16] = src.reshape(-1)[at % 48 : at % 48 + 16]
    assert np.array_equal(dst, want, equal_nan=True)
    x = rng.standard_normal(60).astype(np.float32)
    g = rng.standard_normal((2, 3, 16)).astype(np.float32)
    a = np.float32(rng.standard_normal())
    expect = x.copy()
    expect[to : to + 16] = (x[to : to + 16] * a) * g.reshape(-1)[at % 32 : at % 32 + 16]
    _scale(x, to, a, g, at % 32)
    assert np.array_equal(x.view(np.int32), expect.view(np.int32))


@settings(max_examples=100, deadline=None)
@given(
    a=st.integers(-(2**11), 2**11),
    b=st.integers(-(2**11), 2**11),
    c=st.integers(-(2**23), 2**23),
    shift=st.integers(-20, 20),
)
def test_fma32_rounds_once_and_mul32_is_the_float32_product(a, b, c, shift):
    """With 12-bit factors and a 24-bit addend (scaled by powers of two), ``a b + c`` is
    exact in float64; rounded once to float32 it is what a fused multiply-add gives,
    while float32 ``a * b`` then ``+ c`` may round twice."""
    f = np.float32(2.0**shift)
    fa, fb, fc = np.float32(a) * f, np.float32(b), np.float32(c) * f
    exact = np.float32(np.float64(fa) * np.float64(fb) + np.float64(fc))
    assert _fma(fa, fb, fc) == exact
    assert _mul(fa, fb) == np.float32(fa * fb)


def test_f32x16_values_are_the_scalar_statements_bit_for_bit():
    # _f32x16: a sum kept in a vector register has the scalar loop's roundings (a
    # product, then a sum; no fused multiply-add), at NaN, inf, -0.0 and subnormals
    from loihi_slayer.autograd._f32x16 import vaxpy, vload, vscale, vstore, vzero

    @njit
    def vector_sums(a, x, out):
        acc = vscale(a[0], vload(x, 0))
        for k in range(1, a.shape[0]):
            acc = vaxpy(acc, a[k], vload(x, 16 * k))
        vstore(out, 0, acc)
        vstore(out, 16, vaxpy(vzero(), np.float32(1.0), vzero()))

    rng = np.random.default_rng(11)
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45, 3e38, -3e38], np.float32)
    a = rng.standard_normal(40).astype(np.float32)
    x = (rng.standard_normal((40, 16)) * 1e3).astype(np.float32)
    x[5, :7], a[9] = special, -0.0
    x[30, 3:10] = special
    out = np.full(32, 7.0, np.float32)
    vector_sums(a, x.reshape(-1), out)
    expect = a[0] * x[0]
    for k in range(1, 40):
        expect = expect + a[k] * x[k]
    assert np.array_equal(out[:16].view(np.int32), expect.view(np.int32))
    assert np.array_equal(out[16:].view(np.int32), np.zeros(16, np.int32))  # +0.0

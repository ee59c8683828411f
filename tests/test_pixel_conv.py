"""The pixel-by-pixel convolution (:mod:`loihi_slayer.fixed.pixel_conv`) and its register
sums (:mod:`loihi_slayer.fixed._tap_sums`): against NumPy's float arithmetic and the
NumPy int64 reference convolution (``backend='reference'``)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import conv_reference, spy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit
from numba.core.errors import TypingError

from loihi_slayer import fixed
from loihi_slayer.fixed import pixel_conv, synapse_fast
from loihi_slayer.fixed._tap_sums import OUTPUTS, tap_sums_16, tap_sums_32


@njit(cache=False)
def _sums(width, sums, s0, stride, x, xoffs, xt, w, woffs, wt, k0, k1):
    if width == 16:
        tap_sums_16(sums, s0, stride, x, xoffs, xt, w, woffs, wt, k0, k1)
    else:
        tap_sums_32(sums, s0, stride, x, xoffs, xt, w, woffs, wt, k0, k1)


@settings(max_examples=80, deadline=None)
@given(
    width=st.sampled_from([16, 32]),
    taps=st.integers(0, 9),
    start=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
    integers=st.booleans(),
)
def test_tap_sums_match_numpy(width, taps, start, seed, integers):
    """``sums[s0 + o * stride : ... + width]`` for the eight outputs ``o`` become the sum
    over taps ``start .. start + taps`` of weight ``w[woffs[k] + wt + o]`` times the run
    ``x[xoffs[k] + xt : ... + width]`` (none: zeros); every multiply-add rounded once to
    float32 (integers: exact); nothing else changes."""
    rng = np.random.default_rng(seed)
    n = start + taps
    x_len, w_len = 200, 120
    xoffs = rng.integers(0, x_len - width - 6, n)
    woffs = rng.integers(0, w_len - OUTPUTS - 4, n)
    xt, wt = int(rng.integers(0, 6)), int(rng.integers(0, 4))
    if integers:  # the convolution's case
        x = rng.integers(-(2**9), 2**9, x_len).astype(np.float32)
        w = rng.integers(-(2**7), 2**7, w_len).astype(np.float32)
    else:
        x = rng.standard_normal(x_len).astype(np.float32)
        w = rng.standard_normal(w_len).astype(np.float32)
    stride = width + int(rng.integers(0, 9))
    s0 = int(rng.integers(0, 5))
    sums = rng.standard_normal(s0 + 7 * stride + width + 9).astype(np.float32)
    expected = sums.copy()
    for o in range(OUTPUTS):
        total = np.zeros(width, np.float32)
        for k in range(start, n):  # tap by tap, each multiply-add rounded once
            run = x[xoffs[k] + xt : xoffs[k] + xt + width].astype(np.float64)
            exact = np.float64(w[woffs[k] + wt + o]) * run + total.astype(np.float64)
            total = exact.astype(np.float32)
        expected[s0 + o * stride : s0 + o * stride + width] = total
    _sums(width, sums, s0, stride, x, xoffs, xt, w, woffs, wt, start, n)
    np.testing.assert_array_equal(sums, expected)


def test_tap_sums_refuse_other_dtypes():
    """float32 only: float64 inputs do not type (no silent conversion)."""
    with pytest.raises(TypingError):
        _sums(
            16,
            np.zeros(8 * 16, np.float32),
            0,
            16,
            np.zeros(16),
            np.zeros(1, np.int64),
            0,
            np.zeros(8, np.float32),
            np.zeros(1, np.int64),
            0,
            0,
            1,
        )


@st.composite
def geometries(draw):
    """A (transposed) convolution with output channels beyond one block of eight."""
    transpose = draw(st.booleans())
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.sampled_from([1, 3, 8, 9, 17]))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    hw = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    size = fixed.conv_transpose_output_size if transpose else fixed.conv_output_size
    out_hw = tuple(size(*args) for args in zip(hw, kernel, stride, padding, dilation, strict=True))
    return transpose, groups, c_in, c_out, kernel, stride, padding, dilation, hw, out_hw


def _run(case, steps, exp, latency, graded, seed, magnitude=2**9):
    transpose, groups, c_in, c_out, kernel, stride, padding, dilation, hw, out_hw = case
    rng = np.random.default_rng(seed)
    wshape = (c_in, c_out // groups, *kernel) if transpose else (c_out, c_in // groups, *kernel)
    w = rng.integers(-256, 256, wshape)
    shape = (c_in, *hw, steps)
    if graded:
        x = rng.integers(-magnitude, magnitude + 1, shape) * (rng.random(shape) < 0.6)
    else:
        x = (rng.random(shape) < 0.4).astype(np.int8)
    ref = conv_reference(x, w, stride, padding, dilation, groups, exp, graded, latency, transpose)
    got = synapse_fast.conv2d(
        x, w, stride, padding, dilation, groups, exp, graded, latency, out_hw, transpose
    )
    return got, ref


@pytest.fixture
def pixel_calls(monkeypatch):
    """Every convolution with at least 8 steps whose sums fit float32 runs pixel by
    pixel (no int8 GEMM for spikes); the record of :func:`pixel_conv.pixel_rows`
    calls."""
    monkeypatch.setattr(synapse_fast, "PIXEL_MAX_FAN_IN", 10**9)
    monkeypatch.setattr(synapse_fast, "int8_gemm_pays", lambda: False)
    return spy(monkeypatch, pixel_conv, "pixel_rows")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    case=geometries(),
    steps=st.sampled_from([8, 15, 16, 17, 32, 33]),
    exp=st.integers(-8, 7),
    latency=st.integers(0, 2),
    graded=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_pixel_conv_matches_reference(pixel_calls, case, steps, exp, latency, graded, seed):
    """Any geometry (groups, strides, padding, dilation, transposed), spikes or graded
    values, latency, weight exponent, steps that are and are not multiples of 16: the
    sums shifted and wrapped equal the int64 reference's, and the pixel path ran
    (but for pooling, one output per group: its own integer kernel)."""
    if min(case[-1]) < 1:
        return
    before = len(pixel_calls)
    got, ref = _run(case, steps, exp, latency, graded, seed)
    np.testing.assert_array_equal(got, ref)
    groups, c_out = case[1], case[3]
    assert (len(pixel_calls) > before) is not (groups > 1 and c_out == groups)


def test_pilotnet_first_layer_runs_pixel_by_pixel_by_default(monkeypatch):
    """3 -> 24 channels, 3 x 3, stride 2 (fan-in 27), graded, 32 steps: pixel by pixel, exact."""
    calls = spy(monkeypatch, pixel_conv, "pixel_rows")
    case = (False, 1, 3, 24, (3, 3), (2, 2), (0, 0), (1, 1), (9, 13), (4, 6))
    got, ref = _run(case, 32, -3, 1, True, seed=5, magnitude=300)
    np.testing.assert_array_equal(got, ref)
    assert calls


@pytest.mark.parametrize(("steps", "pixels"), [(4, False), (7, False), (8, True), (40, True)])
def test_short_runs_take_the_gemm(monkeypatch, steps, pixels):
    """Fewer than 8 steps would be padded to 16 (over twice the work): the GEMM runs."""
    calls = spy(monkeypatch, pixel_conv, "pixel_rows")
    case = (False, 1, 3, 5, (3, 3), (1, 1), (1, 1), (1, 1), (5, 6), (5, 6))
    got, ref = _run(case, steps, 0, 1, True, seed=2)
    np.testing.assert_array_equal(got, ref)
    assert bool(calls) is pixels


def test_large_fan_ins_take_the_gemm(monkeypatch):
    """A fan-in over PIXEL_MAX_FAN_IN (8 channels x 3 x 3 = 72 > 64) runs im2col + GEMM."""
    calls = spy(monkeypatch, pixel_conv, "pixel_rows")
    case = (False, 1, 8, 5, (3, 3), (1, 1), (1, 1), (1, 1), (5, 6), (5, 6))
    got, ref = _run(case, 32, 0, 1, True, seed=3)
    np.testing.assert_array_equal(got, ref)
    assert not calls


def test_a_sum_at_the_float32_limit_is_exact(pixel_calls):
    """Odd weights (no common power of two) 255 and 1, inputs 2**16 + 257 and 1: the
    bound and the sum are exactly 2**24, the float32 plan's edge; the sums are the
    reference's to the last bit (2**24 wraps to 0 in 24 bit)."""
    w = np.zeros((9, 2, 1, 1), np.int64)
    w[:, 0], w[:, 1] = 255, 1
    w[4:, 0] = -255  # and the negative edge
    x = np.zeros((2, 3, 3, 16), np.int64)
    x[0], x[1] = 2**16 + 257, 1
    x[0, 1, 1, 3] = 7
    assert synapse_fast.sum_bound(w.reshape(9, 2), np.array([2**16 + 257, 1])) == 2**24
    got = synapse_fast.conv2d(x, w, (1, 1), (0, 0), (1, 1), 1, 0, True, 0, (3, 3))
    ref = conv_reference(x, w, (1, 1), (0, 0), (1, 1), 1, 0, True, 0, False)
    np.testing.assert_array_equal(got, ref)
    assert pixel_calls


def test_pixel_weights_pad_the_outputs_to_whole_blocks():
    """``(groups, fan_in, O_pad)``: each tap's outputs side by side, zeros past them."""
    mats = np.arange(2 * 3 * 5, dtype=np.int64).reshape(2, 3, 5)
    wt = pixel_conv.pixel_weights(mats.astype(np.float32))
    assert wt.shape == (2, 5, OUTPUTS)
    np.testing.assert_array_equal(wt[:, :, :3], np.swapaxes(mats, 1, 2))
    assert not wt[:, :, 3:].any()
    assert [pixel_conv.padded_steps(t) for t in (1, 16, 17, 32)] == [16, 16, 32, 32]

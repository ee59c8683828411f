"""Exact float-GEMM synapses (fixed/synapse_fast.py) against the NumPy int64 reference.

The expected sums come from ``loihi_slayer.fixed`` with ``backend='reference'``
(the slow NumPy spec); float exactness limits from IEEE 754 (a p-bit significand
holds every integer up to 2**p).
"""

from __future__ import annotations

import os
import time
from unittest import mock

import numpy as np
import pytest
import torch
from helpers import conv_reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loihi_slayer import fixed
from loihi_slayer.emulate import Emulator
from loihi_slayer.errors import ParameterError
from loihi_slayer.fixed import reference, synapse_fast
from loihi_slayer.fixed import workers as workers_mod
from loihi_slayer.hdf5 import (
    ConvLayer,
    ConvTransposeLayer,
    CubaNeuron,
    DenseLayer,
    FlattenLayer,
    InputLayer,
    Network,
    PoolLayer,
    SigmaDeltaNeuron,
    UnpoolLayer,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_exactness_limits_follow_the_significands():
    assert synapse_fast.exact_float_dtype(0) == np.float32
    assert synapse_fast.exact_float_dtype(2**24) == np.float32
    assert synapse_fast.exact_float_dtype(2**24 + 1) == np.float64
    assert synapse_fast.exact_float_dtype(2**53) == np.float64
    assert synapse_fast.exact_float_dtype(2**53 + 1) is None
    # the limits are tight: the next integer is not representable
    assert float(np.float32(2**24 + 1)) != 2**24 + 1
    assert float(np.float64(2**53 + 1)) != 2**53 + 1


def test_bound_weighs_each_column_by_its_input_magnitude():
    w = np.array([[3, -4, 0], [-1, -1, -1]])
    assert synapse_fast.sum_bound(w, np.array([5, 5, 5])) == 35
    assert synapse_fast.sum_bound(w, np.array([1, 10, 7])) == 43
    x = np.array([[2, -9, 0], [4, 1, 3]])
    assert synapse_fast.input_magnitudes(x, graded=True).tolist() == [9, 4]
    assert synapse_fast.input_magnitudes(x, graded=False).tolist() == [1, 1]
    assert synapse_fast.input_magnitudes(np.array([[1, -(2**62)]]), graded=True) is None


@settings(max_examples=80, deadline=None)
@given(
    rows=st.integers(1, 40),
    fan_in=st.integers(1, 300),
    w_max=st.sampled_from([1, 127, 255]),
    m_log=st.integers(0, 53),
    seed=st.integers(0, 2**31 - 1),
)
def test_bound_is_the_largest_weighted_row_sum(rows, fan_in, w_max, m_log, seed):
    """The bound of any weights and magnitudes (up to sums near 2**62, the crude bound's
    cut-off) is the largest row of sum |w| m, in Python integers."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-w_max, w_max, (rows, fan_in), endpoint=True)
    m = rng.integers(0, 2**m_log, fan_in, endpoint=True)
    want = max(sum(abs(int(a)) * int(b) for a, b in zip(row, m, strict=True)) for row in w)
    crude = int(np.abs(w).sum(axis=1).max()) * int(m.max())
    assert synapse_fast.sum_bound(w, m) == (crude if crude >= 2**62 else want)
    assert synapse_fast.dense_weights(w).bound(m[None]) == synapse_fast.sum_bound(w, m)


def test_inputs_beyond_the_bound_arithmetic_run_the_integer_kernel():
    x = np.array([[2**62, -(2**61), 5]])
    w = np.array([[1]])
    np.testing.assert_array_equal(
        synapse_fast.dense(x, w, -1, True, 1), _ref_dense(x, w, -1, True, 1)
    )


def test_a_sum_that_float32_rounds_takes_the_float64_path():
    """2**24 + 1 is not a float32: the bound must send this dense sum to float64."""
    w = np.array([[256, 1]])
    x = np.array([[2**16], [1]])
    assert synapse_fast.sum_bound(w, np.array([2**16, 1])) == 2**24 + 1
    naive = np.float32(w) @ np.float32(x)  # what an unchecked float32 GEMM gives
    assert int(naive[0, 0]) != 2**24 + 1
    got = synapse_fast.dense(x, w, 0, True, 0)
    assert int(got[0, 0]) == 2**24 + 1


def test_a_sum_at_the_float32_limit_is_exact():
    """Bound exactly 2**24 (float32 path); the first column sums to 2**24 itself."""
    w = np.array([[256, -256], [3, 1]])
    x = np.array([[32768, 32768, -32768], [-32768, 32768, 5]])
    assert synapse_fast.sum_bound(w, np.array([32768, 32768])) == 2**24
    assert synapse_fast.exact_float_dtype(2**24) == np.float32
    got = synapse_fast.dense(x, w, 0, True, 0)
    np.testing.assert_array_equal(got, w @ x)
    assert int(got[0, 0]) == 2**24


def _float_paths(monkeypatch) -> list[str]:
    """The float dtypes :func:`synapse_fast.exact_float_dtype` picks from now on."""
    taken: list[str] = []
    real = synapse_fast.exact_float_dtype

    def spy(bound):
        dt = real(bound)
        taken.append("int" if dt is None else str(np.dtype(dt)))
        return dt

    monkeypatch.setattr(synapse_fast, "exact_float_dtype", spy)
    return taken


@pytest.mark.parametrize("exp", [-3, 0, 2])
def test_even_weights_widen_the_float32_path(monkeypatch, exp):
    """Weights that share a factor 2**g give sums that are 2**g times an integer of at most
    B / 2**g: float32 holds them exactly while B / 2**g <= 2**24, though B is beyond it.
    Here B = 2**25 (g = 1): float32, and the sums match the integer reference."""
    taken = _float_paths(monkeypatch)
    w = np.array([[2, 2], [-2, 4]])
    x = np.array([[2**23, 2**23 - 1, -(2**23)], [2**23, -3, 2**22 + 1]])
    assert synapse_fast.sum_bound(w, np.array([2**23, 2**23])) == 2**25 + 2**24
    w = np.array([[2, 2], [-2, 2]])
    assert synapse_fast.sum_bound(w, np.array([2**23, 2**23])) == 2**25
    got = synapse_fast.dense(x, w, exp, True, 0)
    assert taken == ["float32"]
    np.testing.assert_array_equal(got, _ref_dense(x, w, exp, True, 0))
    assert int(_ref_dense(x, w, 0, True, 0)[0, 0]) == 2**25


def test_even_weights_past_the_float32_limit_take_float64(monkeypatch):
    """B / 2**g = 2**24 + 1 (w = 2 * [256, 1]): the sum 2**25 + 2 is no float32 (spacing 4
    there), so the reduced bound must still send it to float64."""
    taken = _float_paths(monkeypatch)
    w = np.array([[512, 2]])
    x = np.array([[2**16], [1]])
    assert int((np.float32(w) @ np.float32(x))[0, 0]) != 2**25 + 2  # float32 would round
    got = synapse_fast.dense(x, w, 0, True, 0)
    assert taken == ["float64"]
    assert int(got[0, 0]) == 2**25 + 2


def test_even_conv_weights_widen_the_float32_path(monkeypatch):
    """A convolution with weights 4 * w' and B / 4 <= 2**24 < B runs float32, exactly."""
    taken = _float_paths(monkeypatch)
    rng = np.random.default_rng(5)
    w = rng.integers(-64, 64, (5, 3, 3, 3)) * 4  # netx range [-256, 255]
    w[0, 0, 0, 0] = 4  # the common factor is exactly 4
    mag = 2**24 // (int(np.abs(w).sum(axis=(1, 2, 3)).max()) // 4)
    x = rng.integers(-mag, mag + 1, (3, 7, 6, 5))
    x[:, 0, 0, 0] = mag
    bound = synapse_fast.sum_bound(w.reshape(5, -1), np.full(27, mag))
    assert 2**24 < bound <= 2**26
    got = synapse_fast.conv2d(x, w, (1, 1), (1, 1), (1, 1), 1, -2, True, 1, (7, 6))
    ref = fixed.conv2d(x, w, padding=1, weight_exp=-2, graded=True, backend="reference")
    assert taken == ["float32"]
    np.testing.assert_array_equal(got, ref)


def _ref_dense(x, w, exp, graded, latency):
    return fixed.dense(x, w, weight_exp=exp, graded=graded, latency=latency, backend="reference")


# magnitudes of graded inputs: small, around the float32 limit, around float64's, beyond
MAGNITUDES = st.sampled_from([1, 7, 2**15, 2**16 + 3, 2**20, 2**44, 2**46, 2**52])


@SETTINGS
@given(
    n_in=st.integers(1, 40),
    n_out=st.integers(1, 12),
    steps=st.integers(1, 9),
    exp=st.integers(-8, 7),
    latency=st.integers(0, 3),
    graded=st.booleans(),
    mag=MAGNITUDES,
    seed=st.integers(0, 2**31 - 1),
)
def test_dense_matches_reference(n_in, n_out, steps, exp, latency, graded, mag, seed):
    rng = np.random.default_rng(seed)
    w = reference.quantize_weights(rng.integers(-256, 256, (n_out, n_in)), 8)
    if w.max() <= 0:  # netx's inhibitory sign mode holds [-255, 0]: the API refuses -256
        w[w == -256] = -254
    x = rng.integers(-mag, mag + 1, (n_in, steps)) * (rng.random((n_in, steps)) < 0.6)
    got = synapse_fast.dense(x, w, exp, graded, latency)
    np.testing.assert_array_equal(got, _ref_dense(x, w, exp, graded, latency))


@st.composite
def conv_cases(draw):
    transpose = draw(st.booleans())
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    size = fixed.conv_transpose_output_size if transpose else fixed.conv_output_size
    out_hw = tuple(
        size(n, k, s, p, d)
        for n, k, s, p, d in zip((h, w), (kh, kw), stride, padding, dilation, strict=True)
    )
    if min(out_hw) < 1:
        out_hw = None
    return transpose, groups, c_in, c_out, (kh, kw), stride, padding, dilation, (h, w), out_hw


def _conv_both(case, w, x, exp, latency, graded):
    """(the fast synapse's sums, the reference's) for a ``conv_cases`` geometry."""
    transpose, groups, _, _, _, stride, padding, dilation, _, out_hw = case
    ref = conv_reference(x, w, stride, padding, dilation, groups, exp, graded, latency, transpose)
    got = synapse_fast.conv2d(
        x, w, stride, padding, dilation, groups, exp, graded, latency, out_hw, transpose
    )
    return got, ref


def _conv_shapes(case, steps):
    """(weight shape, input shape) of a ``conv_cases`` geometry."""
    transpose, groups, c_in, c_out, k, _, _, _, hw, _ = case
    wshape = (c_in, c_out // groups, *k) if transpose else (c_out, c_in // groups, *k)
    return wshape, (c_in, *hw, steps)


#: the strategies every convolution property test draws from
CONV_DRAWS = {
    "case": conv_cases(),
    "steps": st.integers(1, 6),
    "exp": st.integers(-8, 7),
    "latency": st.integers(0, 2),
    "graded": st.booleans(),
    "seed": st.integers(0, 2**31 - 1),
}


@SETTINGS
@given(**CONV_DRAWS, mag=MAGNITUDES)
def test_conv_and_transposed_conv_match_reference(case, steps, exp, latency, graded, mag, seed):
    if case[-1] is None:
        return
    rng = np.random.default_rng(seed)
    wshape, shape = _conv_shapes(case, steps)
    w = rng.integers(-256, 256, wshape)
    x = rng.integers(-mag, mag + 1, shape) * (rng.random(shape) < 0.6)
    got, ref = _conv_both(case, w, x, exp, latency, graded)
    np.testing.assert_array_equal(got, ref)


@pytest.fixture
def int8_calls(monkeypatch):
    """Counts the int8 GEMM calls (after the one-time self-check has run), with the path
    on whatever the CPU (it is off by default where the CPU lacks int8 dot products)."""
    monkeypatch.setenv(synapse_fast.INT8_GEMM_ENV, "on")
    synapse_fast.int8_gemm_works()
    calls = []
    real = synapse_fast._int8_mm

    def spy(a, b, out):
        calls.append(a.shape)
        real(a, b, out)

    monkeypatch.setattr(synapse_fast, "_int8_mm", spy)
    return calls


def test_the_int8_gemm_is_available_and_exact_here():
    """CI's torch has an exact int8 GEMM: the int8 path below is really exercised."""
    assert synapse_fast.int8_gemm_works()


@SETTINGS
@given(**CONV_DRAWS, g=st.integers(0, 7))
def test_int8_gemm_conv_matches_reference(case, steps, exp, latency, graded, g, seed):
    """Weights ``2**g`` times int8 values (the extremes included, within the API's
    [-256, 255]) on spikes or graded inputs within +-127: the int8 GEMM path, with the
    common power of two folded into the exponent."""
    if case[-1] is None:
        return
    rng = np.random.default_rng(seed)
    wshape, shape = _conv_shapes(case, steps)
    base = np.array([-128, -127, -1, 0, 1, 3, 126, 127]) >> max(g - 1, 0)  # within [-256, 255]
    w = rng.choice(base, wshape) << g
    x = rng.choice(np.array([-127, -5, 0, 1, 127]), shape)
    synapse_fast.int8_gemm_works()
    calls = []
    real = synapse_fast._int8_mm
    synapse_fast._int8_mm = lambda a, b, out: (calls.append(1), real(a, b, out))
    try:
        with mock.patch.dict(os.environ, {synapse_fast.INT8_GEMM_ENV: "on"}):
            got, ref = _conv_both(case, w, x, exp, latency, graded)
    finally:
        synapse_fast._int8_mm = real
    np.testing.assert_array_equal(got, ref)
    groups, c_out = case[1], case[3]
    pooling = groups > 1 and c_out == groups  # the direct kernel, no GEMM
    assert bool(calls) == (not pooling)


@pytest.mark.parametrize("over", [False, True])
def test_int8_gemm_at_the_int32_edge(int8_calls, over):
    """A sum within 127 of 2**31 - 1 (products -128 * -127 over 132k inputs): exact on the
    int8 path while the bound is below 2**31; one input more and the path is refused
    (the float64 GEMM then gives the same exact sum)."""
    k = (2**31 - 1 - 127) // 16256 + 1 + int(over)  # (k - 1) products of 16256, one of 127
    w = np.full((1, k), -128, np.int64)
    w[0, 0] = 1  # an odd weight: no power of two to take out
    x = np.full((k, 1), -127, np.int64)
    bound = 16256 * (k - 1) + 127
    assert (bound < 2**31) != over
    got = synapse_fast.dense(x, w, 0, True, 0)
    assert int(got[0, 0]) == 16256 * (k - 1) - 127  # the exact sum (int64 arithmetic)
    assert bool(int8_calls) != over


def test_int8_gemm_refused_for_large_inputs_and_weights(int8_calls):
    """Inputs beyond +-127, or excitatory 8-bit weights above 127 with an odd one (no
    power of two brings them into int8): the float GEMM, still exact."""
    rng = np.random.default_rng(8)
    mixed = reference.quantize_weights(rng.integers(-256, 256, (5, 9)), 8)  # even values
    excitatory = rng.integers(0, 256, (5, 9))
    excitatory[0, 0] = 201
    big = rng.integers(-127, 128, (9, 4))
    big[3, 1] = -128
    for x, w in (
        (big, mixed),
        (rng.integers(-1, 2, (9, 4)), excitatory),
    ):
        got = synapse_fast.dense(x, w, 0, True, 0)
        np.testing.assert_array_equal(got, _ref_dense(x, w, 0, True, 0))
    assert int8_calls == []
    x = rng.integers(-127, 128, (9, 4))
    np.testing.assert_array_equal(
        synapse_fast.dense(x, mixed, 0, True, 0), _ref_dense(x, mixed, 0, True, 0)
    )
    assert len(int8_calls) == 1


@pytest.mark.parametrize("why", ["no exact int8 GEMM", "switched off", "CPU without int8 dot"])
def test_without_an_int8_gemm_the_float_path_runs(monkeypatch, int8_calls, why):
    if why == "no exact int8 GEMM":
        monkeypatch.setattr(synapse_fast, "_INT8_GEMM", [False])
    elif why == "switched off":
        monkeypatch.setenv(synapse_fast.INT8_GEMM_ENV, " OFF ")
    else:
        monkeypatch.setenv(synapse_fast.INT8_GEMM_ENV, "auto")
        monkeypatch.setattr(synapse_fast, "_cpu_has_int8_dot", lambda: False)
    rng = np.random.default_rng(9)
    w = reference.quantize_weights(rng.integers(-256, 256, (5, 9)), 8)
    x = (rng.random((9, 6)) < 0.5).astype(np.int8)
    np.testing.assert_array_equal(
        synapse_fast.dense(x, w, 1, False, 1), _ref_dense(x, w, 1, False, 1)
    )
    assert int8_calls == []


def test_the_int8_gemm_is_on_by_default_only_with_int8_dot_products(monkeypatch):
    """``auto`` follows PyTorch's table of CPU features: without VNNI or AMX its int8 GEMM
    is a plain loop, 30x slower than sgemm (an AVX2-only EPYC), so the float GEMM runs."""
    monkeypatch.delenv(synapse_fast.INT8_GEMM_ENV, raising=False)
    caps = torch.cpu.get_capabilities()
    has_dot = any(caps.get(k, False) for k in ("avx512_vnni", "amx_int8"))
    assert synapse_fast.int8_gemm_pays() == has_dot
    for value, expected in (("1", True), ("On", True), ("0", False), ("off", False)):
        monkeypatch.setenv(synapse_fast.INT8_GEMM_ENV, value)
        assert synapse_fast.int8_gemm_pays() is expected


def test_a_bad_int8_gemm_setting_names_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv(synapse_fast.INT8_GEMM_ENV, "yes")
    with pytest.raises(ValueError, match=r"LOIHI_SLAYER_INT8_GEMM='yes'.*auto, 1, on, 0, off"):
        synapse_fast.int8_gemm_pays()


@pytest.mark.parametrize(("mag", "path"), [(1, "float32"), (2**20, "float64"), (2**50, "int")])
def test_each_path_is_taken_and_exact(monkeypatch, mag, path):
    """Binary-size, float64-size and integer-only sums, checking which path ran."""
    rng = np.random.default_rng(3)
    w = rng.integers(-256, 256, (4, 3, 3, 3))
    x = rng.integers(-mag, mag + 1, (3, 6, 5, 4))
    taken = _float_paths(monkeypatch)
    got = synapse_fast.conv2d(x, w, (1, 1), (1, 1), (1, 1), 1, -3, True, 1, (6, 5))
    ref = fixed.conv2d(x, w, padding=1, weight_exp=-3, graded=True, backend="reference")
    assert taken == [path]
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("graded", [False, True])
def test_pooling_direct_kernel_matches_reference(transpose, graded):
    """pool2d / unpool2d: one output channel per group runs the direct integer kernel."""
    rng = np.random.default_rng(9)
    k = rng.integers(-256, 256, (1, 1, 2, 3))
    x = rng.integers(-(2**40), 2**40, (5, 6, 7, 4)) * (rng.random((5, 6, 7, 4)) < 0.5)
    op = fixed.unpool2d if transpose else fixed.pool2d
    ref = op(x, k, stride=(2, 1), padding=(1, 0), weight_exp=2, graded=graded, backend="reference")
    size = fixed.conv_transpose_output_size if transpose else fixed.conv_output_size
    out_hw = (size(6, 2, 2, 1, 1), size(7, 3, 1, 0, 1))
    w = np.repeat(k, 5, axis=0)
    got = synapse_fast.conv2d(x, w, (2, 1), (1, 0), (1, 1), 5, 2, graded, 1, out_hw, transpose)
    np.testing.assert_array_equal(got, ref)


def test_small_tiles_give_the_same_sums(monkeypatch):
    rng = np.random.default_rng(4)
    w = rng.integers(-256, 256, (6, 2, 3, 3))
    x = (rng.random((4, 9, 11, 7)) < 0.3).astype(np.int8)
    ref = fixed.conv2d(x, w, stride=(2, 1), padding=(1, 0), groups=2, backend="reference")
    monkeypatch.setattr(synapse_fast, "TILE_ELEMENTS", 64)  # one pixel per tile
    got = synapse_fast.conv2d(x, w, (2, 1), (1, 0), (1, 1), 2, 0, False, 1, (5, 9))
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("workers", [1, 2, 3, 5])
def test_tiles_shared_among_threads_give_the_same_sums(monkeypatch, workers):
    """Tiles split among 1-5 worker threads (more workers than tiles too): the same sums."""
    rng = np.random.default_rng(5)
    w = rng.integers(-256, 256, (6, 2, 3, 3))
    x = (rng.random((4, 9, 11, 7)) < 0.3).astype(np.int8)
    ref = fixed.conv2d(x, w, stride=(2, 1), padding=(1, 0), groups=2, backend="reference")
    fan_in, steps, pixels = 2 * 3 * 3, 7, 5 * 9
    monkeypatch.setattr(synapse_fast, "TILE_ELEMENTS", fan_in * steps * 3)  # 15 tiles of 3
    monkeypatch.setattr(workers_mod, "TILE_WORKERS", workers)
    submitted, shares, copies = [], [], []
    real_pool, real_in_workers, real_im2col = (
        workers_mod.pool,
        workers_mod.in_workers,
        synapse_fast._im2col,
    )

    class Spy:
        def submit(self, fn, *args):
            submitted.append(args)
            return real_pool().submit(fn, *args)

    def in_workers(work, n):
        shares.append(n)
        return real_in_workers(work, n)

    def im2col(*args):
        copies.append(args[-4])  # the tile's first pixel (one copy per group)
        return real_im2col(*args)

    monkeypatch.setattr(workers_mod, "pool", Spy)
    monkeypatch.setattr(workers_mod, "in_workers", in_workers)
    monkeypatch.setattr(synapse_fast, "_im2col", im2col)
    got = synapse_fast.conv2d(x, w, (2, 1), (1, 0), (1, 1), 2, 0, False, 1, (5, 9))
    np.testing.assert_array_equal(got, ref)
    tiles = pixels // 3
    assert sorted(copies) == sorted(list(range(0, pixels, 3)) * 2)  # each tile once per group
    assert shares == [min(workers, tiles)]
    # the calling thread takes one share itself
    assert len(submitted) == (0 if workers == 1 else min(workers, tiles) - 1)


@pytest.mark.parametrize("failing", [(0,), (1,), (0, 2)])
def test_shares_all_finish_before_a_failure_is_raised(failing):
    """A failing share (the caller's own or a worker's) is raised only once every share
    has finished (the others write into the caller's arrays), the caller's first."""
    done = []

    def work(k):
        time.sleep(0.02 * (k == 2))
        done.append(k)
        if k in failing:
            raise ValueError(f"share {k}")

    with pytest.raises(ValueError, match=f"share {failing[0]}"):
        workers_mod.in_workers(work, 3)
    assert sorted(done) == [0, 1, 2]


def _conv_in_child(_):
    rng = np.random.default_rng(6)
    w = rng.integers(-256, 256, (4, 3, 3, 3))
    x = (rng.random((3, 12, 12, 5)) < 0.3).astype(np.int8)
    saved = synapse_fast.TILE_ELEMENTS, workers_mod.TILE_WORKERS
    synapse_fast.TILE_ELEMENTS, workers_mod.TILE_WORKERS = 64, 2  # many tiles, 2 threads
    try:
        out = synapse_fast.conv2d(x, w, (1, 1), (0, 0), (1, 1), 1, 0, False, 0, (10, 10))
    finally:
        synapse_fast.TILE_ELEMENTS, workers_mod.TILE_WORKERS = saved
    return int(out.astype(np.int64).sum())


def test_tile_threads_work_in_a_forked_child():
    """A forked process (a DataLoader worker) gets its own tile threads, not the parent's
    dead ones: the convolution finishes there (a hang here fails on the timeout)."""
    import multiprocessing

    expected = _conv_in_child(None)  # the parent's pool exists before the fork
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        assert pool.apply_async(_conv_in_child, (None,)).get(timeout=120) == expected


def test_reduced_torch_precision_falls_back_to_numpy():
    """With bf16/TF32 matmuls allowed, torch.mm is not exact: NumPy's BLAS runs."""
    # set and restored by hand: the attribute is a property of torch's backend object,
    # which some pytest versions' monkeypatch deletes instead of restoring
    matmul = torch.backends.mkldnn.matmul
    before = matmul.fp32_precision
    matmul.fp32_precision = "bf16"
    try:
        assert not synapse_fast.full_precision_torch()
        rng = np.random.default_rng(5)
        w = reference.quantize_weights(rng.integers(-256, 256, (5, 30)), 8)
        x = rng.integers(-(2**15), 2**15, (30, 6))
        np.testing.assert_array_equal(
            synapse_fast.dense(x, w, 0, True, 1), _ref_dense(x, w, 0, True, 1)
        )
    finally:
        matmul.fp32_precision = before
    assert matmul.fp32_precision == before


def test_torch_threads_are_restored():
    before = torch.get_num_threads()
    rng = np.random.default_rng(6)
    w = rng.integers(-256, 256, (3, 2, 2, 2))
    synapse_fast.conv2d(
        rng.integers(0, 2, (2, 4, 4, 3)), w, (1, 1), (0, 0), (1, 1), 1, 0, False, 1, (3, 3)
    )
    assert torch.get_num_threads() == before


# ----------------------------------------------------------------------------- emulator


def _mixed_network(kind: str, big: bool) -> Network:
    rng = np.random.default_rng(7)
    scale = 64 if big else 1
    if kind == "cuba":
        n = CubaNeuron(2048, 1024, 3 * scale)
    else:
        n = SigmaDeltaNeuron(v_th_mant=5)
    k = rng.integers(1, 6, (1, 1, 2, 2)) * 2
    return Network(
        [
            InputLayer((2, 8, 8), neuron=n),
            ConvLayer(
                (4, 4, 4),
                rng.integers(-60, 120, (4, 2, 3, 3)) * 2,
                (2, 2),
                (1, 1),
                (1, 1),
                1,
                neuron=n,
            ),
            PoolLayer((4, 2, 2), k, (2, 2), (2, 2), (0, 0), (1, 1), neuron=n),
            ConvTransposeLayer(
                (4, 4, 4),
                rng.integers(-40, 90, (4, 2, 2, 2)) * 2,
                (2, 2),
                (0, 0),
                (1, 1),
                2,
                neuron=n,
            ),
            UnpoolLayer((4, 8, 8), k, (2, 2), (2, 2), (0, 0), (1, 1), neuron=n),
            FlattenLayer((256,)),
            DenseLayer((10,), rng.integers(-100, 120, (10, 256)) * 2, neuron=n),
        ]
    )


@pytest.mark.parametrize(("kind", "big"), [("cuba", False), ("sdnn", False), ("sdnn", True)])
def test_emulator_fast_path_equals_integer_path_and_reference(kind, big):
    """Every layer's traces agree: fast float synapses, integer kernels, NumPy reference."""
    net = _mixed_network(kind, big)
    rng = np.random.default_rng(8)
    mag = 2**18 if big else 40
    x = rng.integers(0, mag, (2, 8, 8, 10))
    record = ("s",) if kind == "cuba" else ("s", "sigma")
    runs = [
        Emulator(net, fast_synapse=True).run(x, 12, graded_input=True, record=record),
        Emulator(net, fast_synapse=False).run(x, 12, graded_input=True, record=record),
        Emulator(net, backend="reference").run(x, 12, graded_input=True, record=record),
    ]
    total = 0
    for i in runs[2].layers:
        for var in record:
            for other in runs[:2]:
                np.testing.assert_array_equal(other[i, var], runs[2][i, var])
        total += int(np.abs(runs[2][i, "s"]).sum())
    assert total > 0


def test_emulator_timings_cover_synapse_and_neuron():
    net = _mixed_network("cuba", False)
    timings: dict = {}
    Emulator(net).run(np.ones((2, 8, 8, 4), np.int64), 4, timings=timings)
    assert set(timings) == {0, 1, 2, 3, 4, 6}
    assert set(timings[1]) == {"synapse", "neuron"} and set(timings[0]) == {"neuron"}
    assert all(v >= 0 for t in timings.values() for v in t.values())


def test_prepared_weights_follow_edits_between_runs():
    """The emulator keeps each layer's prepared weights across runs; a weight edited in
    place, a replaced weight array and a changed group count must each give the spikes
    of a fresh emulator (the NumPy reference) on the next run, not the kept ones."""
    net = _mixed_network("cuba", False)
    emu = Emulator(net)
    x = np.random.default_rng(9).integers(0, 40, (2, 8, 8, 10))

    def agree() -> None:
        got = emu.run(x, 12, graded_input=True)
        ref = Emulator(net, backend="reference").run(x, 12, graded_input=True)
        for i in ref.layers:
            np.testing.assert_array_equal(got[i, "s"], ref[i, "s"])

    agree()
    agree()  # from the kept preparation
    conv, dense = net.layers[1], net.layers[6]
    before = emu.run(x, 12, graded_input=True)[6, "s"].copy()
    dense.weight[:] = -dense.weight  # in place: the same array object
    agree()
    assert not np.array_equal(emu.run(x, 12, graded_input=True)[6, "s"], before)
    conv.weight = conv.weight[::-1].copy()  # a new array
    agree()
    conv.weight[0, 0, 0, 0] += 2  # one value in place
    agree()


def test_prepared_weights_of_an_invalid_edit_are_refused():
    net = _mixed_network("cuba", False)
    emu = Emulator(net)
    x = np.ones((2, 8, 8, 4), np.int64)
    emu.run(x, 4)
    net.layers[1].weight[0, 0, 0, 0] = 300  # beyond the 8-bit mantissa range
    with pytest.raises(ParameterError, match="weight"):
        emu.run(x, 4)


@SETTINGS
@given(
    groups=st.integers(1, 3),
    rows=st.integers(0, 4),
    fan_in=st.integers(0, 6),
    g=st.integers(0, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_weights_facts_match_the_direct_formulas(groups, rows, fan_in, g, seed):
    """:class:`synapse_fast.Weights` keeps what the per-call formulas computed: the bound
    of :func:`sum_bound` (max over groups; binary inputs: magnitude 1), the common power
    of two and the int8 matrices (checked here by hand: ``w == int8 << shift``)."""
    rng = np.random.default_rng(seed)
    mats = rng.integers(-300, 300, (groups, rows, fan_in)) << g
    weights = synapse_fast.Weights(mats)
    mags = rng.integers(0, 2**20, (groups, fan_in))
    # the bound's definition on Python ints (no shared helper with the code under test)
    w = mats.astype(object)
    direct = max(
        [
            sum(abs(w[g, o, k]) * int(mags[g, k]) for k in range(fan_in))
            for g in range(groups)
            for o in range(rows)
        ]
        or [0]
    )
    assert weights.bound(mags) == direct
    ones = max([sum(abs(v) for v in w[g, o]) for g in range(groups) for o in range(rows)] or [0])
    assert weights.bound(None, binary=True) == ones
    assert weights.bound(None) is None
    nonzero = mats[mats != 0]
    if nonzero.size:
        assert all(int(v) % (1 << weights.shift) == 0 for v in nonzero)
        assert any(int(v) % (1 << (weights.shift + 1)) != 0 for v in nonzero)
    if weights.int8 is not None:
        np.testing.assert_array_equal(weights.int8.astype(np.int64) << weights.shift, mats)
    else:
        m8 = mats >> weights.shift
        assert m8.min() < -128 or m8.max() > 127
    reduced = weights.reduced(np.dtype(np.float32))
    assert reduced is weights.reduced(np.dtype(np.float32))  # kept for the next call
    np.testing.assert_array_equal(reduced.astype(np.int64) * (1 << weights.shift), mats)


@pytest.mark.parametrize(("kind", "record"), [("sdnn", ("s", "sigma")), ("cuba", ("s", "v"))])
def test_recorded_traces_are_the_callers_own(kind, record):
    """int64 traces are handed over without a copy: a later run (another input) must
    leave an earlier run's arrays as they were, and each array own its memory apart
    from the other runs' (no kernel buffer kept and reused across runs)."""
    net = _mixed_network(kind, False)
    emu = Emulator(net)
    rng = np.random.default_rng(11)
    first = emu.run(rng.integers(0, 40, (2, 8, 8, 10)), 12, graded_input=True, record=record)
    kept = {(i, v): first[i, v].copy() for i in first.layers for v in record}
    second = emu.run(rng.integers(0, 40, (2, 8, 8, 10)), 12, graded_input=True, record=record)
    changed = False
    for (i, v), before in kept.items():
        np.testing.assert_array_equal(first[i, v], before)
        assert not np.shares_memory(first[i, v], second[i, v])
        changed |= not np.array_equal(second[i, v], before)
    assert changed


@SETTINGS
@given(
    dtype=st.sampled_from([np.int8, np.int16, np.int32, np.int64]),
    rows=st.integers(1, 6),
    cols=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
)
def test_input_magnitudes_match_numpy(dtype, rows, cols, seed):
    """Each row's ``max |x|`` (NumPy's own max/min as the reference), the type's
    extremes included; None once a value reaches 2**62 (no exact float bound)."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    x = rng.integers(info.min, int(info.max) + 1, (rows, cols), dtype=dtype)
    x[rng.random((rows, cols)) < 0.5] = 0
    x.reshape(-1)[rng.integers(0, x.size)] = rng.choice([info.min, info.max])
    got = synapse_fast.input_magnitudes(x, graded=True)
    wide = x.astype(object)  # Python ints: no overflow in |x|
    want = [max(0, *(abs(v) for v in row)) for row in wide]
    if max(want) >= 2**62:
        assert got is None
    else:
        assert got.tolist() == want


def _garbage_scratch(roles: list[str]):
    """A :data:`synapse_fast.Scratch` whose arrays hold garbage (0x5A bytes), as reused
    memory may: the kernels must write every value they later read."""

    def scratch(role, shape, dtype):
        roles.append(role)
        arr = np.empty(shape, dtype)
        arr.view(np.uint8)[...] = 0x5A
        return arr

    return scratch


@pytest.mark.parametrize("pixels", [False, True])
@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("workers", [1, 3])
def test_conv_arrays_from_a_scratch_of_garbage(monkeypatch, graded, workers, pixels):
    """conv2d with every array from a scratch full of garbage: the reference's sums, on
    the int8 (spikes) and float (graded) GEMM paths, several tiles over several workers,
    and pixel by pixel (graded: float32 sums, 8 steps padded to 16). The spikes take the
    int8 GEMM where torch's is exact, forced on CPUs where it would not pay (without
    VNNI): else their float32 sums go pixel by pixel too."""
    monkeypatch.setenv(synapse_fast.INT8_GEMM_ENV, "1")
    int8 = synapse_fast.int8_gemm_works()
    monkeypatch.setattr(workers_mod, "TILE_WORKERS", workers)
    monkeypatch.setattr(synapse_fast, "PIXEL_MAX_FAN_IN", 64 if pixels else 0)
    monkeypatch.setattr(synapse_fast, "TILE_ELEMENTS", 2 * 9 * 8 * 4)  # tiles of 4 pixels
    rng = np.random.default_rng(12)
    w = rng.integers(-128, 128, (6, 2, 3, 3)) * 2
    x = rng.integers(-300, 300, (4, 9, 11, 8)) if graded else rng.integers(0, 2, (4, 9, 11, 8))
    roles: list[str] = []
    got = synapse_fast.conv2d(
        x, w, (2, 1), (1, 0), (1, 1), 2, -1, graded, 1, (5, 9), scratch=_garbage_scratch(roles)
    )
    ref = fixed.conv2d(
        x,
        w,
        stride=(2, 1),
        padding=(1, 0),
        groups=2,
        weight_exp=-1,
        graded=graded,
        backend="reference",
    )
    np.testing.assert_array_equal(got, ref)
    if pixels and (graded or not int8):
        assert "pixel input" in roles and "cols 0" not in roles
        assert ("pixel sums 1" in roles) == (workers > 1)
        return
    assert "out" in roles and "cols 0" in roles and "sums 0" in roles
    assert ("cols 1" in roles) == (workers > 1)


@pytest.mark.parametrize("graded", [False, True])
def test_dense_and_pool_arrays_from_a_scratch_of_garbage(graded):
    """dense and pooling with every array from a scratch full of garbage."""
    rng = np.random.default_rng(13)
    w = reference.quantize_weights(rng.integers(-256, 256, (7, 12)), 8)
    x = rng.integers(-500, 500, (12, 9)) if graded else rng.integers(0, 2, (12, 9))
    roles: list[str] = []
    got = synapse_fast.dense(x, w, 2, graded, 1, scratch=_garbage_scratch(roles))
    np.testing.assert_array_equal(got, _ref_dense(x, w, 2, graded, 1))
    assert {"out", "operand", "sums 0"} <= set(roles)
    k = np.full((3, 1, 2, 2), 4)
    xp = rng.integers(0, 2, (3, 6, 6, 5))
    got = synapse_fast.conv2d(
        xp, k, (2, 2), (0, 0), (1, 1), 3, 0, False, 1, (3, 3), scratch=_garbage_scratch(roles)
    )
    ref = fixed.conv2d(xp, k, stride=2, groups=3, backend="reference")
    np.testing.assert_array_equal(got, ref)

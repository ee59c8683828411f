"""Property tests: the njit and CUDA kernels equal the NumPy reference bit for bit.

Strategies reach the corners of the hardware ranges: current wrap and voltage
saturation (inputs up to 2**20 with weight exponents up to 7), exact threshold
ties, refractory delays 1..15, weight exponents -8..7, full (4096) and no (0)
decay, per-neuron parameters, random reset masks and initial states.
CUDA runs in numba's simulator in CI (small sizes), on the GPU when one exists.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import cuda_available
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loihi_slayer import fixed
from loihi_slayer.fixed import CubaParams, SigmaDeltaParams

SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=SLOW_OK)
CUDA_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=SLOW_OK)
needs_cuda = pytest.mark.skipif(not cuda_available(), reason="numba.cuda unavailable")

decays = st.one_of(st.sampled_from([0, 1, 4095, 4096]), st.integers(0, 4096))


def per_neuron(draw, strategy, n):
    """A scalar or a per-neuron array drawn from ``strategy``."""
    if draw(st.booleans()):
        return draw(strategy)
    return np.array(draw(st.lists(strategy, min_size=n, max_size=n)), np.int64)


@st.composite
def cuba_cases(draw, max_n=9, max_t=40):
    n = draw(st.integers(1, max_n))
    t = draw(st.integers(1, max_t))
    vth = per_neuron(draw, st.one_of(st.integers(0, 64), st.integers(0, 131071)), n)
    params = CubaParams(
        i_decay=per_neuron(draw, decays, n),
        v_decay=per_neuron(draw, decays, n),
        v_th_mant=vth,
        ref_delay=per_neuron(draw, st.integers(1, 15), n),
        bias_mant=per_neuron(draw, st.integers(-4096, 4095), n),
        bias_exp=draw(st.integers(-8, 7)),
        wgt_exp=per_neuron(draw, st.integers(-8, 7), n),
    )
    scale = draw(st.sampled_from([1, 8, 256, 1 << 12, 1 << 20]))
    a = draw(st.lists(st.integers(-scale, scale), min_size=n * t, max_size=n * t))
    a = np.array(a, np.int64).reshape(n, t)
    if draw(st.booleans()):
        # exact ties: full decays and A << 6 == vThMant << 6
        ties = np.broadcast_to(params.array("v_th_mant"), (n,))
        a[:, draw(st.integers(0, t - 1))] = ties
    reset = None
    if draw(st.booleans()):
        reset = np.array(draw(st.lists(st.booleans(), min_size=t, max_size=t)))
    state = None
    if draw(st.booleans()):
        state = {
            "u": np.array(draw(st.lists(st.integers(-(2**23) + 1, 2**23), min_size=n, max_size=n))),
            "v": np.array(
                draw(st.lists(st.integers(-(2**23) + 1, 2**23 - 1), min_size=n, max_size=n))
            ),
            "rc": np.array(draw(st.lists(st.integers(0, 14), min_size=n, max_size=n))),
        }
    dtype = draw(st.sampled_from([np.int64, np.int32]))
    return a.astype(dtype), params, state, reset


def assert_same(ref, got):
    (rt, rs), (gt, gs) = ref, got
    assert rt.keys() == gt.keys()
    for k in rt:
        np.testing.assert_array_equal(np.asarray(gt[k]), rt[k], err_msg=f"trace {k}")
    for k in rs:
        np.testing.assert_array_equal(np.asarray(gs[k]), rs[k], err_msg=f"state {k}")


ALL_CUBA = ("s", "u", "v", "v_pre")


@SETTINGS
@given(cuba_cases())
def test_cuba_cpu_equals_reference(case):
    a, params, state, reset = case
    ref = fixed.cuba(a, params, state=state, reset=reset, record=ALL_CUBA, backend="reference")
    got = fixed.cuba(a, params, state=state, reset=reset, record=ALL_CUBA, backend="cpu")
    assert_same(ref, got)


@needs_cuda
@pytest.mark.cuda
@CUDA_SETTINGS
@given(cuba_cases(max_n=6, max_t=12))
def test_cuba_cuda_equals_reference(case):
    a, params, state, reset = case
    ref = fixed.cuba(a, params, state=state, reset=reset, record=ALL_CUBA, backend="reference")
    got = fixed.cuba(a, params, state=state, reset=reset, record=ALL_CUBA, backend="cuda")
    assert_same(ref, got)


@SETTINGS
@given(cuba_cases(max_n=6, max_t=20), st.integers(1, 19))
def test_cuba_split_run_equals_single_run(case, cut):
    """Running in two calls with the returned state equals one call (persistent state)."""
    a, params, state, _ = case
    cut = min(cut, a.shape[1])
    whole, wst = fixed.cuba(a, params, state=state, record=ALL_CUBA, backend="cpu")
    first, mid = fixed.cuba(a[:, :cut], params, state=state, record=ALL_CUBA, backend="cpu")
    if cut < a.shape[1]:
        second, fst = fixed.cuba(a[:, cut:], params, state=mid, record=ALL_CUBA, backend="cpu")
        for k in ALL_CUBA:
            np.testing.assert_array_equal(np.concatenate([first[k], second[k]], 1), whole[k])
    else:
        fst = mid
    for k in wst:
        np.testing.assert_array_equal(fst[k], wst[k])


@st.composite
def sdnn_cases(draw, max_n=7, max_t=30):
    n = draw(st.integers(1, max_n))
    t = draw(st.integers(1, max_t))
    params = SigmaDeltaParams(
        v_th_mant=per_neuron(draw, st.one_of(st.integers(0, 8), st.integers(0, 131071)), n),
        bias=per_neuron(draw, st.integers(-(1 << 15), (1 << 15) - 1), n),
        spike_exp=draw(st.integers(0, 8)),
        state_exp=draw(st.integers(0, 8)),
        activation=draw(st.sampled_from(["relu", "unit"])),
        cum_error=draw(st.booleans()),
    )
    scale = draw(st.sampled_from([1, 1 << 6, 1 << 12, 1 << 22]))
    x = np.array(
        draw(st.lists(st.integers(-scale, scale), min_size=n * t, max_size=n * t)), np.int64
    ).reshape(n, t)
    mode = draw(st.sampled_from(["delta", "sigma_delta", "sigma"]))
    reset = None
    if draw(st.booleans()):
        reset = np.array(draw(st.lists(st.booleans(), min_size=t, max_size=t)))
    return x, params, mode, reset


ALL_SDNN = ("s", "sigma", "act", "residue")


@SETTINGS
@given(sdnn_cases())
def test_sigma_delta_cpu_equals_reference(case):
    x, params, mode, reset = case
    ref = fixed.sigma_delta(x, params, mode=mode, reset=reset, record=ALL_SDNN, backend="reference")
    got = fixed.sigma_delta(x, params, mode=mode, reset=reset, record=ALL_SDNN, backend="cpu")
    assert_same(ref, got)


@needs_cuda
@pytest.mark.cuda
@CUDA_SETTINGS
@given(sdnn_cases(max_n=5, max_t=10))
def test_sigma_delta_cuda_equals_reference(case):
    x, params, mode, reset = case
    ref = fixed.sigma_delta(x, params, mode=mode, reset=reset, record=ALL_SDNN, backend="reference")
    got = fixed.sigma_delta(x, params, mode=mode, reset=reset, record=ALL_SDNN, backend="cuda")
    assert_same(ref, got)


@st.composite
def dense_cases(draw, max_in=12, max_out=8, max_t=10):
    n_in, n_out, t = (
        draw(st.integers(1, max_in)),
        draw(st.integers(1, max_out)),
        draw(st.integers(1, max_t)),
    )
    mode = draw(st.sampled_from(["mixed", "excitatory", "inhibitory"]))
    lo, hi = {"mixed": (-256, 255), "excitatory": (0, 255), "inhibitory": (-255, 0)}[mode]
    w = np.array(
        draw(st.lists(st.integers(lo, hi), min_size=n_in * n_out, max_size=n_in * n_out)), np.int64
    ).reshape(n_out, n_in)
    batch = draw(st.sampled_from([(), (2,)]))
    graded = draw(st.booleans())
    hi_x = 1000 if graded else 1
    x = np.array(
        draw(
            st.lists(
                st.integers(-hi_x if graded else 0, hi_x),
                min_size=int(np.prod(batch, dtype=int)) * n_in * t,
                max_size=int(np.prod(batch, dtype=int)) * n_in * t,
            )
        ),
        np.int64,
    ).reshape(batch + (n_in, t))
    return x, w, mode, draw(st.integers(1, 8)), draw(st.integers(-8, 7)), graded


def dense_oracle(x, w, mode, nbits, exp, graded):
    """Independent oracle: Python ints, lava-nc rules written out longhand."""
    k = 8 - nbits + (1 if mode == "mixed" else 0)
    wq = np.vectorize(lambda v: -((-v) >> k << k) if mode == "inhibitory" else v >> k << k)(w)
    xin = x if graded else (x != 0).astype(np.int64)
    acc = np.matmul(wq, xin)
    return acc << exp if exp >= 0 else acc >> -exp


@SETTINGS
@given(dense_cases())
def test_dense_backends_equal_oracle(case):
    x, w, mode, nbits, exp, graded = case
    want = dense_oracle(x, w, mode, nbits, exp, graded)
    for backend in ("reference", "cpu"):
        got = fixed.dense(
            x,
            w,
            weight_exp=exp,
            num_weight_bits=nbits,
            sign_mode=mode,
            graded=graded,
            latency=0,
            backend=backend,
        )
        np.testing.assert_array_equal(got, want)


@needs_cuda
@pytest.mark.cuda
@CUDA_SETTINGS
@given(dense_cases(max_in=5, max_out=4, max_t=4))
def test_dense_cuda_equals_oracle(case):
    x, w, mode, nbits, exp, graded = case
    got = fixed.dense(
        x,
        w,
        weight_exp=exp,
        num_weight_bits=nbits,
        sign_mode=mode,
        graded=graded,
        latency=0,
        backend="cuda",
    )
    np.testing.assert_array_equal(got, dense_oracle(x, w, mode, nbits, exp, graded))


@st.composite
def conv_cases(draw, small=False):
    groups = draw(st.sampled_from([1, 2]))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2 if small else 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h = draw(st.integers(dh * (kh - 1) + 1, dh * (kh - 1) + (3 if small else 5)))
    wd = draw(st.integers(dw * (kw - 1) + 1, dw * (kw - 1) + (3 if small else 5)))
    t = draw(st.integers(1, 3 if small else 5))
    graded = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    big = draw(st.booleans())  # large graded values reach the 24-bit wrap
    x = rng.integers(-(2**15) if big else -50, 2**15 if big else 50, (2, c_in, h, wd, t))
    if not graded:
        x = rng.integers(0, 2, (2, c_in, h, wd, t))
    w = rng.integers(-256, 256, (c_out, c_in // groups, kh, kw))
    return x, w, (sh, sw), (ph, pw), (dh, dw), groups, draw(st.integers(-8, 7)), graded


def conv_oracle(x, w, stride, padding, dilation, groups, exp, graded):
    """Independent oracle: torch's float64 conv (exact below 2**53), then shift and wrap."""
    xin = x if graded else (x != 0)
    xt = torch.from_numpy(np.moveaxis(np.asarray(xin, np.float64), -1, 1))  # (B, T, C, H, W)
    b, t = xt.shape[:2]
    out = torch.nn.functional.conv2d(
        xt.reshape((b * t,) + tuple(xt.shape[2:])),
        torch.from_numpy(w.astype(np.float64)),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )
    acc = out.reshape((b, t) + tuple(out.shape[1:])).numpy().astype(np.int64)
    acc = np.moveaxis(acc, 1, -1)
    acc = acc << exp if exp >= 0 else acc >> -exp
    return (acc + 2**23) % 2**24 - 2**23


@SETTINGS
@given(conv_cases())
def test_conv_backends_equal_torch(case):
    x, w, s, p, d, g, exp, graded = case
    want = conv_oracle(x, w, s, p, d, g, exp, graded)
    for backend in ("reference", "cpu"):
        got = fixed.conv2d(
            x,
            w,
            stride=s,
            padding=p,
            dilation=d,
            groups=g,
            weight_exp=exp,
            graded=graded,
            latency=0,
            backend=backend,
        )
        np.testing.assert_array_equal(got, want)
    unbatched = fixed.conv2d(
        x[0],
        w,
        stride=s,
        padding=p,
        dilation=d,
        groups=g,
        weight_exp=exp,
        graded=graded,
        latency=0,
        backend="cpu",
    )
    np.testing.assert_array_equal(unbatched, want[0])


@needs_cuda
@pytest.mark.cuda
@CUDA_SETTINGS
@given(conv_cases(small=True))
def test_conv_cuda_equals_torch(case):
    x, w, s, p, d, g, exp, graded = case
    got = fixed.conv2d(
        x,
        w,
        stride=s,
        padding=p,
        dilation=d,
        groups=g,
        weight_exp=exp,
        graded=graded,
        latency=0,
        backend="cuda",
    )
    np.testing.assert_array_equal(got, conv_oracle(x, w, s, p, d, g, exp, graded))


def test_latency_shifts_by_one_step():
    x = np.zeros((2, 5), np.int64)
    x[0, 0] = x[1, 3] = 1
    w = np.array([[2, 4]])
    got = fixed.dense(x, w)  # lava-nc: one step per synaptic hop
    assert got.tolist() == [[0, 2, 0, 0, 4]]
    assert fixed.dense(x, w, latency=0).tolist() == [[2, 0, 0, 4, 0]]


def test_torch_in_torch_out_zero_copy_input():
    a = torch.randint(-50, 50, (4, 3, 16), dtype=torch.int32)
    params = CubaParams(i_decay=1000, v_decay=500, v_th_mant=10)
    tr, _ = fixed.cuba(a, params, record=("s", "v"))
    ref, _ = fixed.cuba(a.numpy(), params, record=("s", "v"), backend="reference")
    assert isinstance(tr["s"], torch.Tensor) and tr["s"].dtype == torch.int8
    np.testing.assert_array_equal(tr["s"].numpy(), ref["s"])
    np.testing.assert_array_equal(tr["v"].numpy(), ref["v"])
    # bool spikes are accepted as 0/1 synaptic sums
    s = torch.rand(3, 7, 9) > 0.5
    w = torch.randint(-128, 128, (5, 7)) * 2
    np.testing.assert_array_equal(
        fixed.dense(s, w).numpy(), fixed.dense(s.numpy(), w.numpy(), backend="reference")
    )


def conv_transpose_oracle(x, w, stride, padding, dilation, groups, exp, graded):
    """Independent oracle: torch's float64 conv_transpose2d, then shift and wrap."""
    xin = x if graded else (x != 0)
    xt = torch.from_numpy(np.moveaxis(np.asarray(xin, np.float64), -1, 1))
    b, t = xt.shape[:2]
    out = torch.nn.functional.conv_transpose2d(
        xt.reshape((b * t,) + tuple(xt.shape[2:])),
        torch.from_numpy(w.astype(np.float64)),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )
    acc = np.moveaxis(out.reshape((b, t) + tuple(out.shape[1:])).numpy().astype(np.int64), 1, -1)
    acc = acc << exp if exp >= 0 else acc >> -exp
    return (acc + 2**23) % 2**24 - 2**23


@st.composite
def conv_t_cases(draw, small=False):
    groups = draw(st.sampled_from([1, 2]))
    c_in = groups * draw(st.integers(1, 2))
    out_per_group = draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h, wd = draw(st.integers(1, 3 if small else 4)), draw(st.integers(1, 3 if small else 4))
    # padding must leave a positive output size
    ph = draw(st.integers(0, max(0, ((h - 1) * sh + dh * (kh - 1)) // 2)))
    pw = draw(st.integers(0, max(0, ((wd - 1) * sw + dw * (kw - 1)) // 2)))
    t = draw(st.integers(1, 3))
    graded = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = (
        rng.integers(-(2**14), 2**14, (2, c_in, h, wd, t))
        if graded
        else rng.integers(0, 2, (2, c_in, h, wd, t))
    )
    w = rng.integers(-256, 256, (c_in, out_per_group, kh, kw))
    return x, w, (sh, sw), (ph, pw), (dh, dw), groups, draw(st.integers(-8, 7)), graded


@SETTINGS
@given(conv_t_cases())
def test_conv_transpose_backends_equal_torch(case):
    x, w, s, p, d, g, exp, graded = case
    want = conv_transpose_oracle(x, w, s, p, d, g, exp, graded)
    for backend in ("reference", "cpu"):
        got = fixed.conv_transpose2d(
            x,
            w,
            stride=s,
            padding=p,
            dilation=d,
            groups=g,
            weight_exp=exp,
            graded=graded,
            latency=0,
            backend=backend,
        )
        np.testing.assert_array_equal(got, want)


@needs_cuda
@pytest.mark.cuda
@CUDA_SETTINGS
@given(conv_t_cases(small=True))
def test_conv_transpose_cuda_equals_torch(case):
    x, w, s, p, d, g, exp, graded = case
    got = fixed.conv_transpose2d(
        x,
        w,
        stride=s,
        padding=p,
        dilation=d,
        groups=g,
        weight_exp=exp,
        graded=graded,
        latency=0,
        backend="cuda",
    )
    np.testing.assert_array_equal(got, conv_transpose_oracle(x, w, s, p, d, g, exp, graded))


def test_pool_and_unpool_are_per_channel():
    rng = np.random.default_rng(11)
    x = rng.integers(0, 2, (3, 6, 6, 4))
    k = np.array([[[[2, 4], [6, 8]]]])
    pooled = fixed.pool2d(x, k, latency=0)  # stride defaults to the kernel
    # oracle: sum of each 2x2 window times the kernel, channel by channel
    want = np.zeros((3, 3, 3, 4), np.int64)
    for c in range(3):
        for i in range(3):
            for j in range(3):
                want[c, i, j] = np.einsum(
                    "yxt,yx->t", x[c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2], k[0, 0]
                )
    np.testing.assert_array_equal(pooled, want)
    up = fixed.unpool2d(x, k, latency=0)
    assert up.shape == (3, 12, 12, 4)
    np.testing.assert_array_equal(up[:, 1::2, 0::2], x * 6)  # kernel entry (1, 0) = 6

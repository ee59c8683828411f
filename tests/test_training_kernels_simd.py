"""The 16-lane SIMD training kernels (``autograd._cpu``) bit for bit against the NumPy reference.

The kernels step blocks of :data:`~loihi_slayer.autograd._cpu.LANES` neurons in
time tiles of :data:`~loihi_slayer.autograd._cpu.TILE` steps; the cases here
use row and step counts that are not multiples of either (partial lane blocks,
partial tiles), per-neuron parameters, initial states, ties at the threshold,
24-bit wrap and saturation, graded spikes, the refractory variant, and the
serial and parallel entry points. Expected values come from
:mod:`loihi_slayer.autograd.reference` (the independent fixed-point reference
with the same float conversion).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import cuba_forward_kernels, run_cuba_kernel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loihi_slayer.autograd import _cpu, reference

CUBA_KERNELS = cuba_forward_kernels()
SDNN_KERNELS = {True: _cpu.sdnn_forward, False: _cpu.sdnn_forward_serial}
SMAX = (1 << 23) - 1
#: a hand-set state beyond int32 (its decay products still fit int64)
WIDE = 1 << 40


def _per_neuron(rng, rows: int, values, per_neuron: bool) -> np.ndarray:
    return rng.choice(values, size=rows if per_neuron else 1).astype(np.int64)


cuba_case = st.fixed_dictionaries(
    {
        "rows": st.integers(1, 40),
        "steps": st.integers(1, 40),
        "per_neuron": st.booleans(),
        "graded": st.booleans(),
        "amp": st.sampled_from([8, 300, 1 << 17, (1 << 31) - 1]),
        "scale": st.sampled_from([64, 64, 100, 1]),
        "off_grid": st.booleans(),
        "records": st.booleans(),
        "wide_state": st.sampled_from([False, False, True]),
        "seed": st.integers(0, 2**31 - 1),
    }
)


#: refractory periods of the refractory kernels (refDelay 1: none, the other kernels)
REF_DELAYS = (2, 3, 7)


# one test item per kernel entry and input type: each parallel kernel's first call
# compiles for about a minute (2-core CI VM; its serial entry runs the same code on one
# thread), so the four compiles spread over the test workers, and every entry meets its
# cases in every run
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("refractory", [False, True])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cuba_case, ref_pick=st.sampled_from(REF_DELAYS))
def test_cuba_forward_equals_reference(refractory, parallel, dtype, case, ref_pick):
    rng = np.random.default_rng(case["seed"])
    rows, steps, pn = case["rows"], case["steps"], case["per_neuron"]
    ref = ref_pick if refractory else 1
    i_dec = _per_neuron(rng, rows, [0, 1, 411, 2048, 4095, 4096], pn)
    v_dec = _per_neuron(rng, rows, [0, 1, 205, 4095, 4096], pn)
    vth_mant = _per_neuron(rng, rows, [0, 1, 200, 5000, 131071], pn)
    bias = _per_neuron(rng, rows, [0, 3, -7, 1000], pn) << 6
    amp, scale = case["amp"], case["scale"]
    a = rng.integers(-amp // 3, amp, size=(rows, steps))
    if rows > 1:  # an exact tie v == threshold each step (full decays, no bias)
        i_dec = np.resize(i_dec, rows)
        v_dec, vth_mant, bias = (np.resize(p, rows) for p in (v_dec, vth_mant, bias))
        i_dec[-1] = v_dec[-1] = 4096
        bias[-1] = 0
        a[-1] = vth_mant[-1] + rng.integers(-1, 2, size=steps)
    x = (a / scale).astype(dtype)
    if case["off_grid"]:  # rint half to even, and values between the grid points
        x = x + (rng.integers(-2, 3, size=x.shape) / (4 * scale)).astype(x.dtype)
    # a state set by hand may lie beyond 32 bits (the kernels' lanes then step in int64)
    top = WIDE if case["wide_state"] else SMAX
    u0 = rng.integers(-top, top + 1, size=rows)
    v0 = rng.integers(-top, top + 1, size=rows)
    # (a refractory count needs a refractory period: without one the kernels never read it)
    rc0 = rng.integers(0, top if case["wide_state"] and ref > 1 else ref, size=rows)
    out_scale = 1.0 / (64 * scale)
    args = (float(scale), out_scale, i_dec, v_dec, vth_mant << 6)
    kernel = CUBA_KERNELS[refractory, parallel]
    s, vp, u, r, state, bad = run_cuba_kernel(
        kernel, x, *args, ref, bias, u0, v0, rc0, case["graded"], records=case["records"]
    )
    e_s, e_vp, e_u, e_r, e_u1, e_v1, e_rc1 = reference.cuba_forward(
        x, *args, bias, u0, v0, case["graded"], ref, rc0
    )
    dt = x.dtype
    assert np.array_equal(s, e_s.astype(dt))
    if case["records"]:  # else the kernel's spikes-only copy of the step loop ran
        assert np.array_equal(vp, e_vp.astype(dt))
        assert np.array_equal(u, e_u.astype(dt))
    assert np.array_equal(state, np.stack([e_u1, e_v1, e_rc1]))
    assert not bad.any()
    if ref > 1:
        assert np.array_equal(r, e_r.astype(np.uint8))


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize(
    ("beyond", "ref_delay"),  # (a refractory count is read only with a refractory period)
    [("none", 1), ("u", 1), ("v", 1), ("none", 3), ("u", 3), ("v", 3), ("rc", 3)],
)
def test_cuba_forward_state_on_either_side_of_int32(beyond, ref_delay, parallel):
    """The lanes hold state and refractory counts in int32 where every value fits
    (``_cpu._narrow_lanes``), else in int64. Values at the int32 limits stay on the
    narrow path; one value past them (in ``beyond``) takes the wide one, exact either
    way. A narrow path given 2**31 would wrap it to -2**31, and the results against the
    reference would differ."""
    rng = np.random.default_rng(len(beyond) + ref_delay % 7)
    lo, hi = -(1 << 31), (1 << 31) - 1
    rows, steps = 21, 23
    u0 = np.resize(np.array([hi, lo, 0, 5, -SMAX], np.int64), rows)
    v0 = np.resize(np.array([lo, hi, SMAX, 0, 7], np.int64), rows)
    rc0 = np.resize(np.array([0, 2, hi, 0], np.int64), rows) if ref_delay > 1 else u0 * 0
    i_dec = np.resize(np.array([0, 411, 4096, 2048, 1], np.int64), rows)
    v_dec = np.resize(np.array([4096, 205, 1, 0], np.int64), rows)
    past = {"u": u0, "v": v0, "rc": rc0}.get(beyond)
    if past is not None:  # row 11: decays 411 and 0, under which 2**31 and -2**31 part
        past[11] = hi + 1
    vth = np.resize(np.array([200, 0, 131071], np.int64), rows) << 6
    bias = np.resize(np.array([0, -7, 1000], np.int64), rows) << 6
    x = (rng.integers(-100, 400, size=(rows, steps)) / 64).astype(np.float32)
    args = (64.0, 1.0 / 4096, i_dec, v_dec, vth)
    kernel = CUBA_KERNELS[ref_delay > 1, parallel]
    s, vp, u, r, state, bad = run_cuba_kernel(kernel, x, *args, ref_delay, bias, u0, v0, rc0, True)
    e_s, e_vp, e_u, e_r, *e_state = reference.cuba_forward(
        x, *args, bias, u0, v0, True, ref_delay, rc0
    )
    assert np.array_equal(s, e_s.astype(s.dtype))
    assert np.array_equal(vp, e_vp.astype(vp.dtype))
    assert np.array_equal(u, e_u.astype(u.dtype))
    assert np.array_equal(state, np.stack(e_state))
    assert not bad.any()
    if ref_delay > 1:
        assert np.array_equal(r, e_r.astype(np.uint8))


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("ref_delay", [1, 3])
@pytest.mark.parametrize("beyond", [False, True])
def test_cuba_forward_kernel_declines_what_int32_lanes_cannot_hold(beyond, ref_delay, parallel):
    """A forward kernel called on its own steps int32 lanes only: given a state past
    int32 it returns False with every output and the state untouched (the int64 kernel,
    which ``_cpu.run_cuba_forward`` then calls, compiles only when a state needs it);
    given states that fit, it returns True having written every output."""
    rows, steps = 19, 9
    u0 = np.arange(rows, dtype=np.int64)
    if beyond:
        u0[rows // 2] = 1 << 31
    v0, rc0 = u0 * 0, u0 * 0
    state = np.stack([u0, v0, rc0])
    s, vp, u = (np.full((rows, steps), np.nan, np.float32) for _ in range(3))
    r = np.full((rows, steps), 7, np.uint8)
    bad = np.zeros(rows, np.int8)
    decays = np.array([411], np.int64), np.array([205], np.int64)
    x = np.ones((rows, steps), np.float32)
    done = CUBA_KERNELS[ref_delay > 1, parallel](
        x,
        64.0,
        1.0 / 4096,
        *decays,
        np.array([200 << 6], np.int64),
        ref_delay,
        np.zeros(1, np.int64),
        state[0],
        state[1],
        state[2],
        False,
        s,
        vp,
        u,
        r,
        bad,
        _cpu.NO_POOL,
        np.float32(1),
        0,
        _cpu.NO_OPERAND,
        _cpu.NO_COUNTS,
    )
    assert bool(done) is not beyond
    assert bool(np.isnan(s).all()) is beyond
    assert bool(np.isnan(vp).any()) is beyond
    assert np.array_equal(state, np.stack([u0, v0, rc0])) is beyond
    assert not bad.any()


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("ref_delay", [1, 3])
@pytest.mark.parametrize("neurons", [2, 3, 17])
def test_cuba_per_neuron_parameters_repeat_over_the_batch(neurons, ref_delay, parallel):
    """In a layer, per-neuron parameters have one value per neuron of a batch entry and
    the kernels' rows are ``batch x neurons``: row ``n`` takes value ``n % neurons`` (the
    reference repeats them the same way, ``np.resize``). Every value differs, so a row
    that took another neuron's value shows."""
    rng = np.random.default_rng(neurons * 10 + ref_delay)
    batch, steps = 7, 37
    rows = batch * neurons
    i_dec = rng.permutation(np.arange(1, 4096, 4096 // neurons - 1))[:neurons].astype(np.int64)
    v_dec = rng.permutation(np.arange(1, 4096, 4096 // neurons - 1))[:neurons].astype(np.int64)
    vth = (rng.permutation(np.arange(100, 100 + 50 * neurons, 50)) << 6).astype(np.int64)
    bias = (rng.permutation(np.arange(-3 * neurons, 3 * neurons, 3))[:neurons] << 6).astype(
        np.int64
    )
    x = rng.integers(0, 400, size=(rows, steps)).astype(np.float32)
    zeros = np.zeros(rows, np.int64)
    args = (64.0, 1.0 / 4096, i_dec, v_dec, vth, ref_delay, bias, zeros, zeros, zeros, False)
    s, vp, u, r, state, bad = run_cuba_kernel(CUBA_KERNELS[ref_delay > 1, parallel], x, *args)
    e_s, e_vp, e_u, e_r, e_u1, e_v1, e_rc1 = reference.cuba_forward(
        x, 64.0, 1.0 / 4096, i_dec, v_dec, vth, bias, zeros, zeros, False, ref_delay, zeros
    )
    assert not bad.any()
    assert np.array_equal(s, e_s.astype(s.dtype))
    assert np.array_equal(vp, e_vp.astype(vp.dtype))
    assert np.array_equal(u, e_u.astype(u.dtype))
    assert np.array_equal(state, np.stack([e_u1, e_v1, e_rc1]))


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("ref_delay", [1, 3])
@pytest.mark.parametrize("shift", [0, 1])
@pytest.mark.parametrize("records", [False, True])
def test_cuba_forward_rows_longer_than_an_output_segment(parallel, ref_delay, shift, records):
    """The kernel writes each lane's outputs a segment of ``OUT_SEGMENT`` steps at a time:
    rows of two segments and a partial one (and a partial tile), a partial lane block,
    the spikes shifted one step (each segment's last spike lands in the next one's first
    column) or not, against the reference."""
    rng = np.random.default_rng(10 * ref_delay + 2 * shift + records)
    rows, steps = 21, 2 * _cpu.OUT_SEGMENT + 37
    i_dec = rng.integers(0, 4097, rows)
    v_dec = rng.integers(0, 4097, rows)
    vth = rng.integers(1, 400, rows) << 6
    bias = np.zeros(1, np.int64)
    a = rng.integers(-100, 600, (rows, steps)) * (rng.random((rows, steps)) < 0.3)
    x = (a / 64).astype(np.float32)
    zeros = np.zeros(rows, np.int64)
    args = (64.0, 1 / 4096, i_dec, v_dec, vth)
    s, vp, u, r, state, bad = run_cuba_kernel(
        CUBA_KERNELS[ref_delay > 1, parallel],
        x,
        *args,
        ref_delay,
        bias,
        zeros,
        zeros,
        zeros,
        False,
        records=records,
        shift=shift,
    )
    e_s, e_vp, e_u, e_r, *e_state = reference.cuba_forward(
        x, *args, bias, zeros, zeros, False, ref_delay, zeros
    )
    if shift:  # one step later, the last step dropped
        e_s = np.concatenate([np.zeros((rows, 1)), e_s[:, :-1]], axis=1)
    assert e_s[:, _cpu.OUT_SEGMENT].any()  # spikes at a segment's first column
    assert np.array_equal(s, e_s.astype(np.float32))
    if records:
        assert np.array_equal(vp, e_vp.astype(np.float32))
        assert np.array_equal(u, e_u.astype(np.float32))
    if ref_delay > 1:
        assert np.array_equal(r, e_r.astype(np.uint8))
    assert np.array_equal(state, np.stack(e_state))
    assert not bad.any()


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("ref_delay", [1, 3])
def test_cuba_ties_saturation_and_wrap(parallel, graded, ref_delay):
    """Full decays make ``v = A << 6``: ``A == vThMant`` is an exact tie (no spike),
    ``A == vThMant + 1`` spikes; no decay integrates into the 24-bit wrap of ``u``
    and the saturation of ``v``. 21 rows x 37 steps: partial blocks and tiles."""
    rows, steps = 21, 37
    vth = np.arange(rows, dtype=np.int64) * 3 + 10
    a = np.zeros((rows, steps), np.int64)
    a[:, 0::3] = vth[:, None]
    a[:, 1::3] = vth[:, None] + 1
    a[:, 2::3] = vth[:, None] - 1
    full = np.full(rows, 4096, np.int64)
    x = (a / 64).astype(np.float32)
    kernel = CUBA_KERNELS[ref_delay > 1, parallel]
    zeros = np.zeros(rows, np.int64)
    s, vp, *_ = run_cuba_kernel(
        kernel,
        x,
        64.0,
        1 / 4096,
        full,
        full,
        vth << 6,
        ref_delay,
        np.zeros(1, np.int64),
        zeros,
        zeros,
        zeros,
        graded,
    )
    spikes = (s != 0).astype(int)
    if ref_delay == 1:  # by the rule itself: a spike exactly where A > vThMant
        assert np.array_equal(spikes, (a > vth[:, None]).astype(int))
    e = reference.cuba_forward(
        x,
        64.0,
        1 / 4096,
        full,
        full,
        vth << 6,
        np.zeros(1, np.int64),
        zeros,
        zeros,
        graded,
        ref_delay,
        zeros,
    )
    assert np.array_equal(s, e[0].astype(np.float32))
    assert np.array_equal(vp, e[1].astype(np.float32))
    # no decay, large input: u wraps at 24 bits, v saturates at +-(2**23 - 1)
    big = np.full((rows, steps), (1 << 16) / 64, np.float32)
    big[::2] *= -1
    nodecay = np.zeros(rows, np.int64)
    th = np.full(1, 131071 << 6, np.int64)  # the largest threshold, below the saturation
    s, vp, u, *_ = run_cuba_kernel(
        kernel,
        big,
        64.0,
        1 / 4096,
        nodecay,
        nodecay,
        th,
        ref_delay,
        np.zeros(1, np.int64),
        zeros,
        zeros,
        zeros,
        graded,
    )
    e = reference.cuba_forward(
        big,
        64.0,
        1 / 4096,
        nodecay,
        nodecay,
        th,
        np.zeros(1, np.int64),
        zeros,
        zeros,
        graded,
        ref_delay,
        zeros,
    )
    assert np.abs(vp * 4096).max() == SMAX and (np.diff(np.sign(u), axis=1) != 0).any()
    assert np.array_equal(vp, e[1].astype(np.float32))
    assert np.array_equal(u, e[2].astype(np.float32))


@pytest.mark.parametrize("parallel", [False, True])
def test_cuba_bad_input_flags_its_rows_only(parallel):
    rows, steps = 35, 19
    x = np.ones((rows, steps), np.float32) / 64
    bad_rows = [0, 15, 16, 34]
    x[0, 3] = np.nan
    x[15, 18] = np.inf
    x[16, 0] = -np.inf
    x[34, 7] = 2.0**31 / 64  # |x * 64| reaches 2**31
    x[20, 5] = (2.0**31 - 256) / 64  # just below: accepted
    kernel = CUBA_KERNELS[False, parallel]
    zeros = np.zeros(rows, np.int64)
    one = np.ones(1, np.int64)
    *_, bad = run_cuba_kernel(
        kernel, x, 64.0, 1 / 4096, one, one, one << 6, 1, 0 * one, zeros, zeros, zeros, False
    )
    assert np.flatnonzero(bad).tolist() == bad_rows


sdnn_case = st.fixed_dictionaries(
    {
        # up to three blocks of the forward's lanes (a partial one included)
        "rows": st.integers(1, 2 * _cpu.SD_LANES + 9),
        "steps": st.integers(1, 40),
        "mode": st.sampled_from([0, 1, 1]),
        "relu": st.booleans(),
        "cum_error": st.booleans(),
        "per_neuron": st.booleans(),
        "amp": st.sampled_from([1 << 8, 1 << 14, 1 << 20, 1 << 36]),
        "dtype": st.sampled_from([np.float32, np.float64]),
        "parallel": st.booleans(),
        "seed": st.integers(0, 2**31 - 1),
    }
)


def _assert_sdnn_equal(got, expected, records: bool = True) -> None:
    """The sigma-delta kernel's ``(y, mask, d, state, bad)`` equal the reference's
    ``(y, mask, d, state)`` bit for bit (mask and delta where recorded), no row flagged."""
    y, mask, d, st_, bad = got
    e_y, e_mask, e_d, e_st = expected
    assert np.array_equal(y, e_y.astype(y.dtype))
    if records:
        assert np.array_equal(mask, np.asarray(e_mask, np.uint8) * np.ones_like(mask))
        assert np.array_equal(d, e_d.astype(np.float32))
    for i, k in enumerate(("sigma", "act", "residue", "error")):
        assert np.array_equal(st_[i], e_st[k]), k
    assert not bad.any()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=sdnn_case)
def test_sdnn_forward_equals_reference(case):
    rng = np.random.default_rng(case["seed"])
    rows, steps, mode, pn = case["rows"], case["steps"], case["mode"], case["per_neuron"]
    in_scale = 64.0 if mode == 0 else float(1 << 18)
    v_th = _per_neuron(rng, rows, [0, 1, 2, 40, 255, 1 << 14], pn) << 12
    bias = _per_neuron(rng, rows, [0, 1, -3, 100], pn) << 12
    amp = case["amp"] if mode == 1 else min(case["amp"], 1 << 20)
    a = rng.integers(-amp, amp, size=(rows, steps))
    if rows > 1 and mode == 1:  # a tie |delta| == threshold each step
        v_th = np.resize(v_th, rows)
        bias = np.resize(bias, rows)
        v_th[-1], bias[-1] = 5 << 12, 0
        a[-1] = (5 << 12) * rng.choice([-1, 1], size=steps)
    x = (a / in_scale).astype(case["dtype"])
    relu = int(case["relu"] and mode == 1)
    state0 = {
        "sigma": rng.integers(-(1 << 30), 1 << 30, size=rows),
        "act": rng.integers(0, 1 << 24, size=rows),
        "residue": rng.integers(-(1 << 12), 1 << 12, size=rows),
        "error": rng.integers(-(1 << 12), 1 << 12, size=rows),
    }
    st = np.stack([state0[k] for k in ("sigma", "act", "residue", "error")]).astype(np.int64)
    y = np.full((rows, steps), np.nan, x.dtype)
    mask = np.full((rows, steps), 7, np.uint8)
    d = np.full((rows, steps), np.nan, np.float32)
    bad = np.zeros(rows, np.int8)
    SDNN_KERNELS[case["parallel"]](
        mode,
        x,
        in_scale,
        v_th,
        bias,
        relu,
        int(case["cum_error"]),
        st[0],
        st[1],
        st[2],
        st[3],
        y,
        mask,
        d,
        bad,
    )
    expected = reference.sdnn_forward(
        mode, x, in_scale, v_th, bias, relu, int(case["cum_error"]), state0
    )
    _assert_sdnn_equal((y, mask, d, st, bad), expected)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("wide_lane", [0, 7, 15])
def test_sdnn_forward_one_wide_lane_in_a_tile(parallel, wide_lane):
    """The kernel converts a tile's inputs and outputs through 32 bits where they all fit
    and exactly where one does not: one lane of a full tile (16 neurons x 16 steps) gets
    an input beyond 2**31 (a payload and delta beyond 2**31 follow), the others small
    ones; every value must still equal the reference's."""
    rng = np.random.default_rng(wide_lane)
    rows, steps = 16, 48
    in_scale = float(1 << 18)
    a = rng.integers(-(1 << 12), 1 << 12, size=(rows, steps)) * (rng.random((rows, steps)) < 0.5)
    a[wide_lane, 20] = (1 << 40) + 12345  # second tile: a wide input
    a[wide_lane, 37] = -(1 << 40) - 3  # third tile: and back
    x = (a / in_scale).astype(np.float64)
    v_th = np.array([40 << 12], np.int64)
    bias = np.array([0], np.int64)
    state0 = {k: np.zeros(rows, np.int64) for k in ("sigma", "act", "residue", "error")}
    st_ = np.zeros((4, rows), np.int64)
    y = np.full((rows, steps), np.nan)
    mask = np.full((rows, steps), 7, np.uint8)
    d = np.full((rows, steps), np.nan, np.float32)
    bad = np.zeros(rows, np.int8)
    SDNN_KERNELS[parallel](
        1, x, in_scale, v_th, bias, 1, 0, st_[0], st_[1], st_[2], st_[3], y, mask, d, bad
    )
    e_y, e_mask, e_d, e_st = reference.sdnn_forward(1, x, in_scale, v_th, bias, 1, 0, state0)
    # the case reaches the wide path: payload (y * 2**12) and delta (d * 2**18)
    assert np.abs(e_y[wide_lane]).max() * 2**12 >= 2**31
    assert np.abs(e_d[wide_lane]).max() * 2**18 >= 2**31
    _assert_sdnn_equal((y, mask, d, st_, bad), (e_y, e_mask, e_d, e_st))


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("records", [False, True])
def test_sdnn_forward_rows_longer_than_an_output_segment(parallel, records):
    """As for CUBA: rows of two output segments and a partial one, a partial lane block,
    with and without the mask and delta recorded, against the reference."""
    rng = np.random.default_rng(records)
    rows, steps = 19, 2 * _cpu.OUT_SEGMENT + 37
    in_scale = float(1 << 18)
    a = rng.integers(-(1 << 20), 1 << 20, (rows, steps)) * (rng.random((rows, steps)) < 0.4)
    x = (a / in_scale).astype(np.float32)
    v_th = rng.integers(1, 40, rows) << 12
    bias = np.array([0], np.int64)
    state0 = {k: np.zeros(rows, np.int64) for k in ("sigma", "act", "residue", "error")}
    st_ = np.zeros((4, rows), np.int64)
    y = np.full((rows, steps), np.nan, np.float32)
    mask, d = np.full((rows, steps), 7, np.uint8), np.full((rows, steps), np.nan, np.float32)
    if not records:
        mask, d = np.empty((rows, 0), np.uint8), np.empty((rows, 0), np.float32)
    bad = np.zeros(rows, np.int8)
    SDNN_KERNELS[parallel](
        1, x, in_scale, v_th, bias, 1, 0, st_[0], st_[1], st_[2], st_[3], y, mask, d, bad
    )
    e_y, e_mask, e_d, e_st = reference.sdnn_forward(1, x, in_scale, v_th, bias, 1, 0, state0)
    assert (e_y[:, _cpu.OUT_SEGMENT] != 0).any()  # output at a segment's first column
    _assert_sdnn_equal((y, mask, d, st_, bad), (e_y, e_mask, e_d, e_st), records)


@pytest.mark.parametrize("parallel", [False, True])
def test_sdnn_bad_input_flags_its_rows_only(parallel):
    rows, steps = 17, 33
    x = np.zeros((rows, steps), np.float64)
    x[3, 32] = np.nan
    x[16, 0] = 2.0**41 / 2**18  # |x * 2**18| reaches 2**41
    x[10, 4] = (2.0**41 - 2**20) / 2**18  # just below: accepted
    st = np.zeros((4, rows), np.int64)
    bad = np.zeros(rows, np.int8)
    y = np.empty((rows, steps))
    nil_m, nil_d = np.empty((rows, 0), np.uint8), np.empty((rows, 0), np.float32)
    one = np.ones(1, np.int64) << 12
    SDNN_KERNELS[parallel](
        1, x, float(1 << 18), one, 0 * one, 1, 0, st[0], st[1], st[2], st[3], y, nil_m, nil_d, bad
    )
    assert np.flatnonzero(bad).tolist() == [3, 16]


# ------------------------------------------------------------------- backward kernels
CUBA_BACKWARD = {
    (True, True): _cpu.cuba_backward_fast,
    (True, False): _cpu.cuba_backward_fast_serial,
    (False, True): _cpu.cuba_backward,
    (False, False): _cpu.cuba_backward_serial,
}
SDNN_BACKWARD = {True: _cpu.sdnn_backward, False: _cpu.sdnn_backward_serial}


def _close(a, b):
    """float32 kernels against the float64 reference: relative to the gradient's scale."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.allclose(a, b, rtol=2e-5, atol=2e-5 * max(1.0, np.abs(b).max(initial=0.0)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(1, 40),
    steps=st.integers(1, 37),
    graded=st.booleans(),
    fast=st.booleans(),
    parallel=st.booleans(),
    ref_delay=st.sampled_from([1, 3]),
    lag=st.integers(0, 1),
    seed=st.integers(0, 2**31 - 1),
)
def test_cuba_backward_equals_reference(rows, steps, graded, fast, parallel, ref_delay, lag, seed):
    """``lag = 1`` (the fast kernel only): the gradient of spikes written one step later,
    which the reference gets unshifted (``g[:, t] = g_s[:, t + 1]``, 0 at the end)."""
    rng = np.random.default_rng(seed)
    if fast:
        ref_delay = 1  # the fast path has no refractory steps, traces or decay gradients
    i_dec = rng.choice([0, 411, 4096], size=rows).astype(np.int64)
    v_dec = rng.choice([0, 205, 4096], size=rows).astype(np.int64)
    vth = np.array([30 << 6], np.int64)
    a = rng.integers(-10, 60, size=(rows, steps))
    x = (a / 64).astype(np.float32)
    zeros = np.zeros(rows, np.int64)
    u0 = rng.integers(-5000, 5000, size=rows)
    v0 = rng.integers(-1000, 1900, size=rows)
    _, vp, u, refr, *_ = reference.cuba_forward(
        x,
        64.0,
        1 / 4096,
        i_dec,
        v_dec,
        vth,
        np.zeros(1, np.int64),
        u0,
        v0,
        graded,
        ref_delay,
        zeros,
    )
    vp, u = vp.astype(np.float32), u.astype(np.float32)
    theta, tau, rho = 30 / 64, 100 * 30 / 64, 0.1
    amp = rho if graded else rho / (2 * tau)
    g_s = rng.standard_normal((rows, steps)).astype(np.float32)
    g_x = np.full((rows, steps), np.nan, np.float32)
    kernel = CUBA_BACKWARD[fast, parallel]
    one = np.ones(1)
    if fast:
        kernel(g_s, vp, theta * one, one / tau, amp, graded, i_dec, v_dec, g_x, lag)
        g_in = np.zeros_like(g_s)
        g_in[:, : steps - lag] = g_s[:, lag:]
        if lag:  # bit for bit the unlagged kernel on the unshifted gradient
            g_0 = np.full_like(g_x, np.nan)
            kernel(g_in, vp, theta * one, one / tau, amp, graded, i_dec, v_dec, g_0, 0)
            np.testing.assert_array_equal(g_x, g_0)
        e_x, _, _ = reference.cuba_backward(
            g_in,
            None,
            None,
            vp,
            None,
            theta,
            tau,
            rho,
            graded,
            i_dec,
            v_dec,
            u0 / 4096,
            v0 / 4096,
            4096,
            vth,
        )
        assert _close(g_x, e_x)
        return
    g_v = rng.standard_normal((rows, steps)).astype(np.float32)
    g_u = rng.standard_normal((rows, steps)).astype(np.float32)
    g_di, g_dv = np.zeros(rows), np.zeros(rows)
    r = refr.astype(np.uint8) if ref_delay > 1 else np.empty((rows, 0), np.uint8)
    kernel(
        g_s,
        g_v,
        g_u,
        vp,
        u,
        r,
        theta * one,
        vth,
        4096.0,
        one / tau,
        amp,
        graded,
        i_dec,
        v_dec,
        u0 / 4096,
        v0 / 4096,
        True,
        True,
        g_x,
        g_di,
        g_dv,
    )
    e_x, e_di, e_dv = reference.cuba_backward(
        g_s,
        g_v,
        g_u,
        vp,
        u,
        theta,
        tau,
        rho,
        graded,
        i_dec,
        v_dec,
        u0 / 4096,
        v0 / 4096,
        4096,
        vth,
        True,
        True,
        refr if ref_delay > 1 else None,
    )
    assert _close(g_x, e_x) and _close(g_di, e_di) and _close(g_dv, e_dv)


CUBA_BACKWARD_NL = {True: _cpu.cuba_backward_fast_nl, False: _cpu.cuba_backward_fast_nl_serial}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch=st.integers(1, 4),
    neurons=st.one_of(st.integers(1, 11), st.integers(14, 50)),
    steps=st.integers(1, 37),
    graded=st.booleans(),
    parallel=st.booleans(),
    lag=st.integers(0, 1),
    seed=st.integers(0, 2**31 - 1),
)
def test_cuba_backward_fast_neuron_last(batch, neurons, steps, graded, parallel, lag, seed):
    """The fast backward on neuron-last ``(B, T, N)`` gradients (a dense synapse's input
    gradient layout): the reference's input gradient, and bit for bit the time-last
    kernel's on the same values (quads of neurons stay inside one batch item: ``N`` not a
    multiple of 4 leaves a partial quad in each; ``N`` up to 50 gives many quads)."""
    rng = np.random.default_rng(seed)
    rows = batch * neurons
    i_dec = np.resize(rng.choice([0, 411, 4096], size=neurons).astype(np.int64), rows)
    v_dec = np.resize(rng.choice([0, 205, 4096], size=neurons).astype(np.int64), rows)
    vth = np.array([30 << 6], np.int64)
    x = (rng.integers(-10, 60, size=(rows, steps)) / 64).astype(np.float32)
    zeros = np.zeros(rows, np.int64)
    _, vp, *_ = reference.cuba_forward(
        x, 64.0, 1 / 4096, i_dec, v_dec, vth, np.zeros(1, np.int64), zeros, zeros, graded, 1, zeros
    )
    vp = vp.astype(np.float32)
    theta, tau, rho = 30 / 64, 100 * 30 / 64, 0.1
    amp = rho if graded else rho / (2 * tau)
    one = np.ones(1)
    g_nl = rng.standard_normal((batch, steps, neurons)).astype(np.float32)  # (B, T, N)
    g_x = np.full((batch, steps, neurons), np.nan, np.float32)
    CUBA_BACKWARD_NL[parallel](
        g_nl, vp, theta * one, one / tau, amp, graded, i_dec, v_dec, g_x, lag
    )
    g_tl = np.ascontiguousarray(g_nl.transpose(0, 2, 1)).reshape(rows, steps)  # time-last
    g_0 = np.full((rows, steps), np.nan, np.float32)
    CUBA_BACKWARD[True, parallel](
        g_tl, vp, theta * one, one / tau, amp, graded, i_dec, v_dec, g_0, lag
    )
    got = g_x.transpose(0, 2, 1).reshape(rows, steps)
    np.testing.assert_array_equal(got, g_0)
    g_in = np.zeros_like(g_tl)
    g_in[:, : steps - lag] = g_tl[:, lag:]
    zf = np.zeros(rows)
    e_x, _, _ = reference.cuba_backward(
        g_in, None, None, vp, None, theta, tau, rho, graded, i_dec, v_dec, zf, zf, 4096, vth
    )
    assert _close(got, e_x)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(1, 40),
    steps=st.integers(1, 80),
    graded=st.booleans(),
    parallel=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_cuba_backward_block_surrogate_run_is_the_row_loop(rows, steps, graded, parallel, seed):
    """A block of 16 rows sharing theta and tau forms its surrogate rows in one run over
    ``16·T`` values (``_surrogate_dv_run``); per-row parameters (the same values, one per
    row) take the row-by-row loop. Both give the same bits, at every row length (whole
    vectors, vectors and a remainder, shorter than a vector) and at voltages far from
    the threshold (the exponent's clamp)."""
    rng = np.random.default_rng(seed)
    i_dec = rng.choice([0, 411, 4096], size=rows).astype(np.int64)
    v_dec = rng.choice([0, 205, 4096], size=rows).astype(np.int64)
    vp = (rng.standard_normal((rows, steps)) * rng.choice([0.1, 1.0, 1e3])).astype(np.float32)
    theta, tau, rho = 30 / 64, 100 * 30 / 64, 0.1
    amp = rho if graded else rho / (2 * tau)
    g_s = rng.standard_normal((rows, steps)).astype(np.float32)
    kernel = CUBA_BACKWARD[True, parallel]
    shared = np.full((rows, steps), np.nan, np.float32)
    kernel(g_s, vp, np.array([theta]), np.array([1 / tau]), amp, graded, i_dec, v_dec, shared, 0)
    per_row = np.full((rows, steps), np.nan, np.float32)
    thetas, inv_taus = np.full(rows, theta), np.full(rows, 1 / tau)
    kernel(g_s, vp, thetas, inv_taus, amp, graded, i_dec, v_dec, per_row, 0)
    np.testing.assert_array_equal(shared, per_row)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(1, 40),
    steps=st.integers(1, 37),
    mode=st.sampled_from([0, 1]),
    masked=st.booleans(),
    parallel=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_sdnn_backward_equals_reference(rows, steps, mode, masked, parallel, seed):
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((rows, steps)).astype(np.float32)
    mask = (rng.random((rows, steps)) < 0.6).astype(np.uint8)
    d = (rng.standard_normal((rows, steps)) * 0.1).astype(np.float32)
    theta = rng.uniform(0.01, 0.2, size=rows)
    g_x = np.full((rows, steps), np.nan, np.float32)
    g_b, g_th = np.zeros(rows), np.zeros(rows)
    m = mask if masked else np.empty((rows, 0), np.uint8)
    SDNN_BACKWARD[parallel](g, m, d, theta, 0.5, 0.7, mode, g_x, g_b, g_th)
    e_x, e_b, e_th = reference.sdnn_backward(
        g, mask if masked else None, d.astype(np.float64), theta, 0.5, 0.7, mode
    )
    assert _close(g_x, e_x) and _close(g_th, e_th)
    if mode == 1:
        assert _close(g_b, e_b)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(16, 40),
    steps=st.integers(1, 37),
    masked=st.booleans(),
    parallel=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_sdnn_backward_lanes_are_the_row_loop(rows, steps, masked, parallel, seed):
    """Sigma mode runs whole blocks of 16 rows in vector lanes and the rest row by row:
    every row's input and bias gradient has the bits it has alone (a one-row call takes
    the row loop), for whole 16-step tiles and the remainder, masked or not."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((rows, steps)).astype(np.float32)
    mask = (rng.random((rows, steps)) < 0.6).astype(np.uint8)
    m = mask if masked else np.empty((rows, 0), np.uint8)
    d = np.empty((rows, 0), np.float32)
    theta = np.full(1, 0.1)
    g_x = np.full((rows, steps), np.nan, np.float32)
    g_b = np.zeros(rows)
    SDNN_BACKWARD[parallel](g, m, d, theta, 0.5, 0.7, 1, g_x, g_b, np.zeros(0))
    for n in range(rows):
        x1, b1 = np.full((1, steps), np.nan, np.float32), np.zeros(1)
        SDNN_BACKWARD[parallel](
            g[n : n + 1], m[n : n + 1], d[n : n + 1], theta, 0.5, 0.7, 1, x1, b1, np.zeros(0)
        )
        assert np.array_equal(g_x[n], x1[0]) and g_b[n] == b1[0], n

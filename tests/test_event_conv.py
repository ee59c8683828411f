"""Convolutions from the input's non-zero values (``fixed.event_conv``): the reference's
sums bit for bit, and taken exactly where they apply (sparse graded input, one group,
not transposed, columns not dilated, sums exact in float32)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import conv_reference, spy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loihi_slayer.fixed import event_conv, synapse_fast
from loihi_slayer.fixed import workers as workers_mod

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: for tests whose fixture only patches module state (each example clears what it reads)
FIXTURE_SETTINGS = settings(
    SETTINGS,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def event_calls(monkeypatch):
    """Counts the event kernel's calls; every eligible convolution takes the event path,
    whatever its density."""
    monkeypatch.setattr(event_conv, "events_pay", lambda *args: True)
    return spy(monkeypatch, event_conv, "event_rows")


def _reference(x, w, stride, padding, dilation, exp, latency):
    return conv_reference(x, w, stride, padding, dilation, 1, exp, True, latency, False)


def _out_hw(hw, k, stride, padding, dilation):
    return tuple(
        (n + 2 * p - d * (kk - 1) - 1) // s + 1
        for n, kk, s, p, d in zip(hw, k, stride, padding, dilation, strict=True)
    )


@st.composite
def geometries(draw):
    """``(c_in, c_out, (kh, kw), stride, padding, dilation, (h, w))`` with an output."""
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    hw = tuple(
        draw(st.integers(d * (kk - 1) + 1 - 2 * p if d * (kk - 1) + 1 > 2 * p else 1, 12))
        for kk, p, d in zip(k, padding, dilation, strict=True)
    )
    # output channels on both sides of a vector's width (the channel padding)
    c_out = draw(
        st.sampled_from(
            [1, 3, event_conv.LANES - 1, event_conv.LANES, 17, 40, 4 * event_conv.LANES + 1]
        )
    )
    # input channels past one 64-bit word of the compaction's marks too
    c_in = draw(st.sampled_from([1, 2, 3, 4, 65]))
    return c_in, c_out, k, stride, padding, dilation, hw


@FIXTURE_SETTINGS
@given(
    geometry=geometries(),
    steps=st.one_of(st.integers(1, 9), st.integers(14, 40)),  # whole 16-step blocks too
    exp=st.integers(-8, 7),
    latency=st.integers(0, 3),
    density=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    mag=st.sampled_from([1, 255, 2**15]),
    seed=st.integers(0, 2**31 - 1),
)
def test_event_conv_equals_the_reference(
    event_calls, geometry, steps, exp, latency, density, mag, seed
):
    """Any geometry (stride, padding, dilation, channels not a multiple of the vector),
    latency, exponent (both shifts, the 24-bit wrap) and density: the reference's sums."""
    event_calls.clear()
    c_in, c_out, k, stride, padding, dilation, hw = geometry
    out_hw = _out_hw(hw, k, stride, padding, dilation)
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, (c_out, c_in, *k)) * 2
    x = rng.integers(-mag, mag + 1, (c_in, *hw, steps)) * (rng.random((c_in, *hw, steps)) < density)
    got = synapse_fast.conv2d(x, w, stride, padding, dilation, 1, exp, True, latency, out_hw)
    np.testing.assert_array_equal(got, _reference(x, w, stride, padding, dilation, exp, latency))
    # the event path runs where float32 sums are exact: partial sums bounded by
    # max_o sum |w| max|x| (the weights' common power of two taken out) <= 2**24;
    # inputs within int8 may take the int8 GEMM instead
    mags = np.abs(x).reshape(c_in, -1).max(axis=1)
    bound = int((np.abs(w).sum(axis=(2, 3)) * mags).sum(axis=1).max())
    bits = int(np.bitwise_or.reduce(np.abs(w), axis=None))
    shift = (bits & -bits).bit_length() - 1 if bits else 0
    if mags.max() > 127:  # (and columns undilated: the taps reach consecutive columns)
        assert bool(event_calls) == (bound >> shift <= 2**24 and dilation[1] == 1)


@pytest.mark.parametrize("c_in", [64, 65, 130])
def test_inputs_of_more_than_64_channels(event_calls, c_in):
    """Channels past the first 64 (the compaction's marks take more than one 64-bit word
    per pixel and step): the reference's sums, on the event path."""
    rng = np.random.default_rng(c_in)
    w = rng.integers(-4, 5, (20, c_in, 3, 3)) * 2  # sum bound under 2**24 at |x| <= 300
    x = rng.integers(-300, 301, (c_in, 7, 9, 19)) * (rng.random((c_in, 7, 9, 19)) < 0.1)
    x[-1, 3, 4, :] = 300  # the last channel's events count
    got = synapse_fast.conv2d(x, w, (1, 2), (1, 0), (1, 1), 1, -2, True, 1, (7, 4))
    np.testing.assert_array_equal(got, _reference(x, w, (1, 2), (1, 0), (1, 1), -2, 1))
    assert event_calls


def test_sums_at_the_float32_limit_are_exact(event_calls):
    """Partial sums up to 2**24 (the float32 path's bound): exact, on the event path; one
    more and the float64 GEMM runs instead."""
    w = np.full((2, 1, 2, 2), 127)  # 4 odd taps: sum bound 508 max |x|, no common 2**g
    for mag, events in ((2**24 // 508, True), (2**24 // 508 + 1, False)):
        x = np.zeros((1, 5, 5, 3), np.int64)
        x[0, 1:3, 1:3, :] = mag
        x[0, 4, 4, 1] = -mag
        event_calls.clear()
        got = synapse_fast.conv2d(x, w, (1, 1), (0, 0), (1, 1), 1, 0, True, 0, (4, 4))
        np.testing.assert_array_equal(got, _reference(x, w, (1, 1), (0, 0), (1, 1), 0, 0))
        assert bool(event_calls) == events


def test_the_path_follows_density_groups_transposition_and_spikes(monkeypatch):
    """Sparse graded input takes the event path; denser input, grouped or transposed
    convolutions and binary spikes take the GEMM; the sums agree everywhere."""
    calls = spy(monkeypatch, event_conv, "event_rows")
    rng = np.random.default_rng(5)
    w = rng.integers(-100, 100, (event_conv.LANES, 4, 3, 3)) * 2  # no channel padding
    limit = event_conv.EVENT_MAX_DENSITY
    cases = [  # (density, groups, transpose, graded, event path)
        (limit / 2, 1, False, True, True),
        (min(1.0, limit * 2), 1, False, True, False),
        (limit / 2, 2, False, True, False),
        (limit / 2, 1, True, True, False),
        (limit / 2, 1, False, False, False),
    ]
    for density, groups, transpose, graded, events in cases:
        x = rng.integers(128, 300, (4, 9, 9, 40)) * (rng.random((4, 9, 9, 40)) < density)
        wg = np.swapaxes(w, 0, 1) if transpose else w[:, : 4 // groups]
        calls.clear()
        got = synapse_fast.conv2d(
            x, wg, (1, 1), (1, 1), (1, 1), groups, -2, graded, 1, (9, 9), transpose
        )
        ref = conv_reference(x, wg, (1, 1), (1, 1), (1, 1), groups, -2, graded, 1, transpose)
        np.testing.assert_array_equal(got, ref)
        assert bool(calls) == events, (density, groups, transpose, graded)


def test_the_density_limit_counts_the_channel_padding():
    """The events' work per non-zero value is the padded channels: a layer whose channels
    fill whole vectors takes the path up to the limit's density, one with a quarter of a
    vector's channels up to a quarter of it; a row of sums past the memory bound never."""
    limit, lanes = event_conv.EVENT_MAX_DENSITY, event_conv.LANES
    size = 10_000
    at = int(limit * size)
    assert event_conv.events_pay(at, size, lanes)
    assert not event_conv.events_pay(at + 1, size, lanes)
    assert event_conv.events_pay(at // 4, size, lanes // 4)
    assert not event_conv.events_pay(at // 4 + 1, size, lanes // 4)
    assert event_conv.events_pay(0, size, 1)
    # an output row's sums are bounded: longer rows take the GEMM whatever the density
    row = event_conv.EVENT_ROW_ELEMENTS // lanes
    assert event_conv.events_pay(0, size, lanes, row)
    assert not event_conv.events_pay(0, size, lanes, row + 1)


def test_a_row_of_sums_past_the_bound_takes_the_gemm(monkeypatch):
    """The same sparse layer runs by events, and by the GEMM once one output row's sums
    would pass the memory bound (a long run): the same sums either way."""
    calls = spy(monkeypatch, event_conv, "event_rows")
    rng = np.random.default_rng(4)
    w = rng.integers(-100, 100, (event_conv.LANES, 2, 3, 3)) * 2
    x = rng.integers(128, 300, (2, 6, 7, 30)) * (rng.random((2, 6, 7, 30)) < 0.05)
    ref = _reference(x, w, (1, 1), (1, 1), (1, 1), 0, 1)
    for bound, events in ((1 << 22, True), (7 * 30 * event_conv.LANES - 1, False)):
        monkeypatch.setattr(event_conv, "EVENT_ROW_ELEMENTS", bound)
        calls.clear()
        got = synapse_fast.conv2d(x, w, (1, 1), (1, 1), (1, 1), 1, 0, True, 1, (6, 7))
        np.testing.assert_array_equal(got, ref)
        assert bool(calls) == events


@pytest.mark.parametrize("workers", [1, 3])
def test_event_arrays_from_a_scratch_of_garbage(event_calls, monkeypatch, workers):
    """Every array from a scratch full of garbage (as kept memory may hold): the kernels
    write every value they read, over one worker or several."""
    monkeypatch.setattr(workers_mod, "TILE_WORKERS", workers)
    rng = np.random.default_rng(8)
    w = rng.integers(-128, 128, (20, 3, 3, 3)) * 2
    x = rng.integers(128, 300, (3, 11, 13, 37)) * (rng.random((3, 11, 13, 37)) < 0.1)
    roles: list[str] = []

    def scratch(role, shape, dtype):
        roles.append(role)
        arr = np.empty(shape, dtype)
        arr.view(np.uint8)[...] = 0x5A
        return arr

    got = synapse_fast.conv2d(
        x, w, (2, 1), (1, 0), (1, 1), 1, -1, True, 1, (6, 11), scratch=scratch
    )
    np.testing.assert_array_equal(got, _reference(x, w, (2, 1), (1, 0), (1, 1), -1, 1))
    assert event_calls and "event values" in roles and "event sums 0" in roles


@SETTINGS
@given(
    shape=st.tuples(
        st.sampled_from([1, 3, 63, 64, 65, 130]),  # one, two and three 64-bit words
        st.integers(1, 4),
        st.integers(1, 4),
        st.integers(1, 70),
    ),
    density=st.floats(0, 1),
    seed=st.integers(0, 2**31 - 1),
)
def test_compact_lists_each_pixels_non_zero_channels_per_step(shape, density, seed):
    """Every (pixel, step) lists its non-zero channels in ascending order with their
    values, image rows packed one after another from their own region (two calls on
    disjoint image rows, as two workers make them), and each channel's image row's
    extremes."""
    c_in, h, wd, steps = shape
    rng = np.random.default_rng(seed)
    x = rng.integers(-(2**20), 2**20, shape) * (rng.random(shape) < density)
    groups = h * wd * steps
    first, last = np.full(groups, -1, np.int64), np.full(groups, -1, np.int64)
    chans = np.full(x.size, -1, np.int32)
    values = np.full(x.size, np.nan, np.float32)
    hi, lo = np.full(c_in * h, -7, np.int64), np.full(c_in * h, 7, np.int64)
    marks = np.full(wd * steps * -(-c_in // 64), 12345, np.uint64)  # not cleared by us
    split = h // 2
    event_conv.compact(x, 0, split, first, last, chans, values, hi, lo, marks)
    event_conv.compact(x, split, h, first, last, chans, values, hi, lo, marks)
    image_rows = x.reshape(c_in * h, wd * steps)  # (c, y)
    assert hi.tolist() == np.maximum(image_rows.max(axis=1), 0).tolist()
    assert lo.tolist() == np.minimum(image_rows.min(axis=1), 0).tolist()
    pos = 0
    for y in range(h):
        if y == split:
            pos = split * wd * c_in * steps  # the second call's region
        for ix in range(wd):
            for t in range(steps):
                g = (y * wd + ix) * steps + t
                (where,) = np.nonzero(x[:, y, ix, t])
                assert (first[g], last[g]) == (pos, pos + len(where))
                assert chans[pos : last[g]].tolist() == where.tolist()
                want = x[where, y, ix, t].astype(np.float32).tolist()
                assert values[pos : last[g]].tolist() == want
                pos = last[g]


def test_input_stats_count_the_non_zero_values():
    rng = np.random.default_rng(2)
    x = rng.integers(-3, 4, (5, 7, 8)) * (rng.random((5, 7, 8)) < 0.3)
    mags, nonzero = synapse_fast.input_stats(x, graded=True)
    assert nonzero == np.count_nonzero(x)
    assert mags.tolist() == np.abs(x).reshape(5, -1).max(axis=1).tolist()
    assert synapse_fast.input_stats(x, graded=False)[1] is None  # spikes: not read


@SETTINGS
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), st.integers(1, 70)),
    density=st.floats(0, 1),
    mag=st.sampled_from([1, 2**20, 2**62, 2**63 - 1]),
    seed=st.integers(0, 2**31 - 1),
)
def test_the_events_give_the_input_stats(shape, density, mag, seed):
    """The magnitudes and non-zero count from the compacted events (one pass) are those
    :func:`input_stats` reads from the stream, huge values (no float path) included."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-mag, mag, shape, dtype=np.int64, endpoint=True)
    x = x * (rng.random(shape) < density)
    want_mags, want_nonzero = synapse_fast.input_stats(x, graded=True)
    events = synapse_fast._compact(x, synapse_fast.new_array)
    mags, nonzero = synapse_fast._event_stats(events, shape[0])
    assert nonzero == want_nonzero == np.count_nonzero(x)
    assert (mags is None) == (want_mags is None)
    if mags is not None:
        assert mags.tolist() == want_mags.tolist()


def test_a_kept_layer_reads_its_input_once(monkeypatch):
    """Weights kept across calls (the emulator's): after a call that ran from the events,
    the next lists the events and the magnitudes in one pass, without input_stats; when
    that input turns out to take the GEMM (dense, or past the float32 bound), the sums are
    still the reference's and the call after reads the magnitudes first again."""
    stats = spy(monkeypatch, synapse_fast, "input_stats")
    rows = spy(monkeypatch, event_conv, "event_rows")
    rng = np.random.default_rng(5)
    w = rng.integers(-128, 128, (20, 3, 3, 3)) * 2
    weights = synapse_fast.conv_weights(w, 1, False)
    geometry = ((1, 1), (1, 1), (1, 1), 1, 0, True, 1, (8, 9))
    sparse = [rng.integers(-300, 300, (3, 8, 9, 21)) * (rng.random((3, 8, 9, 21)) < 0.05)]
    sparse.append(sparse[0] * 3)
    dense = rng.integers(-300, 300, (3, 8, 9, 21))
    huge = sparse[0] * 2**20  # sums past 2**24: not float32
    # (input, input_stats called, ran from the events)
    calls = [
        (sparse[0], 1, 1),  # the first call: the magnitudes first
        (sparse[1], 0, 1),  # the last ran from the events: one pass
        (sparse[0], 0, 1),
        (dense, 0, 0),  # listed in vain: the GEMM
        (dense, 1, 0),  # the last took the GEMM: the magnitudes first again
        (sparse[1], 1, 1),
        (huge, 0, 0),  # past the float32 bound
        (sparse[0], 1, 1),
    ]
    for k, (x, read_stats, events) in enumerate(calls):
        stats.clear()
        rows.clear()
        got = synapse_fast.conv2d(x, w, *geometry, weights=weights)
        want = _reference(x, w, (1, 1), (1, 1), (1, 1), 0, 1)
        np.testing.assert_array_equal(got, want)
        assert (k, len(stats), bool(rows)) == (k, read_stats, bool(events))

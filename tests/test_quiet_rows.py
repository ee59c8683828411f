"""Quiet neurons in the CUBA training forward kernels: skipped, with their outputs written.

A neuron whose input is 0 at every step, whose state (current, voltage, refractory
count) is 0, whose bias is 0 and whose threshold is not negative stays at rest: the
kernels (``autograd._cpu.cuba_forward*``, plain and pooled) write its zero outputs and
queue only the other neurons into their 16-lane blocks. Each case here mixes quiet
neurons with every kind of neuron that only looks quiet (zero input but a state, a bias,
a refractory count; input on one late step only; a NaN; window
taps that cancel in the pooled sum), across lane-block boundaries, against the NumPy
fixed-point reference (:mod:`loihi_slayer.autograd.reference`). The kernels' outputs
start NaN / 7 filled, so an output a skipped neuron leaves unwritten shows.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import cuba_forward_kernels, run_cuba_kernel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_pool_fused import window_sums

from loihi_slayer.autograd import reference
from loihi_slayer.fixed.dynamics import cuba_rests

#: what a neuron's input, state and parameters look like (see the module docstring)
KINDS = (
    "quiet",
    "quiet",
    "quiet",
    "current",
    "voltage",
    "refractory",
    "bias",
    "late input",
    "nan",
    "negative zero",
    "cancelling taps",
    "busy",
)

case_strategy = st.fixed_dictionaries(
    {
        "rows": st.integers(1, 70),
        "steps": st.sampled_from([1, 3, 16, 17, 60, 300]),
        "pooled": st.booleans(),
        "ref_delay": st.sampled_from([1, 3]),
        "graded": st.booleans(),
        "shift": st.booleans(),
        "parallel": st.booleans(),
        "per_neuron": st.booleans(),
        "seed": st.integers(0, 2**31 - 1),
    }
)


def _neurons(rng, rows: int, ref: int, per_neuron: bool):
    """Kinds, parameters and initial state of ``rows`` neurons (``per_neuron``: parameters
    per neuron, else shared, with every neuron's bias 0 then)."""
    kinds = rng.choice(KINDS, size=rows)
    if not per_neuron:
        kinds[kinds == "bias"] = "quiet"
    if ref == 1:  # a count without a refractory period: the kernel clears it (below)
        kinds[kinds == "refractory"] = "stale count"
    n = rows if per_neuron else 1
    i_dec = rng.choice([0, 411, 4096], size=n).astype(np.int64)
    v_dec = rng.choice([0, 205, 4096], size=n).astype(np.int64)
    vth = rng.choice([0, 1, 80, 131071], size=n).astype(np.int64) << 6
    bias = np.zeros(n, np.int64)
    if per_neuron:
        bias[kinds == "bias"] = rng.choice([-3, 5], size=int((kinds == "bias").sum())) << 6
    u0, v0, rc0 = (np.zeros(rows, np.int64) for _ in range(3))
    u0[kinds == "current"] = rng.choice([-1, 1, 9000], size=int((kinds == "current").sum()))
    v0[kinds == "voltage"] = rng.choice([-1, 1, 9000], size=int((kinds == "voltage").sum()))
    rc0[kinds == "refractory"] = rng.integers(1, ref, size=int((kinds == "refractory").sum()))
    rc0[kinds == "stale count"] = 1
    return kinds, (i_dec, v_dec, vth, bias), (u0, v0, rc0)


def _inputs(rng, kinds, steps: int, taps: int) -> np.ndarray:
    """``(rows, taps, steps)`` float32 inputs (``taps`` values summed per neuron input)."""
    rows = len(kinds)
    x = np.zeros((rows, taps, steps), np.float32)
    busy = kinds == "busy"
    x[busy] = rng.integers(-2, 4, size=(int(busy.sum()), taps, steps)) * (
        rng.random((int(busy.sum()), taps, steps)) < 0.4
    )
    x[kinds == "late input", -1, -1] = 1.0
    x[kinds == "nan", 0, steps // 2] = np.nan
    x[kinds == "negative zero"] = -0.0
    cancel = kinds == "cancelling taps"
    x[cancel, 0, :] = 0.5
    x[cancel, -1, :] = -0.5 if taps > 1 else 0.5
    return x


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=case_strategy)
def test_quiet_and_look_alike_neurons_equal_the_reference(case):
    rng = np.random.default_rng(case["seed"])
    rows, steps, ref = case["rows"], case["steps"], case["ref_delay"]
    kinds, (i_dec, v_dec, vth, bias), (u0, v0, rc0) = _neurons(rng, rows, ref, case["per_neuron"])
    kernel = cuba_forward_kernels()[ref > 1, case["parallel"]]
    if case["pooled"]:  # each neuron a 2x2 window of its own plane: (rows, 2, 2, T)
        taps = _inputs(rng, kinds, steps, 4)
        x4 = taps.reshape(rows, 2, 2, steps)
        got = run_cuba_kernel(
            kernel,
            x4.reshape(-1, steps),
            64.0,
            1.0 / 4096,
            i_dec,
            v_dec,
            vth,
            ref,
            bias,
            u0,
            v0,
            rc0,
            case["graded"],
            pool=(2, 2, 1, 1),
            pool_w=1.0,
            shift=case["shift"],
        )
        z = window_sums(x4, 2, 2, 1.0)
    else:
        z = _inputs(rng, kinds, steps, 1)[:, 0]
        args = (64.0, 1.0 / 4096, i_dec, v_dec, vth, ref, bias, u0, v0, rc0, case["graded"])
        got = run_cuba_kernel(kernel, z, *args)
        if case["shift"]:  # the plain path has no shift: compare unshifted
            case = {**case, "shift": False}
    s, vp, u, r, state, bad = got
    finite = np.where(np.isfinite(z), z, 0.0).astype(np.float32)
    # without a refractory period the kernel ignores a count and clears it (the
    # reference would hold the voltage for it): compare against a zero count
    rc_in = rc0 if ref > 1 else np.zeros_like(rc0)
    e_s, e_vp, e_u, e_r, e_u1, e_v1, e_rc1 = reference.cuba_forward(
        finite, 64.0, 1.0 / 4096, i_dec, v_dec, vth, bias, u0, v0, case["graded"], ref, rc_in
    )
    e_s = e_s.astype(s.dtype)
    if case["shift"]:
        e_s = np.concatenate([np.zeros((rows, 1), s.dtype), e_s[:, :-1]], axis=1)
    flagged = kinds == "nan"
    assert np.array_equal(bad != 0, flagged)
    ok = ~flagged  # a refused row's values are the caller's to discard
    assert np.array_equal(s[ok], e_s[ok])
    assert np.array_equal(vp[ok], e_vp[ok].astype(vp.dtype))
    assert np.array_equal(u[ok], e_u[ok].astype(u.dtype))
    assert np.array_equal(state[:, ok], np.stack([e_u1, e_v1, e_rc1])[:, ok])
    if ref > 1:
        assert np.array_equal(r[ok], e_r[ok].astype(np.uint8))


@pytest.mark.parametrize("steps", [63, 64, 65, 129, 200])
@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize("parallel", [False, True])
def test_one_input_value_at_any_step_is_seen(steps, pooled, parallel):
    """Neuron ``p`` gets one input value, at step ``p`` (of tap ``p % 4`` when pooled), and
    nothing else: every position of the quiet test's blocks of 64 values, their edges
    included, must make its neuron step (the reference's traces), not pass as quiet."""
    rows = steps
    x = np.zeros((rows, 4 if pooled else 1, steps), np.float32)
    x[np.arange(rows), np.arange(rows) % x.shape[1], np.arange(steps)] = 3.0
    zeros = np.zeros(rows, np.int64)
    params = (np.array([411]), np.array([205]), np.array([64 << 6]), 1, np.zeros(1, np.int64))
    if pooled:  # each neuron a 2x2 window of its own plane
        x4 = x.reshape(rows, 2, 2, steps)
        kernel_x, geometry, z = (
            x4.reshape(-1, steps),
            {"pool": (2, 2, 1, 1)},
            window_sums(x4, 2, 2, 1.0),
        )
    else:
        kernel_x, geometry, z = x[:, 0], {}, x[:, 0]
    got = run_cuba_kernel(
        cuba_forward_kernels()[False, parallel],
        kernel_x,
        64.0,
        1.0 / 4096,
        *params,
        zeros,
        zeros,
        zeros,
        False,
        **geometry,
    )
    s, vp, u, _, state, bad = got
    e_s, e_vp, e_u, _, e_u1, e_v1, _ = reference.cuba_forward(
        z, 64.0, 1.0 / 4096, *params[:3], params[4], zeros, zeros, False, 1, zeros
    )
    assert not bad.any()
    assert np.array_equal(u, e_u.astype(u.dtype))
    assert np.array_equal(vp, e_vp.astype(vp.dtype))
    assert np.array_equal(s, e_s.astype(s.dtype))
    assert np.array_equal(state[:2], np.stack([e_u1, e_v1]))
    assert (u != 0).any(axis=1).all()  # each neuron saw its value


@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize("parallel", [False, True])
def test_a_negative_threshold_is_not_quiet(pooled, parallel):
    """The public neurons refuse a negative threshold, but the kernels do not rely on it:
    at rest with no input, ``v = 0 > v_th`` spikes every step (the spec's strict compare),
    in every lane."""
    rows, steps = 20, 5
    z = np.zeros((rows * (4 if pooled else 1), steps), np.float32)
    zeros = np.zeros(rows, np.int64)
    vth = np.where(np.arange(rows) % 3 == 0, -64, 64).astype(np.int64)
    geometry = {"pool": (2, 2, 1, 1)} if pooled else {}
    s, vp, u, _, state, bad = run_cuba_kernel(
        cuba_forward_kernels()[False, parallel],
        z,
        64.0,
        1.0 / 4096,
        np.array([411]),
        np.array([205]),
        vth,
        1,
        np.zeros(1, np.int64),
        zeros,
        zeros,
        zeros,
        False,
        **geometry,
    )
    expected = np.repeat((vth < 0).astype(np.float32)[:, None], steps, axis=1)
    assert np.array_equal(s, expected)
    assert not vp.any() and not u.any() and not state.any() and not bad.any()


@settings(max_examples=40, deadline=None)
@given(
    i_dec=st.integers(0, 4096),
    v_dec=st.integers(0, 4096),
    vth_mant=st.integers(0, 131071),
    ref=st.integers(1, 9),
    steps=st.integers(1, 50),
)
def test_a_resting_neuron_stays_at_rest(i_dec, v_dec, vth_mant, ref, steps):
    """What ``fixed.dynamics.cuba_rests`` claims, by the independent NumPy reference: from
    zero state, with no bias and no input, every trace stays 0 for any decays, threshold
    and refractory delay; and the predicate is false as soon as one condition fails."""
    zero = np.zeros(1, np.int64)
    v_th = np.array([vth_mant << 6])
    decays = (np.array([i_dec]), np.array([v_dec]))
    x = np.zeros((1, steps), np.float32)
    s, vp, u, r, u1, v1, rc1 = reference.cuba_forward(
        x, 64.0, 1.0 / 4096, *decays, v_th, zero, zero, zero, False, ref, zero
    )
    assert not (s.any() or vp.any() or u.any() or r.any() or u1.any() or v1.any() or rc1.any())
    assert cuba_rests(0, 0, 0, 0, vth_mant << 6)
    for u0, v0, rc0, bias, th in (
        (1, 0, 0, 0, v_th[0]),
        (0, -1, 0, 0, v_th[0]),
        (0, 0, 1, 0, v_th[0]),
        (0, 0, 0, 64, v_th[0]),
        (0, 0, 0, 0, -64),
    ):
        assert not cuba_rests(u0, v0, rc0, bias, th)

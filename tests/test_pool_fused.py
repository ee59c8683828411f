"""The pool block's fused path: sum pool, CUBA neuron and one-step shift in one kernel pass.

``block.cuba.Pool`` hands a tiling, equal-tap sum pool with no gradient to compute to
``neuron.cuba.Neuron.pooled_forward``, whose kernel (``autograd._cpu.cuba_forward`` with
a ``pool`` geometry and ``shift``) forms the window sums on its input pass. Expected
values: the kernel against the NumPy fixed-point reference (``autograd.reference``) fed
by window sums taken in NumPy float32 in the synapse's order; the block against its
unfused path (torch pooling, the neuron op, ``spike.shift``), bit for bit; the fallbacks
by spying on which path ran.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import cuba_forward_kernels, run_cuba_kernel, spy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loihi_slayer.neuron.cuba as neuron_cuba
from loihi_slayer.autograd import reference
from loihi_slayer.block import cuba
from loihi_slayer.block.spatial import _SpatialBlock
from loihi_slayer.errors import ParameterError
from loihi_slayer.neuron.dropout import Dropout

PARAMS = {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03}


def window_sums(x: np.ndarray, kh: int, kw: int, w: float) -> np.ndarray:
    """``(P, H, W, T)`` float32 -> ``(P·H'·W', T)``: each window's columns summed left to
    right, then its rows, then times ``w``, every operation in float32."""
    p, h, wd, steps = x.shape
    x6 = x.reshape(p, h // kh, kh, wd // kw, kw, steps)
    y = None
    for a in range(kh):
        c = x6[:, :, a, :, 0, :]
        for b in range(1, kw):
            c = c + x6[:, :, a, :, b, :]
        y = c if y is None else y + c
    return (y * np.float32(w)).reshape(-1, steps)


def run_pooled(x4, kh, kw, w, i_dec, v_dec, vth, ref, graded, shift, parallel, u0, v0, rc0):
    """The CUBA forward kernel on the window sums of ``x4`` ``(P, H, W, T)``."""
    p, h, wd, steps = x4.shape
    return run_cuba_kernel(
        cuba_forward_kernels()[ref > 1, parallel],
        x4.reshape(-1, steps),
        64.0,
        1.0 / 4096,
        i_dec,
        v_dec,
        vth << 6,
        ref,
        np.zeros(1, np.int64),
        u0,
        v0,
        rc0,
        graded,
        pool=(kh, kw, h // kh, wd // kw),
        pool_w=w,
        shift=shift,
    )


pool_case = st.fixed_dictionaries(
    {
        "planes": st.integers(1, 5),
        "kernel": st.sampled_from([(1, 1), (2, 2), (2, 2), (3, 3), (1, 2), (2, 3), (4, 1)]),
        "out_hw": st.tuples(st.integers(1, 6), st.integers(1, 7)),
        "steps": st.sampled_from([1, 5, 16, 37, 256, 300]),
        "ref_delay": st.sampled_from([1, 1, 3]),
        "graded": st.booleans(),
        "shift": st.booleans(),
        "parallel": st.booleans(),
        "w": st.sampled_from([1.0, 0.5, 2.0, 3.0, 0.015625]),
        "amp": st.sampled_from([1, 9, 4000, 1 << 20]),
        "seed": st.integers(0, 2**31 - 1),
    }
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=pool_case)
def test_pooled_kernel_equals_reference_on_window_sums(case):
    """Window sums formed in the kernel, the neuron step, the shifted spike write: against
    NumPy float32 sums fed to the reference, with per-neuron decays and thresholds at
    their extremes, initial states near the 24-bit limits and inputs up to 2**20 (whose
    integer sums, up to 2**31 / 64, drive the 24-bit current through its wrap)."""
    rng = np.random.default_rng(case["seed"])
    kh, kw = case["kernel"]
    ho, wo = case["out_hw"]
    steps, ref = case["steps"], case["ref_delay"]
    x4 = rng.integers(
        -case["amp"] // 4, case["amp"] + 1, size=(case["planes"], ho * kh, wo * kw, steps)
    )
    x4 = (x4 * (rng.random(x4.shape) < 0.4)).astype(np.float32)
    rows = case["planes"] * ho * wo
    i_dec = rng.choice([0, 1, 411, 4095, 4096], size=rows).astype(np.int64)
    v_dec = rng.choice([0, 205, 4096], size=rows).astype(np.int64)
    vth = rng.choice([0, 1, 80, 131071], size=rows).astype(np.int64)
    smax = (1 << 23) - 1
    u0, v0 = (rng.integers(-smax, smax + 1, size=rows) for _ in range(2))
    rc0 = rng.integers(0, ref, size=rows)
    s, vp, u, r, state, bad = run_pooled(
        x4,
        kh,
        kw,
        case["w"],
        i_dec,
        v_dec,
        vth,
        ref,
        case["graded"],
        case["shift"],
        case["parallel"],
        u0,
        v0,
        rc0,
    )
    z = window_sums(x4, kh, kw, case["w"])
    e_s, e_vp, e_u, e_r, e_u1, e_v1, e_rc1 = reference.cuba_forward(
        z,
        64.0,
        1.0 / 4096,
        i_dec,
        v_dec,
        vth << 6,
        np.zeros(1, np.int64),
        u0,
        v0,
        case["graded"],
        ref,
        rc0,
    )
    e_s = e_s.astype(np.float32)
    if case["shift"]:
        e_s = np.concatenate([np.zeros((rows, 1), np.float32), e_s[:, :-1]], axis=1)
    assert np.array_equal(s, e_s)
    assert np.array_equal(vp, e_vp.astype(np.float32))
    assert np.array_equal(u, e_u.astype(np.float32))
    assert np.array_equal(state, np.stack([e_u1, e_v1, e_rc1]))
    if ref > 1:
        assert np.array_equal(r, e_r.astype(np.uint8))
    assert not bad.any()


def test_pooled_kernel_ties_at_threshold():
    """Full decays make ``v = A << 6`` each step: window sums exactly at the threshold
    mantissa do not fire, one above fires (Loihi's strict compare)."""
    kh = kw = 2
    vth = 80
    x4 = np.zeros((1, 2, 6, 4), np.float32)  # 3 windows, 4 steps
    x4[0, 0, 0:2, :] = vth / 64 / 2  # window 0: two taps of vth/2 -> a tie
    x4[0, 0:2, 2:4, :] = (vth + 1) / 64 / 4  # window 1: four taps -> vth + 1
    x4[0, 1, 4, :] = (vth - 1) / 64  # window 2: vth - 1
    full = np.full(1, 4096, np.int64)
    zeros = np.zeros(3, np.int64)
    s, *_ = run_pooled(
        x4, kh, kw, 1.0, full, full, np.array([vth]), 1, False, False, False, zeros, zeros, zeros
    )
    assert np.array_equal(s, np.array([[0] * 4, [1] * 4, [0] * 4], np.float32))


@pytest.mark.parametrize("kernel", [(2, 2), (2, 3), (3, 2)])
def test_pooled_kernel_sums_in_the_synapse_order(kernel):
    """float32 sums depend on their order: the window ``[[2**24, 1, ...], [-1, 0, ...]]``
    is 2**24 - 1 summed row by row (2**24 + 1 rounds to 2**24 first) and 2**24 column by
    column. The kernel's current must be the row-by-row value the synapse computes."""
    kh, kw = kernel
    steps = 20  # one full time tile and a partial one
    x4 = np.zeros((1, kh, kw, steps), np.float32)
    x4[0, 0, 0], x4[0, 0, 1], x4[0, 1, 0] = 2.0**24, 1.0, -1.0
    row_first = window_sums(x4, kh, kw, 1.0)[0, 0]
    assert row_first == 2**24 - 1
    assert ((x4[0, 0, 0] + x4[0, 1, 0]) + x4[0, 0, 1] == 2**24).all()  # the other order
    full = np.full(1, 4096, np.int64)
    zeros = np.zeros(1, np.int64)
    big = np.array([131071], np.int64)
    _, _, u, *_ = run_pooled(
        x4, kh, kw, 1.0, full, full, big, 1, False, False, True, zeros, zeros, zeros
    )
    e_u = reference.cuba_forward(
        window_sums(x4, kh, kw, 1.0),
        64.0,
        1.0 / 4096,
        full,
        full,
        big << 6,
        np.zeros(1, np.int64),
        zeros,
        zeros,
        False,
    )[2]
    assert np.array_equal(u, e_u.astype(np.float32))


def test_pooled_kernel_flags_a_refused_window_sum():
    """A window sum whose integer value reaches 2**31 (or is NaN) marks its neuron row."""
    x4 = np.zeros((2, 2, 4, 3), np.float32)
    x4[0, 1, 2, 1] = 2.0**25  # window (0, 0, 1): 2**25 * 64 = 2**31
    x4[1, 0, 0, 2] = np.nan  # window (1, 0, 0)
    zeros = np.zeros(4, np.int64)
    one = np.ones(1, np.int64)
    *_, bad = run_pooled(x4, 2, 2, 1.0, one, one, one, 1, False, True, False, zeros, zeros, zeros)
    assert bad.tolist() == [0, 1, 1, 0]


# ------------------------------------------------------------------------- the block
def _spy(monkeypatch) -> list:
    return spy(monkeypatch, neuron_cuba, "cuba_pooled_spikes")


def _input(shape, seed=0, amp=3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-1, amp + 1, shape, generator=g).float()
    return x * (torch.rand(shape, generator=g) < 0.3)


BLOCK_CASES = [
    # (kernel, input (N, C, H, W, T), neuron params, block kwargs)
    (2, (32, 2, 34, 34, 60), {}, {}),  # N-MNIST's first block: parallel kernel
    (2, (2, 2, 6, 8, 300), {}, {}),  # time segments of 256 steps
    # per-channel decays
    (2, (3, 4, 6, 4, 33), {"shared_param": False}, {"input_shape": (4, 6, 4)}),
    (3, (3, 1, 9, 12, 37), {"graded_spike": True}, {"weight_scale": 2}),
    ((1, 2), (2, 3, 5, 6, 17), {"ref_delay": 3}, {"delay_shift": False}),
    (4, (1, 2, 8, 8, 5), {"threshold": 0.0}, {"weight_scale": 0.5}),
    (1, (2, 1, 3, 3, 9), {}, {"count_log": True}),
]


@pytest.mark.parametrize(("kernel", "shape", "extra", "kwargs"), BLOCK_CASES)
def test_block_fused_equals_unfused(monkeypatch, kernel, shape, extra, kwargs):
    calls = _spy(monkeypatch)
    blk = cuba.Pool({**PARAMS, **extra}, kernel, **kwargs)
    x = _input(shape)
    with torch.no_grad():
        fused = blk(x)
        assert calls, "the fused path did not run"
        n = len(calls)
        unfused = _SpatialBlock.forward(blk, x)
        assert len(calls) == n
    if kwargs.get("count_log"):
        assert torch.equal(fused[1], unfused[1])
        fused, unfused = fused[0], unfused[0]
    assert fused.shape == unfused.shape
    assert torch.equal(fused, unfused)
    assert fused.abs().sum() > 0  # the case is not vacuous


def test_block_fused_in_training_when_no_gradient_is_needed(monkeypatch):
    """A first block on data (input without gradient, fixed decays) takes the fused path
    with gradients enabled; the network behind it still trains."""
    calls = _spy(monkeypatch)
    pool = cuba.Pool(PARAMS, 2)
    dense = cuba.Dense(PARAMS, 2 * 4 * 4, 3)
    x = _input((4, 2, 8, 8, 20), amp=4)
    s = pool(x)
    assert calls and not s.requires_grad
    out = dense(s.flatten(1, 3))
    out.sum().backward()
    assert dense.synapse.weight.grad is not None


@pytest.mark.parametrize(
    "setup",
    [
        "input_requires_grad",
        "learnable_decays",
        "dropout",
        "neuron_hook",
        "synapse_hook",
        "global_hook",
        "stride",
        "padding",
        "odd_size",
        "float64",
    ],
)
def test_block_falls_back_to_the_unfused_path(monkeypatch, setup):
    calls = _spy(monkeypatch)
    params, kwargs, shape, dtype = dict(PARAMS), {}, (2, 2, 8, 8, 12), torch.float32
    if setup == "learnable_decays":
        params["requires_grad"] = True
    if setup == "dropout":
        params["dropout"] = Dropout(0.5)
    if setup == "stride":
        kwargs["stride"] = 1
    if setup == "padding":
        kwargs["padding"] = 1
    if setup == "odd_size":
        shape = (2, 2, 9, 8, 12)
    if setup == "float64":
        dtype = torch.float64
    blk = cuba.Pool(params, 2, **kwargs)
    x = _input(shape).to(dtype)
    seen = []
    handle = None
    if setup == "input_requires_grad":
        x.requires_grad_(True)
    if setup == "neuron_hook":
        handle = blk.neuron.register_forward_hook(lambda m, i, o: seen.append(1))
    if setup == "synapse_hook":
        handle = blk.synapse.register_forward_hook(lambda m, i, o: seen.append(1))
    if setup == "global_hook":
        handle = torch.nn.modules.module.register_module_forward_hook(
            lambda m, i, o: seen.append(1)
        )
    try:
        y = blk(x)
    finally:
        if handle is not None:
            handle.remove()
    assert not calls
    if setup in ("neuron_hook", "synapse_hook", "global_hook"):
        assert seen
    if setup == "input_requires_grad":
        y.sum().backward()
        assert x.grad is not None
    if setup == "learnable_decays":
        y.sum().backward()
        assert blk.neuron.current_decay.grad is not None


@pytest.mark.parametrize("shape", [(2, 2, 4, 4, 0), (0, 2, 4, 4, 5)])
def test_empty_input_takes_the_unfused_path(monkeypatch, shape):
    """An empty time axis gets the synapse's error; an empty batch its empty output."""
    calls = _spy(monkeypatch)
    blk = cuba.Pool(PARAMS, 2)
    with torch.no_grad():
        if shape[-1] == 0:
            with pytest.raises(ParameterError, match="time axis is empty"):
                blk(torch.zeros(shape))
        else:
            assert blk(torch.zeros(shape)).shape == (0, 2, 2, 2, 5)
    assert not calls


def test_a_neuron_subclass_with_its_own_forward_is_called(monkeypatch):
    calls = _spy(monkeypatch)
    seen = []

    class Custom(neuron_cuba.Neuron):
        def forward(self, x):
            seen.append(x.shape)
            return super().forward(x)

    blk = cuba.Pool(PARAMS, 2)
    blk.neuron = Custom(**PARAMS)
    with torch.no_grad():
        blk(_input((2, 2, 4, 4, 6)))
    assert seen == [(2, 2, 2, 2, 6)] and not calls


def test_unpool_block_is_not_fused(monkeypatch):
    calls = _spy(monkeypatch)
    blk = cuba.Unpool(PARAMS, 2)
    with torch.no_grad():
        y = blk(_input((2, 2, 4, 4, 6)))
    assert y.shape == (2, 2, 8, 8, 6) and not calls


def test_persistent_state_carries_across_fused_calls(monkeypatch):
    """Two fused calls on halves of a sequence equal the unfused path's two calls."""
    calls = _spy(monkeypatch)
    x = _input((3, 2, 6, 6, 40), amp=5)
    params = {**PARAMS, "persistent_state": True}
    a, b = cuba.Pool(params, 2), cuba.Pool(params, 2)
    with torch.no_grad():
        fused = [a(x[..., :23]), a(x[..., 23:])]
        unfused = [_SpatialBlock.forward(b, x[..., :23]), _SpatialBlock.forward(b, x[..., 23:])]
    assert len(calls) == 2
    for f, u in zip(fused, unfused, strict=True):
        assert torch.equal(f, u)
    assert torch.equal(a.neuron.voltage_state, b.neuron.voltage_state)
    assert torch.equal(a.neuron.current_state, b.neuron.current_state)


def test_axonal_delay_follows_the_fused_shift(monkeypatch):
    calls = _spy(monkeypatch)
    torch.manual_seed(3)
    blk = cuba.Pool(PARAMS, 2, delay=True, input_shape=(2, 6, 6))
    with torch.no_grad():
        blk.delay.delay.copy_(torch.tensor([2.0, 5.0]))
        x = _input((2, 2, 6, 6, 30), amp=5)
        fused = blk(x)
        unfused = _SpatialBlock.forward(blk, x)
    assert calls and torch.equal(fused, unfused)


@pytest.mark.parametrize(
    ("value", "match", "scale"),
    [
        (float("nan"), "NaN/inf", 1.0),
        (float("inf"), "NaN/inf", 1.0),
        (float("inf"), "NaN/inf", 0.0),  # a zero weight: 0 * inf is NaN
        (1e9, "2\\*\\*31", 1.0),
    ],
)
def test_refused_input_raises_the_unfused_error_and_keeps_the_state(value, match, scale):
    """NaN/inf and sums beyond the chip's 32-bit accumulation raise the unfused path's
    errors; the persistent state stays."""
    params = {**PARAMS, "persistent_state": True}
    blk = cuba.Pool(params, 2, weight_scale=scale)
    x = _input((2, 2, 4, 4, 10), amp=5)
    with torch.no_grad():
        blk(x)
        before = blk.neuron.voltage_state.clone()
        bad = x.clone()
        bad[1, 0, 2, 3, 7] = value
        with pytest.raises(ParameterError, match=match):
            blk(bad)
    assert torch.equal(blk.neuron.voltage_state, before)


def test_the_pool_weight_is_hooked_again_only_when_it_may_have_changed(monkeypatch):
    """The fused path remembers the hooked tap of a fixed pool weight; an in-place change,
    a new weight parameter, a new hook or a neuron scale change are seen (each output equals
    the unfused path's, which hooks the weight on every call)."""
    import copy
    import pickle

    blk = cuba.Pool(PARAMS, 2, weight_scale=2)
    hooked = spy(monkeypatch, type(blk.synapse), "_weight")
    x = _input((2, 2, 8, 8, 30), amp=2)

    def check(expect_hook: bool) -> None:
        n = len(hooked)
        with torch.no_grad():
            fused = blk(x)
            hooks = len(hooked) - n
            assert torch.equal(fused, _SpatialBlock.forward(blk, x))
        assert hooks == (1 if expect_hook else 0)

    check(True)
    check(False)  # remembered
    with torch.no_grad():
        blk.synapse.weight.fill_(3.0)  # in place: a new version
    check(True)
    blk.synapse.weight = torch.nn.Parameter(torch.full_like(blk.synapse.weight, 1.0), False)
    check(True)
    blk.neuron.w_scale = 32  # the quantizer's grid (also the threshold's scale)
    check(True)
    # a saved or copied block hooks its weight again (the memo's weak reference is not
    # pickled, and refers to no weight of the copy)
    for other in (pickle.loads(pickle.dumps(blk)), copy.deepcopy(blk)):
        n = len(hooked)
        with torch.no_grad():
            assert torch.equal(other(x), _SpatialBlock.forward(other, x))
        assert len(hooked) == n + 2
    blk.synapse.pre_hook_fx = lambda w: w * 0.5  # the user's own hook: never remembered
    check(True)
    check(True)


def test_a_scratch_state_is_advanced_in_place():
    """A neuron without persistent state hands the pooled kernel a scratch zero state,
    advanced in its own memory; the end state equals that of a state kept unchanged
    (advanced in a copy), and a refused input leaves a kept state untouched."""
    from loihi_slayer.autograd.cuba import CubaState, cuba_pooled_spikes

    blk = cuba.Pool(PARAMS, 2)
    nrn = blk.neuron
    x = _input((2, 2, 6, 6, 25), amp=3)
    rows = 2 * 2 * 3 * 3

    def run(state, x=x):
        args = (nrn.current_decay, nrn.voltage_decay, nrn._spec, state, None, True)
        return cuba_pooled_spikes(x, (2, 2), 1.0, *args)

    scratch = CubaState.zeros(rows, torch.device("cpu"), scratch=True)
    memory = scratch.stacked()
    kept = CubaState.zeros(rows, torch.device("cpu"))
    before = kept.stacked()
    assert torch.equal(run(scratch), run(kept))
    assert scratch.stacked() is memory  # advanced in place
    assert kept.stacked() is not before and not before.any()  # a copy advanced
    assert torch.equal(scratch.stacked(), kept.stacked()) and scratch.stacked().any()
    # the default (kept) state is unchanged by a refused input
    bad = x.clone()
    bad[0, 0, 0, 0, 3] = float("nan")
    end = kept.stacked().clone()
    with pytest.raises(ParameterError):
        run(kept, bad)
    assert torch.equal(kept.stacked(), end)

"""A dense block's event product and CUBA neuron in one kernel pass
(``block/_event_cuba.py``): the exact sums (an integer einsum) through the NumPy
reference neuron (``autograd.reference.cuba_forward``), bit for bit, for any block of
steps, output count, decays, threshold, bias, start state and graded spikes, across the
int16/int32 sums; refused inputs flagged; and the fused dense node taking it where it
applies, with the four nodes' spikes and gradients."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import loihi_slayer.block._event_cuba as ec
import loihi_slayer.block._fused_dense as fd
import loihi_slayer.synapse._event_product as ep
from loihi_slayer.autograd import reference
from loihi_slayer.block import cuba

#: the 24-bit neuron state's range
STATE = (1 << 23) - 1


def _lists(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(counts (B, I), pos (B, I, T))`` of the ``(I, B, T)`` operand, by NumPy."""
    n_i, n_b, steps = q.shape
    counts = np.zeros((n_b, n_i), np.int32)
    pos = np.zeros((n_b, n_i, steps), np.uint8 if steps <= 256 else np.uint16)
    for i in range(n_i):
        for b in range(n_b):
            at = np.flatnonzero(q[i, b])
            counts[b, i] = at.size
            pos[b, i, : at.size] = at
    return counts, pos


def _case(rng, n_i, n_b, n_o, steps, density, q_top, m_top):
    q = rng.integers(-q_top, q_top + 1, (n_i, n_b, steps))
    q = np.where(rng.random(q.shape) < density, q, 0).astype(np.int8)
    m = rng.integers(-m_top, m_top + 1, (n_o, n_i)).astype(np.int8)
    return q, m


def _expected(q, m, unit, in_scale, out_scale, i_dec, v_dec, v_th, bias, u0, v0, graded):
    """Spikes shifted one step, pre-reset voltages and end state, from the exact sums
    and the reference neuron."""
    sums = np.einsum("oi,ibt->bot", m.astype(np.int64), q.astype(np.int64))
    z = (sums.astype(np.float32) * np.float32(unit)).reshape(-1, q.shape[2])
    s, vp, _, _, u1, v1, _ = reference.cuba_forward(
        z.astype(np.float64), in_scale, out_scale, i_dec, v_dec, v_th, bias, u0, v0, graded
    )
    shifted = np.zeros_like(s)
    shifted[:, 1:] = s[:, :-1]
    return shifted.astype(np.float32), vp.astype(np.float32), u1, v1


def _run(q, m, unit, block, in_scale, out_scale, i_dec, v_dec, v_th, bias, u0, v0, graded):
    counts, pos = _lists(q)
    n_i, n_b, steps = q.shape
    rows = n_b * m.shape[0]
    top = int(np.abs(q.astype(np.int64)).max(initial=0) * np.abs(m.astype(np.int64)).max())
    state = np.stack([u0, v0, np.zeros(rows, np.int64)]).astype(np.int64)
    s = np.full((rows, steps), np.nan, np.float32)
    vp = np.full((rows, steps), np.nan, np.float32)
    bad = np.zeros(rows, np.int8)
    ec.event_cuba_forward(
        q,
        counts,
        pos,
        np.ascontiguousarray(m.T),
        top,
        np.float32(unit),
        block,
        in_scale,
        out_scale,
        i_dec,
        v_dec,
        v_th,
        bias,
        state[0],
        state[1],
        state[2],
        graded,
        s,
        vp,
        bad,
    )
    return s, vp, state, bad


@settings(max_examples=40, deadline=None)
@given(
    n_i=st.integers(1, 40),
    n_b=st.integers(1, 4),
    n_o=st.sampled_from([1, 5, 16, 17, 40]),
    steps=st.integers(1, 70),
    block=st.sampled_from([1, 3, 8, 1000]),
    density=st.sampled_from([0.05, 0.2, 1.0]),
    q_top=st.sampled_from([1, 127]),
    m_top=st.sampled_from([1, 127]),
    exp=st.integers(-8, 2),
    scale=st.sampled_from([1, 64, 255]),
    per_neuron=st.booleans(),
    graded=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_one_pass_is_the_sums_through_the_reference_neuron(
    n_i, n_b, n_o, steps, block, density, q_top, m_top, exp, scale, per_neuron, graded, seed
):
    rng = np.random.default_rng(seed)
    q, m = _case(rng, n_i, n_b, n_o, steps, density, q_top, m_top)
    rows = n_b * n_o
    k = n_o if per_neuron else 1
    i_dec = rng.choice([0, 1, 1024, 4095, 4096], k).astype(np.int64)
    v_dec = rng.choice([0, 128, 2048, 4096], k).astype(np.int64)
    v_th = (rng.integers(0, 1 << 17, k) << 6).astype(np.int64)  # a tie at 0 included
    bias = (rng.integers(-(1 << 10), 1 << 10, k) << 6).astype(np.int64)
    u0 = rng.integers(-STATE, STATE + 1, rows).astype(np.int64)  # the extremes of the state
    v0 = rng.integers(-STATE, STATE + 1, rows).astype(np.int64)
    args = (2.0**exp, float(scale), 1.0 / (64 * scale), i_dec, v_dec, v_th, bias, u0, v0, graded)
    s, vp, state, bad = _run(q, m, args[0], block, *args[1:])
    s_ref, vp_ref, u1, v1 = _expected(q, m, *args)
    assert not bad.any()
    assert np.array_equal(s, s_ref)
    assert np.array_equal(vp, vp_ref)
    assert np.array_equal(state[0], u1) and np.array_equal(state[1], v1)
    assert not state[2].any()


@pytest.mark.parametrize("over", [0, 1])
def test_sums_at_the_int16_bound(over):
    """A step whose events just reach the int16 range, or pass it by one event (then the
    block sums in int32): the reference's spikes and voltages either way."""
    top = 127
    n = 32767 // top + over
    q = np.zeros((n, 1, 4), np.int8)
    q[:, 0, 2] = 1
    m = np.full((3, n), top, np.int8)
    m[1] = -top
    one = np.ones(1, np.int64)
    args = (2.0**-6, 64.0, 1.0 / 4096, one * 1024, one * 128, one * (100 << 6), one * 0)
    zeros = np.zeros(3, np.int64)
    s, vp, _, _ = _run(q, m, args[0], 2, *args[1:], zeros, zeros, False)
    s_ref, vp_ref, _, _ = _expected(q, m, *args, zeros, zeros, False)
    assert np.array_equal(s, s_ref) and np.array_equal(vp, vp_ref)
    assert vp_ref[0, 2] > 0 > vp_ref[1, 2]  # the sums reached the neurons


def test_refused_input_is_flagged():
    """An input whose integer synaptic sum reaches 2**31 marks its neuron's row."""
    q = np.zeros((2, 1, 3), np.int8)
    q[0, 0, 1] = 127
    m = np.array([[127, 0], [0, 1]], np.int8)
    one = np.ones(1, np.int64)
    zeros = np.zeros(2, np.int64)
    *_, bad = _run(q, m, 2.0**20, 8, 255.0, 1.0, one, one, one << 6, one * 0, zeros, zeros, False)
    assert bad.tolist() == [1, 0]


NEURON = {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03, "requires_grad": False}


def _net(n_in, hidden, n_out, seed=0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        cuba.Dense(NEURON, n_in, hidden, weight_norm=True),
        cuba.Dense(NEURON, hidden, n_out, weight_norm=True),
    )


def _spikes_and_grads(net, x):
    for p in net.parameters():
        p.grad = None
    out = net(x)
    (out * torch.linspace(0.5, 2, out.shape[-1])).sum().backward()
    return out.detach().clone(), [p.grad.clone() for p in net.parameters() if p.grad is not None]


@pytest.mark.parametrize("sums_bytes", [ep.SUMS_BYTES, 256])
def test_dense_block_takes_it_with_the_four_nodes_results(monkeypatch, sums_bytes):
    """The fused node of an N-MNIST-like layer (sparse spikes in, outputs not a multiple
    of the lanes, a batch item per thread and more) runs the one pass, in one block of
    steps or several; its spikes and gradients are those of the two kernels and of the
    block's four nodes."""
    import loihi_slayer.synapse._int_product as ip

    monkeypatch.setenv("LOIHI_SLAYER_INT8_GEMM", "0")  # the event product
    monkeypatch.setattr(ip, "MIN_WORK", 0)
    monkeypatch.setattr(ep, "SUMS_BYTES", sums_bytes)  # 256: blocks of 8 steps
    ip._DENSE_SKIPS.clear()
    calls = {"n": 0}
    one_pass = ec.event_cuba

    def spy(*args):
        out = one_pass(*args)
        calls["n"] += out is not None
        return out

    monkeypatch.setattr(ec, "event_cuba", spy)
    batch = 2 * numba.get_num_threads() + 1
    gen = torch.Generator().manual_seed(3)
    x = (torch.rand(batch, 60, 40, generator=gen) < 0.1).float()
    net = _net(60, 37, 10)
    results = {}
    for name, (fused, one) in {
        "one pass": (True, True),
        "two": (True, False),
        "four": (False, False),
    }.items():
        monkeypatch.setattr(fd, "ENABLED", fused)
        monkeypatch.setattr(ec, "ENABLED", one)
        before = calls["n"]
        results[name] = _spikes_and_grads(net, x)
        assert (calls["n"] > before) == one
    assert results["one pass"][0].sum() > 0
    for other in ("two", "four"):
        assert torch.equal(results["one pass"][0], results[other][0])
        for a, b in zip(results["one pass"][1], results[other][1], strict=True):
            assert torch.equal(a, b)


def test_not_taken_below_a_batch_item_per_thread(monkeypatch):
    """One job per batch item: with fewer items than threads the two kernels run."""
    monkeypatch.setattr(ec, "numba_threads", lambda: 4)
    plan = (ep.EventDenseProduct, (None,) * 9 + (False,))
    spec = cuba.Dense(NEURON, 4, 3).neuron._spec
    assert not ec.applies(plan, spec, 3)
    assert ec.applies(plan, spec, 4)


def test_state_beyond_int32_keeps_the_neuron_kernel():
    """A start state outside int32 (set by hand) returns None before any work: the neuron
    kernel then steps it in int64 lanes."""
    spec = cuba.Dense(NEURON, 4, 3).neuron._spec
    state = torch.zeros((3, 6), dtype=torch.int64)
    state[0, 2] = 1 << 40
    decay = torch.tensor([1024.0])
    assert (
        ec.event_cuba(None, None, spec, decay, decay, torch.zeros(1, dtype=torch.int64), state)
        is None
    )

"""The pool block's spikes handed to the next dense product as its int8 operand.

The CUBA forward kernel writes each finished spike row also as a row of the int8
operand ``(I, B, T)`` and counts its events (``q_out``, ``q_counts``); the pool block
offers them (``loihi_slayer._operand_handoff``) and a dense product on exactly those
spikes takes them instead of converting its input. Expected values: the operand from
the NumPy reference's spikes (``autograd.reference``, window sums in NumPy float32),
transposed and cast in NumPy; the network's outputs and gradients against the same
network with the handoff refused, bit for bit; what was taken by spying on the
conversion it replaces.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import cuba_forward_kernels, run_cuba_kernel, spy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_pool_fused import window_sums

from loihi_slayer import _operand_handoff as handoff
from loihi_slayer._recycle import release_kept_memory
from loihi_slayer.autograd import reference
from loihi_slayer.block import cuba
from loihi_slayer.fixed import synapse_fast
from loihi_slayer.synapse import _int_product

PARAMS = {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03}
SPARSE = {"threshold": 2.0, "current_decay": 0.5, "voltage_decay": 0.1}

kernel_case = st.fixed_dictionaries(
    {
        "batch": st.integers(1, 4),
        "planes": st.integers(1, 3),
        "pooled": st.booleans(),
        "out_hw": st.tuples(st.integers(1, 5), st.integers(1, 6)),
        "steps": st.sampled_from([1, 5, 16, 37, 60, 256, 300]),
        "ref_delay": st.sampled_from([1, 1, 3]),
        "shift": st.booleans(),
        "parallel": st.booleans(),
        "density": st.sampled_from([0.0, 0.05, 0.4, 1.0]),
        "amp": st.sampled_from([1, 9, 4000]),
        "wide": st.booleans(),
        "seed": st.integers(0, 2**31 - 1),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=kernel_case)
def test_kernel_writes_the_spikes_as_the_int8_operand(case):
    """Every row's operand row and count, quiet rows (all-zero input at rest) and stepped
    rows alike, pooled or not, shifted or not, one or several chunks, int32 lanes or
    int64 ones (a start state beyond int32), time segments of 256 steps: the reference's
    spikes ``(B, I, T)`` as int8 ``(I, B, T)`` and their non-zero counts ``(B, I)``."""
    rng = np.random.default_rng(case["seed"])
    n_b, ho, wo, steps = case["batch"], *case["out_hw"], case["steps"]
    kh, kw = (2, 2) if case["pooled"] else (1, 1)
    n_i = case["planes"] * ho * wo
    rows = n_b * n_i
    x4 = rng.integers(0, case["amp"] + 1, size=(n_b * case["planes"], ho * kh, wo * kw, steps))
    x4 = (x4 * (rng.random(x4.shape) < case["density"])).astype(np.float32)
    i_dec = rng.choice([0, 411, 4096], size=rows).astype(np.int64)
    v_dec = rng.choice([0, 205, 4096], size=rows).astype(np.int64)
    vth = rng.choice([0, 1, 80], size=rows).astype(np.int64)
    u0, v0 = np.zeros(rows, np.int64), np.zeros(rows, np.int64)
    active = rng.random(rows) < 0.3  # some rows start away from rest
    u0[active] = rng.integers(-4000, 4000, size=active.sum())
    if case["wide"]:
        v0[0] = -(1 << 40)  # beyond int32: every row in int64 lanes
    rc0 = rng.integers(0, case["ref_delay"], size=rows)
    q = np.full((n_i, n_b, steps), 99, np.int8)
    counts = np.full((n_b, n_i), -7, np.int32)
    opts = {"shift": case["shift"], "operand": (q, counts)}
    if case["pooled"]:
        opts.update(pool=(kh, kw, ho, wo), pool_w=1.0)
        z = window_sums(x4, kh, kw, 1.0)
        x = x4.reshape(-1, steps)
    else:
        z = x = x4.reshape(rows, steps)
    kernel = cuba_forward_kernels()[case["ref_delay"] > 1, case["parallel"]]
    s, *_ = run_cuba_kernel(
        kernel,
        x,
        64.0,
        1.0,
        i_dec,
        v_dec,
        vth << 6,
        case["ref_delay"],
        np.zeros(1, np.int64),
        u0,
        v0,
        rc0,
        False,
        records=False,
        **opts,
    )
    e_s = reference.cuba_forward(
        z,
        64.0,
        1.0,
        i_dec,
        v_dec,
        vth << 6,
        np.zeros(1, np.int64),
        u0,
        v0,
        False,
        case["ref_delay"],
        rc0,
    )[0].astype(np.float32)
    if case["shift"]:
        e_s = np.concatenate([np.zeros((rows, 1), np.float32), e_s[:, :-1]], axis=1)
    assert np.array_equal(s, e_s)
    e3 = e_s.reshape(n_b, n_i, steps)
    assert np.array_equal(q, e3.transpose(1, 0, 2).astype(np.int8))
    assert np.array_equal(counts, np.count_nonzero(e3, axis=2).astype(np.int32))


def _network(graded=False, seed=0):
    torch.manual_seed(seed)
    # spikes at about 10 %: sparse enough for the event product
    pool = cuba.Pool({**SPARSE, "graded_spike": graded}, 2)
    dense = cuba.Dense(PARAMS, 2 * 8 * 8, 128, weight_norm=True, weight_scale=2)
    return pool, dense


def _input(seed=0, batch=8, steps=64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 3, (batch, 2, 16, 16, steps), generator=g).float()
    return x * (torch.rand(x.shape, generator=g) < 0.05)


def _step(pool, dense, x, edit=None):
    """Spikes of the dense block on the pool's, the loss's gradients of the dense weights."""
    for p in dense.parameters():
        p.grad = None
    s = pool(x)
    if edit is not None:
        edit(s)
    out = dense(s.flatten(1, 3))
    (out * torch.arange(out.shape[-1], dtype=out.dtype)).sum().backward()
    grads = [p.grad.clone() for p in dense.synapse.parameters()]
    assert len(grads) == 2  # the weight norm's g and v
    return out.detach().clone(), grads


@pytest.fixture(params=["int8 GEMM", "events"])
def product(request, monkeypatch):
    """The dense product's two operand users: the int8 GEMM (where torch's is exact
    here) and the event product (int8 GEMMs off)."""
    if request.param == "int8 GEMM":
        monkeypatch.setenv(synapse_fast.INT8_GEMM_ENV, "on")
        if not synapse_fast.int8_gemm_works():
            pytest.skip("torch's int8 GEMM is not exact here")
    else:
        monkeypatch.setenv(synapse_fast.INT8_GEMM_ENV, "off")
    return request.param


def _refused(monkeypatch):
    monkeypatch.setattr(handoff, "take", lambda x3: None)


def test_dense_takes_the_pool_operand(monkeypatch, product):
    pool, dense = _network()
    x = _input()
    converted = spy(monkeypatch, _int_product, "int8_operand")
    taken = spy(monkeypatch, handoff, "take")
    got = _step(pool, dense, x)
    assert taken and not converted
    _refused(monkeypatch)
    want = _step(pool, dense, x)
    assert converted  # the conversion ran this time
    assert torch.equal(got[0], want[0]) and got[0].sum() > 0
    for a, b in zip(got[1], want[1], strict=True):
        assert torch.equal(a, b)


def test_spikes_changed_in_place_are_converted_again(monkeypatch, product):
    """An in-place change of the spikes (through any view) after the pool's offer: the
    product converts the changed values (its result is the refused handoff's on them)."""
    pool, dense = _network()
    x = _input(seed=1)

    def edit(s):
        s[:, :, 0, 0, 5] = 1.0 - s[:, :, 0, 0, 5]

    converted = spy(monkeypatch, _int_product, "int8_operand")
    got = _step(pool, dense, x, edit)
    assert converted
    _refused(monkeypatch)
    want = _step(pool, dense, x, edit)
    assert torch.equal(got[0], want[0])
    for a, b in zip(got[1], want[1], strict=True):
        assert torch.equal(a, b)


def test_a_copy_of_the_spikes_is_converted(monkeypatch, product):
    pool, dense = _network()
    converted = spy(monkeypatch, _int_product, "int8_operand")
    with torch.no_grad():
        s = pool(_input(seed=2))
    dense(s.clone().flatten(1, 3))
    assert converted


def test_graded_spikes_are_not_offered():
    pool, _ = _network(graded=True)
    handoff.clear()
    with torch.no_grad():
        pool(_input(seed=3))
    assert handoff._SLOT[0] is None


def test_take_checks_the_tensor_and_its_layout():
    """The offer serves its own spikes' memory in the (B, I, T) order only: not another
    tensor of the same values, a transposed view, another shape, or a dead tensor."""
    n_b, n_i, steps = 2, 3, 4
    s = (torch.rand(n_b * n_i, steps) < 0.5).float()
    q = s.reshape(n_b, n_i, steps).permute(1, 0, 2).reshape(n_i, n_b * steps).to(torch.int8)
    counts = s.reshape(n_b, n_i, steps).count_nonzero(-1).to(torch.int32)
    handoff.offer(s, q, counts)
    x3 = s.reshape(n_b, n_i, steps)
    got = handoff.take(x3)
    assert got is not None and got.q is q and got.counts is counts
    assert got.nonzero == int(s.count_nonzero()) and got.top == int(got.nonzero > 0)
    assert handoff.take(s.clone().reshape(n_b, n_i, steps)) is None
    assert handoff.take(s.reshape(n_i, n_b, steps).transpose(0, 1)) is None
    assert handoff.take(s.reshape(1, n_b * n_i, steps)) is None
    x3.mul_(1)  # in place: the version advances
    assert handoff.take(x3) is None
    handoff.offer(s, q, counts)
    assert handoff.take(s.reshape(n_b, n_i, steps)) is not None
    del s, x3
    assert handoff._SLOT[0].spikes() is None
    handoff.clear()
    assert handoff._SLOT[0] is None


def test_releasing_kept_memory_drops_the_offer():
    pool, _ = _network()
    with torch.no_grad():
        pool(_input(seed=4))
    assert handoff._SLOT[0] is not None
    release_kept_memory()
    assert handoff._SLOT[0] is None

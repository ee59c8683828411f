"""The dense synapse's int8 product (issue 8): exact where it applies, the float GEMM
elsewhere. Expected values are float64 sums (exact at these sizes) and the float32
matmul the path replaces; gradients against float64 autograd."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from helpers import spy
from hypothesis import given, settings
from hypothesis import strategies as st

from loihi_slayer import synapse
from loihi_slayer.errors import ParameterError
from loihi_slayer.fixed import synapse_fast
from loihi_slayer.fixed.synapse_fast import INT8_GEMM_ENV, int8_gemm_works, int8_mm
from loihi_slayer.fixed.workers import PARALLEL_MIN_WORK
from loihi_slayer.quantize import quantize_8bit
from loihi_slayer.synapse import _event_product as ep
from loihi_slayer.synapse import _int_product as ip


@pytest.fixture(autouse=True, scope="module", params=["on", "off"])
def int8_gemm(request):
    """Every test with both GEMMs on the int8 operand, whatever the CPU: ``on`` the int8
    GEMM, ``off`` sgemm on the operand's float copy (by default the CPU decides)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(INT8_GEMM_ENV, request.param)
        yield request.param


@pytest.fixture
def any_size(monkeypatch):
    """Take the int8 path at test sizes (it normally waits for 2**22 multiply-adds)."""
    monkeypatch.setattr(ip, "MIN_WORK", 0)


@pytest.fixture
def spinning(monkeypatch):
    """The limits of spinning workers: the test process waits passively (``import
    loihi_slayer`` sets it), where the light kernels, the operand pass among them, take
    a parallel region only from ``_dispatch.LIGHT_COST`` times the limit."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)


def _float_path(x3: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    return torch.matmul(x3.transpose(1, 2), w2.t()).transpose(1, 2)


def _exact(x3: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    return torch.einsum("oi,bit->bot", w2.double(), x3.double())


@settings(max_examples=60, deadline=None)
@given(
    b=st.integers(1, 4),
    n_in=st.integers(1, 70),
    n_out=st.integers(1, 20),
    steps=st.integers(1, 40),
    exp=st.integers(-12, 6),
    w_top=st.sampled_from([1, 2, 64, 127]),
    x_top=st.sampled_from([1, 3, 127, 128]),
    seed=st.integers(0, 2**31 - 1),
    time_major=st.booleans(),
)
def test_int_product_is_the_exact_sum(b, n_in, n_out, steps, exp, w_top, x_top, seed, time_major):
    ip_min = ip.MIN_WORK
    ip.MIN_WORK = 0
    try:
        rng = np.random.default_rng(seed)
        m = rng.integers(-w_top, w_top + 1, (n_out, n_in))
        m[rng.integers(n_out), rng.integers(n_in)] = rng.choice([-w_top, w_top])  # the extreme
        w2 = torch.tensor(m * 2.0**exp, dtype=torch.float32)
        q = rng.integers(-x_top, min(x_top, 127) + 1, (b, n_in, steps))
        q[rng.random(q.shape) < 0.5] = 0
        q.flat[rng.integers(q.size)] = -x_top  # -128 included
        x3 = torch.tensor(q, dtype=torch.float32)
        z = ip.int_product(x3, w2, time_major=time_major)
        exact = _exact(x3, w2)
        assert exact.abs().max() < 2.0 ** (24 + exp)  # the module's bound holds here
        assert z is not None and z.dtype == torch.float32
        # time-last memory, or (time_major) a time-last view of time-major memory
        assert (z.permute(2, 0, 1) if time_major else z).is_contiguous()
        assert torch.equal(z.double(), exact)
        assert torch.equal(z, _float_path(x3, w2))  # the path it replaces, bit for bit
    finally:
        ip.MIN_WORK = ip_min


def test_refused_where_not_exact(any_size):
    w2 = torch.full((3, 4), 0.25)
    x3 = torch.ones(2, 4, 5)
    assert ip.int_product(x3, w2) is not None
    for bad in (0.5, 128.0, -129.0, float("nan"), float("inf"), -float("inf")):
        xb = x3.clone()
        xb[1, 3, 4] = bad  # the last value read
        assert ip.int_product(xb, w2) is None, bad
    assert ip.int_product(x3, torch.tensor([[0.3, 0, 0, 0]] * 3)) is None  # off every grid
    wb = w2.clone()
    wb[2, 3] = 0.25 + 2.0**-20  # on the 2**-20 grid, but 0.25 is then 2**18 steps
    assert ip.int_product(x3, wb) is None
    assert ip.int_product(x3.double(), w2.double()) is None
    assert ip.int_product(x3, w2.clone().fill_(float("nan"))) is None
    # the grid step is the finest power of two with |m| <= 127: 127 steps of 2**-126 are
    # taken, 127 steps of 2**-127 (a subnormal step) are not
    assert ip.int_product(x3, torch.full((3, 4), 127 * 2.0**-126)) is not None
    assert ip.int_product(x3, torch.full((3, 4), 127 * 2.0**-127)) is None


def test_float32_bound_refuses_sums_float32_cannot_hold(any_size):
    # n_in * max|m| * max|q| = 2**24 exactly: refused; one input fewer: taken and exact
    n_in = 2**24 // (127 * 128) + 1  # 1033: 1033 * 127 * 128 >= 2**24
    w2 = torch.full((1, n_in), 127.0)
    x3 = torch.full((1, n_in, 1), -128.0)
    assert n_in * 127 * 128 >= 2**24
    assert ip.int_product(x3, w2) is None
    z = ip.int_product(x3[:, : n_in - 1], w2[:, : n_in - 1])
    assert (n_in - 1) * 127 * 128 < 2**24
    assert z is not None and z.item() == -127 * 128 * (n_in - 1)


def test_small_work_keeps_the_float_gemm():
    assert ip.int_product(torch.ones(1, 4, 4), torch.ones(2, 4)) is None


def test_the_int8_gemm_runs_only_where_the_cpu_has_int8_dot_products(any_size, monkeypatch):
    """Without int8 dot products (``auto``) or switched ``off``, the product runs as sgemm
    on the operand's float copy: ``torch._int_mm`` is not called, the sums are the same."""
    calls = []
    real = torch._int_mm
    monkeypatch.setattr(torch, "_int_mm", lambda a, b: (calls.append(1), real(a, b))[1])
    x3, w2 = torch.ones(2, 4, 3), torch.ones(5, 4)
    want = torch.full((2, 5, 3), 4.0)
    for setting, cpu_has, int8 in (
        ("auto", False, False),
        ("auto", True, True),
        ("off", True, False),
        ("on", False, True),
    ):
        monkeypatch.setenv(INT8_GEMM_ENV, setting)
        monkeypatch.setattr(synapse_fast, "_cpu_has_int8_dot", lambda v=cpu_has: v)
        calls.clear()
        z = ip.int_product(x3, w2)
        assert z is not None and torch.equal(z, want), setting
        assert bool(calls) == int8, (setting, cpu_has)


def test_the_float_copy_serves_the_forward_and_the_weight_gradient(any_size, monkeypatch):
    """sgemm flavour: the operand is written as float32 once per step, into the owner's
    kept memory, and the weight gradient reads that memory (no second copy)."""
    monkeypatch.setenv(INT8_GEMM_ENV, "off")
    owner = torch.nn.Module()
    kept = ip.recycled_for(owner, "weight-gradient operand")
    made = []
    real_empty = kept.empty
    monkeypatch.setattr(kept, "empty", lambda *a: made.append(a) or real_empty(*a))
    torch.manual_seed(1)
    x3 = (torch.rand(3, 7, 5) < 0.5).float()
    w2 = (torch.randint(-127, 128, (4, 7)).float() / 64).requires_grad_(True)
    z = ip.int_product(x3, w2, owner)
    g = torch.randn(3, 4, 5, dtype=torch.float64)
    (gw,) = torch.autograd.grad(z, w2, g.float())
    assert made == [((7, 15), torch.float32)]
    torch.testing.assert_close(z.double(), torch.einsum("oi,bit->bot", w2.double(), x3.double()))
    want = torch.einsum("bot,bit->oi", g, x3.double())
    torch.testing.assert_close(gw.double(), want, rtol=1e-5, atol=1e-5)


def test_weight_grid_finds_the_finest_power_of_two():
    for exp in (-140, -30, -6, 0, 9):
        m = torch.tensor([[-127, 3, 0], [126, 127, -1]], dtype=torch.float64)
        w = (m * 2.0**exp).float()
        got = ip.weight_grid(w)
        assert got is not None, exp
        mi, unit, top = got
        assert unit == 2.0**exp and top == 127 and torch.equal(mi.double(), m), exp
    # 128 steps of 2**e are 64 steps of 2**(e+1)
    mi, unit, top = ip.weight_grid(torch.tensor([[128.0, -2.0]]))
    assert unit == 2.0 and top == 64 and mi.tolist() == [[64, -1]]
    assert ip.weight_grid(torch.tensor([[129.0, 1.0]])) is None  # needs 8 bits and a sign
    assert ip.weight_grid(torch.zeros(2, 2))[1:] == (1.0, 0)


def test_gradients_are_the_float_products(any_size):
    g = torch.Generator().manual_seed(3)
    x3 = (torch.rand(3, 17, 9, generator=g) < 0.3).float().requires_grad_(True)
    w2 = (torch.randint(-127, 128, (5, 17), generator=g) / 64.0).requires_grad_(True)
    z = ip.int_product(x3, w2)
    assert isinstance(z.grad_fn, type(z.grad_fn)) and "IntDenseProduct" in type(z.grad_fn).__name__
    up = torch.randn(z.shape, generator=g)
    gx, gw = torch.autograd.grad(z, (x3, w2), up)
    x64 = x3.detach().double().requires_grad_(True)
    w64 = w2.detach().double().requires_grad_(True)
    rx, rw = torch.autograd.grad(_exact(x64, w64), (x64, w64), up.double())
    torch.testing.assert_close(gx.double(), rx, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw.double(), rw, rtol=1e-5, atol=1e-5)
    # only what is asked for
    (gw_only,) = torch.autograd.grad(ip.int_product(x3.detach(), w2), (w2,), up)
    torch.testing.assert_close(gw_only, gw)


def test_dense_synapse_takes_the_int8_path_for_spikes(any_size, monkeypatch):
    calls = spy(monkeypatch, ip.IntDenseProduct, "apply")
    torch.manual_seed(0)
    dense = synapse.Dense(24, 8, weight_scale=2, weight_norm=True, pre_hook_fx=quantize_8bit)
    # denser than the event product takes (see test_synapse_event_product): the GEMM
    x = (torch.rand(4, 24, 11) < 0.5).float().requires_grad_(True)
    assert float((x != 0).float().mean()) > ep.MAX_DENSITY
    y = dense(x)
    assert [c[0].shape for c in calls] == [(4, 24, 11)]
    w = quantize_8bit(dense.weight).reshape(8, 24)
    assert torch.equal(y, _float_path(x.detach(), w.detach()))
    y.square().sum().backward()
    gx, gg, gv = x.grad, *(p.grad.clone() for p in dense.parameters())
    # the same through the float GEMM
    monkeypatch.setattr(synapse.layer, "int_product_plan", lambda *_: None)
    x.grad = None
    dense.zero_grad()
    y2 = dense(x)
    assert torch.equal(y2, y)
    y2.square().sum().backward()
    torch.testing.assert_close(x.grad, gx)
    for p, ref in zip(dense.parameters(), (gg, gv), strict=True):
        torch.testing.assert_close(p.grad, ref)


def test_dense_synapse_takes_the_quantizers_grid(any_size, monkeypatch):
    """A quantized weight's int8 mantissas reach the product: the grid is not found again,
    and the output is the exact sum."""
    found = spy(monkeypatch, ip, "weight_grid")
    dense = synapse.Dense(40, 6, weight_scale=3, weight_norm=True, pre_hook_fx=quantize_8bit)
    x = (torch.rand(3, 40, 9, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    y = dense(x)
    w = quantize_8bit(dense.weight).reshape(6, 40).detach()
    assert torch.equal(y.double(), _exact(x, w))
    assert found == []
    # a hook without a grid: found here
    dense.pre_hook_fx = lambda w: quantize_8bit(w) * 1.0
    assert torch.equal(dense(x), y)
    assert len(found) == 1


def test_graded_input_falls_back(any_size):
    dense = synapse.Dense(6, 3, pre_hook_fx=quantize_8bit)
    x = torch.rand(2, 6, 5)  # graded, not integers
    w = quantize_8bit(dense.weight).reshape(3, 6)
    assert ip.int_product(x, w.detach()) is None
    torch.testing.assert_close(dense(x), _float_path(x, w.detach()))


@pytest.mark.parametrize("time_major", [False, True])
def test_parallel_conversion_finds_the_largest_value_and_refusals(any_size, spinning, time_major):
    """Inputs large enough for the parallel conversion (its reductions: a refusal count
    and the largest magnitude, which decides the float32 bound), for either column
    order."""
    n_in, steps = 1040, 40  # 2 * 1040 * 40 >= PARALLEL_MIN_WORK; 1040 * 127 * 128 >= 2**24
    w2 = torch.full((2, n_in), 127.0)
    x3 = torch.zeros(2, n_in, steps)
    x3[:, ::3, ::2] = 1.0
    assert x3.numel() >= PARALLEL_MIN_WORK
    assert ip.use_parallel(2 * n_in, steps, light=True)  # the parallel operand builder
    z = ip.int_product(x3, w2, time_major=time_major)  # 1040 * 127 * 1 < 2**24: taken
    assert z is not None and torch.equal(z.double(), _exact(x3, w2))
    for where in ((0, 0, 0), (1, n_in - 1, steps - 1), (1, 517, 20)):
        xb = x3.clone()
        xb[where] = -128.0  # one value makes the bound fail
        assert ip.int_product(xb, w2, time_major=time_major) is None, where
        xb[where] = float("nan")
        assert ip.int_product(xb, w2, time_major=time_major) is None, where
        xb[where] = 0.5
        assert ip.int_product(xb, w2, time_major=time_major) is None, where


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_spikes_with_a_bad_value_get_the_input_error(any_size, bad):
    """The dense synapse checks its input only where the int8 product refuses it: one
    NaN/inf among spikes still raises the synapse's error (and an all-spike input does not
    pay for the check)."""
    dense = synapse.Dense(24, 8, pre_hook_fx=quantize_8bit)
    x = (torch.rand(4, 24, 11) < 0.2).float()
    x[3, 23, 10] = bad
    with pytest.raises(ParameterError, match="synapse.Dense: input contains NaN/inf"):
        dense(x)


@pytest.mark.parametrize("steps", [ip.BATCH_GEMM_STEPS - 1, ip.BATCH_GEMM_STEPS, 200])
def test_long_rows_take_one_gemm_per_batch_item(any_size, steps):
    """Either side of :data:`BATCH_GEMM_STEPS` (sgemm flavour: one GEMM per batch item
    writing the time-last output): the exact sums, gradients as the float product's."""
    torch.manual_seed(steps)
    x3 = (torch.rand(3, 9, steps) < 0.3).float() * torch.randint(-3, 4, (3, 9, steps))
    w2 = (torch.randint(-127, 128, (5, 9)).float() * 2.0**-5).requires_grad_(True)
    z = ip.int_product(x3, w2)
    assert z is not None and z.is_contiguous()
    assert torch.equal(z.double(), _exact(x3, w2.detach()))
    g = torch.randn(3, 5, steps)
    (gw,) = torch.autograd.grad(z, w2, g)
    want = torch.einsum("bot,bit->oi", g.double(), x3.double())
    torch.testing.assert_close(gw.double(), want, rtol=1e-5, atol=1e-4)


def test_sgemm_flavour_only_at_full_float32_precision(any_size, monkeypatch):
    """A reduced matmul precision (TF32/bf16) would round the sgemm's sums: the sgemm
    flavour then steps aside (the caller's float product), the int8 GEMM does not."""
    x3, w2 = torch.ones(2, 4, 3), torch.ones(5, 4)
    monkeypatch.setattr(ip, "full_precision_torch", lambda: False)
    monkeypatch.setenv(INT8_GEMM_ENV, "off")
    assert ip.int_product(x3, w2) is None
    monkeypatch.setenv(INT8_GEMM_ENV, "on")
    assert ip.int_product(x3, w2) is not None


@pytest.mark.parametrize(("b", "n_in", "steps"), [(3, 11, 7), (3, 11, 200), (4, 64, 300)])
def test_time_major_output_and_its_gradients(any_size, spinning, b, n_in, steps):
    """``time_major``: the same exact sums as a time-last view of ``(T, B, O)`` memory;
    the weight gradient (as the float product's) from a gradient in that layout or in
    any other, the input gradient too. The last case is large enough for the parallel
    operand builder."""
    assert (b * n_in * steps >= PARALLEL_MIN_WORK) == (n_in == 64)
    g = torch.Generator().manual_seed(steps)
    x3 = (torch.rand(b, n_in, steps, generator=g) < 0.3).float()
    x3 = (x3 * torch.randint(-3, 4, x3.shape, generator=g)).requires_grad_(True)
    w2 = (torch.randint(-127, 128, (5, n_in), generator=g) * 2.0**-6).requires_grad_(True)
    z = ip.int_product(x3, w2, time_major=True)
    assert z.shape == (b, 5, steps) and z.permute(2, 0, 1).is_contiguous()
    assert torch.equal(z.double(), _exact(x3.detach(), w2.detach()))
    up = torch.randn(steps, b, 5, generator=g)
    x64 = x3.detach().double().requires_grad_(True)
    w64 = w2.detach().double().requires_grad_(True)
    want = torch.autograd.grad(_exact(x64, w64), (x64, w64), up.permute(1, 2, 0).double())
    for layout in (up.permute(1, 2, 0), up.permute(1, 2, 0).contiguous()):
        got = torch.autograd.grad(ip.int_product(x3, w2, time_major=True), (x3, w2), layout)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-5)


def test_dense_synapse_time_major_output(any_size, monkeypatch):
    """``time_major_output`` changes the output's memory layout only: the same values
    and gradients on the int8-operand path and on the float GEMM (graded input)."""
    torch.manual_seed(1)
    dense = synapse.Dense(24, 8, weight_scale=2, pre_hook_fx=quantize_8bit)
    for x in ((torch.rand(4, 24, 11) < 0.2).float(), torch.rand(4, 24, 11)):
        outs = []
        for time_major in (False, True):
            dense.time_major_output = time_major
            xg = x.clone().requires_grad_(True)
            y = dense(xg)
            assert y.permute(2, 0, 1).is_contiguous() or not time_major
            y.square().sum().backward()
            outs.append((y.detach(), xg.grad, dense.weight.grad.clone()))
            dense.zero_grad()
        assert torch.equal(outs[0][0], outs[1][0])
        for a, b in zip(outs[0][1:], outs[1][1:], strict=True):
            torch.testing.assert_close(a, b)


def test_time_major_output_memory_is_kept_per_synapse(any_size):
    """The time-major output goes into memory the synapse keeps: a freed output's memory
    serves the next step; an output still held is not overwritten."""
    torch.manual_seed(2)
    dense = synapse.Dense(24, 8, weight_scale=2, pre_hook_fx=quantize_8bit)
    dense.time_major_output = True
    x = (torch.rand(4, 24, 11) < 0.2).float()
    ptrs = []
    for _ in range(3):
        y = dense(x)
        y.sum().backward()
        ptrs.append(y.untyped_storage().data_ptr())
        del y
    assert len(set(ptrs)) == 1
    held = dense(x)
    kept = held.detach().clone()
    other = dense((torch.rand(4, 24, 11) < 0.2).float())
    assert other.untyped_storage().data_ptr() != held.untyped_storage().data_ptr()
    assert torch.equal(held, kept)


@pytest.mark.skipif(not int8_gemm_works(), reason="torch._int_mm is missing or inexact here")
@pytest.mark.parametrize("shape", list(itertools.product([1, 2, 17], [1, 2, 5], [1, 3, 9])))
def test_int8_mm_of_transposed_views_with_a_size_one_dimension(shape):
    """``int8_mm`` gives the exact product for every layout of its operands, transposed
    views with a size-1 dimension included (torch's CPU ``_int_mm`` returned arbitrary
    values for some, e.g. a ``(1, K)`` view with strides ``(1, 1)``)."""
    n_m, n_k, n_n = shape
    g = torch.Generator().manual_seed(sum(shape))
    a = torch.randint(-128, 128, (n_m, n_k), dtype=torch.int8, generator=g)
    b = torch.randint(-128, 128, (n_k, n_n), dtype=torch.int8, generator=g)
    exact = (a.long() @ b.long()).int()
    for a_t, b_t in itertools.product([False, True], repeat=2):
        # a transposed view: the transpose written to new memory, transposed back
        av = torch.empty(n_k, n_m, dtype=torch.int8).copy_(a.t()).t() if a_t else a
        bv = torch.empty(n_n, n_k, dtype=torch.int8).copy_(b.t()).t() if b_t else b
        assert torch.equal(int8_mm(av, bv), exact), (a_t, b_t)
        out = torch.empty(n_m, n_n, dtype=torch.int32)
        int8_mm(av, bv, out)
        assert torch.equal(out, exact)

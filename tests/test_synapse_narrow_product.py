"""The dense synapse's product for few outputs (issue 8): exact where it applies, the
float GEMM elsewhere. Expected values are float64 sums (exact at these sizes) and the
float32 matmul the path replaces; gradients against float64 products."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loihi_slayer import synapse
from loihi_slayer.autograd import _dispatch
from loihi_slayer.errors import ParameterError
from loihi_slayer.quantize import quantize_8bit
from loihi_slayer.synapse import _narrow_product as npr
from loihi_slayer.synapse import layer
from loihi_slayer.synapse._int_product import weight_grid


def _exact(x3: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    return torch.einsum("oi,bit->bot", w2.double(), x3.double())


def _float_path(x3: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    return torch.matmul(x3.transpose(1, 2), w2.t()).transpose(1, 2)


def _case(rng, b, n_in, n_out, steps, exp=-6, w_top=127, x_top=1, density=0.2):
    m = rng.integers(-w_top, w_top + 1, (n_out, n_in))  # the grid's mantissas, |m| <= 127
    m.flat[rng.integers(m.size)] = -w_top if rng.random() < 0.5 else w_top  # the extreme
    w2 = torch.tensor(m * 2.0**exp, dtype=torch.float32)
    q = rng.integers(-x_top, min(x_top, 127) + 1, (b, n_in, steps))
    q[rng.random(q.shape) >= density] = 0
    q.flat[rng.integers(q.size)] = -x_top  # -128 included
    return torch.tensor(q, dtype=torch.float32), w2


@pytest.fixture(params=["parallel", "serial"])
def kernels(request, monkeypatch):
    """Every test with both kernel flavours: the parallel ones above
    ``PARALLEL_MIN_WORK``, the serial ones below it (forced by the limit)."""
    limit = 0 if request.param == "parallel" else 1 << 62
    monkeypatch.setattr(_dispatch, "PARALLEL_MIN_WORK", limit)
    return request.param


@settings(max_examples=60, deadline=None)
@given(
    b=st.integers(1, 5),
    n_in=st.integers(1, 40),
    n_out=st.integers(1, npr.NARROW_MAX),
    steps=st.integers(1, 140),
    exp=st.integers(-12, 6),
    w_top=st.sampled_from([1, 2, 64, 127]),
    x_top=st.sampled_from([1, 3, 127, 128]),
    density=st.sampled_from([0.0, 0.05, 0.5, 1.0]),
    parallel=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_forward_is_the_exact_sum(
    b, n_in, n_out, steps, exp, w_top, x_top, density, parallel, seed
):
    rng = np.random.default_rng(seed)
    x3, w2 = _case(rng, b, n_in, n_out, steps, exp, w_top, x_top, density)
    before = _dispatch.PARALLEL_MIN_WORK
    _dispatch.PARALLEL_MIN_WORK = 0 if parallel else 1 << 62
    try:
        z = npr.narrow_product(x3, w2, weight_grid(w2))
    finally:
        _dispatch.PARALLEL_MIN_WORK = before
    exact = _exact(x3, w2)
    assert z is not None and z.dtype == torch.float32 and z.is_contiguous()
    assert z.shape == (b, n_out, steps)
    assert torch.equal(z.double(), exact)
    assert torch.equal(z, _float_path(x3, w2))  # the path it replaces, bit for bit


@pytest.mark.parametrize(
    "bad", [0.5, -0.25, 128.0, -129.0, 1e9, float("nan"), float("inf"), -float("inf")]
)
def test_refused_where_not_an_int8_value(kernels, bad):
    x3, w2 = _case(np.random.default_rng(1), 3, 20, 10, 70)
    x3[2, 19, 69] = bad  # the last value of the last row
    assert npr.narrow_product(x3, w2, weight_grid(w2)) is None
    x3[2, 19, 69] = 0
    x3[0, 0, 0] = bad  # and the first
    assert npr.narrow_product(x3, w2, weight_grid(w2)) is None


def test_float32_bound_refuses_sums_float32_cannot_hold(kernels):
    # I · max|m| · max|x| = 1040 · 127 · 128 >= 2**24: partial sums could round
    w2 = torch.full((2, 1040), 127.0)
    x3 = torch.zeros(1, 1040, 3)
    x3[0, 5, 1] = -128
    assert npr.narrow_product(x3, w2, weight_grid(w2)) is None
    x3[0, 5, 1] = -127  # 1040 · 127 · 127 < 2**24
    z = npr.narrow_product(x3, w2, weight_grid(w2))
    assert z is not None and torch.equal(z.double(), _exact(x3, w2))


def test_not_taken_outside_its_conditions():
    x3, w2 = _case(np.random.default_rng(2), 2, 8, 4, 9)
    grid = weight_grid(w2)
    off_grid = w2 + 0.1  # weights off a power-of-two grid
    assert npr.narrow_product(x3, off_grid) is None
    assert npr.narrow_product(x3, off_grid, weight_grid(off_grid)) is None
    assert npr.narrow_product(x3, w2) is not None  # the grid found here
    wide = torch.ones(npr.NARROW_MAX + 1, 8)
    assert npr.narrow_product(x3, wide, weight_grid(wide)) is None
    assert npr.narrow_product(x3.double(), w2.double(), grid) is None
    assert npr.narrow_product(x3.transpose(1, 2).contiguous().transpose(1, 2), w2, grid) is None
    assert npr.narrow_product(x3[:, :, :0], w2, grid) is None
    tiny = torch.tensor(2.0**-130) * torch.ones(4, 8)  # a subnormal grid step
    assert npr.narrow_product(x3, tiny, weight_grid(tiny)) is None


@pytest.mark.parametrize(
    ("b", "n_in", "n_out", "steps"), [(3, 37, 10, 70), (5, 16, 16, 1), (1, 9, 4, 300)]
)
def test_gradients_are_the_products(kernels, b, n_in, n_out, steps):
    rng = np.random.default_rng(3)
    x3, w2 = _case(rng, b, n_in, n_out, steps, density=0.3)
    x3.requires_grad_(True)
    w2.requires_grad_(True)
    g = torch.tensor(rng.standard_normal((b, n_out, steps)), dtype=torch.float32)
    z = npr.narrow_product(x3, w2, weight_grid(w2.detach()))
    assert type(z.grad_fn).__name__ == "NarrowDenseProductBackward"
    z.backward(g)
    g64, x64, w64 = g.double(), x3.detach().double(), w2.detach().double()
    assert torch.allclose(x3.grad.double(), torch.einsum("oi,bot->bit", w64, g64), atol=1e-5)
    assert torch.allclose(w2.grad.double(), torch.einsum("bot,bit->oi", g64, x64), atol=1e-4)
    # the input gradient is a time-last view of neuron-last memory (a CUBA neuron's
    # backward takes that layout without a copy)
    assert x3.grad.shape == x3.shape


def _ordered_grad_x(g: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The module's input gradient order in float32 NumPy: ``Σ_o g[b, o, t] · w[o, :]``,
    ``o`` in order, each product and sum rounded; ``(B, T, I)``."""
    acc = g[:, 0, :, None] * w[0]
    for o in range(1, w.shape[0]):
        acc = acc + g[:, o, :, None] * w[o]
    return acc


def _ordered_grad_w(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The module's weight gradient order in float32 NumPy: within each of ``GRAD_PARTS``
    ranges of jobs (a batch item's steps in blocks of ``STEP_BLOCK``), the jobs and
    their steps in order, a job's all-zero input rows skipped; then the ranges in
    order."""
    n_b, n_i, steps = x.shape
    blocks = -(-steps // npr.STEP_BLOCK)
    jobs = n_b * blocks
    n_parts = min(npr.GRAD_PARTS, jobs)
    parts = np.zeros((n_parts, n_i, g.shape[1]), np.float32)
    for p in range(n_parts):
        for job in range(p * jobs // n_parts, (p + 1) * jobs // n_parts):
            b, k = divmod(job, blocks)
            t0, t1 = k * npr.STEP_BLOCK, min(steps, (k + 1) * npr.STEP_BLOCK)
            live = np.any(x[b, :, t0:t1] != 0, axis=1)
            for t in range(t0, t1):
                term = x[b, :, t, None] * g[b, :, t]
                parts[p][live] = parts[p][live] + term[live]
    out = parts[0]
    for p in range(1, n_parts):
        out = out + parts[p]
    return out.T


@pytest.mark.parametrize(
    ("b", "n_in", "n_out", "steps"),
    [(3, 165, 10, 70), (2, 37, 16, 5), (1, 9, 1, 300), (4, 64, 3, 129)],
)
def test_gradients_have_the_documented_order_bit_for_bit(kernels, b, n_in, n_out, steps):
    # 165 inputs: the input gradient's groups of 64, of 16 and the last 5 values; rows
    # without a spike, skipped by the weight gradient, in every job
    rng = np.random.default_rng(7)
    x3, w2 = _case(rng, b, n_in, n_out, steps, x_top=127, density=0.3)
    x3[:, ::7] = 0
    x3.requires_grad_(True)
    w2.requires_grad_(True)
    g = torch.tensor(rng.standard_normal((b, n_out, steps)) * 1e3, dtype=torch.float32)
    z = npr.narrow_product(x3, w2, weight_grid(w2.detach()))
    g_x, g_w = torch.autograd.grad(z, (x3, w2), g)
    x, w, gn = x3.detach().numpy(), w2.detach().numpy(), g.numpy()
    bits = np.int32
    assert np.array_equal(g_x.transpose(1, 2).numpy().view(bits), _ordered_grad_x(gn, w).view(bits))
    assert np.array_equal(g_w.numpy().view(bits), _ordered_grad_w(x, gn).view(bits))


def test_input_gradient_layout_and_every_value_written(kernels):
    x3, w2 = _case(np.random.default_rng(4), 2, 19, 3, 5)
    x3.requires_grad_(True)
    z = npr.NarrowDenseProduct.apply(x3, w2, 127)
    (g_x,) = torch.autograd.grad(z, x3, torch.ones_like(z))
    assert g_x.transpose(1, 2).is_contiguous()
    assert torch.equal(g_x, w2.sum(0).reshape(1, -1, 1).expand_as(g_x))


def test_weight_gradient_has_the_same_bits_on_any_thread_count():
    rng = np.random.default_rng(5)
    x3, w2 = _case(rng, 9, 30, 10, 261, density=0.4)  # 27 jobs of up to 128 steps
    w2.requires_grad_(True)
    g = torch.tensor(rng.standard_normal((9, 10, 261)), dtype=torch.float32)
    grads = []
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, before}):
            numba.set_num_threads(threads)
            (gw,) = torch.autograd.grad(npr.narrow_product(x3, w2, weight_grid(w2.detach())), w2, g)
            grads.append(gw)
    finally:
        numba.set_num_threads(before)
    assert all(torch.equal(grads[0], gw) for gw in grads)


def test_gradient_of_the_gradient_is_the_products():
    rng = np.random.default_rng(6)
    x3, w2 = _case(rng, 2, 12, 5, 8, density=0.5)
    x3.requires_grad_(True)
    w2.requires_grad_(True)
    x_ref = x3.detach().double().requires_grad_(True)
    w_ref = w2.detach().double().requires_grad_(True)
    z = npr.narrow_product(x3, w2, weight_grid(w2.detach()))
    z_ref = torch.einsum("oi,bit->bot", w_ref, x_ref)
    (g_w,) = torch.autograd.grad(z.square().sum(), w2, create_graph=True)
    (g_w_ref,) = torch.autograd.grad(z_ref.square().sum(), w_ref, create_graph=True)
    (gg,) = torch.autograd.grad(g_w.square().sum(), x3)
    (gg_ref,) = torch.autograd.grad(g_w_ref.square().sum(), x_ref)
    assert torch.allclose(gg.double(), gg_ref, rtol=1e-5, atol=1e-3)


def test_dense_synapse_takes_it_for_spikes_through_the_quantizer(monkeypatch):
    torch.manual_seed(0)
    dense = synapse.Dense(48, 10, weight_scale=4, weight_norm=True, pre_hook_fx=quantize_8bit)
    x = (torch.rand(4, 48, 33) < 0.2).float().requires_grad_(True)
    z = dense(x)
    assert type(z.grad_fn).__name__ == "NarrowDenseProductBackward"
    z.backward(torch.ones_like(z))
    g = [p.grad.clone() for p in dense.parameters()]
    grad_x = x.grad.clone()
    x.grad = None
    dense.zero_grad()
    monkeypatch.setattr(layer, "narrow_plan", lambda *args: None)
    z_float = dense(x)
    assert type(z_float.grad_fn).__name__ != "NarrowDenseProductBackward"
    assert torch.equal(z, z_float)  # bit for bit
    z_float.backward(torch.ones_like(z_float))
    assert torch.allclose(x.grad, grad_x, atol=1e-6)
    for a, p in zip(g, dense.parameters(), strict=True):
        assert torch.allclose(a, p.grad, rtol=1e-5, atol=1e-6)


def test_dense_synapse_keeps_the_float_gemm_where_it_does_not_apply():
    dense = synapse.Dense(20, 5)  # float weights: no grid
    x = (torch.rand(2, 20, 7) < 0.5).float()
    assert type(dense(x.requires_grad_(True)).grad_fn).__name__ != "NarrowDenseProductBackward"
    quantized = synapse.Dense(20, 5, pre_hook_fx=quantize_8bit)
    graded = torch.rand(2, 20, 7).requires_grad_(True)  # not integers
    z = quantized(graded)
    assert type(z.grad_fn).__name__ != "NarrowDenseProductBackward"
    assert torch.equal(z, _float_path(graded.detach(), quantized.pre_hook_weight.reshape(5, 20)))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_dense_synapse_refuses_a_bad_input_with_its_error(bad):
    dense = synapse.Dense(20, 5, pre_hook_fx=quantize_8bit)
    x = (torch.rand(2, 20, 7) < 0.5).float()
    x[1, 3, 4] = bad
    with pytest.raises(ParameterError, match="NaN/inf"):
        dense(x)

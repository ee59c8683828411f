"""Synapse layers, quantizer, axon, dendrite and spike helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import spy
from hypothesis import given, settings
from hypothesis import strategies as st

from loihi_slayer import axon, dendrite, quantize, spike, synapse
from loihi_slayer.block import cuba as block_cuba
from loihi_slayer.errors import ParameterError
from loihi_slayer.quantize import quantize_8bit, weight_mantissa


def test_quantize_8bit_grid_clamp_and_ste():
    w = torch.tensor([0.0, 1 / 64, 3 / 64, 5 / 64, 10.0, -10.0, 0.5], requires_grad=True)
    q = quantize_8bit(w)
    assert (q * 64).tolist() == [0.0, 0.0, 4.0, 4.0, 254.0, -256.0, 32.0]
    q.sum().backward()
    assert w.grad.tolist() == [1, 1, 1, 1, 0, 0, 1]
    assert weight_mantissa(w).tolist() == [0, 0, 4, 4, 254, -256, 32]
    with pytest.raises(ParameterError, match="NaN"):
        quantize_8bit(torch.tensor([float("nan")]))


@settings(max_examples=60, deadline=None)
@given(
    scale=st.sampled_from([1, 2, 64, 64, 256, 1 << 20]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    spread=st.sampled_from([1e-3, 1.0, 300.0, 1e30]),
    seed=st.integers(0, 2**31 - 1),
)
def test_quantize_8bit_one_pass_is_the_composite(scale, dtype, spread, seed):
    """The one-pass CPU quantizer against the torch composite it replaces (round half to
    even on the grid, clamp to [-256, 254] steps, straight-through rounding, the clamp's
    gradient), bit for bit in values (signed zeros included) and gradients: ties at half
    steps, values at and beyond the clamp bounds, -0.0 and huge magnitudes."""
    g = torch.Generator().manual_seed(seed)
    step = 2.0 / scale
    w = torch.randn(7, 53, generator=g, dtype=torch.float64) * spread
    special = torch.tensor(
        [0.5, 1.5, -0.5, -2.5, 126.5, 127.0, 127.5, -128.0, -128.5, 1e6, -0.0, 0.25],
        dtype=torch.float64,
    )
    w.view(-1)[: special.numel()] = special * step
    w = w.to(dtype).requires_grad_(True)
    q = quantize_8bit(w, scale)
    ref = quantize.quantize(w, step).clamp(-256.0 / scale, 254.0 / scale)
    bits = torch.int32 if dtype == torch.float32 else torch.int64
    assert torch.equal(q.detach().view(bits), ref.detach().view(bits))
    grad = torch.randn(w.shape, generator=g, dtype=torch.float64).to(dtype)
    (gq,) = torch.autograd.grad(q, w, grad)
    (gr,) = torch.autograd.grad(ref, w, grad)
    assert torch.equal(gq, gr)
    assert (gq == 0).any() and (gq != 0).any()  # both sides of the clamp were reached
    # the int8 grid the result carries: the reference's values over the step
    m, unit, top = quantize.int8_grid(q)
    assert unit == step and m.dtype == torch.int8
    assert torch.equal(m.to(torch.float64), ref.detach().double() / step)
    assert top == int((ref.detach().double() / step).abs().max())


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from([np.float32, np.float64]),
    spread=st.sampled_from([1e-3, 0.05, 1.0, 1e30]),
    n=st.integers(0, 300),
    n_bad=st.integers(0, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_quantize_pass_counts_against_numpy(dtype, spread, n, n_bad, seed):
    """The pass's returned counts against NumPy on the same values: NaN/inf weights, the
    weights the clamp cut and (all finite) the largest mantissa ``|m|``; its outputs at
    finite weights; ties at half steps and both bounds reached."""
    rng = np.random.default_rng(seed)
    step, lo, hi = (dtype(v) for v in quantize.grid_8bit(64))
    w = (rng.standard_normal(n) * spread).astype(dtype)
    ties = np.array([0.5, -2.5, 126.5, 127.5, -128.5, 254.0], dtype) * step
    w[: min(n, ties.size)] = ties[: min(n, ties.size)]
    bad_at = rng.choice(n, min(n, n_bad), replace=False) if n else []
    w[bad_at] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype), len(bad_at))
    q, m = np.empty_like(w), np.empty(n, np.int8)
    inside = np.empty(n, np.bool_)
    bad, top, cut = quantize._quantize_pass(w, step, lo, hi, q, inside, m)
    finite = np.isfinite(w)
    with np.errstate(invalid="ignore"):
        r = np.rint(w / step) * step
        ref_inside = (r >= lo) & (r <= hi)
    ref_q = np.clip(r, lo, hi)
    assert bad == np.count_nonzero(~finite)
    assert cut == np.count_nonzero(~ref_inside)
    assert np.array_equal(inside, ref_inside)
    assert np.array_equal(q[finite], ref_q[finite])
    assert np.array_equal(m[finite], (ref_q[finite] / step).astype(np.int8))
    if not bad:  # (at NaN/inf weights the pass is refused, its range unspecified)
        assert top == (int(np.abs(ref_q / step).max()) if n else 0)


def test_quantize_8bit_gradient_where_no_weight_is_cut():
    """With every weight inside the clamp the straight-through gradient is the incoming
    one, bit for bit (signed zeros, NaN, subnormals), as the composite's."""
    w = (torch.arange(-40, 40, dtype=torch.float32) / 23).requires_grad_(True)
    grad = torch.randn(80)
    grad[:4] = torch.tensor([-0.0, 0.0, float("nan"), 1e-42])
    q = quantize_8bit(w)
    ref = quantize.quantize(w, 2 / 64).clamp(-4.0, 254 / 64)
    (gq,) = torch.autograd.grad(q, w, grad)
    (gr,) = torch.autograd.grad(ref, w, grad)
    assert torch.equal(gq.view(torch.int32), gr.view(torch.int32))
    assert torch.equal(gq.view(torch.int32), grad.view(torch.int32))


def test_quantized_weight_grid_is_dropped_when_the_weight_changes():
    q = quantize_8bit(torch.tensor([0.1, -0.2, 3.0]))
    assert quantize.int8_grid(q)[0].tolist() == [3, -6, 96]
    q.mul_(2)  # in place: the grid no longer holds
    assert quantize.int8_grid(q) is None
    assert quantize.int8_grid(torch.ones(2)) is None  # not a quantizer's output


def test_quantize_8bit_one_pass_runs_and_refuses_nan(monkeypatch):
    calls = spy(monkeypatch, quantize, "_quantize_pass")
    quantize_8bit(torch.randn(3, 4))
    assert calls
    for bad in (float("nan"), float("inf")):
        w = torch.zeros(5, 6)
        w[4, 5] = bad
        with pytest.raises(ParameterError, match="quantize_8bit: weight contains NaN/inf"):
            quantize_8bit(w)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize(
    "hook",
    [quantize_8bit, lambda w: w * 2, None],
    ids=["quantizer (checks itself)", "user hook", "no hook"],
)
def test_synapse_refuses_a_non_finite_weight_in_its_own_words(bad, hook):
    """A NaN/inf weight is refused under the synapse's name whichever hook runs: the
    quantizer's own check (no second pass) or the synapse's before another hook."""
    d = synapse.Dense(5, 3, pre_hook_fx=hook)
    with torch.no_grad():
        d.weight.view(-1)[7] = bad
    with pytest.raises(ParameterError, match=r"^Dense: weight contains NaN/inf$"):
        d(torch.ones(2, 5, 4))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_block_synapse_refuses_a_non_finite_weight(bad):
    """The same through a block, whose synapse hook is the neuron's bound quantizer."""
    b = block_cuba.Dense({"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03}, 5, 3)
    with torch.no_grad():
        b.synapse.weight.view(-1)[2] = bad
    with pytest.raises(ParameterError, match=r"^Dense: weight contains NaN/inf$"):
        b(torch.ones(2, 5, 4))


def test_dense_uses_quantized_weights_and_matches_integer_sum():
    d = synapse.Dense(5, 3, weight_scale=2, pre_hook_fx=quantize_8bit)
    x = (torch.rand(2, 5, 7) > 0.5).float()
    y = d(x)
    w_int = weight_mantissa(d.weight.reshape(3, 5))
    expect = torch.einsum("oi,nit->not", w_int.double(), x.double()) / 64
    assert torch.equal(y.double(), expect)
    with pytest.raises(ParameterError, match=r"Dense.*\(N, 5, T\).*\(2, 4, 7\)"):
        d(torch.zeros(2, 4, 7))
    bad = x.clone()
    bad[0, 0, 0] = float("inf")
    with pytest.raises(ParameterError, match="NaN/inf"):
        d(bad)
    e = synapse.Dense(5, 3, exact=True)
    assert e(x).dtype == torch.float64


def test_conv_pool_transpose_shapes_and_values():
    c = synapse.Conv(2, 4, 3, padding=1, pre_hook_fx=quantize_8bit)
    x = torch.rand(1, 2, 6, 6, 5)
    y = c(x)
    ref = torch.stack(
        [F.conv2d(x[..., t], quantize_8bit(c.weight[..., 0]), padding=1) for t in range(5)], -1
    )
    torch.testing.assert_close(y, ref)
    p = synapse.Pool(2, weight_scale=1)
    assert p(x).shape == (1, 2, 3, 3, 5)
    torch.testing.assert_close(p(x)[0, 0, 0, 0], x[0, 0, :2, :2].sum(dim=(0, 1)))
    assert synapse.Unpool(2)(p(x)).shape == (1, 2, 6, 6, 5)
    assert synapse.ConvTranspose(2, 3, 2, stride=2)(x).shape == (1, 3, 12, 12, 5)
    with pytest.raises(ParameterError, match="Conv"):
        c(torch.zeros(1, 2, 6, 5))


def test_sigma_is_exact_cumsum_with_state():
    s = dendrite.Sigma(persistent_state=True)
    x = torch.tensor(np.random.default_rng(0).integers(-99, 99, (1, 2, 8)) / 2.0**17)
    y = torch.cat([s(x[..., :3]), s(x[..., 3:])], -1)
    assert torch.equal(y, torch.cumsum(x, -1))


def test_shift_and_delay():
    x = torch.arange(1.0, 6.0).reshape(1, 1, 5)
    assert spike.shift(x).flatten().tolist() == [0, 1, 2, 3, 4]
    sd = spike.StepDelay(persistent_state=True)
    sd(x)
    assert sd(x).flatten().tolist() == [5, 1, 2, 3, 4]
    d = axon.Delay(shape=(2,))
    with torch.no_grad():
        d.delay.copy_(torch.tensor([1.7, 70.0]))
    x2 = torch.arange(1.0, 5.0).repeat(1, 2, 1).requires_grad_(True)
    y = d(x2)
    assert y[0, 0].tolist() == [0, 1, 2, 3] and y[0, 1].tolist() == [0, 0, 0, 0]
    assert d.integer_delay.tolist() == [1, 62]
    y.sum().backward()
    assert x2.grad[0, 0].tolist() == [1, 1, 1, 0]
    # finite-difference delay gradient: -sum_t g (y[t] - y[t-1])
    assert d.delay.grad[0].item() == -3.0


def test_spike_function_strict_and_surrogate():
    v = torch.tensor([0.5, 1.0, 1.5], requires_grad=True)
    s = spike.binary(v, 1.0, tau_rho=0.5, scale_rho=2.0)
    assert s.tolist() == [0, 0, 1]
    s.sum().backward()
    torch.testing.assert_close(v.grad, 2.0 / 1.0 * torch.exp(-torch.abs(v.detach() - 1) / 0.5))
    delta = axon.Delta(0.5)
    y = delta(torch.tensor([[[0.0, 1.0, 1.25, 2.0]]]))
    assert y.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]

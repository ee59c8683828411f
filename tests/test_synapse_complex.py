"""Complex synapses (``synapse.complex``) and the phase spike (``spike.complex``).

Expected values come from plain ``torch.nn.functional`` calls on the two weight
tensors and from the surrogate formulas of spec ``loihi-fixed-point.md`` §5.4
written out here in NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from loihi_slayer.errors import ParameterError
from loihi_slayer.quantize import quantize_8bit
from loihi_slayer.spike import complex as cspike
from loihi_slayer.synapse import complex as csyn


def _conv_ref(x, w, **kw):
    """2-D conv of each time bin of (N, C, H, W, T) with a (O, I, kH, kW, 1) weight."""
    xs = x.permute(4, 0, 1, 2, 3)
    ys = [F.conv2d(xt, w[..., 0], **kw) for xt in xs]
    return torch.stack(ys, dim=-1)


def _convt_ref(x, w, **kw):
    xs = x.permute(4, 0, 1, 2, 3)
    ys = [F.conv_transpose2d(xt, w[..., 0], **kw) for xt in xs]
    return torch.stack(ys, dim=-1)


def test_dense_applies_both_weights_with_mask_and_hook():
    torch.manual_seed(0)
    mask = (torch.rand(5, 7) > 0.4).float()
    syn = csyn.Dense(7, 5, weight_scale=2, pre_hook_fx=quantize_8bit, mask=mask)
    x = (torch.rand(3, 7, 9) > 0.5).float()
    re, im = syn(x)
    for part, got in ((syn.real, re), (syn.imag, im)):
        w = quantize_8bit(part.weight[..., 0, 0, 0] * mask)
        assert torch.equal(got, torch.einsum("oi,nit->not", w, x))
    assert not torch.equal(re, im)  # independent weights
    assert syn.complex and syn.in_neurons == 7 and syn.out_neurons == 5
    assert syn.shape == syn.real.weight.shape


@pytest.mark.parametrize("cls", [csyn.Conv, csyn.ConvTranspose])
def test_conv_types_match_functional(cls):
    torch.manual_seed(1)
    syn = cls(2, 3, 3, stride=2, padding=1, dilation=1, groups=1)
    x = torch.rand(2, 2, 6, 5, 4)
    ref = _conv_ref if cls is csyn.Conv else _convt_ref
    kw = {"stride": 2, "padding": 1}
    for part, got in zip((syn.real, syn.imag), syn(x), strict=True):
        assert torch.allclose(got, ref(x, part.weight, **kw), atol=1e-6)
    assert syn.kernel_size[:2] == (3, 3) and syn.stride[:2] == (2, 2) and syn.groups == 1


@pytest.mark.parametrize("cls", [csyn.Pool, csyn.Unpool])
def test_pool_types_sum_with_fixed_weight(cls):
    syn = cls(2, weight_scale=3)
    x = torch.rand(1, 2, 4, 4, 3)
    re, im = syn(x)
    assert torch.equal(re, im)  # both parts hold the same fixed kernel
    if cls is csyn.Pool:
        expect = 3 * F.avg_pool3d(x, (2, 2, 1)) * 4
        assert torch.allclose(re, expect, atol=1e-5)
    else:
        expect = 3 * x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        assert torch.allclose(re, expect, atol=1e-6)


def test_pre_hook_setter_weight_norm_and_grad_norm():
    torch.manual_seed(2)
    syn = csyn.Dense(4, 3)
    assert syn.pre_hook_fx is None and syn.grad_norm == 0.0
    syn.pre_hook_fx = quantize_8bit
    assert syn.real.pre_hook_fx is quantize_8bit and syn.imag.pre_hook_fx is quantize_8bit
    x = torch.rand(2, 4, 5)
    before = syn(x)
    syn.enable_weight_norm()
    assert syn.weight_norm_enabled
    after = syn(x)
    for a, b in zip(before, after, strict=True):
        assert torch.allclose(a, b, atol=2 / 64)  # same weights up to quantization
    syn.disable_weight_norm()
    assert not syn.weight_norm_enabled
    re, im = syn(x)
    (re.sum() + 2 * im.sum()).backward()
    g = [p.grad for p in syn.parameters()]
    expect = float(torch.sqrt(sum((t.double() ** 2).sum() for t in g)))
    assert syn.grad_norm == pytest.approx(expect)


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: csyn.Dense(3, 2), (2, 3, 4)),
        (lambda: csyn.Conv(2, 2, 2, padding=1), (1, 2, 3, 3, 2)),
        (lambda: csyn.ConvTranspose(2, 1, 2, stride=2), (1, 2, 2, 2, 2)),
        (lambda: csyn.Pool(2), (1, 1, 4, 4, 2)),
        (lambda: csyn.Unpool(2), (1, 1, 2, 2, 2)),
    ],
)
def test_gradcheck_float64(make, shape):
    torch.manual_seed(3)
    syn = make().double()
    x = torch.rand(*shape, dtype=torch.float64, requires_grad=True)
    params = [p for p in syn.parameters() if p.requires_grad]

    def f(x, *ps):
        return tuple(syn(x))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-7)


# ------------------------------------------------------------------ phase spike


def _phase_np(re, im, th, tau, rho, graded):
    d = re - th
    dr = np.exp(-np.maximum(th - re, 0) / tau) if graded else np.exp(-np.abs(d) / tau) / 2 / tau
    di = np.exp(-np.abs(im) / tau) / 2 / tau
    step = 0.5 * (1 + np.sign(d) * (1 - 2 * tau * dr))
    return rho * dr * di, -rho / tau * np.sign(im) * di * step


def test_phase_spike_forward_ties_and_zero_crossing():
    th = 0.25
    re = torch.tensor([[0.25, 0.25, 0.125, 0.375, 0.375, 0.375]])
    im = torch.tensor([[0.0, 0.125, 0.25, -0.125, 0.0, 0.0]])
    # im_prev: last=-0.5, then the im sequence shifted by one
    s = cspike.Spike.apply(re, im, th, 1.0, 1.0, False, -0.5, 1)
    # t0: re==th (tie fires), im 0 >= 0, prev -0.5 < 0 -> 1
    # t1: prev 0.0 is not < 0 -> 0; t2: re < th -> 0; t3: im < 0 -> 0
    # t4: prev -0.125 < 0, im 0 >= 0, re > th -> 1; t5: prev 0.0 -> 0
    assert s.tolist() == [[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]]
    g = cspike.Spike.apply(re, im, th, 1.0, 1.0, True, -0.5, 2)
    assert g.tolist() == [[0.125, 0.0, 0.0, 0.0, 0.1875, 0.0]]


@pytest.mark.parametrize("graded", [False, True])
def test_phase_spike_surrogate_matches_spec(graded):
    torch.manual_seed(4)
    re = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    im = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    th = torch.full((3, 8), 0.2, dtype=torch.float64)
    g = torch.randn(3, 8, dtype=torch.float64)
    cspike.Spike.apply(re, im, th, 0.7, 3.0, graded, 0.0, 1).backward(g)
    d_re, d_im = _phase_np(re.detach().numpy(), im.detach().numpy(), 0.2, 0.7, 3.0, graded)
    np.testing.assert_allclose(re.grad.numpy(), g.numpy() * d_re, rtol=1e-12)
    np.testing.assert_allclose(im.grad.numpy(), g.numpy() * d_im, rtol=1e-12)


def test_phase_spike_rejects_bad_tau():
    x = torch.zeros(1, 2)
    with pytest.raises(ParameterError, match="tau_rho"):
        cspike.Spike.apply(x, x, 0.1, 0.0, 1.0, False, 0.0, 1)


def test_time_major_output_reaches_both_dense_parts():
    """A resonator Recurrent block asks its complex synapse for time-major output: both
    real parts then make it (same values); a part without the option is left alone."""
    from loihi_slayer.block import rf

    blk = rf.Recurrent({"threshold": 0.5, "period": 10, "decay": 0.1}, 8, 6)
    assert blk.synapse.time_major_output
    assert blk.synapse.real.time_major_output and blk.synapse.imag.time_major_output
    syn = csyn.Dense(8, 6, pre_hook_fx=quantize_8bit)
    x = (torch.rand(3, 8, 5) < 0.4).float()
    before = syn(x)
    syn.time_major_output = True
    after = syn(x)
    for a, b in zip(before, after, strict=True):
        assert torch.equal(a, b) and b.permute(2, 0, 1).is_contiguous()
    conv = csyn.Conv(2, 3, 3)
    conv.time_major_output = True
    assert not conv.time_major_output and not hasattr(conv.real, "time_major_output")

"""Synapse layers, quantizer, axon, dendrite and spike helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from loihi_slayer import axon, dendrite, spike, synapse
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

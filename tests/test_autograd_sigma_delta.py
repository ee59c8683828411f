"""Sigma-delta neuron: integer forward vs the fixed reference; straight-through gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from loihi_slayer.errors import ParameterError
from loihi_slayer.fixed import SigmaDeltaParams
from loihi_slayer.fixed import reference as fixed_ref
from loihi_slayer.neuron import sigma_delta


@settings(max_examples=20, deadline=None)
@given(
    vth=st.integers(0, 300),
    bias=st.integers(-100, 100),
    seed=st.integers(0, 2**31 - 1),
    amp=st.sampled_from([1 << 10, 1 << 20, 1 << 30]),
    cum=st.booleans(),
)
def test_forward_equals_fixed_reference(vth, bias, seed, amp, cum):
    rng = np.random.default_rng(seed)
    a = rng.integers(-amp, amp, size=(2, 3, 30))
    x = torch.tensor(a / 2.0**18, dtype=torch.float64)
    n = sigma_delta.Neuron(vth / 64, F.relu, cum_error=cum)
    n.set_bias(torch.tensor(bias / 64.0))
    y = n(x)
    p = SigmaDeltaParams(v_th_mant=vth, bias=bias, cum_error=cum)
    tr, _ = fixed_ref.sigma_delta(a.reshape(6, 30), p)
    assert np.array_equal(y.numpy().reshape(6, 30) * 4096, tr["s"])
    assert n.device_params == {"type": "SDNN", "activation": "relu", "vThMant": vth}


def test_delta_encoder_matches_reference_and_errors():
    rng = np.random.default_rng(1)
    a = rng.integers(-200, 200, size=(1, 4, 25))
    n = sigma_delta.Neuron(0.5, F.relu)
    y = n.delta(torch.tensor(a / 64.0, dtype=torch.float32))
    tr, _ = fixed_ref.sigma_delta(a.reshape(4, 25), SigmaDeltaParams(v_th_mant=32), mode="delta")
    assert np.array_equal(y.numpy().reshape(4, 25) * 4096, tr["s"])
    tanh = sigma_delta.Neuron(0.5, torch.tanh)  # trains (lava-dl), refused at export
    with pytest.raises(ParameterError, match="activation 'tanh'"):
        _ = tanh.device_params
    with pytest.raises(ParameterError, match="scale"):
        sigma_delta.Neuron(0.5, F.relu, scale=32)
    x = torch.zeros(1, 4, 5, dtype=torch.float64)
    x[0, 0, 0] = float("inf")
    with pytest.raises(ParameterError, match="NaN/inf"):
        n(x)


def _plain_torch(x, theta, bias, tau_grad, scale_grad):
    """lava-dl's float composition (cumsum, relu, delta with STE); float64."""
    sig = torch.cumsum(x, -1)
    act = F.relu(sig + bias.reshape(1, -1, 1))
    steps = x.shape[-1]
    prev = torch.zeros_like(act[..., 0])
    res = torch.zeros_like(prev)
    outs = []
    ds = []
    for t in range(steps):
        d = act[..., t] - prev + res
        keep = (d.abs() >= theta).to(d.dtype)
        out = d * keep
        res = (d - out).detach()
        prev = act[..., t]  # not detached: lava-dl differentiates a[t] - a[t-1]
        y = torch.floor(out.detach() * 2**12) / 2**12
        outs.append(y + d - d.detach())  # straight through to the activation
        ds.append(d.detach())
    return torch.stack(outs, -1), torch.stack(ds, -1)


@pytest.mark.parametrize("backend", ["cpu", "reference", "cuda"])
def test_gradients_equal_plain_pytorch(backend):
    rng = np.random.default_rng(2)
    x0 = torch.tensor(rng.integers(-3000, 4000, size=(2, 3, 20)) / 2.0**18 * 64)
    w = torch.tensor(rng.normal(size=(2, 3, 20)))
    n = sigma_delta.Neuron(
        0.05,
        F.relu,
        tau_grad=0.5,
        scale_grad=2.0,
        requires_grad=True,
        shared_param=False,
        shape=(3,),
        backend=backend,
    )
    n.set_bias(torch.tensor([0.1, -0.2, 0.0]))
    x = x0.clone().requires_grad_(True)
    y = n(x)
    (y * w).sum().backward()
    th = torch.tensor(n.v_th_mant / 64.0)[None]
    b = (n.bias.detach().double() * 64).round() / 64
    xr = x0.clone().requires_grad_(True)
    br = b.clone().requires_grad_(True)
    yr, d = _plain_torch(xr, th.reshape(1, -1), br, 0.5, 2.0)
    (yr * w).sum().backward()
    assert torch.equal(y.detach(), yr.detach())
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(n.bias.grad.double(), br.grad, rtol=1e-5, atol=1e-6)
    # lava-dl threshold gradient, summed per channel
    sub = d.abs() - th.reshape(1, -1, 1)
    gth = (
        torch.where(
            sub > 0, -d * 2.0 * torch.exp(-sub / 0.5) / th.reshape(1, -1, 1), -torch.sign(d)
        )
        * w
    )
    torch.testing.assert_close(
        n.threshold_param.grad.double(), gth.sum(dim=(0, 2)), rtol=1e-4, atol=1e-5
    )

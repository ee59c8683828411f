"""Regression tests of issue 9's bugs: SRM spike on a view; Event tensors with negative or
float coordinates."""

from __future__ import annotations

import numpy as np
import torch

import loihi_slayer.slayer_pytorch as snn
from loihi_slayer.io import Event

NET = {
    "simulation": {"Ts": 1.0, "tSample": 20},
    "neuron": {
        "type": "SRMALPHA",
        "theta": 1.0,
        "tauSr": 2.0,
        "tauRef": 2.0,
        "scaleRef": 2,
        "tauRho": 1,
        "scaleRho": 1,
    },
}


def layer():
    return snn.layer(snn.params(dict=NET)["neuron"], NET["simulation"])


def test_srm_spike_on_view_of_multi_output_base_backward():
    slayer = layer()
    w = torch.full((2, 1, 1, 1, 20), 1.5, requires_grad=True)
    base = w * torch.ones(2, 3, 1, 1, 20)
    u = torch.unbind(base, dim=0)[0].unsqueeze(0)  # a view of a multi-output op
    s = slayer.spike(u)
    assert s.sum() > 0
    s.sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all()


def test_srm_spike_input_saved_for_backward_elsewhere():
    slayer = layer()
    x = torch.full((1, 2, 1, 1, 20), 0.5, requires_grad=True)
    u = torch.exp(x)  # exp saves its output for its own backward
    s = slayer.spike(u)
    (s.sum() + u.sum()).backward()
    assert x.grad is not None
    # the refractory response is still written into u (slayerPytorch semantics)
    assert float(u.detach().min()) < float(np.exp(0.5))


def test_negative_coordinates_are_dropped_not_wrapped():
    ev = Event([1, 2, 3], [0, 1, 2], [0, 0, 1], [0.0, 1.0, 2.0])
    ev.x = ev.x - 3  # augmentation after construction: x = -2, -1, 0
    out = ev.fill_tensor(np.zeros((2, 4, 34, 3), np.float32))
    assert out.sum() == 1.0 and out[1, 2, 0, 2] == 1.0  # only the x = 0 event
    assert out[:, :, 32:].sum() == 0  # x = -2 did not land at x = 32
    ev.y = np.array([-1, 1, 2])
    dense = ev.to_tensor(dim=(2, 4, 34, 3))
    assert dense.sum() == 1.0


def test_float_coordinates_are_rounded_torch_and_numpy():
    ev = Event([0, 0, 0], [0, 0, 0], [0, 0, 0], [0.0, 1.0, 2.0])
    ev.x = np.array([1.4, 2.6, -0.4])  # lava-dl's rotation jitter makes floats
    ev.y = np.array([0.2, 1.5, 2.5])  # half to even: 0, 2, 2
    out = ev.fill_tensor(torch.zeros(1, 4, 4, 3))
    expected = torch.zeros(1, 4, 4, 3)
    expected[0, 0, 1, 0] = expected[0, 2, 3, 1] = expected[0, 2, 0, 2] = 1.0
    assert torch.equal(out, expected)
    assert ev.to_tensor().shape == (1, 3, 4, 3)

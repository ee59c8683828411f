"""``torch.autograd.gradcheck`` where it applies.

The integer neuron forward is piecewise constant (its numerical derivative is
zero), so its surrogate gradients are checked against an independent
plain-PyTorch implementation in ``test_autograd_*``. The differentiable parts
are checked here: the synapses in float64 with quantization off, weight norm,
and the sigma dendrite.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from loihi_slayer import synapse
from loihi_slayer.dendrite import Sigma


def _check(module, shape):
    module = module.double()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda inp: module(inp), (x,), eps=1e-6, atol=1e-6)
    # weight gradient: functional call with the weight as an explicit input
    params = {k: v.detach().clone().requires_grad_(True) for k, v in module.named_parameters()}
    names = sorted(params)

    def f(*ps):
        return torch.func.functional_call(module, dict(zip(names, ps, strict=True)), (x.detach(),))

    assert gradcheck(f, tuple(params[n] for n in names), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: synapse.Dense(6, 4, exact=True), (2, 6, 5)),
        (lambda: synapse.Conv(2, 3, 3, stride=2, padding=1, exact=True), (2, 2, 5, 5, 3)),
        (lambda: synapse.ConvTranspose(2, 3, 2, stride=2, exact=True), (1, 2, 3, 3, 2)),
        (lambda: synapse.Pool(2, exact=True), (1, 3, 4, 4, 2)),
        (lambda: synapse.Unpool(2, exact=True), (1, 3, 2, 2, 2)),
        (lambda: synapse.Dense(6, 4, weight_norm=True, exact=True), (2, 6, 5)),
    ],
    ids=["dense", "conv", "convT", "pool", "unpool", "dense-weight-norm"],
)
def test_synapse_gradcheck(make, shape):
    torch.manual_seed(0)
    _check(make(), shape)


def test_sigma_dendrite_gradcheck():
    x = torch.randn(2, 3, 7, dtype=torch.float64, requires_grad=True)
    assert gradcheck(Sigma(), (x,))

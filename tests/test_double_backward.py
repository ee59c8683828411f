"""``create_graph=True`` through every kernel-backed block: the first-order gradients are
the same bits as without it, and differentiating them through a kernel raises
:class:`~loihi_slayer.errors.DoubleBackwardError` naming the op (before: the CUBA,
recurrent and ALIF-recurrent ops failed at the first backward with PyTorch's "Can't call
numpy() on Tensor that requires grad", and the other families returned gradients that a
second backward silently took as constants). Backward passes made of PyTorch ops (the
spike function, the exact dense products' ``create_graph`` branches) stay differentiable
and give the analytic second derivatives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loihi_slayer.autograd.spike import spike_op, surrogate
from loihi_slayer.block import adrf, adrf_iz, alif, cuba, rf, rf_iz, sigma_delta
from loihi_slayer.errors import DoubleBackwardError
from loihi_slayer.fixed.synapse_fast import INT8_GEMM_ENV, int8_gemm_works
from loihi_slayer.synapse import _int_product as ip

CUBA = {"threshold": 0.5, "current_decay": 0.5, "voltage_decay": 0.5}
SDNN = {"threshold": 0.1, "activation": torch.nn.functional.relu}
ALIF = {
    "threshold": 0.5,
    "threshold_step": 0.1,
    "current_decay": 0.25,
    "voltage_decay": 0.03,
    "threshold_decay": 0.05,
    "refractory_decay": 0.2,
}
RF = {"threshold": 0.1, "period": 8, "decay": 0.1}
ADRF = dict(RF, threshold_step=2 / 64, threshold_decay=0.25, refractory_decay=0.5)

#: block, its input size, the op named in the error (20 outputs or more: above the narrow
#: product, whose ``create_graph`` branch sums in PyTorch's order, see its own tests)
BLOCKS = {
    "cuba.Dense": (lambda: cuba.Dense(CUBA, 24, 20), 24, "loihi_slayer::cuba"),
    "cuba.Dense fused": (
        lambda: cuba.Dense(CUBA, 300, 40, weight_norm=True),
        300,
        "block.cuba.Dense",  # (its one fused node)
    ),
    "cuba.Dense int product": (lambda: cuba.Dense(CUBA, 300, 40), 300, "loihi_slayer::cuba"),
    "cuba.Recurrent": (lambda: cuba.Recurrent(CUBA, 24, 20), 24, "loihi_slayer::cuba_recurrent"),
    "sigma_delta.Dense": (lambda: sigma_delta.Dense(SDNN, 24, 20), 24, "loihi_slayer::sigma_delta"),
    "alif.Dense": (lambda: alif.Dense(ALIF, 24, 20), 24, "AlifOp"),
    "alif.Recurrent": (lambda: alif.Recurrent(ALIF, 24, 20), 24, "loihi_slayer::alif_recurrent"),
    "rf.Dense": (lambda: rf.Dense(RF, 24, 20), 24, "ResonatorFunction"),
    "rf_iz.Dense": (lambda: rf_iz.Dense(RF, 24, 20), 24, "ResonatorFunction"),
    "adrf.Dense": (lambda: adrf.Dense(ADRF, 24, 20), 24, "ResonatorFunction"),
    "adrf_iz.Dense": (lambda: adrf_iz.Dense(ADRF, 24, 20), 24, "ResonatorFunction"),
    "rf.Recurrent": (lambda: rf.Recurrent(RF, 24, 20), 24, "the complex recurrence"),
}


def _spikes(n_in: int, steps: int = 16, batch: int = 4) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    return (torch.rand(batch, n_in, steps, generator=gen) < 0.3).float()


def _first_order(block, x, create_graph: bool):
    """The input's and every trainable parameter's gradient of a fixed weighting of
    the block's output."""
    out = block(x)
    weights = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
    params = [p for p in block.parameters() if p.requires_grad]
    return torch.autograd.grad((out * weights).sum(), [x, *params], create_graph=create_graph)


@pytest.mark.parametrize("name", list(BLOCKS))
def test_create_graph_gives_the_gradients_and_refuses_a_second_backward(monkeypatch, name):
    monkeypatch.setattr(ip, "MIN_WORK", 0)  # the exact products at these sizes
    make, n_in, op = BLOCKS[name]
    torch.manual_seed(0)
    block = make()
    x = _spikes(n_in).requires_grad_(True)
    plain = _first_order(block, x, False)
    graph = _first_order(block, x, True)
    assert len(plain) == len(graph)
    for a, b in zip(plain, graph, strict=True):
        if getattr(block.synapse, "_weight_norm", False):
            # PyTorch's weight-norm backward under create_graph is its differentiable
            # formula: the same gradient in another order
            torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-9)
        else:
            assert torch.equal(a, b)
    assert graph[0].requires_grad  # a graph was asked for: the result is part of one
    fused = type(block(x).grad_fn).__name__ == "FusedDenseBackward"
    assert fused == ("fused" in name)
    # the first refusing node the backward reaches names itself: the neuron's, or the
    # exact product's before it (inside the fused node, the node's own)
    pattern = op if fused else f"{op}|DenseProduct"
    with pytest.raises(DoubleBackwardError, match=pattern) as err:
        torch.autograd.grad(graph[0].square().sum(), x)
    assert "first-order" in str(err.value)
    # the parameters' gradients refuse too (a gradient penalty on the weights)
    with pytest.raises(DoubleBackwardError):
        sum(g.square().sum() for g in graph[1:]).backward()


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_training_after_a_create_graph_backward():
    """``loss.backward(create_graph=True)`` (a habit some scripts keep) leaves usable
    ``.grad`` values: an optimizer step gives the same weights as without it."""
    results = []
    for create_graph in (False, True):
        torch.manual_seed(0)
        block = cuba.Dense(CUBA, 24, 20)
        opt = torch.optim.SGD(block.parameters(), lr=0.1)
        block(_spikes(24)).sum().backward(create_graph=create_graph)
        opt.step()
        results.append([p.detach().clone() for p in block.parameters()])
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("graded", [False, True])
def test_spike_function_is_differentiable_twice(graded):
    """The spike op's backward is PyTorch ops: its second derivative is the surrogate's
    derivative (spec §5.4), computed here by hand."""
    theta, tau, scale = 0.5, 0.2, 1.5
    v = torch.linspace(-1, 2, 301, dtype=torch.float64).reshape(1, 1, 301).requires_grad_(True)
    s = spike_op(v, 0.5, 1.0, theta, tau, scale, graded)[0]
    (g,) = torch.autograd.grad(s.sum(), v, create_graph=True)
    vd = v.detach()
    torch.testing.assert_close(g.detach(), surrogate(vd, theta, tau, scale, graded))
    (gg,) = torch.autograd.grad(g.sum(), v)
    if graded:  # scale · exp(min(v - θ, 0) / τ): slope 1/τ below θ, flat above
        expected = torch.where(vd < theta, surrogate(vd, theta, tau, scale, True) / tau, 0.0)
    else:  # scale / 2τ · exp(-|v - θ| / τ): slope -sign(v - θ) / τ
        expected = -torch.sign(vd - theta) / tau * surrogate(vd, theta, tau, scale, False)
    away = (vd - theta).abs() > 1e-9  # the kink itself: one-sided
    torch.testing.assert_close(gg[away], expected[away])


@pytest.mark.parametrize("int8", ["0", "1"])
@pytest.mark.parametrize("time_major", [False, True])
def test_exact_products_refuse_a_second_backward(monkeypatch, int8, time_major):
    """The int8 GEMM and event products alone (a synapse without a neuron): their weight
    gradient is a kernel (events, or a GEMM of the int8 operand, not of the input), so
    under ``create_graph`` the first-order gradients are the same bits and a gradient of
    them raises (the narrow product, whose ``create_graph`` branch is PyTorch products,
    is differentiable again: see its own tests)."""
    if int8 == "1" and not int8_gemm_works():
        pytest.skip("no exact int8 GEMM here")
    monkeypatch.setattr(ip, "MIN_WORK", 0)
    monkeypatch.setenv(INT8_GEMM_ENV, int8)
    ip._DENSE_SKIPS.clear()
    rng = np.random.default_rng(4)
    w = torch.tensor(rng.integers(-127, 128, (24, 40)) / 64.0, dtype=torch.float32)
    x = torch.tensor(rng.integers(-3, 4, (3, 40, 50)) * (rng.random((3, 40, 50)) < 0.1))
    w1, x1 = w.clone().requires_grad_(True), x.float().requires_grad_(True)
    grads = []
    for create_graph in (False, True):
        z = ip.int_product(x1, w1, time_major=time_major)
        names = ("IntDenseProductBackward", "EventDenseProductBackward")
        assert type(z.grad_fn).__name__ in names
        grads.append(torch.autograd.grad(z.square().sum(), [x1, w1], create_graph=create_graph))
    for a, b in zip(*grads, strict=True):
        assert torch.equal(a, b)
    with pytest.raises(DoubleBackwardError, match="DenseProduct"):
        torch.autograd.grad(grads[1][1].square().sum(), x1)
    ip._DENSE_SKIPS.clear()

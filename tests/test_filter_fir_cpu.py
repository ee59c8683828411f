"""The CPU kernels of ``utils.filter.conv`` (``utils/filter/_fir_cpu.py``): the causal
FIR sum and its input gradient against float64 sums written out here, the events and
the direct sum against each other bit for bit, and the paths that keep ``conv1d``."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loihi_slayer.loss import SpikeTime
from loihi_slayer.utils.filter import _fir_cpu, conv, corr

conv_module = importlib.import_module("loihi_slayer.utils.filter.conv")


def causal_ref(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``y[..., t] = Σ_k h[k] x[..., t - k]`` in float64."""
    x64, h64 = x.astype(np.float64), h.astype(np.float64)
    y = np.zeros_like(x64)
    steps = x.shape[-1]
    for k in range(min(h.size, steps)):
        y[..., k:] += h64[k] * x64[..., : steps - k]
    return y


def adjoint_ref(g: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``gx[..., s] = Σ_k h[k] g[..., s + k]`` in float64."""
    g64, h64 = g.astype(np.float64), h.astype(np.float64)
    gx = np.zeros_like(g64)
    steps = g.shape[-1]
    for k in range(min(h.size, steps)):
        gx[..., : steps - k] += h64[k] * g64[..., k:]
    return gx


def takes_kernels(y: torch.Tensor) -> bool:
    """Whether the graph of ``y`` holds the kernel path's node (behind views)."""
    todo, seen = [y.grad_fn], set()
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__ == "_CausalFIRBackward":
            return True
        todo.extend(f for f, _ in node.next_functions)
    return False


def rows(rng, n, steps, density, spikes=True):
    mask = rng.random((n, steps)) < density
    vals = np.ones((n, steps)) if spikes else rng.normal(size=(n, steps))
    return np.where(mask, vals, 0).astype(np.float32)


def rounding_bound(terms: np.ndarray, taps: int) -> np.ndarray:
    """What float32 sums of ``taps`` terms may be off by, from the sum of the terms'
    magnitudes: one rounding of at most 2^-24 per addition and product."""
    return 2.0 * (taps + 1) * 2.0**-24 * terms


@given(
    n=st.integers(1, 5),
    steps=st.integers(1, 300),
    taps=st.integers(1, 140),
    density=st.sampled_from([0.0, 0.01, 0.05, 0.2, 1.0]),
    spikes=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
@settings(max_examples=60, deadline=None)
def test_events_and_direct_sum_alike_and_match_float64(n, steps, taps, density, spikes, seed):
    """Whatever the row's density, length (shorter than the filter too) and the taps:
    the events (``scatter_max = 1``) and the direct sum (``0``) give the same bits, both
    within float32 rounding of the float64 sum; one thread and two alike."""
    rng = np.random.default_rng(seed)
    x = rows(rng, n, steps, density, spikes)
    h = rng.normal(size=taps).astype(np.float32)
    outs = []
    for scatter_max in (0.0, 1.0):
        for parallel in (False, True):
            out = np.full_like(x, np.nan)
            _fir_cpu.causal_rows(x, h, out, parallel, scatter_max)
            outs.append(out)
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])
    bound = rounding_bound(causal_ref(np.abs(x), np.abs(h)), taps)
    assert np.all(np.abs(outs[0] - causal_ref(x, h)) <= bound)


@given(
    n=st.integers(1, 4),
    steps=st.integers(1, 300),
    taps=st.integers(1, 140),
    seed=st.integers(0, 2**31 - 1),
)
@settings(max_examples=40, deadline=None)
def test_adjoint_matches_float64(n, steps, taps, seed):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(n, steps)).astype(np.float32)
    h = rng.normal(size=taps).astype(np.float32)
    out = np.full_like(g, np.nan)
    _fir_cpu.adjoint_rows(g, h, out)
    serial = np.full_like(g, np.nan)
    _fir_cpu.adjoint_rows(g, h, serial, parallel=False)
    np.testing.assert_array_equal(out, serial)
    bound = rounding_bound(adjoint_ref(np.abs(g), np.abs(h)), taps)
    assert np.all(np.abs(out - adjoint_ref(g, h)) <= bound)


def test_conv_takes_the_kernels_and_its_gradient_is_the_correlation():
    """float32 CPU input: the kernel path (a ``_CausalFIR`` node); the value and the
    input gradient (through ``sampling_time``) as the float64 formulas."""
    rng = np.random.default_rng(1)
    x = torch.tensor(rows(rng, 6, 90, 0.1).reshape(2, 3, 90), requires_grad=True)
    h = rng.normal(size=12).astype(np.float32)
    y = conv(x, torch.tensor(h), 0.5)
    assert takes_kernels(y)
    g = rng.normal(size=y.shape).astype(np.float32)
    y.backward(torch.tensor(g))
    x_np = x.detach().numpy()
    np.testing.assert_allclose(y.detach().numpy(), 0.5 * causal_ref(x_np, h), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), 0.5 * adjoint_ref(g, h), rtol=1e-5, atol=1e-5)
    # corr (the adjoint, through conv of the reversed signal) takes the kernels too
    c = corr(torch.tensor(g), torch.tensor(h))
    np.testing.assert_allclose(c.numpy(), adjoint_ref(g, h), rtol=1e-5, atol=1e-5)


def test_conv_forward_as_conv1d_and_gradient_close(monkeypatch):
    """The kernels' forward sums as the depthwise ``conv1d`` they replace (oldest input
    first); the gradient within float32 rounding of it."""
    rng = np.random.default_rng(2)
    h = torch.tensor(rng.random(100).astype(np.float32))
    x_np = rows(rng, 20, 500, 0.08)
    results = {}
    for fast in (True, False):
        monkeypatch.setattr(conv_module, "FAST", fast)
        x = torch.tensor(x_np, requires_grad=True)
        y = conv(x, h)
        y.backward(torch.ones_like(y))
        results[fast] = (y.detach(), x.grad)
    np.testing.assert_allclose(results[True][0], results[False][0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(results[True][1], results[False][1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda x, h: (x.double(), h),  # float64: conv1d
        lambda x, h: (x, torch.tensor([1.0, float("inf"), 0.5])),  # a non-finite filter
    ],
)
def test_other_inputs_keep_conv1d(make):
    x, h = make(torch.zeros(2, 8), torch.tensor([1.0, 0.5, 0.25]))
    x = x.clone().requires_grad_(True)
    y = conv(x, h)
    assert not takes_kernels(y)


def test_non_finite_input_propagates_as_conv1d(monkeypatch):
    """A NaN or inf input value reaches the outputs of its window, as with ``conv1d``."""
    x = torch.zeros(1, 10)
    x[0, 3] = float("nan")
    x[0, 6] = float("inf")
    h = torch.tensor([1.0, 0.5, 0.25])
    fast = conv(x, h)
    monkeypatch.setattr(conv_module, "FAST", False)
    slow = conv(x, h)
    np.testing.assert_array_equal(fast.isnan().numpy(), slow.isnan().numpy())
    np.testing.assert_array_equal(fast.isinf().numpy(), slow.isinf().numpy())


def test_double_backward_through_the_kernel_path(monkeypatch):
    """``create_graph``: the gradient of the gradient, as with the ``conv1d`` path."""
    rng = np.random.default_rng(4)
    h = torch.tensor(rng.random(5).astype(np.float32))
    x_np = rng.normal(size=(2, 30)).astype(np.float32)
    grads = []
    for fast in (True, False):
        monkeypatch.setattr(conv_module, "FAST", fast)
        x = torch.tensor(x_np, requires_grad=True)
        y = conv(x, h)
        assert takes_kernels(y) == fast
        (g,) = torch.autograd.grad((y**2).sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad(g.sum(), x)
        grads.append(gg)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-5)


def test_spike_time_loss_on_the_kernels_as_on_conv1d(monkeypatch):
    """The Oxford example's loss (100 taps, order 2) on sparse spikes: value and gradient
    as with ``conv1d``."""
    rng = np.random.default_rng(6)
    out = rows(rng, 40, 400, 0.08).reshape(1, 40, 400)
    tgt = torch.tensor(rows(rng, 40, 400, 0.03).reshape(1, 40, 400))
    loss = SpikeTime(time_constant=2, length=100, filter_order=2)
    res = {}
    for fast in (True, False):
        monkeypatch.setattr(conv_module, "FAST", fast)
        x = torch.tensor(out, requires_grad=True)
        value = loss(x, tgt)
        value.backward()
        res[fast] = (value.item(), x.grad)
    assert res[True][0] == pytest.approx(res[False][0], rel=1e-6)
    np.testing.assert_allclose(res[True][1], res[False][1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_squared_error_as_mse_loss(reduction):
    """SpikeTime's MSE node (kept memory) against ``F.mse_loss``: the loss, both inputs'
    gradients, and the gradient of a gradient."""
    import torch.nn.functional as F

    from loihi_slayer.loss import _squared_error as squared_error

    rng = np.random.default_rng(7)
    a_np, b_np = (rng.normal(size=(2, 30, 50)).astype(np.float32) for _ in range(2))
    res = []
    for fn in (squared_error, lambda a, b, r: F.mse_loss(a.flatten(), b.flatten(), reduction=r)):
        a = torch.tensor(a_np, requires_grad=True)
        b = torch.tensor(b_np, requires_grad=True)
        loss = fn(a, b, reduction)
        (ga, gb) = torch.autograd.grad(loss, (a, b), create_graph=True)
        (gga,) = torch.autograd.grad((ga * ga).sum(), a)
        loss2 = fn(a, b.detach(), reduction)
        loss2.backward()
        res.append((loss.item(), ga.detach(), gb.detach(), gga, a.grad))
    assert res[0][0] == pytest.approx(res[1][0], rel=1e-6)
    for x, y in zip(res[0][1:], res[1][1:], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-9)

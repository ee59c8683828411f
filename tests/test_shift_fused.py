"""The block's one-step delay shift inside the CUBA kernels (``cuba_apply(shift=True)``).

A CUBA block with ``delay_shift`` hands its synapse output to
``neuron.cuba.Neuron.shifted_forward``: the forward kernel writes the spikes one step
later and the backward reads their gradient one step on (``lag``). Expected values: the
block's unfused path (the neuron module, then ``spike.shift``), which must agree bit for
bit in the outputs and in every gradient, with the kernels chosen by each configuration
(the fast backward, the general one for refractory steps and decay gradients, the
batch-mean norm's two passes, float64, the reference and CUDA backends); the fallbacks
by spying on which path ran.
"""

from __future__ import annotations

import pytest
import torch
from helpers import cuda_available, spy

import loihi_slayer.block.core as block_core
from loihi_slayer import spike
from loihi_slayer.block import cuba
from loihi_slayer.block.dense import _SynapseBlock
from loihi_slayer.neuron import cuba as neuron_cuba
from loihi_slayer.neuron.dropout import Dropout
from loihi_slayer.neuron.norm import MeanOnlyBatchNorm

PARAMS = {"threshold": 0.4, "current_decay": 0.25, "voltage_decay": 0.03}


def _unfused(monkeypatch) -> None:
    monkeypatch.setattr(_SynapseBlock, "_shifted_neuron_forward", lambda self, z: None)


def _run(make, x: torch.Tensor, calls: int = 1) -> dict[str, torch.Tensor]:
    """Outputs of ``calls`` forward calls and the gradients of a weighted loss."""
    torch.manual_seed(0)
    blk = make()
    xx = x.clone().requires_grad_(x.is_floating_point())
    outs = [blk(xx) for _ in range(calls)]
    outs = [o[0] if isinstance(o, tuple) else o for o in outs]
    g = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)
    loss.backward()
    res = {f"out {i}": o.detach() for i, o in enumerate(outs)}
    res["grad x"] = xx.grad
    for name, p in blk.named_parameters():
        res[f"grad {name}"] = p.grad
    for name, b in blk.named_buffers():
        res[f"buffer {name}"] = b.detach().clone()
    return res


def _fused_equals_unfused(monkeypatch, make, x, calls=1) -> dict:
    taken = spy(monkeypatch, neuron_cuba.Neuron, "shifted_forward")
    shifts = spy(monkeypatch, spike, "shift")
    fused = _run(make, x, calls)
    assert len(taken) == calls and not shifts  # the fused path ran, no separate shift
    with monkeypatch.context() as m:
        _unfused(m)
        unfused = _run(make, x, calls)
    assert fused.keys() == unfused.keys()
    for k, v in unfused.items():
        assert (v is None) == (fused[k] is None), k
        if v is not None:
            assert torch.equal(fused[k], v), k
    assert float(unfused["out 0"].abs().sum()) > 0
    assert torch.all(unfused["out 0"][..., 0] == 0)
    return unfused


def _dense(**kw):
    params = {**PARAMS, **kw.pop("neuron", {})}
    return lambda: cuba.Dense(params, 12, 20, **kw)


def _spikes(*shape, p=0.4, dtype=torch.float32):
    g = torch.Generator().manual_seed(2)
    return (torch.rand(*shape, generator=g) < p).to(dtype)


@pytest.mark.parametrize(
    "neuron",
    [
        {},  # the fast backward
        {"graded_spike": True},
        {"ref_delay": 3},  # refractory steps: the general backward
        {"requires_grad": True, "shared_param": False},  # decay gradients: general backward
        {"norm": MeanOnlyBatchNorm},  # batch mean: two forward and two backward passes
    ],
    ids=["fast", "graded", "refractory", "decay-grads", "norm"],
)
def test_dense_block_fused_equals_unfused(monkeypatch, neuron):
    res = _fused_equals_unfused(monkeypatch, _dense(neuron=neuron), _spikes(3, 12, 41))
    assert float(res["grad x"].abs().sum()) > 0


def test_float64_count_log_and_axonal_delay(monkeypatch):
    def make():
        blk = cuba.Dense(PARAMS, 12, 20, delay=True, count_log=True).double()
        with torch.no_grad():
            blk.delay.delay.copy_(torch.linspace(0, 3, 20, dtype=torch.float64))
        return blk

    _fused_equals_unfused(monkeypatch, make, _spikes(3, 12, 41, dtype=torch.float64))


def test_persistent_state_across_calls(monkeypatch):
    res = _fused_equals_unfused(
        monkeypatch, _dense(neuron={"persistent_state": True}), _spikes(2, 12, 30), calls=2
    )
    assert not torch.equal(res["out 0"], res["out 1"])  # the state carried over


def test_conv_and_pool_blocks_with_gradients(monkeypatch):
    x = _spikes(2, 2, 8, 8, 25)
    _fused_equals_unfused(monkeypatch, lambda: cuba.Conv(PARAMS, 2, 4, 3, padding=1), x)
    # a pool block whose input needs a gradient skips the pool kernel, not the fused shift
    _fused_equals_unfused(monkeypatch, lambda: cuba.Pool(PARAMS, 2), x)


def test_no_gradient(monkeypatch):
    blk = _dense()()
    x = _spikes(3, 12, 41)
    with torch.no_grad():
        fused = blk(x)
        _unfused(monkeypatch)
        assert torch.equal(fused, blk(x))


@pytest.mark.parametrize(
    "backend",
    [
        "reference",
        pytest.param(
            "cuda", marks=pytest.mark.skipif(not cuda_available(), reason="no numba.cuda")
        ),
    ],
)
def test_other_backends_shift_outside_the_kernels(monkeypatch, backend):
    _fused_equals_unfused(monkeypatch, _dense(neuron={"backend": backend}), _spikes(2, 12, 20))


class _OwnForward(neuron_cuba.Neuron):
    def forward(self, x):
        return super().forward(x) * 1.0


@pytest.mark.parametrize(
    "setup",
    [
        "dropout",
        "neuron hook",
        "neuron pre-hook",
        "neuron backward hook",
        "global hook",
        "global backward hook",
        "subclass",
        "no shift",
    ],
)
def test_falls_back_to_the_unfused_path(monkeypatch, setup):
    torch.manual_seed(0)
    blk = cuba.Dense(PARAMS, 12, 20, delay_shift=setup != "no shift")
    seen = []
    handle = None
    if setup == "dropout":
        blk.neuron.drop = Dropout(p=0.0)
    elif setup == "neuron hook":
        handle = blk.neuron.register_forward_hook(lambda m, i, o: seen.append(o))
    elif setup == "neuron pre-hook":
        handle = blk.neuron.register_forward_pre_hook(lambda m, i: seen.append(i))
    elif setup == "neuron backward hook":
        handle = blk.neuron.register_full_backward_hook(lambda m, gi, go: seen.append(go))
    elif setup == "global hook":
        handle = torch.nn.modules.module.register_module_forward_hook(
            lambda m, i, o: seen.append(o)
        )
    elif setup == "global backward hook":
        handle = torch.nn.modules.module.register_module_full_backward_hook(
            lambda m, gi, go: seen.append(go)
        )
    elif setup == "subclass":
        blk.neuron.__class__ = _OwnForward
    fused = spy(monkeypatch, block_core, "shift")
    x = _spikes(2, 12, 20).requires_grad_(True)
    try:
        out = blk(x)
        out.sum().backward()
    finally:
        if handle is not None:
            handle.remove()
    want_shift = setup != "no shift"
    assert len(fused) == int(want_shift)  # the unfused path's spike.shift ran
    if setup.endswith("hook"):
        assert seen  # the hook saw the call
    if want_shift:
        assert torch.all(out[..., 0] == 0)


@pytest.mark.parametrize("time_major", [False, True])
def test_shift_keeps_its_memory_across_steps(time_major):
    """``spike.shift`` on CPU writes its output and its gradient into memory kept across
    steps (freed results are handed out again, in ``x``'s layout), with the values of a
    plain shift; a result still held gets new memory."""
    g = torch.Generator().manual_seed(0)

    def make():
        if time_major:  # a time-last view of time-major memory
            return torch.rand(7, 2, 5, generator=g).permute(1, 2, 0).requires_grad_(True)
        return torch.rand(2, 5, 7, generator=g).requires_grad_(True)

    ptrs, grad_ptrs = [], []
    for _ in range(3):
        x = make()
        y = spike.shift(x)
        assert y.stride() == x.stride()
        assert torch.equal(y[..., 0], torch.zeros(2, 5)) and torch.equal(y[..., 1:], x[..., :-1])
        up = torch.rand(y.shape, generator=g)
        (gx,) = torch.autograd.grad(y, x, up)
        assert gx.stride() == x.stride()
        assert torch.equal(gx[..., :-1], up[..., 1:]) and torch.equal(
            gx[..., -1], torch.zeros(2, 5)
        )
        ptrs.append(y.untyped_storage().data_ptr())
        grad_ptrs.append(gx.untyped_storage().data_ptr())
        del y, gx
    assert len(set(ptrs)) == 1 and len(set(grad_ptrs)) == 1
    held = spike.shift(make())
    again = spike.shift(make())
    assert held.untyped_storage().data_ptr() != again.untyped_storage().data_ptr()

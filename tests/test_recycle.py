"""``loihi_slayer._recycle``: memory handed out again only when nothing can still see it."""

from __future__ import annotations

import copy
import gc
import io
import pickle

import numpy as np
import pytest
import torch

from loihi_slayer import _recycle
from loihi_slayer._recycle import Recycled, recycled_for
from loihi_slayer.block import cuba as block_cuba
from loihi_slayer.fixed.synapse_fast import INT8_GEMM_ENV

SHAPE = (64, 100)
PARAMS = {"threshold": 0.5, "current_decay": 0.25, "voltage_decay": 0.03}


def _ptr(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def test_dropped_tensor_memory_is_handed_out_again():
    rec = Recycled()
    a = rec.empty(SHAPE, torch.float32)
    ptr = _ptr(a)
    del a
    b = rec.empty(SHAPE, torch.float32)
    assert _ptr(b) == ptr and b.shape == SHAPE and b.is_contiguous()
    assert b.dtype == torch.float32 and not b.requires_grad
    del b
    c = rec.empty((100, 64), torch.int32)  # same bytes, another shape and dtype
    assert _ptr(c) == ptr and c.shape == (100, 64) and c.dtype == torch.int32


def test_switched_off_nothing_is_kept(monkeypatch):
    """``_recycle.ENABLED = False`` (the benchmarks' fresh-memory side): every call is
    new memory and nothing is kept."""
    rec = Recycled()
    monkeypatch.setattr(_recycle, "ENABLED", False)
    a = rec.empty(SHAPE, torch.float32)
    assert a.shape == SHAPE and rec.kept == ()
    monkeypatch.setattr(_recycle, "ENABLED", True)
    b = rec.empty(SHAPE, torch.float32)
    assert len(rec.kept) == 1 and rec.kept[0].data_ptr() == _ptr(b)


def test_released_memory_is_not_handed_out_again():
    """After ``release`` the next tensor gets new memory (kept from then on), and a tensor
    handed out before keeps its values (its memory is freed with its last holder)."""
    rec = Recycled()
    a = rec.empty(SHAPE, torch.float32)
    a.fill_(3.0)
    rec.release()
    assert rec.kept == ()  # nothing kept: a's memory goes with a
    b = rec.empty(SHAPE, torch.float32)
    assert _ptr(b) != _ptr(a)
    b.fill_(4.0)
    assert torch.all(a == 3.0)
    ptr = _ptr(b)
    del a, b
    c = rec.empty(SHAPE, torch.float32)
    assert _ptr(c) == ptr or _recycle._use_count is None


@pytest.mark.parametrize(
    "holder",
    [
        lambda t: t,  # the tensor itself
        lambda t: t[3:, ::2],  # a view
        lambda t: t.reshape(-1),  # a reshaped view
        lambda t: t.numpy(),  # a NumPy array on the memory
        lambda t: (t.requires_grad_(True) * 2).grad_fn,  # saved for backward
    ],
    ids=["tensor", "view", "reshape", "numpy", "autograd"],
)
def test_memory_in_use_is_never_handed_out(holder):
    rec = Recycled()
    a = rec.empty(SHAPE, torch.float32)
    a.fill_(7.0)
    keep = holder(a)
    before = a.detach().clone()
    ptr = _ptr(a)
    del a
    b = rec.empty(SHAPE, torch.float32)
    assert _ptr(b) != ptr
    b.fill_(-1.0)
    assert torch.equal(before, torch.full(SHAPE, 7.0))
    if isinstance(keep, torch.Tensor | np.ndarray):
        assert float(keep.max()) == 7.0  # what the holder sees is untouched
    ptr_b = _ptr(b)  # the memory kept now
    del keep, b
    gc.collect()
    assert _ptr(rec.empty(SHAPE, torch.float32)) == ptr_b  # free again once all are gone


def test_another_size_gets_new_memory():
    rec = Recycled()
    a = rec.empty(SHAPE, torch.float32)
    ptr = _ptr(a)
    del a
    b = rec.empty((65, 100), torch.float32)
    assert _ptr(b) != ptr and b.shape == (65, 100)


def test_without_the_use_count_nothing_is_reused(monkeypatch):
    monkeypatch.setattr(_recycle, "_use_count", None)
    rec = Recycled()
    a = rec.empty(SHAPE, torch.float32)
    assert rec.kept == ()
    del a
    assert rec.empty(SHAPE, torch.float32).shape == SHAPE


def test_one_recycled_per_owner_and_role_living_with_the_owner():
    class Owner:
        pass

    o = Owner()
    r = recycled_for(o, "spikes")
    assert recycled_for(o, "spikes") is r
    assert recycled_for(o, "other") is not r
    assert recycled_for(Owner(), "spikes") is not r
    n_before = len(_recycle._OWNED)
    del o
    gc.collect()
    assert len(_recycle._OWNED) < n_before


def _pool_block() -> block_cuba.Pool:
    return block_cuba.Pool(
        {"threshold": 0.5, "current_decay": 0.25, "voltage_decay": 0.03}, 2, delay_shift=True
    )


def test_pool_block_outputs_kept_by_the_caller_stay_as_they_were():
    """The fused pool path writes its spikes into recycled memory: an output the caller
    still holds is never overwritten by the next call."""
    torch.manual_seed(0)
    blk = _pool_block()
    xs = [(torch.rand(4, 2, 8, 8, 30) < 0.3).float() for _ in range(3)]
    with torch.no_grad():
        want = [blk(x).clone() for x in xs]
        kept = blk(xs[0])
        ptr = _ptr(kept)
        others = [blk(x) for x in xs[1:]]
        assert all(_ptr(o) != ptr for o in others)
        assert torch.equal(kept, want[0])
        assert all(torch.equal(o, w) for o, w in zip(others, want[1:], strict=True))
        last = _ptr(others[-1])  # the memory the block keeps
        del kept, others
        again = blk(xs[0])
    assert torch.equal(again, want[0])
    assert _ptr(again) == last  # the fused path did recycle


def test_pool_block_still_copies_pickles_and_saves():
    blk = _pool_block()
    with torch.no_grad():
        blk((torch.rand(2, 2, 4, 4, 5) < 0.5).float())
    copy.deepcopy(blk)
    pickle.loads(pickle.dumps(blk))
    torch.save(blk, io.BytesIO())


def test_each_dense_synapse_keeps_its_weight_gradient_operand(monkeypatch):
    """Two int8-path dense layers of different sizes: each keeps its own float operand
    memory from step to step (one shared buffer would change size at every call)."""
    monkeypatch.setenv(INT8_GEMM_ENV, "on")  # the int8 path on any CPU
    torch.manual_seed(0)
    net = torch.nn.Sequential(block_cuba.Dense(PARAMS, 96, 80), block_cuba.Dense(PARAMS, 80, 72))
    x = (torch.rand(8, 96, 100) < 0.3).float()
    ptrs = []
    for _ in range(3):
        net.zero_grad()
        net(x).sum().backward()
        kept = [_recycle._OWNED[blk.synapse]["weight-gradient operand"].kept[-1] for blk in net]
        ptrs.append([st.data_ptr() for st in kept])
        assert [st.nbytes() for st in kept] == [96 * 800 * 4, 80 * 800 * 4]
    assert ptrs[0] == ptrs[1] == ptrs[2] and ptrs[0][0] != ptrs[0][1]


def test_keep_holds_one_storage_per_caller_up_to_its_limit():
    """``keep = 2``: two tensors alive at once each keep their memory for the next step;
    a third caller's memory evicts the oldest; ``keep < 1`` is refused."""
    rec = Recycled(keep=2)
    a, b = rec.empty(SHAPE, torch.float32), rec.empty(SHAPE, torch.float32)
    pa, pb = _ptr(a), _ptr(b)
    assert pa != pb and len(rec.kept) == 2
    del a, b
    a, b = rec.empty(SHAPE, torch.float32), rec.empty(SHAPE, torch.float32)
    assert {_ptr(a), _ptr(b)} == {pa, pb}
    c = rec.empty(SHAPE, torch.float32)  # both kept ones in use: new memory
    assert _ptr(c) not in (pa, pb)
    assert [st.data_ptr() for st in rec.kept] == [_ptr(b), _ptr(c)]
    a.fill_(1.0)  # the evicted memory still belongs to the tensor that has it
    assert bool((a == 1.0).all())
    with pytest.raises(ValueError, match="keep = 0"):
        Recycled(keep=0)


def test_release_kept_memory_drops_every_kept_storage():
    """``loihi_slayer.release_kept_memory`` empties every Recycled (module-level and per
    owner) and reports the bytes they kept; a tensor still held keeps its values."""
    import loihi_slayer

    a, b = Recycled(), Recycled(keep=2)
    x = a.empty(SHAPE, torch.float32)
    x.fill_(2.0)
    y, z = b.empty(SHAPE, torch.int32), b.empty((3,), torch.float64)
    del y, z
    owner = torch.nn.Linear(2, 2)
    recycled_for(owner, "role").empty(SHAPE, torch.float32)
    freed = loihi_slayer.release_kept_memory()
    assert freed >= 2 * 64 * 100 * 4 + 64 * 100 * 4 + 3 * 8
    assert a.kept == () and b.kept == () and recycled_for(owner, "role").kept == ()
    assert bool((x == 2.0).all())
    assert loihi_slayer.release_kept_memory() == 0
    assert "release_kept_memory" in dir(loihi_slayer)


#: block families whose training step writes its whole-sequence arrays into kept memory
_FAMILY_PARAMS = {
    "cuba": PARAMS,
    "alif": dict(PARAMS, threshold_step=0.1, threshold_decay=0.1, refractory_decay=0.2),
    "rf": {"threshold": 0.5, "period": 10, "decay": 0.1},
    "adrf_iz": {
        "threshold": 0.5,
        "period": 10,
        "decay": 0.1,
        "threshold_step": 0.1,
        "threshold_decay": 0.1,
        "refractory_decay": 0.2,
    },
}


@pytest.mark.parametrize("family", sorted(_FAMILY_PARAMS))
def test_training_steps_keep_memory_and_never_overwrite_what_the_caller_holds(family):
    """A Dense block's training step writes its whole-sequence arrays (the event
    product's output and gradient rows, the neuron's integer input and traces, float
    traces, spikes, input gradients) into memory kept across steps: from the second
    step on no role hands out new memory; outputs and gradients the caller still holds
    from earlier steps keep their values; every step's outputs and gradients equal,
    bit for bit, those of the same steps run in fresh memory."""
    import importlib

    mod = importlib.import_module(f"loihi_slayer.block.{family}")
    gen = torch.Generator().manual_seed(3)
    # 160 -> 160 at batch 4, T = 50, 15 % spikes: the event product's path
    xs = [(torch.rand(4, 160, 50, generator=gen) < 0.15).float() for _ in range(4)]
    ws = [torch.randn(4, 160, 50, generator=gen) for _ in range(4)]

    def run(fresh: bool, hold: bool):
        torch.manual_seed(0)
        blk = mod.Dense(_FAMILY_PARAMS[family], 160, 160, weight_scale=2)
        held, kept = [], []
        for x, w in zip(xs, ws, strict=True):
            if fresh:
                _recycle.release_kept_memory()
            blk.zero_grad(set_to_none=True)
            xg = x.clone().requires_grad_()
            y = blk(xg)
            (y * w).sum().backward()
            grads = [p.grad for p in blk.parameters() if p.grad is not None]
            out = (y.detach(), xg.grad, *grads)
            held.append(out if hold else tuple(t.clone() for t in out))
            del y, xg, grads, out
            kept.append({r: [st.data_ptr() for st in p.kept] for r, p in _recycle._ROLES.items()})
        return held, kept

    want, _ = run(fresh=True, hold=False)
    got, kept = run(fresh=False, hold=False)
    assert kept[2] == kept[3]  # no role handed out new memory in the last step
    assert any(kept[3].values())
    holding, _ = run(fresh=False, hold=True)  # each step's outputs still held
    for step_got, step_held, step_want in zip(got, holding, want, strict=True):
        assert step_want[0].abs().sum() > 0  # the block spiked
        for a, b, c in zip(step_got, step_held, step_want, strict=True):
            assert torch.equal(a, c) and torch.equal(b, c)

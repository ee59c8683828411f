"""``fixed.workers``: the emulator's kernels shared among plain worker threads.

Expected values: the shares' arithmetic from their definition, and the NumPy reference
kernels (``backend='reference'``) for the integer synapses run in shares."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loihi_slayer import fixed
from loihi_slayer.fixed import cpu, synapse_fast, workers


@given(n=st.integers(0, 10_000), count=st.integers(1, 40))
def test_shares_cover_the_range_once_in_order_and_evenly(n, count):
    parts = workers.shares(n, count)
    assert len(parts) == count
    assert parts[0][0] == 0 and parts[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
    sizes = [hi - lo for lo, hi in parts]
    assert min(sizes) >= 0 and max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_run_shared_shares_only_enough_work(count, monkeypatch):
    """At least PARALLEL_MIN_WORK: ``min(workers, units)`` shares on distinct threads
    (the caller's among them); less: one call of every unit; no units: no call."""
    monkeypatch.setattr(workers, "TILE_WORKERS", count)
    calls: list[tuple[str, int, int, int]] = []
    lock = threading.Lock()
    gate = threading.Barrier(min(count, 5))  # every share runs at once: distinct threads

    def kernel(tag, lo, hi):
        if min(count, 5) > 1 and tag == "big":
            gate.wait(timeout=30)
        with lock:
            calls.append((tag, lo, hi, threading.get_ident()))

    workers.run_shared(kernel, 5, workers.PARALLEL_MIN_WORK, "big")
    big = sorted(c for c in calls if c[0] == "big")
    assert [(lo, hi) for _, lo, hi, _ in big] == workers.shares(5, min(count, 5))
    assert len({c[3] for c in big}) == len(big)
    assert threading.get_ident() in {c[3] for c in big}
    calls.clear()
    workers.run_shared(kernel, 5, workers.PARALLEL_MIN_WORK - 1, "small")
    assert [(c[1], c[2]) for c in calls] == [(0, 5)]
    calls.clear()
    workers.run_shared(kernel, 0, workers.PARALLEL_MIN_WORK, "none")
    assert calls == []


@pytest.mark.parametrize("pool", [True, False])
@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("graded", [False, True])
def test_integer_synapse_kernels_in_shares_give_the_reference_sums(
    count, graded, pool, monkeypatch
):
    """``fixed.dense``, ``conv2d`` and ``conv_transpose2d`` (``backend='cpu'``, the
    integer kernels) shared among 1 and 3 workers (every call shared: the work limit
    lowered to 1; uneven splits of the jobs), on the pool (``on_pool``) or as their
    ``prange`` forms: the NumPy reference's sums; the emulator's integer fallbacks
    (``synapse_fast._dense_integer``, ``_conv_integer``) too."""
    monkeypatch.setattr(workers, "TILE_WORKERS", count)
    monkeypatch.setattr(workers, "PARALLEL_MIN_WORK", 1)
    shared: list[int] = []
    real = workers.in_workers
    monkeypatch.setattr(workers, "in_workers", lambda f, k: (shared.append(k), real(f, k)))
    ranged: list[int] = []
    for kern, par in list(cpu.PARALLEL.items()):
        spy = (lambda p: lambda *a: (ranged.append(len(a[-1])), p(*a)))(par)
        monkeypatch.setitem(cpu.PARALLEL, kern, spy)
    with workers.on_pool() if pool else contextlib.nullcontext():
        _integer_synapses(count, graded)
    if pool or count == 1:
        assert shared == [count] * 5 and ranged == []
    else:
        assert shared == [] and ranged == [count] * 5


def _integer_synapses(count, graded):
    rng = np.random.default_rng(count + 2 * graded)
    steps = 40

    def stream(shape):
        if graded:
            return rng.integers(-3000, 3000, shape) * (rng.random(shape) < 0.3)
        return (rng.random(shape) < 0.3).astype(np.int8)

    x = stream((2, 70, steps))
    w = rng.integers(-64, 64, (50, 70)) * 2  # 8-bit mixed-sign weights: even (quantized)
    kw = dict(weight_exp=-2, graded=graded, latency=1)
    ref = fixed.dense(x, w, backend="reference", **kw)
    np.testing.assert_array_equal(fixed.dense(x, w, backend="cpu", **kw), ref)
    got = synapse_fast._dense_integer(np.ascontiguousarray(x[0]), w, -2, graded, 1)
    np.testing.assert_array_equal(got, ref[0])

    xc = stream((4, 12, 13, steps))
    wc = rng.integers(-64, 64, (10, 2, 3, 3)) * 2
    geo = dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2, **kw)
    ref = fixed.conv2d(xc, wc, backend="reference", **geo)
    assert count == 1 or ref.shape[0] % count != 0  # uneven shares
    np.testing.assert_array_equal(fixed.conv2d(xc, wc, backend="cpu", **geo), ref)
    out_hw = ref.shape[1:3]
    got = synapse_fast._conv_integer(
        xc, wc, (2, 1), (1, 0), (1, 2), 2, -2, graded, 1, out_hw, False
    )
    np.testing.assert_array_equal(got, ref)

    wt = rng.integers(-64, 64, (4, 5, 3, 3)) * 2
    geo = dict(stride=(2, 2), padding=(1, 1), groups=2, **kw)
    ref = fixed.conv_transpose2d(xc, wt, backend="reference", **geo)
    np.testing.assert_array_equal(fixed.conv_transpose2d(xc, wt, backend="cpu", **geo), ref)


def test_tile_workers_follow_the_users_torch_thread_count(monkeypatch):
    """On 8 CPUs: torch's count caps the workers (``set_num_threads(3)``: 3), the
    emulator's own single-threaded GEMM block (``torch_threads(1)``) does not, and
    ``TILE_WORKERS`` overrides both; at most MAX_TILE_WORKERS."""
    import os

    import torch

    from loihi_slayer._threads import torch_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(workers, "TILE_WORKERS", None)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        assert workers.tile_workers() == 3
        with torch_threads(1):
            assert workers.tile_workers() == 3
        torch.set_num_threads(16)
        assert workers.tile_workers() == min(8, workers.MAX_TILE_WORKERS)
        monkeypatch.setattr(workers, "TILE_WORKERS", 5)
        assert workers.tile_workers() == 5
    finally:
        torch.set_num_threads(before)

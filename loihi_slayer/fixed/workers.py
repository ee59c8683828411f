"""The threads that share the emulator's CPU kernels: plain threads that sleep when idle.

In an emulator run (:func:`on_pool`) every parallel CPU kernel of
:mod:`loihi_slayer.fixed` (the synapses' tiles and rows, the neuron kernels' lane
blocks, the widening of recorded traces) runs its shares on one pool of threads,
:func:`in_workers`: each share is a call of a ``nogil`` kernel, so the shares run side
by side, and a worker with nothing to do sleeps on a queue.

Not numba's ``prange`` there: its parallel regions run on the OpenMP runtime that
PyTorch loaded, whose threads, unless ``OMP_WAIT_POLICY=PASSIVE`` was in the environment
before ``import torch`` (:mod:`loihi_slayer._threads` sets it only when ``loihi_slayer``
is imported first), spin for milliseconds after every region (GNU OpenMP's default spin
count). Beside these workers, on a machine with as many threads as cores, a spinning
OpenMP thread holds a core while the shares wait for it: measured on 2 cores with
``import torch`` first, a PilotNet SDNN emulator run's two synapse shares ran one after
the other after each layer's neurons (a parallel region), and two workers took 1.06x the
time of one; with the neurons on these workers as well, nothing spins. The converse
holds beside torch's own ops (a training forward calling ``fixed.run``): there the
kernels run as ``prange`` regions on torch's OpenMP threads (:func:`run_shared`'s
``parallel`` form).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from .._threads import follow_torch_threads, user_torch_threads

__all__ = [
    "MAX_TILE_WORKERS",
    "PARALLEL_MIN_WORK",
    "TILE_WORKERS",
    "in_workers",
    "on_pool",
    "run_shared",
    "shares",
    "tile_workers",
]

#: threads that share a kernel's work (None: the CPUs this process may run on, at most
#: :data:`MAX_TILE_WORKERS`); see :func:`tile_workers`
TILE_WORKERS: int | None = None
MAX_TILE_WORKERS = 8
#: below this much work (neuron-steps, output values) a kernel runs in one share: waking
#: a worker costs more than it saves on small work (the training kernels' parallel
#: regions follow the same limit)
PARALLEL_MIN_WORK = 1 << 16

_POOL: dict[int, ThreadPoolExecutor] = {}
#: per thread: whether :func:`run_shared` runs its shares on the pool (:func:`on_pool`)
_LOCAL = threading.local()


def tile_workers() -> int:
    """Threads for a kernel's shares: :data:`TILE_WORKERS`, else the CPUs available to
    this process, at most :data:`MAX_TILE_WORKERS` and at most torch's thread count
    where torch is imported (a ``torch.set_num_threads(1)`` keeps the emulator on one
    thread too, as the training kernels; the emulator's own single-threaded GEMMs do
    not count: :func:`loihi_slayer._threads.user_torch_threads`)."""
    if TILE_WORKERS is not None:
        return max(1, int(TILE_WORKERS))
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    torch_count = user_torch_threads()
    if torch_count is not None:
        cpus = min(cpus, torch_count)
    return max(1, min(cpus, MAX_TILE_WORKERS))


def pool() -> ThreadPoolExecutor:
    """The worker threads, created on first use in each process (a forked child, e.g. a
    DataLoader worker, does not inherit the parent's threads). An idle worker sleeps
    on a queue: no spinning when other processes want the CPU, unlike a parallel
    region's team."""
    pid = os.getpid()
    executor = _POOL.get(pid)
    if executor is None:
        _POOL.clear()
        executor = _POOL[pid] = ThreadPoolExecutor(
            MAX_TILE_WORKERS, thread_name_prefix="loihi_slayer-tiles"
        )
    return executor


def in_workers(work: Callable[[int], object], workers: int) -> None:
    """``work(k)`` for ``k < workers``: ``work(0)`` in the calling thread, the others on
    the worker threads; returns when all are done (also when one fails), raising the
    first exception (the calling thread's first).

    The calling thread would otherwise only wait while its share waits for a worker to
    wake up (about 45 us here for a call with nothing to do, either way): PilotNet SDNN
    emulation 0.99x (21 alternating runs, about ten calls a run)."""
    if workers == 1:
        work(0)
        return
    jobs = [pool().submit(work, k) for k in range(1, workers)]
    failed: BaseException | None = None
    try:
        work(0)
    except BaseException as exc:  # the others still write into the caller's arrays: wait
        failed = exc
    for job in jobs:
        try:
            job.result()
        except BaseException as exc:
            failed = exc if failed is None else failed
    if failed is not None:
        raise failed


def shares(n: int, workers: int) -> list[tuple[int, int]]:
    """``workers`` contiguous ranges ``[lo, hi)`` covering ``range(n)``, in order, their
    sizes differing by at most one (empty ones where ``n < workers``)."""
    return [(n * k // workers, n * (k + 1) // workers) for k in range(workers)]


@contextmanager
def on_pool() -> Iterator[None]:
    """Inside the block (on this thread), :func:`run_shared` runs its shares on the
    worker pool even where the kernel has an OpenMP form: for code whose other
    parallel work is on the pool too (an emulator run, whose synapse shares are)."""
    before = getattr(_LOCAL, "on", False)
    _LOCAL.on = True
    try:
        yield
    finally:
        _LOCAL.on = before


def run_shared(
    kernel: Callable[..., object],
    units: int,
    work: int,
    *args: object,
    min_work: int | None = None,
    parallel: Callable[..., object] | None = None,
) -> None:
    """``kernel(*args, lo, hi)`` over :func:`shares` of ``range(units)``: one share per
    worker (at most one per unit) where ``work`` reaches ``min_work`` (default
    :data:`PARALLEL_MIN_WORK`, read at the call), else one call of them all; nothing
    where ``units`` is 0.

    ``parallel(*args, parts)``, where given, runs the ``(count, 2)`` ranges ``parts`` in
    a numba ``prange`` instead (an OpenMP region on torch's runtime, on torch's thread
    count), unless :func:`on_pool` is active. That is the form for code beside torch
    ops (a training forward): their OpenMP threads, spinning after each op when torch
    was imported first, and the pool's would take each other's cores (an ALIF training
    step on the pool: 1.5x its time as a parallel region, 2 cores)."""
    if units <= 0:
        return
    limit = PARALLEL_MIN_WORK if min_work is None else min_work
    count = min(tile_workers(), units) if work >= limit else 1
    parts = shares(units, count)
    if count > 1 and parallel is not None and not getattr(_LOCAL, "on", False):
        follow_torch_threads()
        parallel(*args, np.array(parts, np.int64))
        return
    in_workers(lambda k: kernel(*args, *parts[k]), count)

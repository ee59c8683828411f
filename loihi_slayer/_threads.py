"""OpenMP wait policy: keep training fast when other processes share the CPUs.

PyTorch and numba's ``omp`` threading layer run their parallel regions on one GNU
OpenMP runtime (numba's symbols resolve to the runtime torch loaded). By default its
worker threads spin after every parallel region and at every barrier. On a machine
whose cores are shared (a busy neighbour, data-loader workers, other jobs) a spinning
thread burns the time slice its partner needs to finish the region, and the training
epoch of the Oxford network became 10-20x slower instead of ~2x
(``benchmarks/bench_contention.py``; with passive waiting the slowdown follows the CPU
share). The runtime reads ``OMP_WAIT_POLICY`` once, when it is loaded, so the policy
must be in the environment before ``import torch``.

:func:`configure` (run by ``import loihi_slayer``) therefore sets
``OMP_WAIT_POLICY=PASSIVE`` when

* the user has set neither ``OMP_WAIT_POLICY`` nor ``GOMP_SPINCOUNT`` (their choice
  always wins),
* ``LOIHI_SLAYER_OMP_WAIT_POLICY`` is not ``keep`` (the opt-out; ``PASSIVE`` or
  ``ACTIVE`` choose the value set), and
* torch is not imported yet (afterwards the variable would do nothing; a debug log line
  says so).

Passive waiting costs a wake-up per parallel region on an idle machine: a few
microseconds on one VM, about 70 us on another, where the N-MNIST training step took
1.4x its spinning time (README, "Shared CPUs"). Child processes inherit the variable.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TypeVar

log = logging.getLogger(__name__)

#: the opt-out / override: ``keep`` (leave OpenMP alone), ``PASSIVE`` (default), ``ACTIVE``
ENV = "LOIHI_SLAYER_OMP_WAIT_POLICY"
_CHOICES = ("PASSIVE", "ACTIVE", "KEEP")
#: the user's own waiting choices, which always win: the policy, and libgomp's spin count
#: (a bounded spin, e.g. ``GOMP_SPINCOUNT=3000``: see the README, "Shared CPUs")
_USER_CHOICES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
#: modules whose import starts an OpenMP runtime (after it the policy is fixed)
_OPENMP_USERS = ("torch",)


def configure(
    environ: MutableMapping[str, str] | None = None, modules: Mapping[str, object] | None = None
) -> str | None:
    """Set ``OMP_WAIT_POLICY`` (default ``PASSIVE``) if no OpenMP runtime has started.

    Parameters
    ----------
    environ
        The environment to read and update (default ``os.environ``).
    modules
        The imported modules (default ``sys.modules``).

    Returns
    -------
    str or None
        The policy set, or None when the environment was left alone (the user set
        ``OMP_WAIT_POLICY``, opted out, or torch was already imported).
    """
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    choice = environ.get(ENV, "PASSIVE").strip().upper()
    if choice not in _CHOICES:
        log.warning(
            "%s=%r is not one of %s; OpenMP left alone",
            ENV,
            environ[ENV],
            ", ".join(c.lower() if c == "KEEP" else c for c in _CHOICES),
        )
        return None
    if choice == "KEEP" or any(v in environ for v in _USER_CHOICES):
        return None
    started = [m for m in _OPENMP_USERS if m in modules]
    if started:
        log.debug(
            "%s imported before loihi_slayer: its OpenMP workers spin (on shared "
            "CPUs set OMP_WAIT_POLICY=PASSIVE before Python starts)",
            started[0],
        )
        return None
    environ["OMP_WAIT_POLICY"] = choice
    return choice


def waits_passively(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the OpenMP runtime's idle workers sleep (``OMP_WAIT_POLICY=PASSIVE``, which
    :func:`configure` sets): each parallel region then first wakes them, 40-200 us on the
    2-core Zen 4 VM (README, "Shared CPUs"), so small work pays for a region less often."""
    environ = os.environ if environ is None else environ
    return environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"


_NUMBA_POOL: list[bool] = []
#: torch thread counts saved by :func:`torch_threads` (innermost last): the user's count
#: that kernels follow while a block runs torch on fewer threads
_SAVED_TORCH_THREADS: list[int] = []


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` threads inside the block (restored on exit), while the parallel
    numba kernels launched inside keep following the count set outside it
    (:func:`follow_torch_threads`): e.g. single-threaded GEMMs beside parallel neurons."""
    import torch

    before = torch.get_num_threads()
    if before == n:
        yield
        return
    _SAVED_TORCH_THREADS.append(before)
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        _SAVED_TORCH_THREADS.pop()


#: :func:`small_torch_ops` where nothing changes (a context manager that may be reused)
_UNCHANGED = nullcontext()


def small_torch_ops() -> AbstractContextManager[None]:
    """Run the torch ops inside on the calling thread where idle workers sleep
    (:func:`waits_passively`), as they are elsewhere. For ops on some 10^5 values (a
    dense layer's weight norm), whose parallel region first waits for a sleeping worker:
    the N-MNIST step paired 0.956-0.968 with its weight norms (forward and backward) inside,
    under passive waiting; with spinning workers the thread-count switch cost 1.048, so
    there nothing changes (a shared ``nullcontext``: a generator context cost 2 us)."""
    return torch_threads(1) if waits_passively() else _UNCHANGED


def user_torch_threads() -> int | None:
    """The torch thread count the user chose (``torch.set_num_threads``, or torch's
    default), also inside :func:`torch_threads`; None while torch is not imported."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    return _SAVED_TORCH_THREADS[0] if _SAVED_TORCH_THREADS else torch.get_num_threads()


def follow_torch_threads() -> None:
    """Before a parallel numba kernel: run it on torch's thread count, and start numba's
    thread pool without undoing that count.

    numba's ``omp`` layer sets the shared OpenMP runtime's thread count to its own
    (all cores) when its pool starts, at the first parallel kernel: a user's earlier
    ``torch.set_num_threads(k)`` would silently be undone for every later torch op.
    Here the pool is started first and torch's count put back, and numba's regions
    use ``min(torch.get_num_threads(), NUMBA_NUM_THREADS)`` threads, following later
    ``torch.set_num_threads`` calls too. Without torch loaded, numba keeps its own.
    """
    wanted = user_torch_threads()
    if wanted is None:
        return
    if not _NUMBA_POOL:
        _start_numba_pool()
    import numba

    n = max(1, min(wanted, numba.config.NUMBA_NUM_THREADS))
    if numba_threads() != n:
        numba.set_num_threads(n)


#: a kernel's return type
_R = TypeVar("_R")


def on_one_thread(kernel: Callable[..., _R], *args: object) -> _R:
    """``kernel(*args)`` for a ``parallel=True`` numba kernel, run by the calling thread
    alone: numba's thread count for this thread is 1 during the call (its count is per
    calling thread), so the kernel's ``prange`` loops in order and wakes no worker. The
    serial twin of a parallel kernel this way is the same compiled code (no compile of
    its own). numba's pool is started first as :func:`follow_torch_threads` starts it,
    keeping torch's thread count."""
    if not _NUMBA_POOL:
        _start_numba_pool()
    n = numba_threads()
    if n == 1:
        return kernel(*args)
    set_count = _NUMBA_SET[0]
    set_count(1)
    try:
        return kernel(*args)
    finally:
        set_count(n)


def numba_set_threads() -> Callable[[int], None]:
    """numba's public setter of the calling thread's count (where its unchecked one,
    which :func:`_start_numba_pool` keeps, is missing)."""
    import numba

    return numba.set_num_threads


#: numba's setter of the calling thread's count without its checks, once its pool runs
#: (see :func:`on_one_thread`)
_NUMBA_SET: list = []
#: numba's own reader of the calling thread's count, once its pool runs (see
#: :func:`numba_threads`)
_NUMBA_COUNT: list = []


def _start_numba_pool() -> None:
    """Start numba's thread pool, keeping torch's thread count where torch is loaded
    (see :func:`follow_torch_threads`)."""
    from numba.np.ufunc import parallel

    torch = sys.modules.get("torch")
    current = None if torch is None else torch.get_num_threads()
    launch = getattr(parallel, "_launch_threads", None)
    if launch is not None:
        launch()
    if current is not None and torch.get_num_threads() != current:
        torch.set_num_threads(current)
    # the count's reader without numba.get_num_threads's pool check, which takes a
    # multiprocessing lock each call (1.7 us against 0.2 here, 2-core Zen 3; 10-20 us
    # inside a training step, its code out of the caches)
    reader = getattr(parallel, "_get_num_threads", None)
    if reader is not None:
        _NUMBA_COUNT.append(reader)
    _NUMBA_SET.append(getattr(parallel, "_set_num_threads", None) or numba_set_threads())
    _NUMBA_POOL.append(True)


def numba_threads() -> int:
    """The number of threads numba's parallel regions launched from this thread use
    (``numba.get_num_threads()``), cheaply once its pool runs."""
    if _NUMBA_COUNT:
        n = _NUMBA_COUNT[0]()
        if n > 0:
            return n
    import numba

    return numba.get_num_threads()

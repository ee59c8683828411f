"""Software prefetch of the rows a kernel's next lane blocks read and write.

The generated CPU kernels (:mod:`loihi_slayer.fixed.codegen`) step 16 neurons at a
time: each block reads its 16 time-last input rows, steps them in cache, and writes
16 trace rows. The hardware prefetcher does not run ahead of that pattern (a burst of
16 rows, then compute): at PilotNet's layer sizes (76 k neurons, 32 steps, 29 MB
moved) the sigma-delta kernel waited on memory for over half its time. Touching the
lines of a block a few blocks ahead overlaps that wait with the stepping.

A prefetch is a hint: it never faults, changes no value, and is skipped past the last
row. Called from Python, the functions do nothing.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .._numba_cache import guard_cache_writes
from ._transpose import BLOCK

guard_cache_writes()

#: bytes of a cache line
LINE = 64


def _prefetcher(write: int, locality: int = 3):
    """An intrinsic ``fetch(arr, at)`` prefetching the line of element ``at`` of a
    C-contiguous array (``llvm.prefetch``; ``write``: for a store) into every cache level
    (``locality`` 3), or into L2 and L3 but not L1 (2: x86 ``prefetcht1``)."""

    @intrinsic
    def fetch(typingctx, arr, at):
        ok = isinstance(arr, types.Array) and arr.layout == "C"
        ok = ok and isinstance(at, types.Integer)

        def codegen(context, builder, sig, args):
            a = context.make_array(sig.args[0])(context, builder, args[0])
            i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
            ptr = builder.bitcast(builder.gep(a.data, [args[1]]), i8p)
            # (address, read 0 / write 1, locality, data cache)
            flags = [ir.Constant(i32, v) for v in (write, locality, 1)]
            builder.call(fn, [ptr, *flags])
            return context.get_dummy_value()

        return (types.none(arr, at), codegen) if ok else None

    return fetch


_fetch_read = _prefetcher(0)
_fetch_write = _prefetcher(1)
#: a run's lines into L2 only (``prefetcht1``): see :func:`fetch_run`
_fetch_read_l2 = _prefetcher(0, 2)


def fetch_rows(arr, row0, col0, cols) -> None:
    """Prefetch ``arr[row0 + j, col0 : col0 + cols]`` for ``j < BLOCK`` (rows past the
    array's end skipped) to be read; a no-op in Python."""


def fetch_rows_for_write(arr, row0, col0, cols) -> None:
    """As :func:`fetch_rows`, for the rows about to be written."""


def fetch_run(arr, at, count) -> None:
    """Prefetch the ``count`` consecutive values of a C-contiguous ``arr`` from its flat
    element ``at`` on (a run that may span rows), to be read; a no-op in Python. The
    sum-pool training kernel asks so for the window rows of a neuron a few ahead
    (:func:`loihi_slayer.autograd._cpu._cuba_chunk`): the all-quiet pass over the N-MNIST
    pool block's 17.8 MB input took 0.65-0.69 of its time on one thread. The lines go to
    L2, not L1 (``prefetcht1``): eight windows ahead are 120 lines, more than L1 has miss
    buffers or room for beside the lanes' buffers; the N-MNIST training step paired
    0.90 and 0.93 (medians of 10 alternating process pairs each, Zen 4) against
    prefetching into L1."""


def _rows_overload(fetch):
    def impl(arr, row0, col0, cols):
        if arr.shape[1] == 0:
            return
        per = max(LINE // arr.itemsize, 1)
        stop = min(row0 + BLOCK, arr.shape[0])
        for r in range(row0, stop):
            at = r * arr.shape[1] + col0
            for c in range(0, cols, per):
                fetch(arr, at + c)

    return impl


@overload(fetch_rows, inline="always")
def _fetch_rows(arr, row0, col0, cols):
    if isinstance(arr, types.Array) and arr.ndim == 2 and arr.layout == "C":
        return _rows_overload(_fetch_read)
    return lambda arr, row0, col0, cols: None


@overload(fetch_rows_for_write, inline="always")
def _fetch_rows_for_write(arr, row0, col0, cols):
    if isinstance(arr, types.Array) and arr.ndim == 2 and arr.layout == "C":
        return _rows_overload(_fetch_write)
    return lambda arr, row0, col0, cols: None


@overload(fetch_run, inline="always")
def _fetch_run(arr, at, count):
    if isinstance(arr, types.Array) and arr.layout == "C":

        def impl(arr, at, count):
            per = max(LINE // arr.itemsize, 1)
            for c in range(0, count, per):
                _fetch_read_l2(arr, at + c)

        return impl
    return lambda arr, at, count: None


__all__ = ["LINE", "fetch_rows", "fetch_rows_for_write", "fetch_run"]

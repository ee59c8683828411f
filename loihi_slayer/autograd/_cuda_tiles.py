r"""Shared-memory time tiles for the ``numba.cuda`` training kernels.

The training tensors are time-last ``(rows, T)``. With one thread per row reading
``x[n, t]``, the 32 threads of a warp read addresses ``T`` elements apart: every
warp-wide load touches 32 memory segments, and whether the next steps' values are
still cached depends on how many warps share the SM. The kernels instead give each
block of :data:`ROWS` threads (one warp) :data:`ROWS` consecutive rows and pass time
through shared memory in tiles of :data:`TILE` steps: the warp copies a tile with
consecutive threads on consecutive time steps of a row (:func:`load`, :func:`store`,
coalesced in global memory), synchronises, and each thread steps its own row through
the tile.

Tiles are float64: every float32, float64 and uint8 value the kernels read or write
passes through unchanged, and a kernel's arithmetic is what it was on the global
arrays (the one rounding to a float32 output happens in :func:`store`, as it did in
the direct write). Their width :data:`WIDTH` is odd: column ``c`` of a half-warp's
16 rows (8-byte words, ``2 * WIDTH`` banks apart) then falls into 16 distinct bank
pairs. The spare column lets the reverse scans hold the step before a tile as well
(``load(src, buf, n0, t0 - 1, tl + 1)``).
"""

from __future__ import annotations

from numba import cuda

#: rows per block: one warp, a thread per row
ROWS = 32
#: time steps per tile
TILE = 16
#: columns of a shared tile: a tile and the step before it (odd: no bank conflicts)
WIDTH = TILE + 1


def blocks_for(rows: int) -> int:
    """Blocks of :data:`ROWS` threads covering ``rows`` rows (at least one)."""
    return max(1, (rows + ROWS - 1) // ROWS)


@cuda.jit(device=True)
def block_rows(rows):
    """``(n0, n, live, nl)``: the block's first row, the thread's row, whether that row
    exists, and a row that does (``n``, else the last: idle threads read parameters
    there and still join the block's copies and synchronisations)."""
    n0 = cuda.blockIdx.x * ROWS
    n = n0 + cuda.threadIdx.x
    live = n < rows
    return n0, n, live, (n if live else rows - 1)


@cuda.jit(device=True)
def tile_from_end(k0, steps):
    """``(lo, hi, tl)``: the tile of the reverse scans that ends ``k0`` steps before the
    end, ``[lo, hi)`` of ``tl`` steps (the first one may be short)."""
    hi = steps - k0
    lo = max(0, hi - TILE)
    return lo, hi, hi - lo


@cuda.jit(device=True)
def load(src, buf, n0, t_first, count):
    """``buf[r, c] = src[n0 + r, t_first + c]`` for ``c < count`` where that row and step
    exist (``t >= 0``), by the whole block; nothing for a ``(rows, 0)`` placeholder.
    The caller synchronises before reading ``buf``."""
    if src.shape[1] == 0:
        return
    for e in range(cuda.threadIdx.x, ROWS * WIDTH, ROWS):
        r = e // WIDTH
        c = e - r * WIDTH
        t = t_first + c
        if c < count and t >= 0 and n0 + r < src.shape[0]:
            buf[r, c] = src[n0 + r, t]


@cuda.jit(device=True)
def store_from(buf, col0, dst, n0, t_first, count):
    """``dst[n0 + r, t_first + c] = buf[r, col0 + c]`` for ``c < count`` where the row
    exists, by the whole block; nothing for a ``(rows, 0)`` placeholder. The caller
    synchronises before (the tile is complete) and after (before it is overwritten)."""
    if dst.shape[1] == 0:
        return
    for e in range(cuda.threadIdx.x, ROWS * WIDTH, ROWS):
        r = e // WIDTH
        c = e - r * WIDTH
        if c < count and n0 + r < dst.shape[0]:
            dst[n0 + r, t_first + c] = buf[r, col0 + c]


@cuda.jit(device=True)
def store(buf, dst, n0, t_first, count):
    """:func:`store_from` a tile whose column 0 is step ``t_first``."""
    store_from(buf, 0, dst, n0, t_first, count)


@cuda.jit(device=True)
def load_difference(a, b, buf, n0, t_first, count):
    """``buf[r, c] = a[n0 + r, t] - b[n0 + r, t]`` (``t = t_first + c``) as :func:`load`,
    the difference taken in the arrays' own type (float32 inputs: a float32 difference,
    as on the global arrays)."""
    for e in range(cuda.threadIdx.x, ROWS * WIDTH, ROWS):
        r = e // WIDTH
        c = e - r * WIDTH
        t = t_first + c
        if c < count and t >= 0 and n0 + r < a.shape[0]:
            buf[r, c] = a[n0 + r, t] - b[n0 + r, t]


@cuda.jit(device=True)
def scan_product(acc, g, prev, t, initial):
    """``acc + g * x`` with ``x`` the state before step ``t``: ``prev`` (the tile's lag
    column), or ``initial`` at ``t = 0``: one term of a backward scan's decay gradient."""
    return acc + g * (prev if t > 0 else initial)

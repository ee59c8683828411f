"""The 16 x 16 register transposes of the forward kernels' tiles, against NumPy.

:mod:`loihi_slayer.autograd._transpose` moves blocks between time-last rows and the
lanes the kernels step together, by vector shuffles where both arrays are C-contiguous
of one dtype and element by element otherwise. Each move is checked against NumPy's
fancy indexing (any dtype, any row order, repeated rows, offsets at the arrays' ends,
strided arrays), and nothing outside the block may change.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from loihi_slayer.autograd import _cpu
from loihi_slayer.autograd._transpose import BLOCK, block_in, block_out

DTYPES = (np.float32, np.float64, np.int8, np.int32, np.int64)


@njit(cache=False)
def _in(x, rows, j0, t0, buf, c0):
    block_in(x, rows, j0, t0, buf, c0)


@njit(cache=False)
def _out(segs, base, step, out, rows, j0, col):
    block_out(segs, base, step, out, rows, j0, col)


def _values(rng, shape, dtype):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return rng.normal(size=shape).astype(dtype) * 1e3


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    n_rows=st.integers(1, 40),
    extra_cols=st.integers(0, 20),
    lanes=st.sampled_from((16, 32, 64)),
    strided=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_rows_into_lanes_are_numpys_transpose(
    dtype, n_rows, extra_cols, lanes, strided, seed, data
):
    rng = np.random.default_rng(seed)
    width = BLOCK + extra_cols
    x = _values(rng, (n_rows, 2 * width if strided else width), dtype)
    if strided:  # every other column: not C-contiguous, the element-by-element moves
        x = x[:, ::2]
    rows = rng.integers(0, n_rows, BLOCK + 5).astype(np.int64)  # repeats allowed
    j0 = data.draw(st.integers(0, 5))
    t0 = data.draw(st.integers(0, extra_cols))
    c0 = data.draw(st.sampled_from(range(0, lanes, BLOCK)))
    buf = _values(rng, (BLOCK, lanes), dtype)
    want = buf.copy()
    want[:, c0 : c0 + BLOCK] = x[rows[j0 : j0 + BLOCK], t0 : t0 + BLOCK].T
    _in(x, rows, j0, t0, buf, c0)
    assert np.array_equal(buf, want)


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    n_rows=st.integers(16, 40),
    extra_cols=st.integers(0, 20),
    lanes=st.sampled_from((16, 64)),
    strided=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_lanes_into_rows_are_numpys_transpose(
    dtype, n_rows, extra_cols, lanes, strided, seed, data
):
    rng = np.random.default_rng(seed)
    width = BLOCK + extra_cols
    full = _values(rng, (n_rows, 2 * width if strided else width), dtype)
    out = full[:, ::2] if strided else full
    rows = rng.permutation(n_rows)[:BLOCK].astype(np.int64)  # distinct: one write each
    segs = _values(rng, (3 * BLOCK * lanes,), dtype)
    base = data.draw(st.integers(0, BLOCK * lanes))
    col = data.draw(st.integers(0, extra_cols))
    want = out.copy()
    for j in range(BLOCK):
        want[rows[j], col : col + BLOCK] = segs[base + lanes * np.arange(BLOCK) + j]
    _out(segs, base, lanes, out, rows, 0, col)
    assert np.array_equal(out, want)


def test_kernel_tiles_are_whole_blocks():
    """The forward kernels hand whole blocks to the transposes: a tile is one block of
    steps, and every lane count a whole number of blocks."""
    assert _cpu.TILE == BLOCK
    assert _cpu.LANES % BLOCK == 0 and _cpu.SD_LANES % BLOCK == 0
    assert _cpu.OUT_SEGMENT % BLOCK == 0

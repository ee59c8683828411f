"""The 16 x 16 register transposes of the kernels' tiles, against NumPy.

:mod:`loihi_slayer.fixed._transpose` moves blocks between time-last rows and the lanes
the kernels step together, by vector shuffles where both arrays are C-contiguous and
the dtypes convert, element by element otherwise. Each move is checked against NumPy's
fancy indexing and ``astype`` (which converts as a store into the destination does), in
compiled code and as the plain Python functions: dtype pairs that widen, narrow and
wrap, row lists with repeats or consecutive rows from an integer, offsets at the
arrays' ends, 1-D and 2-D tile buffers and strided arrays; nothing outside the block
may change.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from loihi_slayer.autograd import _cpu
from loihi_slayer.fixed import codegen
from loihi_slayer.fixed._transpose import BLOCK, block_in, block_out

#: (source, destination) dtypes: as they are, widened, narrowed (wrapping), to float
PAIRS = (
    (np.float32, np.float32),
    (np.float64, np.float64),
    (np.float32, np.float64),
    (np.float64, np.float32),
    (np.int8, np.int8),
    (np.int32, np.int64),
    (np.uint8, np.int64),
    (np.int16, np.int32),
    (np.int64, np.int32),
    (np.int64, np.int8),
    (np.int64, np.float32),
    (np.int32, np.float64),
    (np.bool_, np.int64),
)


@njit(cache=False)
def _in(x, rows, j0, t0, buf, base, step):
    block_in(x, rows, j0, t0, buf, base, step)


@njit(cache=False)
def _out(segs, base, step, out, rows, j0, col):
    block_out(segs, base, step, out, rows, j0, col)


def _values(rng, shape, dtype):
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return (rng.normal(size=shape) * 1e3).astype(dtype)


@st.composite
def layouts(draw):
    src, dst = draw(st.sampled_from(PAIRS))
    return {
        "src": src,
        "dst": dst,
        "n_rows": draw(st.integers(BLOCK, 40)),
        "extra": draw(st.integers(0, 20)),
        "strided": draw(st.booleans()),
        "flat": draw(st.booleans()),
        "consecutive": draw(st.booleans()),
        "lanes": draw(st.sampled_from((16, 32, 64))),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def _rows(rng, c, distinct):
    if c["consecutive"]:
        r0 = int(rng.integers(0, c["n_rows"] - BLOCK + 1))
        return r0, np.arange(r0, r0 + BLOCK)
    pick = rng.permutation(c["n_rows"])[:BLOCK] if distinct else rng.integers(0, c["n_rows"], 20)
    rows = np.asarray(pick, np.int64)
    return rows, rows


@settings(max_examples=80, deadline=None)
@given(c=layouts(), data=st.data())
def test_rows_into_lanes_are_numpys_transpose(c, data):
    rng = np.random.default_rng(c["seed"])
    width = BLOCK + c["extra"]
    x = _values(rng, (c["n_rows"], 2 * width if c["strided"] else width), c["src"])
    if c["strided"]:  # every other column: not C-contiguous, the element moves
        x = x[:, ::2]
    rows, row_ids = _rows(rng, c, distinct=False)
    j0 = 0 if c["consecutive"] else data.draw(st.integers(0, 4))
    t0 = data.draw(st.integers(0, c["extra"]))
    lanes = c["lanes"]
    buf = _values(rng, (BLOCK + 2, lanes), c["dst"])
    base = data.draw(st.integers(0, 2 * lanes - BLOCK))
    want = buf.copy()
    block = x[row_ids[j0 : j0 + BLOCK], t0 : t0 + BLOCK].T.astype(c["dst"])
    for k in range(BLOCK):
        want.reshape(-1)[base + lanes * k : base + lanes * k + BLOCK] = block[k]
    py = buf.copy()
    _in(x, rows, j0, t0, buf.reshape(-1) if c["flat"] else buf, base, lanes)
    assert np.array_equal(buf, want)
    block_in(x, rows, j0, t0, py.reshape(-1) if c["flat"] else py, base, lanes)  # Python
    assert np.array_equal(py, want)


@settings(max_examples=80, deadline=None)
@given(c=layouts(), data=st.data())
def test_lanes_into_rows_are_numpys_transpose(c, data):
    rng = np.random.default_rng(c["seed"])
    width = BLOCK + c["extra"]
    full = _values(rng, (c["n_rows"], 2 * width if c["strided"] else width), c["dst"])
    out = full[:, ::2] if c["strided"] else full
    rows, row_ids = _rows(rng, c, distinct=True)  # one write per row
    lanes = c["lanes"]
    segs = _values(rng, (3 * BLOCK, lanes), c["src"])
    base = data.draw(st.integers(0, BLOCK * lanes))
    col = data.draw(st.integers(0, c["extra"]))
    want = out.copy()
    flat = segs.reshape(-1)
    for j in range(BLOCK):
        want[row_ids[j], col : col + BLOCK] = flat[base + lanes * np.arange(BLOCK) + j].astype(
            c["dst"]
        )
    py = out.copy()
    _out(flat if c["flat"] else segs, base, lanes, out, rows, 0, col)
    assert np.array_equal(out, want)
    block_out(flat if c["flat"] else segs, base, lanes, py, rows, 0, col)  # Python
    assert np.array_equal(py, want)


def test_kernel_tiles_are_whole_blocks():
    """The kernels hand whole blocks to the transposes: every tile a whole number of
    blocks of steps, every lane count a whole number of blocks."""
    assert _cpu.TILE % BLOCK == 0 and _cpu.OUT_SEGMENT % BLOCK == 0
    assert _cpu.LANES % BLOCK == 0 and _cpu.SD_LANES % BLOCK == 0
    assert codegen.TILE % BLOCK == 0 and codegen.LANES % BLOCK == 0


def test_emulation_kernels_run_without_torch():
    """The generated emulation kernels use the transposes and stay free of torch: a
    process running ``fixed.cuba`` over whole tiles never imports it (start-up time)."""
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from loihi_slayer import fixed\n"
        "x = np.random.default_rng(0).integers(0, 40, (64, 2 * 64), dtype=np.int32)\n"
        "traces, _ = fixed.cuba(x, record=('s', 'u', 'v'))\n"
        "assert traces['s'].shape == x.shape\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600
    )
    assert out.stdout.strip() == "False", out.stdout + out.stderr

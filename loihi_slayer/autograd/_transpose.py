r"""16 x 16 blocks moved between rows and lanes, transposed in vector registers.

The forward kernels step :data:`BLOCK` neurons together, one per vector lane, while
their inputs and outputs are time-last rows (:mod:`._cpu`, "SIMD tiles"). Every
16 x 16 block of values therefore crosses between a row layout (one neuron's steps
contiguous) and a lane layout (one step's neurons contiguous). Written as loops, the
crossing became element-by-element loads and stores on the way in and 64-byte-stride
gathers on the way out (``perf`` of the CUBA training forward at (32, 512, 200) on
Zen 4: about a fifth of its samples). Here each block is 16 vector loads, the
recursive block transpose as 64 ``shufflevector`` operations, and 16 vector stores:

.. math::

    \begin{pmatrix} A & B \\ C & D \end{pmatrix}^\top
    = \begin{pmatrix} A^\top & C^\top \\ B^\top & D^\top \end{pmatrix},

the off-diagonal halves of each row pair exchanged at block sizes 8, 4, 2 and 1.
Values are moved, never computed: the result is the loop's bit for bit, in any dtype.

The intrinsics read the arrays' data pointers directly (a view of a shared array in a
parallel region would cost atomic reference counts, see :func:`._cpu._tile_in`); the
callers guarantee the indices (every row and column in range), as the loops they
replace did.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

#: rows and lanes of a block
BLOCK = 16


def _masks(b: int) -> tuple[list[int], list[int]]:
    """The ``shufflevector`` masks exchanging the off-diagonal ``b``-wide halves of a row
    pair ``(r, s)`` (indices into their concatenation): ``r' = r`` where bit ``b`` of the
    position is clear, else ``s`` shifted by ``b``; ``s'`` the other way round."""
    lo = [p if p & b == 0 else BLOCK + p - b for p in range(BLOCK)]
    hi = [p + b if p & b == 0 else BLOCK + p for p in range(BLOCK)]
    return lo, hi


def _transposed(builder: ir.IRBuilder, rows: list) -> list:
    """The 16 columns of the block whose rows are ``rows`` (16 vectors of 16 values)."""
    rows = list(rows)
    for b in (8, 4, 2, 1):
        lo, hi = (ir.Constant(ir.VectorType(ir.IntType(32), BLOCK), m) for m in _masks(b))
        for i in range(BLOCK):
            if i & b == 0:
                r, s = rows[i], rows[i + b]
                rows[i] = builder.shuffle_vector(r, s, lo)
                rows[i + b] = builder.shuffle_vector(r, s, hi)
    return rows


def _vector_at(context, builder, arr, offset):
    """A pointer to the 16 values of ``arr``'s data from element ``offset``."""
    elem = arr.data.type.pointee
    ptr = builder.gep(arr.data, [offset])
    return builder.bitcast(ptr, ir.VectorType(elem, BLOCK).as_pointer())


def _int(builder, value, ty):
    """``value`` of numba type ``ty`` as a 64-bit integer."""
    return builder.sext(value, ir.IntType(64)) if ty.bitwidth < 64 else value


def _c_contiguous(*tys) -> bool:
    return all(isinstance(t, types.Array) and t.layout == "C" for t in tys)


def _i64(value: int) -> ir.Constant:
    return ir.Constant(ir.IntType(64), value)


def _row_offset(builder, rows, j, width, column):
    """The element offset of ``(rows[j], column)`` in a C-contiguous 2-D array of
    ``width`` columns (``j`` a 64-bit value)."""
    r = builder.load(builder.gep(rows.data, [j]))
    return builder.add(builder.mul(r, width), column)


def _integers(*tys) -> bool:
    return all(isinstance(t, types.Integer) for t in tys)


def _row_indices(rows) -> bool:
    return isinstance(rows, types.Array) and rows.ndim == 1 and rows.dtype == types.int64


@intrinsic
def rows_to_lanes(typingctx, x, rows, j0, t0, buf, c0):
    """``buf[k, c0 + j] = x[rows[j0 + j], t0 + k]`` for ``j, k < 16``: runs of 16 steps
    of 16 rows of the 2-D C-contiguous ``x`` into 16 lanes of the 2-D C-contiguous
    ``buf`` (same dtype, a step per row); ``rows`` a 1-D int64 array of row indices."""
    if not (
        _c_contiguous(x, buf)
        and x.ndim == 2
        and buf.ndim == 2
        and x.dtype == buf.dtype
        and _row_indices(rows)
        and _integers(j0, t0, c0)
    ):
        return None

    def codegen(context, builder, sig, args):
        xa = context.make_array(sig.args[0])(context, builder, args[0])
        ra = context.make_array(sig.args[1])(context, builder, args[1])
        ba = context.make_array(sig.args[4])(context, builder, args[4])
        j0_, t0_, c0_ = (_int(builder, args[i], sig.args[i]) for i in (2, 3, 5))
        x_width = cgutils.unpack_tuple(builder, xa.shape, 2)[1]
        b_width = cgutils.unpack_tuple(builder, ba.shape, 2)[1]
        align = context.get_abi_alignment(xa.data.type.pointee)
        vecs = []
        for j in range(BLOCK):
            off = _row_offset(builder, ra, builder.add(j0_, _i64(j)), x_width, t0_)
            vecs.append(builder.load(_vector_at(context, builder, xa, off), align=align))
        for k, v in enumerate(_transposed(builder, vecs)):
            off = builder.add(builder.mul(_i64(k), b_width), c0_)
            builder.store(v, _vector_at(context, builder, ba, off), align=align)
        return context.get_dummy_value()

    return types.none(x, rows, j0, t0, buf, c0), codegen


@intrinsic
def lanes_to_rows(typingctx, segs, base, step, out, rows, j0, col):
    """``out[rows[j0 + j], col + k] = segs[base + step k + j]`` for ``j, k < 16``: 16 steps
    of 16 lanes (each step's lanes contiguous in the 1-D C-contiguous ``segs``, ``step``
    values apart) into runs of 16 of the rows of the 2-D C-contiguous ``out`` (same
    dtype); ``rows`` a 1-D int64 array of row indices."""
    if not (
        _c_contiguous(segs, out)
        and segs.ndim == 1
        and out.ndim == 2
        and segs.dtype == out.dtype
        and _row_indices(rows)
        and _integers(base, step, j0, col)
    ):
        return None

    def codegen(context, builder, sig, args):
        sa = context.make_array(sig.args[0])(context, builder, args[0])
        oa = context.make_array(sig.args[3])(context, builder, args[3])
        ra = context.make_array(sig.args[4])(context, builder, args[4])
        base_, step_, j0_, col_ = (_int(builder, args[i], sig.args[i]) for i in (1, 2, 5, 6))
        width = cgutils.unpack_tuple(builder, oa.shape, 2)[1]
        align = context.get_abi_alignment(sa.data.type.pointee)
        vecs = []
        for k in range(BLOCK):
            off = builder.add(base_, builder.mul(step_, _i64(k)))
            vecs.append(builder.load(_vector_at(context, builder, sa, off), align=align))
        for j, v in enumerate(_transposed(builder, vecs)):
            off = _row_offset(builder, ra, builder.add(j0_, _i64(j)), width, col_)
            builder.store(v, _vector_at(context, builder, oa, off), align=align)
        return context.get_dummy_value()

    return types.none(segs, base, step, out, rows, j0, col), codegen


def block_in(x, rows, j0, t0, buf, c0):  # pragma: no cover - typed by the overload below
    """:func:`rows_to_lanes` where both arrays are C-contiguous of one dtype, else the
    same moves element by element (any layout): for use inside ``njit`` functions."""
    raise NotImplementedError("block_in runs inside numba-compiled code only")


def block_out(segs, base, step, out, rows, j0, col):  # pragma: no cover - see block_in
    """:func:`lanes_to_rows` where both arrays are C-contiguous of one dtype, else the
    same moves element by element (any layout): for use inside ``njit`` functions."""
    raise NotImplementedError("block_out runs inside numba-compiled code only")


@overload(block_in, inline="always")
def _block_in(x, rows, j0, t0, buf, c0):
    if _c_contiguous(x, buf) and x.dtype == buf.dtype:
        return lambda x, rows, j0, t0, buf, c0: rows_to_lanes(x, rows, j0, t0, buf, c0)

    def moves(x, rows, j0, t0, buf, c0):
        for j in range(BLOCK):
            r = rows[j0 + j]
            for k in range(BLOCK):
                buf[k, c0 + j] = x[r, t0 + k]

    return moves


@overload(block_out, inline="always")
def _block_out(segs, base, step, out, rows, j0, col):
    if _c_contiguous(segs, out) and segs.dtype == out.dtype:
        return lambda segs, base, step, out, rows, j0, col: lanes_to_rows(
            segs, base, step, out, rows, j0, col
        )

    def moves(segs, base, step, out, rows, j0, col):
        for j in range(BLOCK):
            r = rows[j0 + j]
            for k in range(BLOCK):
                out[r, col + k] = segs[base + step * k + j]

    return moves

r"""16 x 16 blocks moved between rows and lanes, transposed in vector registers.

The forward kernels step :data:`BLOCK` neurons together, one per vector lane, while
their inputs and outputs are time-last rows: the training kernels of
:mod:`loihi_slayer.autograd._cpu` ("SIMD tiles") and the kernels
:mod:`loihi_slayer.fixed.codegen` generates (this module lives beside those, which must
not import torch). Every 16 x 16 block of values therefore crosses between a row layout
(one neuron's steps contiguous) and a lane layout (one step's neurons contiguous).
Written as loops, the crossing became element-by-element loads and stores on the way in
and 64-byte-stride gathers on the way out (``perf`` of the CUBA training forward at
(32, 512, 200) on Zen 4: about a fifth of its samples). Here each block is 16 vector
loads, the recursive block transpose as 64 ``shufflevector`` operations, and 16 vector
stores:

.. math::

    \begin{pmatrix} A & B \\ C & D \end{pmatrix}^\top
    = \begin{pmatrix} A^\top & C^\top \\ B^\top & D^\top \end{pmatrix},

the off-diagonal halves of each row pair exchanged at block sizes 8, 4, 2 and 1.
Values are moved, never computed: the result is the loop's bit for bit, in any dtype.
Where the two arrays' dtypes differ the values are converted after the transpose as a
store into the destination would convert them (integers sign- or zero-extended or
truncated, integers to floats rounded, floats widened or rounded); float to integer is
left to the element moves.

The intrinsics read the arrays' data pointers directly (a view of a shared array in a
parallel region would cost atomic reference counts, see
:func:`loihi_slayer.autograd._cpu._tile_in`); the callers guarantee the indices (every
row and column in range), as the loops they replace did.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .._numba_cache import guard_cache_writes

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

#: rows and lanes of a block
BLOCK = 16


def _masks(b: int, width: int) -> tuple[list[int], list[int]]:
    """The ``shufflevector`` masks exchanging the off-diagonal ``b``-wide halves of a row
    pair ``(r, s)`` of ``width`` values (indices into their concatenation): ``r' = r``
    where bit ``b`` of the position is clear, else ``s`` shifted by ``b``; ``s'`` the
    other way round."""
    lo = [p if p & b == 0 else width + p - b for p in range(width)]
    hi = [p + b if p & b == 0 else width + p for p in range(width)]
    return lo, hi


def _transposed(builder: ir.IRBuilder, rows: list) -> list:
    """The columns of the square block whose rows are ``rows`` (``w`` vectors of ``w``
    values, ``w`` a power of two)."""
    rows = list(rows)
    width = len(rows)
    b = width // 2
    while b:
        lo, hi = (ir.Constant(ir.VectorType(ir.IntType(32), width), m) for m in _masks(b, width))
        for i in range(width):
            if i & b == 0:
                r, s = rows[i], rows[i + b]
                rows[i] = builder.shuffle_vector(r, s, lo)
                rows[i + b] = builder.shuffle_vector(r, s, hi)
        b //= 2
    return rows


def vector_ptr(builder, data, offset, lanes: int = BLOCK):
    """A pointer to the ``lanes`` values from element ``offset`` of the data pointer
    ``data`` (shared with :mod:`loihi_slayer.autograd._lane_scan`)."""
    ptr = builder.gep(data, [offset])
    return builder.bitcast(ptr, ir.VectorType(data.type.pointee, lanes).as_pointer())


def as_i64(builder, value, ty):
    """``value`` of numba integer type ``ty`` as a 64-bit integer (an element offset)."""
    if ty.bitwidth >= 64:
        return value
    extend = builder.sext if ty.signed else builder.zext
    return extend(value, ir.IntType(64))


def flat_array(ty, dtype) -> bool:
    """Whether the numba type ``ty`` is a 1-D C-contiguous array of ``dtype`` (the
    intrinsics' flat operands)."""
    return isinstance(ty, types.Array) and ty.ndim == 1 and ty.layout == "C" and ty.dtype == dtype


def splat(builder, value, lanes: int = BLOCK):
    """A vector of ``lanes`` copies of the scalar ``value`` (a broadcast)."""
    vector = ir.VectorType(value.type, lanes)
    one = builder.insert_element(ir.Constant(vector, ir.Undefined), value, ir.IntType(32)(0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
    return builder.shuffle_vector(one, ir.Constant(vector, ir.Undefined), zeros)


def _i64(value: int) -> ir.Constant:
    return ir.Constant(ir.IntType(64), value)


def _c_contiguous(*tys) -> bool:
    return all(isinstance(t, types.Array) and t.layout == "C" for t in tys)


def _convertible(src, dst) -> bool:
    """Whether :func:`_converted` turns ``src`` values into ``dst`` ones (numba types)."""
    if src == dst:
        return True
    if isinstance(src, types.Integer):
        return isinstance(dst, (types.Integer, types.Float))
    return isinstance(src, types.Float) and isinstance(dst, types.Float)


def _converted(builder, vec, src, dst, dst_ir):
    """The vector ``vec`` of ``src`` values as ``dst`` values (see :func:`_convertible`)."""
    if src == dst:
        return vec
    to = ir.VectorType(dst_ir, vec.type.count)
    if isinstance(src, types.Integer) and isinstance(dst, types.Integer):
        if dst.bitwidth == src.bitwidth:
            return vec
        if dst.bitwidth < src.bitwidth:
            return builder.trunc(vec, to)
        return (builder.sext if src.signed else builder.zext)(vec, to)
    if isinstance(src, types.Integer):
        return (builder.sitofp if src.signed else builder.uitofp)(vec, to)
    if dst.bitwidth > src.bitwidth:
        return builder.fpext(vec, to)
    return builder.fptrunc(vec, to)


def _rows(rows) -> bool:
    """Row indices: a 1-D int64 array, or an integer (the first of consecutive rows)."""
    if isinstance(rows, types.Integer):
        return True
    return isinstance(rows, types.Array) and rows.ndim == 1 and rows.dtype == types.int64


def _row_start(context, builder, rows_ty, rows, j, width, column):
    """The element offset of ``(row j, column)`` in a C-contiguous 2-D array of ``width``
    columns: row ``rows[j]``, or ``rows + j`` for an integer ``rows`` (``j`` 64-bit)."""
    if isinstance(rows_ty, types.Integer):
        r = builder.add(as_i64(builder, rows, rows_ty), j)
    else:
        ra = context.make_array(rows_ty)(context, builder, rows)
        r = builder.load(builder.gep(ra.data, [j]))
    return builder.add(builder.mul(r, width), column)


def _move(context, builder, src, src_ty, src_offsets, dst, dst_ty, dst_offsets):
    """The block move both intrinsics make: 16 vectors loaded from ``src``'s data at the
    element offsets ``src_offsets``, transposed, converted to ``dst``'s dtype and stored
    at ``dst_offsets`` (numba arrays ``src``, ``dst`` of types ``src_ty``, ``dst_ty``).

    A block of 8-byte values (2 KB) fills all 32 vector registers of AVX-512, and LLVM
    spilled them through the stack between shuffle stages: such blocks move as four
    8 x 8 sub-blocks (the block identity of the module docstring once more), each 8
    vectors in and out (int64 and float64 blocks in and out of L2: 0.64-0.77 of the time
    on Zen 4).
    """
    sa = context.make_array(src_ty)(context, builder, src)
    da = context.make_array(dst_ty)(context, builder, dst)
    src_align = context.get_abi_alignment(sa.data.type.pointee)
    dst_align = context.get_abi_alignment(da.data.type.pointee)
    dst_ir = da.data.type.pointee
    width = BLOCK // 2 if src_ty.dtype.bitwidth >= 64 else BLOCK
    for h in range(0, BLOCK, width):  # the sub-block's first row (lane ``j``)
        for g in range(0, BLOCK, width):  # its first column (step ``k``)
            vecs = [
                builder.load(
                    vector_ptr(builder, sa.data, builder.add(src_offsets[h + j], _i64(g)), width),
                    align=src_align,
                )
                for j in range(width)
            ]
            for k, v in enumerate(_transposed(builder, vecs)):
                v = _converted(builder, v, src_ty.dtype, dst_ty.dtype, dst_ir)
                at = builder.add(dst_offsets[g + k], _i64(h))
                builder.store(v, vector_ptr(builder, da.data, at, width), align=dst_align)


def _strided(builder, start, step):
    """The offsets ``start + step k`` for ``k < 16`` (64-bit values)."""
    return [builder.add(start, builder.mul(step, _i64(k))) for k in range(BLOCK)]


def _row_starts(context, builder, arr_ty, arr, rows_ty, rows, j0, column):
    """The offsets of ``(row(j0 + j), column)`` for ``j < 16`` in the C-contiguous 2-D
    array ``arr`` (see :func:`_row_start`)."""
    a = context.make_array(arr_ty)(context, builder, arr)
    width = cgutils.unpack_tuple(builder, a.shape, 2)[1]
    return [
        _row_start(context, builder, rows_ty, rows, builder.add(j0, _i64(j)), width, column)
        for j in range(BLOCK)
    ]


def _typed(ok: bool, signature, codegen):
    return (signature, codegen) if ok else None


@intrinsic
def rows_to_lanes(typingctx, x, rows, j0, t0, buf, base, step):
    """``buf.flat[base + step k + j] = x[row(j0 + j), t0 + k]`` for ``j, k < 16``: runs of
    16 steps of 16 rows of the 2-D C-contiguous ``x`` into 16 lanes of the C-contiguous
    ``buf`` (a step every ``step`` values), converted to ``buf``'s dtype; ``row(j)`` is
    ``rows[j]`` (1-D int64 array) or ``rows + j`` (integer)."""
    ok = (
        _c_contiguous(x, buf)
        and x.ndim == 2
        and _convertible(x.dtype, buf.dtype)
        and _rows(rows)
        and all(isinstance(t, types.Integer) for t in (j0, t0, base, step))
    )

    def codegen(context, builder, sig, args):
        x_ty, rows_ty, j0_ty, t0_ty, buf_ty, base_ty, step_ty = sig.args
        j0_, t0_ = as_i64(builder, args[2], j0_ty), as_i64(builder, args[3], t0_ty)
        base_, step_ = as_i64(builder, args[5], base_ty), as_i64(builder, args[6], step_ty)
        src = _row_starts(context, builder, x_ty, args[0], rows_ty, args[1], j0_, t0_)
        dst = _strided(builder, base_, step_)
        _move(context, builder, args[0], x_ty, src, args[4], buf_ty, dst)
        return context.get_dummy_value()

    return _typed(ok, types.none(x, rows, j0, t0, buf, base, step), codegen)


@intrinsic
def lanes_to_rows(typingctx, segs, base, step, out, rows, j0, col):
    """``out[row(j0 + j), col + k] = segs.flat[base + step k + j]`` for ``j, k < 16``: 16
    steps of 16 lanes (each step's lanes contiguous in the C-contiguous ``segs``,
    ``step`` values apart) into runs of 16 of the rows of the 2-D C-contiguous ``out``,
    converted to ``out``'s dtype; ``row(j)`` as in :func:`rows_to_lanes`."""
    ok = (
        _c_contiguous(segs, out)
        and out.ndim == 2
        and _convertible(segs.dtype, out.dtype)
        and _rows(rows)
        and all(isinstance(t, types.Integer) for t in (base, step, j0, col))
    )

    def codegen(context, builder, sig, args):
        segs_ty, base_ty, step_ty, out_ty, rows_ty, j0_ty, col_ty = sig.args
        base_, step_ = as_i64(builder, args[1], base_ty), as_i64(builder, args[2], step_ty)
        j0_, col_ = as_i64(builder, args[5], j0_ty), as_i64(builder, args[6], col_ty)
        src = _strided(builder, base_, step_)
        dst = _row_starts(context, builder, out_ty, args[3], rows_ty, args[4], j0_, col_)
        _move(context, builder, args[0], segs_ty, src, args[3], out_ty, dst)
        return context.get_dummy_value()

    return _typed(ok, types.none(segs, base, step, out, rows, j0, col), codegen)


def _rows_of(rows, j0: int) -> list[int]:
    """``row(j0 + j)`` for ``j < 16`` (see :func:`rows_to_lanes`), in Python."""
    if isinstance(rows, (int, np.integer)):
        return [int(rows) + j0 + j for j in range(BLOCK)]
    return [int(r) for r in rows[j0 : j0 + BLOCK]]


def _flat_index(arr, base: int, step: int, k: int):
    """The index of ``arr.flat[base + step k + j]`` for ``j < 16`` (1-D or 2-D ``arr``)."""
    at = base + step * k + np.arange(BLOCK)
    return at if arr.ndim == 1 else np.divmod(at, arr.shape[-1])


def block_in(x, rows, j0, t0, buf, base, step) -> None:
    """``buf.flat[base + step k + j] = x[row(j0 + j), t0 + k]`` for ``j, k < 16`` (see
    :func:`rows_to_lanes`), in any layout (a 1-D or 2-D ``buf``). Called from ``njit``
    code it compiles to :func:`rows_to_lanes` where the arrays allow it (C-contiguous, a
    conversion it makes), else to the same moves value by value; in Python it makes the
    same moves with NumPy (converting as ``astype`` does: integers wrap)."""
    block = x[_rows_of(rows, j0), t0 : t0 + BLOCK].T.astype(buf.dtype)
    for k in range(BLOCK):
        buf[_flat_index(buf, base, step, k)] = block[k]


def block_out(segs, base, step, out, rows, j0, col) -> None:
    """``out[row(j0 + j), col + k] = segs.flat[base + step k + j]`` for ``j, k < 16`` (see
    :func:`lanes_to_rows`), in any layout (a 1-D or 2-D ``segs``); compiled, and in
    Python, as :func:`block_in`."""
    block = np.stack([segs[_flat_index(segs, base, step, k)] for k in range(BLOCK)])
    for j, r in enumerate(_rows_of(rows, j0)):
        out[r, col : col + BLOCK] = block[:, j].astype(out.dtype)


def _fast(src, dst, rows) -> bool:
    return _c_contiguous(src, dst) and _convertible(src.dtype, dst.dtype) and _rows(rows)


def _row(rows):
    """``row(j)`` of :func:`rows_to_lanes` for the element moves."""
    if isinstance(rows, types.Integer):
        return lambda rows, j: rows + j
    return lambda rows, j: rows[j]


def _flat_get(arr):
    """``arr.flat[at]`` of a 1-D or 2-D array, without a view."""
    if arr.ndim == 1:
        return lambda arr, at: arr[at]
    return lambda arr, at: arr[at // arr.shape[1], at % arr.shape[1]]


def _flat_set(arr):
    """``arr.flat[at] = v`` of a 1-D or 2-D array, without a view."""
    if arr.ndim == 1:

        def set1(arr, at, v):
            arr[at] = v

        return set1

    def set2(arr, at, v):
        arr[at // arr.shape[1], at % arr.shape[1]] = v

    return set2


@overload(block_in, inline="always")
def _block_in(x, rows, j0, t0, buf, base, step):
    if _fast(x, buf, rows) and x.ndim == 2:
        return lambda x, rows, j0, t0, buf, base, step: rows_to_lanes(
            x, rows, j0, t0, buf, base, step
        )
    row, put = njit(_row(rows)), njit(_flat_set(buf))

    def moves(x, rows, j0, t0, buf, base, step):
        for j in range(BLOCK):
            r = row(rows, j0 + j)
            for k in range(BLOCK):
                put(buf, base + step * k + j, x[r, t0 + k])

    return moves


@overload(block_out, inline="always")
def _block_out(segs, base, step, out, rows, j0, col):
    if _fast(segs, out, rows):
        return lambda segs, base, step, out, rows, j0, col: lanes_to_rows(
            segs, base, step, out, rows, j0, col
        )
    row, get = njit(_row(rows)), njit(_flat_get(segs))

    def moves(segs, base, step, out, rows, j0, col):
        for j in range(BLOCK):
            r = row(rows, j0 + j)
            for k in range(BLOCK):
                out[r, col + k] = get(segs, base + step * k + j)

    return moves

r"""One time-last input row to the int8 operand, its check and counts in vector registers.

The dense synapse's int8 product (:mod:`._int_product`) converts each time-last input
row ``x[b, i, :]`` (float32) to int8 and, in the same pass, flags a value that is not an
integer in :math:`[-128, 127]`, keeps the largest magnitude and counts the values that
are not zero:

.. math::

    q_t = \operatorname{trunc}\big(\min(\max(x_t, -128), 127)\big), \qquad
    \mathrm{bad} = \bigvee_t [q_t \ne x_t], \qquad
    m = \max_t |q_t|, \qquad n = \#\{t : q_t \ne 0\}

(a NaN compares unequal to everything, so it is always flagged; its ``q`` is then
-128, and the caller discards the operand). The count comes with the pass: it is the
event product's density test, and a separate ``count_nonzero`` of the operand took
0.17-0.26 ms at N-MNIST's size. As a numba loop LLVM vectorised this 64
values at a time (16 lanes, four interleaved), so a row shorter than 64 steps, and the
last ``T mod 64`` values of any row, ran one value at a time: N-MNIST's rows of 60 steps
took 121-125 us for the (32, 578) input against 91-101 us for rows of 64 (stop 55,
scratch ``op.py``, ``t64k.py``). :func:`int8_row` compiles to one vector of 16 values
at a time with the three reductions kept in vector registers through the row; a row
whose length is no multiple of 16 ends with the 16 values that end at its last one,
counting only the values not seen before (converting, storing and checking a value
twice changes nothing).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .._numba_cache import guard_cache_writes
from ..fixed._transpose import BLOCK, as_i64, splat, vector_ptr

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = ["INT8_MAX", "INT8_MIN", "int8_row"]

#: the int8 operands' range
INT8_MIN, INT8_MAX = -128, 127

_I32 = ir.IntType(32)
_LANES_I32 = ir.VectorType(_I32, BLOCK)
_LANES_F32 = ir.VectorType(ir.FloatType(), BLOCK)
_LANES_I8 = ir.VectorType(ir.IntType(8), BLOCK)


def _reduce(builder, kind: str, vector):
    """``llvm.vector.reduce.<kind>`` of 16 int32 lanes."""
    fnty = ir.FunctionType(_I32, [_LANES_I32])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.vector.reduce.{kind}.v16i32")
    return builder.call(fn, [vector])


def _c_array(ty, dtype, ndim: int) -> bool:
    return (
        isinstance(ty, types.Array) and ty.dtype == dtype and ty.layout == "C" and ty.ndim == ndim
    )


@intrinsic
def _int8_run(typingctx, x, x_at, out, out_at, steps):
    """``out.flat[out_at + t] = q_t`` for ``t < steps`` from ``x.flat[x_at + t]`` (see the
    module), returning ``(bad, max |q|, non-zero values)`` as int32; ``steps >= 16``, every
    index in range (the caller's guarantee)."""
    ok = (
        _c_array(x, types.float32, 3)
        and _c_array(out, types.int8, 3)
        and all(isinstance(t, types.Integer) for t in (x_at, out_at, steps))
    )

    def codegen(context, builder, sig, args):
        tys = sig.args
        x_data = context.make_array(tys[0])(context, builder, args[0]).data
        out_data = context.make_array(tys[2])(context, builder, args[2]).data
        x0, o0 = as_i64(builder, args[1], tys[1]), as_i64(builder, args[3], tys[3])
        n = as_i64(builder, args[4], tys[4])
        i64 = ir.IntType(64)
        zero = ir.Constant(_LANES_I32, None)
        lane = ir.Constant(_LANES_I32, list(range(BLOCK)))
        low = splat(builder, ir.Constant(ir.FloatType(), float(INT8_MIN)))
        high = splat(builder, ir.Constant(ir.FloatType(), float(INT8_MAX)))
        # allocas in the entry block: LLVM promotes them to registers
        acc_bad, acc_top, acc_nz = (cgutils.alloca_once_value(builder, zero) for _ in range(3))

        def block(t0, skip):
            """Values ``t0 .. t0 + 15``; the first ``skip`` lanes already counted."""
            v = builder.load(vector_ptr(builder, x_data, builder.add(x0, t0)), align=4)
            c = builder.select(builder.fcmp_ordered(">", v, low), v, low)
            c = builder.select(builder.fcmp_ordered("<", c, high), c, high)
            q = builder.fptosi(c, _LANES_I32)
            dst = vector_ptr(builder, out_data, builder.add(o0, t0))
            builder.store(builder.trunc(q, _LANES_I8), dst, align=1)
            off = builder.zext(
                builder.fcmp_unordered("!=", builder.sitofp(q, _LANES_F32), v), _LANES_I32
            )
            builder.store(builder.or_(builder.load(acc_bad), off), acc_bad)
            a = builder.select(builder.icmp_signed("<", q, zero), builder.neg(q), q)
            top = builder.load(acc_top)
            builder.store(builder.select(builder.icmp_signed(">", a, top), a, top), acc_top)
            new = builder.icmp_signed(">=", lane, splat(builder, skip))
            count = builder.zext(builder.and_(builder.icmp_signed(">", a, zero), new), _LANES_I32)
            builder.store(builder.add(builder.load(acc_nz), count), acc_nz)

        step = ir.Constant(i64, BLOCK)
        full = builder.and_(n, ir.Constant(i64, -BLOCK))
        with cgutils.for_range_slice(builder, ir.Constant(i64, 0), full, step, intp=i64) as (t0, _):
            block(t0, ir.Constant(_I32, 0))
        with builder.if_then(builder.icmp_signed("<", full, n)):
            # the 16 values ending at the last one; lanes before ``full`` were counted
            seen = builder.trunc(builder.sub(builder.add(full, step), n), _I32)
            block(builder.sub(n, step), seen)
        values = [
            _reduce(builder, "or", builder.load(acc_bad)),
            _reduce(builder, "smax", builder.load(acc_top)),
            _reduce(builder, "add", builder.load(acc_nz)),
        ]
        return context.make_tuple(builder, sig.return_type, values)

    if not ok:
        return None
    return types.UniTuple(types.int32, 3)(x, x_at, out, out_at, steps), codegen


@njit(inline="always", cache=True)
def _row_by_value(x, b, i, out):
    """:func:`int8_row` one value at a time (any layout and output dtype). Indexed
    directly, with an unsigned step: row slices in a parallel region cost atomic reference
    counts that the threads share (the N-MNIST operand pass paired 0.80)."""
    bad = np.int32(0)
    top = np.int32(0)
    nz = np.int32(0)
    for t in range(np.uint64(x.shape[2])):
        v = x[b, i, t]
        q = np.int32(min(max(v, np.float32(INT8_MIN)), np.float32(INT8_MAX)))
        out[i, b, t] = q
        bad |= np.int32(np.float32(q) != v)
        a = abs(q)
        top = max(top, a)
        nz += np.int32(a > 0)  # (``q != 0`` here kept the loop scalar: 1.7x the time)
    return bad, top, nz


def int8_row(x: np.ndarray, b: int, i: int, out: np.ndarray) -> tuple[int, int, int]:
    """``out[i, b, t] = q_t`` from ``x[b, i, t]`` (``x`` ``(B, I, T)`` float32, ``out``
    an ``(I, B, T)`` array) for every ``t``; returns ``(bad, max |q|, non-zero values)``
    (see the module: ``bad`` is 1 where a value is not an integer in ``[-128, 127]``).
    Compiled, it runs 16 values per vector where both arrays are C-contiguous, ``out``
    int8 and the row at least 16 long, else value by value; in Python, with NumPy
    (a NaN's ``q`` is -128, as in the vector code)."""
    v = np.asarray(x[b, i], np.float32)
    c = np.where(v > INT8_MIN, v, np.float32(INT8_MIN))
    c = np.where(c < INT8_MAX, c, np.float32(INT8_MAX))
    q = c.astype(np.int32)
    out[i, b] = q
    bad = int(np.any(q.astype(np.float32) != v))
    return bad, int(np.abs(q).max(initial=0)), int(np.count_nonzero(q))


@overload(int8_row, inline="always")
def _int8_row(x, b, i, out):
    if _c_array(x, types.float32, 3) and _c_array(out, types.int8, 3):

        def vectors(x, b, i, out):
            steps = x.shape[2]
            if steps < BLOCK:
                return _row_by_value(x, b, i, out)
            x_at = (b * x.shape[1] + i) * steps
            return _int8_run(x, x_at, out, (i * out.shape[1] + b) * steps, steps)

        return vectors
    return lambda x, b, i, out: _row_by_value(x, b, i, out)

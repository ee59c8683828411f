r"""Sums of a few scaled weight runs, kept in vector registers, added to a run of sums.

The event convolution (:mod:`.event_conv`) visits, for one input pixel at one step, the
channels :math:`c_k` whose values :math:`v_k` are not zero, and adds each one's weight
run to the same run of output sums:

.. math::

    a[a_0 + i] \mathrel{+}= \sum_{k = e_0}^{e_1 - 1} v_k \, w[w_0 + c_k s + i],
    \qquad 0 \le i < 16 m .

Written as numba loops, the run of sums is loaded and stored once per event (numba
tells LLVM nothing about aliasing, so the sums cannot stay in registers across the
events), and a loop LLVM vectorises only runs multiples of 64 values, the rest in a
scalar remainder. Here the ``m`` (1 to 4) 16-lane partial sums live in registers through
the loop over the events; the sums are loaded and stored once. Per event: one broadcast,
``m`` weight loads, ``m`` multiplies and adds.

The products and sums are the loop's operations (``fmul`` then ``fadd``, no fused
multiply-add) in another order: the callers use them where every product and partial
sum is an integer below :math:`2^{24}`, exact in float32 in any order. The intrinsics
read the arrays' data pointers directly; the callers guarantee every index in range, as
the loops' were.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._numba_cache import guard_cache_writes
from ._transpose import BLOCK, as_i64, flat_array, splat, vector_ptr

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = ["gather_add_16", "gather_add_32", "gather_add_48", "gather_add_64"]


def _operands(acc, a0, w, w0, stride, chans, vals, e0, e1) -> bool:
    arrays = (
        flat_array(acc, types.float32)
        and flat_array(w, types.float32)
        and flat_array(vals, types.float32)
    )
    index = isinstance(chans, types.Array) and isinstance(chans.dtype, types.Integer)
    scalars = all(isinstance(t, types.Integer) for t in (a0, w0, stride, e0, e1))
    return arrays and index and flat_array(chans, chans.dtype) and scalars


def _gather_add(blocks: int):
    """The intrinsic for runs of ``16 * blocks`` values."""

    def codegen(context, builder, sig, args):
        acc, a0, w, w0, stride, chans, vals, e0, e1 = args
        tys = sig.args
        acc_data = context.make_array(tys[0])(context, builder, acc).data
        w_data = context.make_array(tys[2])(context, builder, w).data
        chan_data = context.make_array(tys[5])(context, builder, chans).data
        val_data = context.make_array(tys[6])(context, builder, vals).data
        i64 = ir.IntType(64)
        lanes = ir.VectorType(ir.FloatType(), BLOCK)
        first, stop = as_i64(builder, e0, tys[7]), as_i64(builder, e1, tys[8])
        w_first, step = as_i64(builder, w0, tys[3]), as_i64(builder, stride, tys[4])
        # allocas in the entry block: LLVM promotes them to registers
        totals = [
            cgutils.alloca_once_value(builder, ir.Constant(lanes, [0.0] * BLOCK))
            for _ in range(blocks)
        ]
        with cgutils.for_range(builder, builder.sub(stop, first), intp=i64) as loop:
            k = builder.add(loop.index, first)
            chan = as_i64(builder, builder.load(builder.gep(chan_data, [k])), tys[5].dtype)
            scale = splat(builder, builder.load(builder.gep(val_data, [k])))
            base = builder.add(w_first, builder.mul(chan, step))
            for b, total in enumerate(totals):
                at = builder.add(base, ir.Constant(i64, BLOCK * b))
                weights = builder.load(vector_ptr(builder, w_data, at), align=4)
                builder.store(
                    builder.fadd(builder.load(total), builder.fmul(scale, weights)), total
                )
        a_first = as_i64(builder, a0, tys[1])
        for b, total in enumerate(totals):
            ptr = vector_ptr(builder, acc_data, builder.add(a_first, ir.Constant(i64, BLOCK * b)))
            builder.store(
                builder.fadd(builder.load(ptr, align=4), builder.load(total)), ptr, align=4
            )
        return context.get_dummy_value()

    def typer(typingctx, acc, a0, w, w0, stride, chans, vals, e0, e1):
        if not _operands(acc, a0, w, w0, stride, chans, vals, e0, e1):
            return None
        return types.void(acc, a0, w, w0, stride, chans, vals, e0, e1), codegen

    typer.__name__ = f"gather_add_{BLOCK * blocks}"
    typer.__doc__ = (
        f"``acc[a0 + i] += sum(vals[k] * w[w0 + chans[k] * stride + i] for k in range(e0,"
        f" e1))`` for ``i < {BLOCK * blocks}``: ``acc``, ``w``, ``vals`` 1-D C-contiguous"
        " float32, ``chans`` 1-D integer, the rest integer offsets and counts."
    )
    return intrinsic(typer)


gather_add_16 = _gather_add(1)
gather_add_32 = _gather_add(2)
gather_add_48 = _gather_add(3)
gather_add_64 = _gather_add(4)

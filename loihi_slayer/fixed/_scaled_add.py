r"""One vector multiply-add of 16 float32 values, for loops whose trip count LLVM cannot see.

The event convolution (:mod:`.event_conv`) adds, for every non-zero input value
:math:`v`, :math:`v` times a run of weights to a run of sums:

.. math::

    a[a_0 + k] \mathrel{+}= v \, w[w_0 + k], \qquad 0 \le k < n .

Written as a loop over ``n``, LLVM vectorises it 16 lanes wide and unrolled 4 times,
with a runtime check that the two arrays do not overlap, and leaves any trip count that
is not a multiple of 64 to a scalar remainder: the output channels had to be padded to
64 (PilotNet SDNN's 36 channels to 64, 44 % of the work on zeros). Written as a loop of
16 over a ``range(16)`` body it is not vectorised at all (numba passes no aliasing
information: 2-3x slower). Here each call is one 16-lane load of each operand, a
multiply, an add and a store, so the runs need only be whole multiples of 16.

The product and sum are the loop's (``fmul`` then ``fadd``, no fused multiply-add):
bit for bit the same values. The intrinsic reads the arrays' data pointers directly;
the caller guarantees ``a0 + 16`` and ``w0 + 16`` within the arrays, as the loop's
indices were.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._transpose import BLOCK, as_i64, vector_ptr

__all__ = ["scaled_add"]


def _operands(acc, a0, w, w0, v) -> bool:
    flat = all(
        isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C" and t.dtype == types.float32
        for t in (acc, w)
    )
    offsets = all(isinstance(t, types.Integer) for t in (a0, w0))
    return flat and offsets and v == types.float32


@intrinsic
def scaled_add(typingctx, acc, a0, w, w0, v):
    """``acc[a0 + k] += v * w[w0 + k]`` for ``k < 16``: ``acc``, ``w`` 1-D C-contiguous
    float32 arrays, ``v`` a float32, ``a0``, ``w0`` integer element offsets."""
    if not _operands(acc, a0, w, w0, v):
        return None
    signature = types.void(acc, a0, w, w0, v)

    def codegen(context, builder, sig, args):
        acc_val, a0_val, w_val, w0_val, v_val = args
        acc_arr = context.make_array(sig.args[0])(context, builder, acc_val)
        w_arr = context.make_array(sig.args[2])(context, builder, w_val)
        lanes = ir.VectorType(ir.FloatType(), BLOCK)
        at = vector_ptr(builder, acc_arr.data, as_i64(builder, a0_val, sig.args[1]))
        weights = builder.load(
            vector_ptr(builder, w_arr.data, as_i64(builder, w0_val, sig.args[3])), align=4
        )
        one = builder.insert_element(ir.Constant(lanes, ir.Undefined), v_val, ir.IntType(32)(0))
        zeros = ir.Constant(ir.VectorType(ir.IntType(32), BLOCK), [0] * BLOCK)
        scale = builder.shuffle_vector(one, ir.Constant(lanes, ir.Undefined), zeros)
        total = builder.fadd(builder.load(at, align=4), builder.fmul(scale, weights))
        builder.store(total, at, align=4)
        return context.get_dummy_value()

    return signature, codegen

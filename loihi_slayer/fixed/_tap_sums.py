r"""One output pixel's sums over its kernel taps, eight output channels at a time, in
vector registers.

The pixel-by-pixel convolution (:mod:`.pixel_conv`) computes, for one output pixel, the sums
of eight output channels over a run of :math:`16 V` time steps:

.. math::

    a[s_0 + o\,s + i] = \sum_{k = k_0}^{k_1 - 1} w[w_k + w_t + o] \; x[x_k + x_t + i],
    \qquad 0 \le o < 8,\; 0 \le i < 16 V,

where tap :math:`k` reads the input run at :math:`x_k` and its eight weights at
:math:`w_k` (the weights of one tap lie side by side, output channels last). The
:math:`8 V` partial sums stay in registers through the loop over the taps; per tap:
:math:`V` input loads, eight broadcast weights, :math:`8 V` fused multiply-adds. (Numba
loops keep no accumulators in registers across such a loop: numba tells LLVM nothing
about aliasing, so every sum is loaded and stored per tap.)

The fused multiply-add rounds once, the loop's multiply then add twice; the callers use
it where every product and partial sum is an integer below :math:`2^{24}`, exact in
float32 in any order and with either rounding. The intrinsics read the arrays' data
pointers directly; the callers guarantee every index in range.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._numba_cache import guard_cache_writes
from ._transpose import BLOCK, as_i64, flat_array, splat, vector_ptr

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = ["OUTPUTS", "tap_sums_16", "tap_sums_32"]

#: output channels per call (the weights' padding unit in :mod:`.pixel_conv`)
OUTPUTS = 8


def _index(t) -> bool:
    return isinstance(t, types.Array) and t.ndim == 1 and isinstance(t.dtype, types.Integer)


def _operands(sums, s0, stride, x, xoffs, xt, w, woffs, wt, k0, k1) -> bool:
    arrays = (
        flat_array(sums, types.float32)
        and flat_array(x, types.float32)
        and flat_array(w, types.float32)
    )
    index = _index(xoffs) and _index(woffs) and xoffs.layout == woffs.layout == "C"
    scalars = all(isinstance(t, types.Integer) for t in (s0, stride, xt, wt, k0, k1))
    return arrays and index and scalars


def _tap_sums(vectors: int):
    """The intrinsic for runs of ``16 * vectors`` steps."""

    def codegen(context, builder, sig, args):
        sums, s0, stride, x, xoffs, xt, w, woffs, wt, k0, k1 = args
        tys = sig.args

        def data(i, value):
            return context.make_array(tys[i])(context, builder, value).data

        sum_data, x_data, w_data = data(0, sums), data(3, x), data(6, w)
        xo_data, wo_data = data(4, xoffs), data(7, woffs)
        i64 = ir.IntType(64)
        lanes = ir.VectorType(ir.FloatType(), BLOCK)
        first, stop = as_i64(builder, k0, tys[9]), as_i64(builder, k1, tys[10])
        x_shift, w_shift = as_i64(builder, xt, tys[5]), as_i64(builder, wt, tys[8])
        # allocas in the entry block: LLVM promotes them to registers
        totals = [
            [
                cgutils.alloca_once_value(builder, ir.Constant(lanes, [0.0] * BLOCK))
                for _ in range(vectors)
            ]
            for _ in range(OUTPUTS)
        ]
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(lanes, [lanes] * 3), f"llvm.fma.v{BLOCK}f32"
        )
        with cgutils.for_range(builder, builder.sub(stop, first), intp=i64) as loop:
            k = builder.add(loop.index, first)
            x_at = as_i64(builder, builder.load(builder.gep(xo_data, [k])), tys[4].dtype)
            x_at = builder.add(x_at, x_shift)
            w_at = as_i64(builder, builder.load(builder.gep(wo_data, [k])), tys[7].dtype)
            w_at = builder.add(w_at, w_shift)
            inputs = [
                builder.load(
                    vector_ptr(builder, x_data, builder.add(x_at, ir.Constant(i64, BLOCK * v))),
                    align=4,
                )
                for v in range(vectors)
            ]
            for o in range(OUTPUTS):
                at = builder.add(w_at, ir.Constant(i64, o))
                weight = splat(builder, builder.load(builder.gep(w_data, [at])))
                for v in range(vectors):
                    total = totals[o][v]
                    builder.store(
                        builder.call(fma, [weight, inputs[v], builder.load(total)]), total
                    )
        base, step = as_i64(builder, s0, tys[1]), as_i64(builder, stride, tys[2])
        for o in range(OUTPUTS):
            row = builder.add(base, builder.mul(step, ir.Constant(i64, o)))
            for v in range(vectors):
                at = builder.add(row, ir.Constant(i64, BLOCK * v))
                builder.store(
                    builder.load(totals[o][v]), vector_ptr(builder, sum_data, at), align=4
                )
        return context.get_dummy_value()

    def typer(typingctx, sums, s0, stride, x, xoffs, xt, w, woffs, wt, k0, k1):
        if not _operands(sums, s0, stride, x, xoffs, xt, w, woffs, wt, k0, k1):
            return None
        sig = types.void(sums, s0, stride, x, xoffs, xt, w, woffs, wt, k0, k1)
        return sig, codegen

    width = BLOCK * vectors
    typer.__name__ = f"tap_sums_{width}"
    typer.__doc__ = (
        f"``sums[s0 + o * stride + i] = sum(w[woffs[k] + wt + o] * x[xoffs[k] + xt + i] for k"
        f" in range(k0, k1))`` for ``o < {OUTPUTS}``, ``i < {width}``: ``sums``, ``x``, ``w``"
        " 1-D C-contiguous float32, ``xoffs``, ``woffs`` 1-D integer, the rest integer"
        " offsets and counts."
    )
    return intrinsic(typer)


tap_sums_16 = _tap_sums(1)
tap_sums_32 = _tap_sums(2)

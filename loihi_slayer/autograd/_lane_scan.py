r"""The CUBA backward's two reverse scans on 16 neurons at once, state in vector registers.

The surrogate-gradient backward of a CUBA neuron (:func:`._cpu.cuba_backward_fast`)
is, per neuron, two first-order recurrences run backwards in time:

.. math::

    g_v[t] = s[t] + a_v\, g_v[t+1], \qquad g_u[t] = g_v[t] + a_u\, g_u[t+1],
    \qquad g_v[T] = g_u[T] = 0

(:math:`s` the surrogate times the spike gradient, :math:`a_v = 1 - \mathrm{vDecay}/4096`,
:math:`a_u = 1 - \mathrm{iDecay}/4096`). One neuron's scan is a chain of dependent
multiply-adds; interleaving four neurons (the quads of :func:`._cpu._scan_quad`) still
left the scan at half the backward's time (``perf``, Zen 4). :func:`reverse_scans`
steps 16 neurons, one per lane, through a step-major buffer: the two running gradients
are 16-lane vectors carried in registers from step to step (a loop of 16 scalar lanes
over arrays kept them in memory, where each step waited on the last one's stores).

Both scans are fused multiply-adds, ``fma(a_v, g_v, s)`` and ``fma(a_u, g_u, g_v)``,
and :func:`fma32` gives the quads the same single rounding, so a neuron's gradient has
the same bits whichever path steps it.

:func:`sigma_scans` does the same for the sigma-delta backward's reverse prefix sum
(:func:`._cpu.sdnn_backward`), with the row loop's operations in its order.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._numba_cache import guard_cache_writes
from ..fixed._transpose import BLOCK, as_i64, block_in, block_out, splat, vector_ptr
from ._f32x16 import f32_c

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = [
    "copy16",
    "fma32",
    "lanes_to_rows",
    "mul32",
    "reverse_scans",
    "rows_to_lanes",
    "scale16",
    "sigma_scans",
]


@njit(inline="always", cache=True)
def rows_to_lanes(x, r0, steps, lanes):
    """``lanes[t * 16 + j] = x[r0 + j, t]`` for ``j < 16``, ``t < steps``: 16 rows of
    ``x`` into the step-major buffer the scans read, 16 x 16 blocks at a time
    (:func:`~loihi_slayer.fixed._transpose.block_in`, converting as it does), the last
    ``steps % 16`` steps value by value."""
    full = steps // BLOCK * BLOCK
    for t0 in range(0, full, BLOCK):
        block_in(x, r0, 0, t0, lanes, t0 * BLOCK, BLOCK)
    for j in range(BLOCK):
        for t in range(full, steps):
            lanes[t * BLOCK + j] = x[r0 + j, t]


@njit(inline="always", cache=True)
def lanes_to_rows(lanes, steps, out, r0):
    """The inverse move of :func:`rows_to_lanes`: ``out[r0 + j, t] = lanes[t * 16 + j]``."""
    full = steps // BLOCK * BLOCK
    for t0 in range(0, full, BLOCK):
        block_out(lanes, t0 * BLOCK, BLOCK, out, r0, 0, t0)
    for j in range(BLOCK):
        for t in range(full, steps):
            out[r0 + j, t] = lanes[t * BLOCK + j]


def _fma(builder, ty, suffix: str):
    """``llvm.fma`` of type ``ty`` (named by its LLVM suffix: llvmlite's
    ``declare_intrinsic`` gives fma a wrong signature and names no vector types)."""
    fnty = ir.FunctionType(ty, [ty, ty, ty])
    return cgutils.get_or_insert_function(builder.module, fnty, f"llvm.fma.{suffix}")


@intrinsic
def fma32(typingctx, a, b, c):
    """``a * b + c`` rounded once (float32: ``llvm.fma.f32``)."""
    if not all(t == types.float32 for t in (a, b, c)):
        return None

    def codegen(context, builder, sig, args):
        return builder.call(_fma(builder, ir.FloatType(), "f32"), list(args))

    return types.float32(a, b, c), codegen


@intrinsic
def mul32(typingctx, a, b):
    """``a * b`` (float32) without fast-math flags: inside a ``fastmath`` kernel LLVM
    may not reassociate it with the products around it, so ``mul32(mul32(s, a), g)``
    has the same bits in every loop it is written in."""
    if not (a == types.float32 and b == types.float32):
        return None

    def codegen(context, builder, sig, args):
        return builder.fmul(args[0], args[1])

    return types.float32(a, b), codegen


@intrinsic
def copy16(typingctx, src, src_at, dst, dst_at):
    """``dst.flat[dst_at + j] = src.flat[src_at + j]`` for ``j < 16`` (C-contiguous
    float32 arrays of any shape): one vector load and store. (Written as a loop between
    two arrays LLVM cannot prove apart, the 16 moves stayed scalar.)"""
    if not f32_c(src, dst) or not all(isinstance(t, types.Integer) for t in (src_at, dst_at)):
        return None

    def codegen(context, builder, sig, args):
        src_ty, sat_ty, dst_ty, dat_ty = sig.args
        sd = context.make_array(src_ty)(context, builder, args[0]).data
        dd = context.make_array(dst_ty)(context, builder, args[2]).data
        v = builder.load(vector_ptr(builder, sd, as_i64(builder, args[1], sat_ty)), align=4)
        builder.store(v, vector_ptr(builder, dd, as_i64(builder, args[3], dat_ty)), align=4)
        return context.get_dummy_value()

    return types.none(src, src_at, dst, dst_at), codegen


def _update16(y, y_at, a, x, x_at, combine):
    """Typing and code of an intrinsic ``f(y, y_at, a, x, x_at)`` that stores
    ``combine(builder, yv, av, xv)`` into ``y.flat[y_at : y_at + 16]`` (``yv`` those 16
    values, ``xv`` ``x.flat[x_at : x_at + 16]``, ``av`` the float32 ``a`` in every lane;
    C-contiguous float32 arrays): one vector load of each, one store."""
    ok = f32_c(y, x) and a == types.float32
    if not ok or not all(isinstance(t, types.Integer) for t in (y_at, x_at)):
        return None

    def codegen(context, builder, sig, args):
        y_ty, yat_ty, _, x_ty, xat_ty = sig.args
        yd = context.make_array(y_ty)(context, builder, args[0]).data
        xd = context.make_array(x_ty)(context, builder, args[3]).data
        yp = vector_ptr(builder, yd, as_i64(builder, args[1], yat_ty))
        xv = builder.load(vector_ptr(builder, xd, as_i64(builder, args[4], xat_ty)), align=4)
        yv = builder.load(yp, align=4)
        builder.store(combine(builder, yv, splat(builder, args[2]), xv), yp, align=4)
        return context.get_dummy_value()

    return types.none(y, y_at, a, x, x_at), codegen


@intrinsic
def scale16(typingctx, x, x_at, a, g, g_at):
    """``x.flat[x_at + j] = (x.flat[x_at + j] * a) * g.flat[g_at + j]`` for ``j < 16``
    (C-contiguous float32 arrays, ``a`` float32): the products of :func:`mul32`, on
    vectors."""
    return _update16(x, x_at, a, g, g_at, lambda b, xv, av, gv: b.fmul(b.fmul(xv, av), gv))


@intrinsic
def reverse_scans(typingctx, lanes, steps, coef):
    """The module docstring's scans for 16 neurons: ``lanes`` (C-contiguous float32,
    ``lanes[16 t + j]`` = neuron ``j``'s :math:`s[t]`, ``t < steps``) is overwritten with
    :math:`g_u`; ``coef`` (C-contiguous float32, 32 values) holds the lanes' :math:`a_v`,
    then their :math:`a_u`."""
    f32 = types.Array(types.float32, 1, "C")
    if lanes != f32 or coef != f32 or not isinstance(steps, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        lanes_ty, steps_ty, coef_ty = sig.args
        data = context.make_array(lanes_ty)(context, builder, args[0]).data
        cdata = context.make_array(coef_ty)(context, builder, args[2]).data
        i64 = ir.IntType(64)
        n = args[1]
        if steps_ty.bitwidth < 64:
            n = (builder.sext if steps_ty.signed else builder.zext)(n, i64)
        vt = ir.VectorType(ir.FloatType(), BLOCK)
        fma = _fma(builder, vt, f"v{BLOCK}f32")
        av = builder.load(vector_ptr(builder, cdata, ir.Constant(i64, 0)), align=4)
        ai = builder.load(vector_ptr(builder, cdata, ir.Constant(i64, BLOCK)), align=4)
        zero = ir.Constant(vt, None)
        entry = builder.block
        loop = builder.append_basic_block("scan.step")
        done = builder.append_basic_block("scan.done")
        builder.cbranch(builder.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
        builder.position_at_end(loop)
        left = builder.phi(i64)  # steps not yet scanned; this step is left - 1
        gv_next = builder.phi(vt)
        gu_next = builder.phi(vt)
        t = builder.sub(left, ir.Constant(i64, 1))
        ptr = vector_ptr(builder, data, builder.mul(t, ir.Constant(i64, BLOCK)))
        gv = builder.call(fma, [av, gv_next, builder.load(ptr, align=4)])
        gu = builder.call(fma, [ai, gu_next, gv])
        builder.store(gu, ptr, align=4)
        for phi, first, again in ((left, n, t), (gv_next, zero, gv), (gu_next, zero, gu)):
            phi.add_incoming(first, entry)
            phi.add_incoming(again, loop)
        builder.cbranch(builder.icmp_signed(">", t, ir.Constant(i64, 0)), loop, done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return types.none(lanes, steps, coef), codegen


@intrinsic
def sigma_scans(typingctx, lanes, mask, steps, gb):
    r"""The sigma-delta backward (:func:`._cpu.sdnn_backward`, sigma mode) for 16 rows, one
    per lane: ``lanes`` (C-contiguous float32, ``lanes[16 t + j]`` = row ``j``'s output
    gradient :math:`g[t]`, ``t < steps``) is overwritten with

    .. math::

        a[t] = g[t] - g[t+1], \qquad z[t] = a[t] \text{ where } m[t] \ne 0 \text{ else } 0,
        \qquad g_x[t] = \sum_{k \ge t} z[k]

    (``g[steps] = 0``; ``mask`` the same layout, float32), and ``gb`` (float64, 16
    values) receives :math:`\sum_t z[t]` summed in float64. The same operations in the
    same order as the row loop, with the three running values in registers."""
    if not (f32_c(lanes, mask) and isinstance(steps, types.Integer)):
        return None
    if gb != types.Array(types.float64, 1, "C"):
        return None

    def codegen(context, builder, sig, args):
        lanes_ty, mask_ty, steps_ty, gb_ty = sig.args
        data = context.make_array(lanes_ty)(context, builder, args[0]).data
        mdata = context.make_array(mask_ty)(context, builder, args[1]).data
        gdata = context.make_array(gb_ty)(context, builder, args[3]).data
        i64 = ir.IntType(64)
        n = as_i64(builder, args[2], steps_ty)
        vt = ir.VectorType(ir.FloatType(), BLOCK)
        dt = ir.VectorType(ir.DoubleType(), BLOCK)
        zero, dzero = ir.Constant(vt, None), ir.Constant(dt, None)
        entry = builder.block
        loop = builder.append_basic_block("sigma.step")
        done = builder.append_basic_block("sigma.done")
        builder.cbranch(builder.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
        builder.position_at_end(loop)
        left = builder.phi(i64)
        g_next = builder.phi(vt)
        acc_next = builder.phi(vt)
        gb_next = builder.phi(dt)
        t = builder.sub(left, ir.Constant(i64, 1))
        at = builder.mul(t, ir.Constant(i64, BLOCK))
        ptr = vector_ptr(builder, data, at)
        g_t = builder.load(ptr, align=4)
        m_t = builder.load(vector_ptr(builder, mdata, at), align=4)
        a = builder.fsub(g_t, g_next)
        z = builder.select(builder.fcmp_unordered("!=", m_t, zero), a, zero)
        acc = builder.fadd(acc_next, z)
        builder.store(acc, ptr, align=4)
        gb_t = builder.fadd(gb_next, builder.fpext(z, dt))
        for phi, first, again in (
            (left, n, t),
            (g_next, zero, g_t),
            (acc_next, zero, acc),
            (gb_next, dzero, gb_t),
        ):
            phi.add_incoming(first, entry)
            phi.add_incoming(again, loop)
        builder.cbranch(builder.icmp_signed(">", t, ir.Constant(i64, 0)), loop, done)
        builder.position_at_end(done)
        gb_out = builder.phi(dt)
        gb_out.add_incoming(dzero, entry)
        gb_out.add_incoming(gb_t, loop)
        gptr = builder.bitcast(builder.gep(gdata, [ir.Constant(i64, 0)]), dt.as_pointer())
        builder.store(gb_out, gptr, align=8)
        return context.get_dummy_value()

    return types.none(lanes, mask, steps, gb), codegen

r"""Sixteen float32 lanes as a numba value: sums kept in vector registers across a loop.

A numba kernel written with scalars vectorises only its innermost loop, and only where
LLVM can prove the arrays apart. A sum of rows, ``acc[j] += a[k] * x[k, j]`` over ``k``
for ``j < 16``, therefore either stayed scalar or, with one vector multiply-add a term
(the narrow product's kernels until stop 53), loaded and stored its 16 sums at every
term: a store a term, each term waiting on the last one's store. :data:`f32x16` is a
numba type whose value is an LLVM ``<16 x float>``, so a kernel can keep such sums in
local variables (vector registers) for a whole loop and store them once:

.. code-block:: python

    acc = vscale(a[0], vload(x, 0))
    for k in range(1, n):
        acc = vaxpy(acc, a[k], vload(x, k * 16))
    vstore(out, 0, acc)

computes :math:`\mathrm{acc}_j = (\ldots(a_0 x_{0j} + a_1 x_{1j}) + \ldots) + a_{n-1}
x_{n-1,j}` with each product and each sum rounded, in that order: the same bits as the
scalar loop. No reassociation (the operations carry no fast-math flags), and no fused
multiply-add but the one that says so, :func:`vfma` (one rounding a term: the
recurrence's feedback gradient, :mod:`._recurrent_gemm`).

The loads and stores read the arrays' data pointers (C-contiguous float32, any shape,
flat element offsets): the callers guarantee the 16 elements lie in the array.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from .._numba_cache import guard_cache_writes
from ..fixed._transpose import BLOCK, as_i64, splat, vector_ptr

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = [
    "F32x16",
    "f32_c",
    "f32x16",
    "vadd",
    "vany",
    "vaxpy",
    "vbroadcast",
    "vfma",
    "vload",
    "vmul",
    "vscale",
    "vstore",
    "vstore_f64_product",
    "vzero",
]

_VECTOR = ir.VectorType(ir.FloatType(), BLOCK)


class F32x16(types.Type):
    """The numba type of :data:`BLOCK` (16) float32 lanes held as one LLVM vector."""

    def __init__(self) -> None:
        super().__init__(name="F32x16")


#: the type's one instance (the intrinsics' argument and result type)
f32x16 = F32x16()


@register_model(F32x16)
class _F32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type) -> None:
        super().__init__(dmm, fe_type, _VECTOR)


def f32_c(*arrays, ndim: int | None = None) -> bool:
    """Whether every numba type in ``arrays`` is a C-contiguous float32 array (of
    ``ndim`` dimensions where given): the operands the vector intrinsics read by flat
    offset (shared with :mod:`._lane_scan` and :mod:`._row_runs`)."""
    return all(
        isinstance(a, types.Array)
        and a.dtype == types.float32
        and a.layout == "C"
        and (ndim is None or a.ndim == ndim)
        for a in arrays
    )


def _flat_f32(array, at) -> bool:
    return f32_c(array) and isinstance(at, types.Integer)


def _data(context, builder, array_ty, array):
    return context.make_array(array_ty)(context, builder, array).data


@intrinsic
def vload(typingctx, array, at):
    """``array.flat[at : at + 16]`` as an :data:`f32x16` (one vector load)."""
    if not _flat_f32(array, at):
        return None

    def codegen(context, builder, sig, args):
        data = _data(context, builder, sig.args[0], args[0])
        return builder.load(
            vector_ptr(builder, data, as_i64(builder, args[1], sig.args[1])), align=4
        )

    return f32x16(array, at), codegen


@intrinsic
def vstore(typingctx, array, at, value):
    """``array.flat[at : at + 16] = value`` (one vector store)."""
    if not (_flat_f32(array, at) and value == f32x16):
        return None

    def codegen(context, builder, sig, args):
        data = _data(context, builder, sig.args[0], args[0])
        ptr = vector_ptr(builder, data, as_i64(builder, args[1], sig.args[1]))
        builder.store(args[2], ptr, align=4)
        return context.get_dummy_value()

    return types.none(array, at, value), codegen


@intrinsic
def vbroadcast(typingctx, array, at):
    """``array.flat[at]`` in all 16 lanes (one broadcast load)."""
    if not _flat_f32(array, at):
        return None

    def codegen(context, builder, sig, args):
        data = _data(context, builder, sig.args[0], args[0])
        ptr = builder.gep(data, [as_i64(builder, args[1], sig.args[1])])
        return splat(builder, builder.load(ptr, align=4))

    return f32x16(array, at), codegen


_DOUBLES = ir.VectorType(ir.DoubleType(), BLOCK)


@intrinsic
def vstore_f64_product(typingctx, out, at, g, d, d_at):
    """``out.flat[at : at+16] = float32(float64(g) * d.flat[d_at : d_at+16])`` with ``d``
    a C-contiguous float64 array: each lane widened exactly, one float64 product, one
    rounding to float32 (PyTorch's ``g.to(torch.float64) * d`` stored into float32)."""
    wide = isinstance(d, types.Array) and d.dtype == types.float64 and d.layout == "C"
    if not (_flat_f32(out, at) and g == f32x16 and wide and isinstance(d_at, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        src = _data(context, builder, sig.args[3], args[3])
        factor = builder.load(
            vector_ptr(builder, src, as_i64(builder, args[4], sig.args[4])), align=8
        )
        product = builder.fmul(builder.fpext(args[2], _DOUBLES), factor)
        dst = _data(context, builder, sig.args[0], args[0])
        ptr = vector_ptr(builder, dst, as_i64(builder, args[1], sig.args[1]))
        builder.store(builder.fptrunc(product, _VECTOR), ptr, align=4)
        return context.get_dummy_value()

    return types.none(out, at, g, d, d_at), codegen


@intrinsic
def vzero(typingctx):
    """Sixteen ``+0.0``."""

    def codegen(context, builder, sig, args):
        return ir.Constant(_VECTOR, None)

    return f32x16(), codegen


@intrinsic
def vscale(typingctx, a, x):
    """``a * x`` lane by lane (``a`` a float32 scalar in every lane), rounded once."""
    if not (a == types.float32 and x == f32x16):
        return None

    def codegen(context, builder, sig, args):
        return builder.fmul(splat(builder, args[0]), args[1])

    return f32x16(a, x), codegen


@intrinsic
def vaxpy(typingctx, y, a, x):
    """``y + a * x`` lane by lane (``a`` a float32 scalar): the product rounded, then the
    sum, as the scalar statement ``y += a * x``."""
    if not (y == f32x16 and a == types.float32 and x == f32x16):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], builder.fmul(splat(builder, args[1]), args[2]))

    return f32x16(y, a, x), codegen


@intrinsic
def vfma(typingctx, y, a, x):
    """``y + a * x`` lane by lane, fused: rounded once (``llvm.fma``; one ``vfmadd``
    where the CPU has FMA)."""
    if not (y == f32x16 and a == f32x16 and x == f32x16):
        return None

    def codegen(context, builder, sig, args):
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_VECTOR, [_VECTOR] * 3), "llvm.fma.v16f32"
        )
        return builder.call(fma, [args[1], args[2], args[0]])

    return f32x16(y, a, x), codegen


@intrinsic
def vmul(typingctx, a, b):
    """``a * b`` lane by lane, rounded once."""
    if not (a == f32x16 and b == f32x16):
        return None

    def codegen(context, builder, sig, args):
        return builder.fmul(args[0], args[1])

    return f32x16(a, b), codegen


@intrinsic
def vadd(typingctx, a, b):
    """``a + b`` lane by lane, rounded once."""
    if not (a == f32x16 and b == f32x16):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])

    return f32x16(a, b), codegen


@intrinsic
def vany(typingctx, v):
    """Whether any lane is not 0 (NaN is not 0, as in ``x != 0``): one compare and a
    test of its mask."""
    if v != f32x16:
        return None

    def codegen(context, builder, sig, args):
        ne = builder.fcmp_unordered("!=", args[0], ir.Constant(_VECTOR, None))
        bits = builder.bitcast(ne, ir.IntType(BLOCK))
        return builder.icmp_unsigned("!=", bits, ir.Constant(ir.IntType(BLOCK), 0))

    return types.boolean(v), codegen

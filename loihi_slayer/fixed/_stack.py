"""Small fixed-size arrays on the stack of the compiled function that makes them.

The generated CPU kernels (:mod:`.codegen`) step 16 neurons together through lane
buffers: their states and parameters, an input tile and a trace tile. Made with
``np.empty``, the buffers are heap memory that LLVM must assume any other array may
alias, so every state and parameter was loaded and stored at every time step. A stack
array (an ``alloca`` in the function's entry block, its size a compile-time constant)
is memory no other pointer reaches: LLVM keeps the lanes' states and parameters in
vector registers through the time loop and stores them once. The sigma-delta kernel at
76 032 neurons, 32 steps: 0.93-0.97x of its time (alternating, 21 rounds).

The array has no owner (``meminfo`` NULL, like a view of foreign memory) and lives until
its function returns: the callers keep it inside the function (the generated kernels
make their buffers in an inlined helper and never return them).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

from .._numba_cache import guard_cache_writes

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = ["stack_empty_f32", "stack_empty_i64", "stack_empty_like"]


def _stack_array(dtype, size: int):
    """The codegen of an uninitialised 1-D ``dtype`` array of ``size`` values on the stack."""
    array_type = types.Array(dtype, 1, "C")

    def codegen(context, builder, sig, args):
        item = context.get_data_type(dtype)
        width = context.get_abi_sizeof(item)
        memory = cgutils.alloca_once(builder, ir.ArrayType(item, size))
        array = context.make_array(array_type)(context, builder)
        populate_array(
            array,
            data=builder.bitcast(memory, item.as_pointer()),
            shape=[context.get_constant(types.intp, size)],
            strides=[context.get_constant(types.intp, width)],
            itemsize=context.get_constant(types.intp, width),
            meminfo=None,
        )
        return array._getvalue()

    return array_type, codegen


def _literal_size(n) -> bool:
    return isinstance(n, types.IntegerLiteral) and n.literal_value >= 1


@intrinsic
def stack_empty_i64(typingctx, n):
    """An uninitialised 1-D int64 array of ``n`` values (an integer literal) on the
    calling function's stack."""
    if not _literal_size(n):
        return None
    array_type, codegen = _stack_array(types.int64, n.literal_value)
    return array_type(n), codegen


@intrinsic
def stack_empty_f32(typingctx, n):
    """An uninitialised 1-D float32 array of ``n`` values (an integer literal) on the
    calling function's stack (accumulators LLVM keeps in vector registers)."""
    if not _literal_size(n):
        return None
    array_type, codegen = _stack_array(types.float32, n.literal_value)
    return array_type(n), codegen


@intrinsic
def stack_empty_like(typingctx, like, n):
    """:func:`stack_empty_i64` of the signed integer dtype of the array ``like``; int64
    for unsigned ones (numba widens an unsigned value's shift to uint64, and uint64
    with int64 arithmetic gives float64)."""
    ok = isinstance(like, types.Array) and isinstance(like.dtype, types.Integer)
    if not (ok and _literal_size(n)):
        return None
    dtype = like.dtype
    if not dtype.signed:
        dtype = types.int64
    array_type, codegen = _stack_array(dtype, n.literal_value)
    return array_type(like, n), codegen

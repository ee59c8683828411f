"""Array views without an owner, for compiled loops that must not count references.

numba counts the references to every array that has an owner (its ``meminfo``): each
new variable holding the array, each argument binding of an inlined helper and each
view adds one with an atomic instruction and drops it again. Inside a ``prange`` body
they did not show in the profile (numba's parallel passes, which simplify the body's
variables, are the likely reason); a plain ``njit`` function keeps them, and where the
pairs span loops LLVM's reference pruning does not remove them either. In the training
CUBA forward's chunk, compiled as a function of its own
(:func:`loihi_slayer.autograd._cpu._narrow_chunk`), they took 17-20 % of the N-MNIST
pool block's time (``perf`` over the kernel: the atomic increments and decrements of
the chunk's own buffers and of its input), and the pass ran 1.14-1.22x slower than the
same code inside the ``prange`` body.

:func:`unowned` returns a view of the same memory with no owner (``meminfo`` NULL, as
the stack arrays of :mod:`._stack` and numba's arrays over foreign memory have):
counting its references is a test of a null pointer, and so is counting those of every
view taken from it. The memory stays the owner's: the owner must outlive the view. A
function argument does (its caller holds it for the call); an array made in the function
needs :func:`keep` after the view's last use, since numba frees an array after the last
use of its variable.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

from .._numba_cache import guard_cache_writes

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = ["keep", "unowned"]


@intrinsic
def unowned(typingctx, array):
    """A view of ``array`` (same type, data, shape and strides) without an owner: no
    reference counting on it or on the views taken from it. ``array`` must outlive it
    (see the module)."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, sig, args):
        source = context.make_array(array)(context, builder, value=args[0])
        view = context.make_array(array)(context, builder)
        populate_array(
            view,
            data=source.data,
            shape=source.shape,
            strides=source.strides,
            itemsize=source.itemsize,
            meminfo=None,
        )
        return view._getvalue()

    return array(array), codegen


@intrinsic
def keep(typingctx, array):
    """A use of ``array`` that compiles to nothing: numba keeps an array alive up to the
    last use of its variable, so this keeps ``array`` alive up to this point (for the
    :func:`unowned` views taken from it)."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, sig, args):
        return context.get_dummy_value()

    return types.none(array), codegen

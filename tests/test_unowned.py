"""Array views without an owner (:mod:`loihi_slayer.fixed._unowned`)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from loihi_slayer.fixed._unowned import keep, unowned


@intrinsic
def _has_owner(typingctx, array):
    """Whether ``array`` has an owner (a non-null ``meminfo``): what numba counts
    references on."""

    def codegen(context, builder, sig, args):
        value = context.make_array(array)(context, builder, value=args[0])
        return cgutils.is_not_null(builder, value.meminfo)

    return types.boolean(array), codegen


@njit(cache=False)
def _owners(a):
    v = unowned(a)
    return _has_owner(a), _has_owner(v), _has_owner(v[1:]), _has_owner(a[1:])


def test_the_view_and_its_own_views_have_no_owner():
    """The argument has an owner, so does a slice of it; the unowned view has none, nor
    does a slice of the view (no reference counting on either)."""
    assert _owners(np.zeros((3, 4))) == (True, False, False, True)


@njit(cache=False)
def _write_through(a):
    v = unowned(a)
    v[1, 2] = 7.0
    return v.shape, v.strides


@pytest.mark.parametrize("strided", [False, True])
def test_the_view_is_the_owners_memory_with_its_shape_and_strides(strided):
    """A write through the view lands in the owner; shape and strides are the owner's
    (a C-contiguous array and a strided slice of one)."""
    base = np.zeros((4, 6))
    a = base[:, ::2] if strided else base
    shape, strides = _write_through(a)
    assert (shape, strides) == (a.shape, a.strides)
    assert a[1, 2] == 7.0
    assert np.count_nonzero(base) == 1


@njit(cache=False)
def _made_here(n):
    own = np.zeros(n, np.int64)
    v = unowned(own)
    for i in range(n):
        v[i] = i
    total = 0
    for i in range(n):
        total += v[i]
    keep(own)
    return total


def test_an_array_made_in_the_function_is_kept_while_its_view_is_used():
    """The owner made in the function lives up to ``keep``: the view reads back what was
    written (n (n - 1) / 2)."""
    n = 100_000
    assert _made_here(n) == n * (n - 1) // 2


def test_only_arrays_are_accepted():
    @njit(cache=False)
    def scalar(x):
        return unowned(x)

    @njit(cache=False)
    def kept(x):
        keep(x)

    with pytest.raises(TypingError):
        scalar(1.0)
    with pytest.raises(TypingError):
        kept(1.0)

"""Stack arrays of the generated kernels (:mod:`loihi_slayer.fixed._stack`)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from loihi_slayer.fixed._stack import stack_empty_i64


@njit(cache=False)
def _fill_two():
    a = stack_empty_i64(5)
    b = stack_empty_i64(3)
    for i in range(5):
        a[i] = 10 + i
    for i in range(3):
        b[i] = -i
    return a.sum(), b.sum(), a.shape[0], b.shape[0], a.strides[0]


def test_each_call_is_its_own_array():
    """Two stack arrays of the given sizes, int64, C-contiguous, disjoint memory."""
    assert _fill_two() == (60, -3, 5, 3, 8)


@njit(cache=False)
def _in_loop(n):
    total = 0
    for k in range(n):
        a = stack_empty_i64(4)  # one alloca in the entry block, reused each iteration
        for i in range(4):
            a[i] = k * i
        total += a.sum()
    return total


def test_a_stack_array_made_in_a_loop_takes_no_more_stack():
    """Made a million times in a loop: one allocation in the function's frame (an
    alloca per iteration would overflow the stack)."""
    n = 1_000_000
    assert _in_loop(n) == 6 * n * (n - 1) // 2


def test_sizes_must_be_literal_positive_integers():
    @njit(cache=False)
    def variable(n):
        return stack_empty_i64(n)

    @njit(cache=False)
    def empty():
        return stack_empty_i64(0)

    with pytest.raises(TypingError):
        variable(np.int64(3))
    with pytest.raises(TypingError):
        empty()

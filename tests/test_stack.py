"""Stack arrays of the generated kernels (:mod:`loihi_slayer.fixed._stack`)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from loihi_slayer import fixed
from loihi_slayer.fixed._stack import stack_empty_i64, stack_empty_like


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


@njit(cache=False)
def _like(x):
    a = stack_empty_like(x, 4)
    a[0] = x[0]
    return a


def test_like_an_array_takes_its_signed_dtype():
    """The like array's signed integer dtype; unsigned ones become int64 (their shifts
    and mixed arithmetic would turn the step's integers into floats)."""
    for dtype in (np.int8, np.int16, np.int32, np.int64):
        assert _like(np.ones(2, dtype)).dtype == dtype
    for dtype in (np.uint8, np.uint32, np.uint64):
        assert _like(np.ones(2, dtype)).dtype == np.int64


@pytest.mark.parametrize("dtype", [np.bool_, np.int16, np.uint32])
def test_generated_kernels_take_any_integer_input_dtype(dtype):
    """The kernels' input tile takes a signed input's dtype (int16 here; int32 and int64
    in the property tests), int64 for unsigned ones: the traces of the same values as
    the reference's (sigma-delta, CUBA). Each dtype compiles the kernels once more."""
    rng = np.random.default_rng(4)
    values = rng.integers(0, 2 if dtype is np.bool_ else 100, (37, 45))
    x = values.astype(dtype)
    sd = fixed.SigmaDeltaParams(v_th_mant=3, bias=0)
    got, _ = fixed.sigma_delta(x, sd, record=("s", "sigma"), backend="cpu")
    want, _ = fixed.sigma_delta(values, sd, record=("s", "sigma"), backend="reference")
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    cuba = fixed.CubaParams(i_decay=1024, v_decay=512, v_th_mant=40)
    got, _ = fixed.cuba(x, cuba, record=("s", "u", "v"), backend="cpu")
    want, _ = fixed.cuba(values, cuba, record=("s", "u", "v"), backend="reference")
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])

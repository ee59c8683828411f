"""The int8 operand pass of the dense synapse's exact product (``synapse._int8_rows``):
each time-last row converted, checked and counted 16 values per vector, the last block
overlapping. Expected values come from the definition (NumPy on the input), never from
the kernels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from loihi_slayer.synapse import _int_product as ip
from loihi_slayer.synapse._int8_rows import int8_row

#: values a row may hold: on the int8 grid, just off it, out of range, not finite
SPECIAL = [0.0, -0.0, 1.0, -1.0, 127.0, -128.0, 128.0, -129.0, 0.5, -0.5, 126.99, 1e9]
SPECIAL += [float("nan"), float("inf"), -float("inf")]


def _clean(v: np.ndarray) -> np.ndarray:
    """Per row: every value an integer in [-128, 127] (the operand's domain)."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(v) & (v == np.trunc(v)) & (v >= -128) & (v <= 127)
    return ok.all(axis=-1)


@st.composite
def inputs(draw):
    """A ``(B, I, T)`` float32 input of spikes and integers, some rows holding a value off
    the grid; ``T`` reaches below, at and past multiples of 16."""
    n_b, n_i = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    steps = draw(st.sampled_from([1, 5, 15, 16, 17, 31, 32, 33, 47, 60, 63, 64, 65, 100, 129]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (n_b, n_i, steps)).astype(np.float32)
    x *= rng.random(x.shape) < draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    for _ in range(draw(st.integers(0, 3))):  # a few values off the grid, anywhere
        at = tuple(int(rng.integers(0, s)) for s in x.shape)
        x[at] = draw(st.sampled_from(SPECIAL))
    return x


@njit(cache=False)
def _one_row(x, b, i, out):
    return int8_row(x, b, i, out)


@settings(max_examples=150, deadline=None)
@given(x=inputs(), parallel=st.booleans())
def test_operand_rows_are_the_definition(x, parallel):
    n_b, n_i, steps = x.shape
    out = np.full((n_i, n_b, steps), 77, np.int8)
    counts = np.full((n_b, n_i), -1, np.int32)
    kernel = ip._to_int8_parallel if parallel else ip._to_int8_serial
    bad, top, nonzero = kernel(x, out, counts)
    clean = _clean(x)
    assert (bad > 0) == (not clean.all())
    # rows on the grid: their int8 values, counts, and (all clean) the largest magnitude
    for b, i in zip(*np.nonzero(clean), strict=True):
        assert np.array_equal(out[i, b], x[b, i].astype(np.int8)), (b, i)
        assert counts[b, i] == np.count_nonzero(x[b, i]), (b, i)
    if clean.all():
        assert top == int(np.abs(x).max(initial=0))
        assert nonzero == np.count_nonzero(x)


@settings(max_examples=150, deadline=None)
@given(x=inputs())
def test_one_row_compiled_and_in_python(x):
    """Every row, compiled (vectors from 16 steps on) and by NumPy: the same flag; on
    the grid the same values, largest magnitude and count, and the definition's."""
    n_b, n_i, steps = x.shape
    compiled = np.zeros((n_i, n_b, steps), np.int8)
    python = np.zeros((n_i, n_b, steps), np.int8)
    for b in range(n_b):
        for i in range(n_i):
            got = _one_row(x, b, i, compiled)
            ref = int8_row(x, b, i, python)
            v = x[b, i]
            clean = bool(_clean(v))
            assert bool(got[0]) == (not clean) == bool(ref[0]), (b, i)
            if clean:
                want = (0, int(np.abs(v).max(initial=0)), int(np.count_nonzero(v)))
                assert tuple(int(g) for g in got) == want == ref, (b, i)
                assert np.array_equal(compiled[i, b], v.astype(np.int8))
                assert np.array_equal(python[i, b], v.astype(np.int8))


@pytest.mark.parametrize("steps", [15, 16, 17, 60, 64])
def test_tail_counts_each_value_once(steps):
    """A spike on every step: the overlapping last block counts only its new values."""
    x = np.ones((1, 1, steps), np.float32)
    out = np.zeros((1, 1, steps), np.int8)
    assert tuple(int(v) for v in _one_row(x, 0, 0, out)) == (0, 1, steps)
    assert out.all()


@pytest.mark.parametrize("time_major", [False, True])
def test_other_layouts_convert_value_by_value(time_major):
    """A float32 destination (the sgemm flavour's copy) and the time-major view take the
    value-by-value path, with the same values and counts."""
    rng = np.random.default_rng(3)
    x = (rng.random((2, 3, 40)) < 0.3).astype(np.float32) * 5
    if time_major:
        out = np.zeros((3, 40, 2), np.int8).transpose(0, 2, 1)
    else:
        out = np.zeros((3, 2, 40), np.float32)
    counts = np.zeros((2, 3), np.int32)
    kernel = ip._to_int8_tm_parallel if time_major else ip._to_int8_serial
    assert kernel(x, out, counts) == (0, 5, np.count_nonzero(x))
    assert np.array_equal(out.transpose(1, 0, 2), x)
    assert np.array_equal(counts, np.count_nonzero(x, axis=2))

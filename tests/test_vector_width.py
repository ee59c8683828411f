"""512-bit vectors for the neuron kernels where listed (:mod:`loihi_slayer.fixed._vector_width`)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from numba.core import config

from loihi_slayer import models
from loihi_slayer.fixed import _vector_width as vw
from loihi_slayer.fixed import codegen
from loihi_slayer.fixed.params import DECAY_MAX


def _lane_kernel():
    """A fresh (uncached) kernel marked for wide vectors: a CUBA-like int64 lane loop."""

    @njit(cache=False)
    def kernel(a, u, fi):
        vw.prefer_wide_vectors()
        for t in range(a.shape[0]):
            for j in range(u.shape[0]):
                u[j] = (u[j] * fi[j]) // DECAY_MAX + a[t, j]
        return u

    return kernel


@pytest.mark.parametrize("wanted", [True, False])
def test_the_attribute_is_on_the_calling_function_only_where_wanted(monkeypatch, wanted):
    """The marked function's LLVM IR carries ``"prefer-vector-width"="512"`` where the
    CPU is listed, and nothing where it is not."""
    monkeypatch.setattr(vw, "wide_vectors_wanted", lambda: wanted)
    kernel = _lane_kernel()
    kernel(np.ones((3, 16), np.int64), np.zeros(16, np.int64), np.full(16, 2048, np.int64))
    ir = kernel.inspect_llvm(kernel.signatures[0])
    assert (vw.ATTRIBUTE in ir) is wanted


@pytest.mark.parametrize(
    ("cpu", "host", "wanted"),
    [
        ("icelake-server", "haswell", True),
        ("haswell", "icelake-server", False),
        (None, "icelake-server", True),
        ("host", "icelake-server", True),
        (None, "znver4", False),
    ],
)
def test_the_cpu_table_decides(monkeypatch, cpu, host, wanted):
    """numba's ``NUMBA_CPU_NAME`` (where set, ``host`` meaning the host) is the CPU the
    table is asked about, as numba's own target uses it; else the host's name."""
    import llvmlite.binding as ll

    monkeypatch.setattr(config, "CPU_NAME", cpu)
    monkeypatch.setattr(ll, "get_host_cpu_name", lambda: host)
    vw.wide_vectors_wanted.cache_clear()
    try:
        assert vw.wide_vectors_wanted() is wanted
    finally:
        monkeypatch.undo()
        vw.wide_vectors_wanted.cache_clear()


def test_every_listed_cpu_says_what_was_measured():
    """A CPU enters the table with its measurement (see the module)."""
    assert vw.WIDE_VECTOR_CPUS
    for name, measured in vw.WIDE_VECTOR_CPUS.items():
        assert name == name.strip().lower() and "bench_" in measured


def test_the_marked_lane_loop_keeps_the_values(monkeypatch):
    """The same integer lane loop with and without the attribute gives the same values
    (the width changes the instructions, not the arithmetic), as the CUBA reference
    computes them."""
    rng = np.random.default_rng(0)
    steps, lanes = 50, 37  # a remainder past every vector width
    a = rng.integers(-(2**20), 2**20, size=(steps, lanes), dtype=np.int64)
    fi = rng.integers(0, DECAY_MAX + 1, size=lanes, dtype=np.int64)
    out = {}
    for wanted in (True, False):
        monkeypatch.setattr(vw, "wide_vectors_wanted", lambda w=wanted: w)
        out[wanted] = _lane_kernel()(a, np.zeros(lanes, np.int64), fi)
    expected = np.zeros(lanes, np.int64)
    for t in range(steps):  # floor division, as the loop writes it
        expected = (expected * fi) // DECAY_MAX + a[t]
    np.testing.assert_array_equal(out[True], expected)
    np.testing.assert_array_equal(out[False], expected)


@pytest.mark.parametrize(("target", "function"), [("cpu", "kernel"), ("recurrent", "_item")])
def test_generated_kernels_are_marked(target, function):
    """The generated emulator kernels ask for wide vectors in their stepping function, and
    the fused recurrence in its (inlined) batch item."""
    source = codegen.render(models.get("cuba"), target)
    body = source.split(f"def {function}(", 1)[1].split("\n\n", 1)[0]
    assert "prefer_wide_vectors()" in body


@pytest.mark.parametrize(("wanted", "text"), [(True, "512-bit"), (False, "LLVM-chosen")])
def test_doctor_says_which_width_the_kernels_use(monkeypatch, wanted, text):
    """``loihi-slayer doctor``'s CPU line names the neuron kernels' vector width."""
    from loihi_slayer import doctor

    monkeypatch.setattr(vw, "wide_vectors_wanted", lambda: wanted)
    assert f"neuron kernels: {text}" in doctor._cpu_info()

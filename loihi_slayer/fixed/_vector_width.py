"""Full-width (512-bit) vectors for the neuron kernels on CPUs where they pay.

LLVM tunes its loop vectoriser for Intel's AVX-512 server and client cores to prefer
256-bit vectors (the ``prefer-256-bit`` tuning of ``skylake-avx512`` and its
successors): on Skylake-SP a 512-bit multiply lowers the core's clock for every
instruction around it. So on those CPUs numba's kernels step 16 neurons in four
``ymm`` registers of int64 where two ``zmm`` would do, and twice the instructions
run. On Ice Lake server the clock penalty is small and the wider vectors won (stop 69,
old and new code in alternating processes, each against the C kernel in the same run):
``benchmarks/bench_c_baseline.py`` CUBA spikes 1.41-1.66x -> 1.93-2.03x the C kernel's
speed, sigma-delta 1.22-1.83x -> 1.50-2.04x; ``bench_training_neuron.py`` CUBA forward
0.74-0.90 -> 0.54-0.76 of the C kernel's time, sigma-delta forward 0.84-0.99 ->
0.68-0.82. The CUBA backward's chunk did not gain (forward+backward 1.56-1.72 ->
1.60-1.74 marked) and keeps LLVM's width.

:func:`prefer_wide_vectors` asks LLVM for 512-bit vectors in the one function that
calls it (the function attribute ``"prefer-vector-width"="512"``, read by LLVM's x86
backend per function), where the host is listed in :data:`WIDE_VECTOR_CPUS`: a CPU is
added once measured there, not by family. Elsewhere it does nothing. Only this
package's kernels change: numba's target, and the user's own numba code, keep LLVM's
choice (setting ``NUMBA_CPU_FEATURES`` would change them for the whole process).

Kernels that hold their sums across a loop in explicit 16-lane float32 vectors
(:mod:`loihi_slayer.autograd._f32x16`: the event weight gradient's column passes, the
narrow product, the backward's lane scans) get full vectors on every AVX-512 CPU
already; this attribute is for the loops LLVM vectorises by itself.

The width changes no value: the kernels' integer arithmetic is exact, and their float
sums run in a written order (no ``reassoc`` fast-math flag where the order could show).
The bit-exactness tests decide, on whatever CPU runs them.
"""

from __future__ import annotations

import functools
import logging

from numba import types
from numba.core import config
from numba.extending import intrinsic

from .._numba_cache import guard_cache_writes

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

log = logging.getLogger(__name__)

#: LLVM CPU names (``llvmlite.binding.get_host_cpu_name()``, or ``NUMBA_CPU_NAME``)
#: where 512-bit vectors were measured faster for the neuron kernels, with the
#: measurement; numba's cache keys include the CPU name, so a kernel cached for one
#: CPU is never loaded on another
WIDE_VECTOR_CPUS = {
    "icelake-server": "Xeon @ 2.80GHz model 106, 2 vCPUs (stop 69): emulation CUBA spikes "
    "1.22x the speed (bench_c_baseline.py), training forward CUBA 0.88x, sigma-delta 0.86x "
    "the time (bench_training_neuron.py, medians of ours/C)",
}

#: the LLVM function attribute (its value: the preferred vector width in bits)
ATTRIBUTE = '"prefer-vector-width"="512"'


@functools.cache
def wide_vectors_wanted() -> bool:
    """Whether this process compiles for a CPU of :data:`WIDE_VECTOR_CPUS` (numba's
    ``NUMBA_CPU_NAME`` where set, as numba's own target does, else the host; LLVM reads
    the name ``host`` as the host too)."""
    import llvmlite.binding as ll

    name = config.CPU_NAME
    if not name or name == "host":
        name = ll.get_host_cpu_name()
    return name in WIDE_VECTOR_CPUS


def _mark(function) -> None:
    """Add :data:`ATTRIBUTE` to an llvmlite IR function. llvmlite's attribute set
    accepts only the attributes it knows by name; a string attribute goes in as the
    set's element itself (it is printed as written). Where a later llvmlite refuses
    that, the kernel compiles without it (a debug log line says so)."""
    try:
        set.add(function.attributes, ATTRIBUTE)
    except TypeError:  # not a set any more
        log.debug("llvmlite refused the attribute %s; kernels keep LLVM's width", ATTRIBUTE)


@intrinsic
def prefer_wide_vectors(typingctx):
    """Compile the calling function for 512-bit vectors where
    :func:`wide_vectors_wanted` (see the module); no code, no value. Called at the top
    of a kernel whose loops LLVM vectorises; inside a ``prange`` body it marks the body
    numba outlines, and an ``inline="always"`` helper's call marks its caller."""

    def codegen(context, builder, sig, args):
        if wide_vectors_wanted():
            _mark(builder.function)
        return context.get_dummy_value()

    return types.none(), codegen

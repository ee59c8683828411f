r"""Exact fast synapses: integer sums through a floating-point GEMM where a bound proves it exact.

A synapse's sum :math:`a = \sum_k w_k x_k` over integer weights and inputs has
integer partial sums, whatever order a GEMM adds them in, all bounded by

.. math::

    B = \max_o \sum_k |w_{ok}|\, m_k

where :math:`m_k` is the largest :math:`|x|` of the input neuron (dense) or
channel (convolution) that column :math:`k` reads (1 for binary spikes). A
binary floating-point format with a ``p``-bit significand holds every integer
of magnitude :math:`\le 2^p`, so when :math:`B \le 2^p` every product, partial
sum and fused multiply-add of the GEMM is an exact integer: float32
(:math:`p = 24`) or float64 (:math:`p = 53`) gives the integer result bit for bit.
The GEMM multiplies the weights with their common power of two :math:`2^g` taken out
(:math:`w = 2^g w'`; lava-nc clears the :math:`8 - \text{numWeightBits}` low bits of
every weight, one more for mixed-sign weights, so 8-bit mixed weights are all even), so
the bound it needs is :math:`B / 2^g` and :math:`2^g` joins the exponent shift of the
store. :func:`exact_float_dtype` picks the narrowest exact format for a bound; beyond
:math:`2^{53}` the callers fall back to the integer kernels of :mod:`.cpu`.

Before either, the integer GEMM: with inputs of magnitude at most 127 (binary spikes
always) and weights :math:`w = 2^g w'` with :math:`w'` in int8 range (Loihi's 8-bit
mantissas shed their common factor 2 or more), ``torch._int_mm`` multiplies int8
operands into exact int32 sums when :math:`B / 2^g < 2^{31}` (:func:`int8_factor`).
Its operands are a quarter of float32's bytes, and on a CPU with int8 dot products
(AVX512-VNNI, AMX) the int8 GEMM runs about 2.5x faster than sgemm. Without
them PyTorch's int8 GEMM is a plain loop, 30x *slower* than sgemm (AVX2-only AMD EPYC:
107 ms against 3.6 ms for a 128x578x1920 product), so the path is taken only where the
CPU has them (:func:`int8_gemm_pays`; ``LOIHI_SLAYER_INT8_GEMM`` overrides). It is
checked once per process against int64 arithmetic on edge cases before use.

Convolutions run as ``im2col`` + GEMM on the time-last layout: for a tile of
output pixels, the columns ``(c_i, k_y, k_x) x (pixel, t)`` are gathered (with
the synaptic latency applied and spikes cast to 0/1), multiplied by the
``(C_out, C_in k_H k_W)`` weight matrix of each group, and the float sums are
shifted by the weight exponent and wrapped to 24 bit in integer arithmetic, so
the result lands in the time-last output without a transpose. Where ``T`` values of
the GEMM's type fill whole machine words, the input is delayed, cast and converted
once, and im2col copies words of it (:func:`_gemm_stream`). Tiles are sized to stay
in cache; memory beyond the output is bounded by the tile and that one converted copy
of the input. What depends on the weights alone (the matrices, their int8 form, the
bound's row sums, float copies) is a :class:`Weights`, which a caller running the same
weights again (the emulator) keeps.

A sparse graded convolution (sigma-delta messages) skips the GEMM: where the input's
density, times the waste of padding the output channels to whole vectors, is at most
:data:`.event_conv.EVENT_MAX_DENSITY`, and the float32 plan applies (the same bound
makes the float32 sums exact), :mod:`.event_conv` adds each non-zero input value's
products to the output pixels its taps reach (one group, not transposed, columns not
dilated).

The GEMM is ``torch.mm`` (MKL ``sgemm``/``dgemm``) while PyTorch keeps full
float32 matmul precision, else NumPy's BLAS, which never lowers it. Each GEMM
runs on one torch thread (:data:`GEMM_THREADS`): a tile's GEMM takes about a
millisecond, and a parallel region per tile cost more than it saved when
other processes shared the CPU (PilotNet-size network on 2 shared cores:
5.8 ms per step on one thread, 11-23 ms on two). Instead, a convolution's
tiles are shared among plain threads (:func:`.workers.tile_workers`, one per CPU), each
with its own buffers: the kernels release the GIL and idle threads sleep.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from numba import njit

from .._numba_cache import guard_cache_writes
from .._threads import torch_threads
from . import cpu, event_conv, pixel_conv
from . import workers as _workers
from .pixel_conv import tap_index

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = [
    "FLOAT_EXACT_LIMITS",
    "GEMM_THREADS",
    "Weights",
    "conv2d",
    "conv_weights",
    "dense",
    "dense_weights",
    "exact_float_dtype",
    "Scratch",
    "gemm_threads",
    "input_magnitudes",
    "input_stats",
    "int8_factor",
    "full_precision_torch",
    "int8_gemm_pays",
    "new_array",
    "sum_bound",
]

#: (dtype, largest integer magnitude B such that all integers in [-B, B] are exact)
FLOAT_EXACT_LIMITS = ((np.dtype(np.float32), 1 << 24), (np.dtype(np.float64), 1 << 53))
#: elements of one im2col tile (float32: 2 MiB, a core's L2 here; int8: 512 KiB). Larger
#: tiles make fewer, larger GEMMs: PilotNet-size CUBA 1.93 -> 1.68 ms/step and SDNN 3.10 ->
#: 2.86 against 1 << 18 (21 alternating runs; 1 << 20 in between)
TILE_ELEMENTS = 1 << 19
#: the largest fan-in (input channels per group times kernel taps) of a convolution that
#: runs pixel by pixel (:mod:`.pixel_conv`) rather than by im2col + GEMM
PIXEL_MAX_FAN_IN = 64
#: torch threads of the GEMMs (set for a synapse call or an Emulator run, then restored)
GEMM_THREADS = 1
#: ``scratch(role, shape, dtype)``: an uninitialised C-contiguous array for one of a call's
#: arrays (``role``: ``"out"`` the returned sums, ``"operand"`` the converted input,
#: ``"cols <k>"``/``"sums <k>"`` worker ``k``'s tile buffers); a caller that runs the same
#: layer again (the emulator) hands out memory it keeps (see :mod:`loihi_slayer._recycle`)
Scratch = Callable[[str, tuple[int, ...], np.dtype], np.ndarray]
_WRAP_HALF = cpu.WRAP_HALF
_WRAP_MASK = cpu.WRAP_MASK
_HUGE = 1 << 62


def exact_float_dtype(bound: int) -> np.dtype | None:
    """The narrowest float dtype in which a sum with partial sums bounded by ``bound``
    is exact, or None if neither float32 nor float64 is."""
    for dtype, limit in FLOAT_EXACT_LIMITS:
        if bound <= limit:
            return dtype
    return None


def input_magnitudes(x: np.ndarray, graded: bool) -> np.ndarray | None:
    r""":math:`\max|x|` of each row (axis 0: input neuron or channel) as int64; ones for
    binary spikes (cast to 0/1); None when some :math:`|x| \ge 2^{62}` (no float path)."""
    return input_stats(x, graded)[0]


def input_stats(x: np.ndarray, graded: bool) -> tuple[np.ndarray | None, int | None]:
    """:func:`input_magnitudes` and, for graded input, the number of non-zero values
    (the same pass; None for binary spikes, which it does not read)."""
    rows = x.shape[0]
    if not graded:
        return np.ones(rows, np.int64), None
    hi = np.zeros(rows, np.int64)
    lo = np.zeros(rows, np.int64)
    nonzero = np.zeros(rows, np.int64)
    _row_extrema(x.reshape(rows, -1), hi, lo, nonzero)
    if rows and (int(hi.max()) >= _HUGE or int(lo.min()) <= -_HUGE):
        return None, int(nonzero.sum())
    return np.maximum(hi, -lo), int(nonzero.sum())


def sum_bound(weight_rows: np.ndarray, magnitudes: np.ndarray) -> int:
    r""":math:`\max_o \sum_k |w_{ok}|\, m_k` (Python int) for a ``(rows, fan_in)`` weight
    matrix and the input magnitudes :math:`m_k \ge 0` of its columns.

    Exact in int64 when the cruder :math:`\max_o \sum_k |w_{ok}| \cdot \max_k m_k`
    stays below :math:`2^{62}`, else that cruder (larger) bound.
    """
    if weight_rows.size == 0:
        return 0
    w_abs = np.abs(weight_rows.astype(np.int64))
    return _abs_bound(w_abs, int(w_abs.sum(axis=1).max()), magnitudes)


def _abs_bound(w_abs: np.ndarray, abs_row_max: int, magnitudes: np.ndarray) -> int:
    """:func:`sum_bound` from the weights' magnitudes and their largest row sum."""
    crude = abs_row_max * int(magnitudes.max())
    if crude >= _HUGE:
        return crude
    return int(_max_row_dot(w_abs, np.ascontiguousarray(magnitudes, np.int64)))


class Weights:
    r"""What the exact GEMM needs from a layer's weights alone, computed once.

    ``mats`` are the ``(groups, rows, fan_in)`` integer weight matrices (one per
    group; a dense layer is one group). Kept: the largest row sum of their magnitudes
    (the bound :math:`B` of :func:`sum_bound` for binary spikes), the int8 form
    :math:`w / 2^g` of :func:`int8_factor` and the float copies by dtype. A caller that
    runs the same weights again (the emulator, once per layer) passes the object back
    and skips these passes over the weights. Both GEMM forms multiply the matrices
    divided by :math:`2^g` (:attr:`shift`): :attr:`int8` and :meth:`reduced`.
    """

    def __init__(self, mats: np.ndarray) -> None:
        self.mats = np.ascontiguousarray(mats, np.int64)
        w_abs = self._abs = np.abs(self.mats)
        #: largest row sum of each group's magnitudes (0 without weights)
        self.abs_row_max = (
            w_abs.sum(axis=-1).max(axis=-1)
            if self.mats.size
            else np.zeros(len(self.mats), np.int64)
        )
        bits = int(np.bitwise_or.reduce(w_abs, axis=None)) if self.mats.size else 0
        #: the largest power of two dividing every weight (its exponent)
        self.shift = (bits & -bits).bit_length() - 1 if bits else 0
        m8 = self.mats >> self.shift
        fits = not m8.size or (int(m8.min()) >= -128 and int(m8.max()) <= 127)
        #: ``mats >> shift`` as int8, or None where it leaves the int8 range
        self.int8 = m8.astype(np.int8) if fits else None
        self._by_dtype: dict[np.dtype, np.ndarray] = {}
        self._events: dict[int, np.ndarray] = {}
        self._pixel: np.ndarray | None = None
        #: whether the last convolution by these weights ran from its input's events: the
        #: next then lists the events and the input's magnitudes in one pass
        #: (:func:`_compact`) rather than reading the input for the magnitudes first
        self.took_events = False

    def bound(self, col_mags: np.ndarray | None, binary: bool = False) -> int | None:
        """:math:`B` over all groups; ``col_mags`` ``(groups, fan_in)`` (None: unknown)."""
        if binary:
            return int(self.abs_row_max.max()) if self.mats.size else 0
        if col_mags is None:
            return None
        if not self.mats.size:
            return 0
        return max(
            _abs_bound(a, int(r), m)
            for a, r, m in zip(self._abs, self.abs_row_max, col_mags, strict=True)
        )

    def event_form(self, kh: int, kw: int, sw: int) -> np.ndarray:
        """The one group's matrix divided by :math:`2^g`, as :func:`.event_conv.event_weights`
        of the ``(C_out, C_in, kh, kw)`` weight for column stride ``sw`` (kept)."""
        if sw not in self._events:
            mat = self.reduced(np.dtype(np.float32))[0]
            w4 = mat.reshape(mat.shape[0], -1, kh, kw)
            self._events[sw] = event_conv.event_weights(w4, sw)
        return self._events[sw]

    def pixel_form(self) -> np.ndarray:
        """The matrices divided by :math:`2^g` as :func:`.pixel_conv.pixel_weights`
        (kept)."""
        if self._pixel is None:
            self._pixel = pixel_conv.pixel_weights(self.reduced(np.dtype(np.float32)))
        return self._pixel

    def reduced(self, dtype: np.dtype) -> np.ndarray:
        """The matrices divided by :math:`2^g` (``mats >> shift``, exact) as ``dtype``
        (kept for the next call)."""
        if dtype not in self._by_dtype:
            self._by_dtype[dtype] = (self.mats >> self.shift).astype(dtype)
        return self._by_dtype[dtype]


# ----------------------------------------------------------------------------- kernels


@njit(nogil=True, cache=True)
def _max_row_dot(w_abs, m):
    r""":math:`\max_o \sum_k w_{ok} m_k` of an int64 ``(rows, fan_in)`` matrix and an
    int64 vector (the caller has bounded it below :math:`2^{62}`): one compiled pass
    (NumPy's integer matrix product, not a BLAS one, took 0.22 ms for PilotNet's
    2816 -> 100 dense weights)."""
    best = np.int64(0)
    for o in range(w_abs.shape[0]):
        row = w_abs[o]
        s = np.int64(0)
        for k in range(row.shape[0]):
            s += row[k] * m[k]
        best = max(best, s)
    return best


@njit(nogil=True, cache=True)
def _row_extrema(x, hi, lo, nonzero):
    """``hi[r] = max(0, max x[r])``, ``lo[r] = min(0, min x[r])`` and ``nonzero[r]`` the
    count of non-zero values of ``x[r]``, in one pass.

    Indexed, not iterated: ``for v in row`` kept the reduction scalar (10.8 GB/s on a
    PilotNet SDNN stream, 23 GB/s indexed).
    """
    rows, n = x.shape
    for r in range(rows):
        row = x[r]
        a = np.int64(0)
        b = np.int64(0)
        k = np.int64(0)
        for i in range(n):
            v = np.int64(row[i])
            a = max(a, v)
            b = min(b, v)
            k += v != 0
        hi[r] = a
        lo[r] = b
        nonzero[r] = k


@njit(inline="always", cache=True)
def _copy_run(dst, d0, src, s0, n, lag, binary):
    """``dst[d0 : d0 + lag] = 0``, then ``dst[d0 + lag + t] = src[s0 + t]`` for ``t < n``
    (0/1 where ``binary``), on flat arrays.

    The offsets and counts are unsigned (``np.uint64``): numba then drops its
    negative-index wrap-around from every access, and the loops vectorise (3-5x faster
    copies than through signed indices and per-copy array views, measured on
    PilotNet's convolutions).
    """
    for t in range(lag):
        dst[d0 + t] = 0
    d1 = d0 + lag
    if binary:
        for t in range(n):
            dst[d1 + t] = src[s0 + t] != 0
    else:
        for t in range(n):
            dst[d1 + t] = src[s0 + t]


@njit(nogil=True, cache=True)
def _im2col(x, c0, kh, kw, sh, sw, ph, pw, dh, dw, transpose, w_out, p0, lat, binary, cols):
    """``cols[(c, ky, kx), (p - p0) T + t] = x[c0 + c, iy, ix, t - lat]`` (0 outside).

    ``x`` is a C-contiguous ``(C, H, W, T)``, ``cols`` a C-contiguous ``(rows,
    pixels T)``; rows cover channels ``c0 .. c0 + rows / (kh kw)``, columns the
    output pixels ``p0 ..`` (row-major over ``(H_out, W_out)``).
    """
    _, h, wd, steps = x.shape
    rows, ncols = cols.shape
    npix = ncols // steps
    khw = kh * kw
    y0 = p0 // w_out
    y1 = (p0 + npix - 1) // w_out + 1
    iys = np.empty(y1 - y0, np.int64)
    ixs = np.empty(w_out, np.int64)
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    lag = np.uint64(min(lat, steps))
    run = np.uint64(steps) - lag
    width = np.uint64(steps)
    for k in range(rows):
        ci = c0 + k // khw
        ky = (k // kw) % kh
        kx = k % kw
        for oy in range(y0, y1):
            iys[oy - y0] = tap_index(oy, ky, sh, ph, dh, h, transpose)
        for ox in range(w_out):
            ixs[ox] = tap_index(ox, kx, sw, pw, dw, wd, transpose)
        d0 = np.uint64(k * ncols)
        oy, ox = y0, p0 % w_out  # the pixel walks row-major: no division per pixel
        for _ in range(npix):
            iy = iys[oy - y0]
            ix = ixs[ox]
            if iy < 0 or ix < 0:
                for t in range(width):
                    cf[d0 + t] = 0
            else:
                s0 = np.uint64(((ci * h + iy) * wd + ix) * steps)
                _copy_run(cf, d0, xf, s0, run, lag, binary)
            d0 += width
            ox += 1
            if ox == w_out:
                ox = 0
                oy += 1


@njit(nogil=True, cache=True)
def _delayed(x, lat, binary, out):
    """``out[i, t] = x[i, t - lat]`` (0 for ``t < lat``), spikes cast to 0/1; ``x``
    C-contiguous ``(n, T)``, ``out`` C-contiguous ``(n, T')`` with ``T' >= T``, its
    steps past ``T`` zero."""
    n, steps = x.shape
    lag = np.uint64(min(lat, steps))
    width = np.uint64(steps)
    wide = np.uint64(out.shape[1])
    xf = x.reshape(-1)
    of = out.reshape(-1)
    if wide == width:
        # one flat run, ``out[k] = x[k - lag]``, then each row's first ``lag`` values
        # zeroed (they received the row before's last ones): a long vector loop, where
        # row by row the runs of T = 32 int8 spikes had cost ~8 ns each (CUBA PilotNet:
        # 1.4 ms a run)
        total = np.uint64(n) * width
        if binary:
            for k in range(lag, total):
                of[k] = xf[k - lag] != 0
        else:
            for k in range(lag, total):
                of[k] = xf[k - lag]
        for i in range(n):
            row = np.uint64(i) * width
            for t in range(lag):
                of[row + t] = 0
        return
    for i in range(n):
        off = np.uint64(i) * wide
        _copy_run(of, off, xf, np.uint64(i) * width, width - lag, lag, binary)
        for t in range(width, wide):
            of[off + t] = 0


@njit(nogil=True, cache=True)
def _store(acc, weight_exp, wrap, out, r0, c0):
    """``out[r0 + r, c0 + c] = wrap24?(shift(acc[r, c], weight_exp))`` in int64 arithmetic."""
    rows, ncols = acc.shape
    for r in range(rows):
        src = acc[r]
        dst = out[r0 + r, c0 : c0 + ncols]
        for c in range(ncols):
            v = cpu._shifted(np.int64(src[c]), weight_exp)
            if wrap:
                v = ((v + _WRAP_HALF) & _WRAP_MASK) - _WRAP_HALF
            dst[c] = v


@njit(nogil=True, cache=True)
def _direct_conv(x, w, sh, sw, ph, pw, dh, dw, groups, transpose, lat, binary, weight_exp, out):
    """Integer (transposed) convolution, time innermost: for grouped convolutions
    with one output channel per group (pooling), where a GEMM would be a GEMV.

    ``w`` is ``(C_out, C_in / groups, kH, kW)`` in both cases (a transposed
    convolution's weight regrouped by :func:`_group_matrices`); ``out`` is
    ``(C_out, H_out, W_out, T)``; sums accumulate in int64.
    """
    _, h, wd, steps = x.shape
    c_out, c_per_group, kh, kw = w.shape
    _, h_out, w_out, _ = out.shape
    g_out = c_out // groups
    lag = min(lat, steps)
    acc = np.zeros(steps, np.int64)
    for co in range(c_out):
        c0 = (co // g_out) * c_per_group
        for oy in range(h_out):
            for ox in range(w_out):
                acc[:] = 0
                for cl in range(c_per_group):
                    for ky in range(kh):
                        iy = tap_index(oy, ky, sh, ph, dh, h, transpose)
                        for kx in range(kw):
                            ix = tap_index(ox, kx, sw, pw, dw, wd, transpose)
                            wv = np.int64(w[co, cl, ky, kx])
                            if iy < 0 or ix < 0 or wv == 0:
                                continue
                            src = x[c0 + cl, iy, ix]
                            if binary:
                                for t in range(steps - lag):
                                    acc[lag + t] += wv if src[t] != 0 else 0
                            else:
                                for t in range(steps - lag):
                                    acc[lag + t] += wv * src[t]
                dst = out[co, oy, ox]
                for t in range(steps):
                    v = cpu._shifted(acc[t], weight_exp)
                    dst[t] = ((v + _WRAP_HALF) & _WRAP_MASK) - _WRAP_HALF


# ----------------------------------------------------------------------------- drivers


def full_precision_torch() -> bool:
    """True if ``torch.mm`` keeps IEEE float32 products and sums (no TF32/bf16)."""
    mkldnn = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
    backend = getattr(mkldnn, "fp32_precision", "none")
    if backend != "none":
        return backend == "ieee"
    try:
        return torch.get_float32_matmul_precision() == "highest"
    except RuntimeError:  # legacy and new precision APIs mixed: do not guess
        return False


def _torch_mm(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    torch.mm(torch.from_numpy(a), torch.from_numpy(b), out=torch.from_numpy(out))


@contextmanager
def gemm_threads() -> Iterator[None]:
    """Run the enclosed GEMMs on :data:`GEMM_THREADS` torch threads (restored on exit)."""
    with torch_threads(GEMM_THREADS):
        yield


@contextmanager
def _gemm() -> Iterator[Callable[[np.ndarray, np.ndarray, np.ndarray], None]]:
    """``mm(a, b, out)``: ``out = a @ b`` on :data:`GEMM_THREADS` threads, exact for
    exact inputs (torch while it keeps full float32 precision, else NumPy)."""
    if not full_precision_torch():
        yield np.matmul
        return
    with gemm_threads():
        yield _torch_mm


def new_array(role: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The default :data:`Scratch`: fresh memory (``np.empty``)."""
    return np.empty(shape, dtype)


def _sum_dtype(bound: int, weight_exp: int, wrap: bool) -> np.dtype:
    """int32 when the shifted (or 24-bit wrapped) sums fit it, else int64."""
    if wrap or bound << max(weight_exp, 0) < (1 << 31):
        return np.dtype(np.int32)
    return np.dtype(np.int64)


def int8_factor(weights: Weights, magnitudes: np.ndarray | None, bound: int | None) -> int | None:
    r"""The power of two :math:`2^g` to take out of integer weights so that the int8 GEMM
    (int8 x int8, exact int32 sums) computes the synaptic sums; None where it cannot.

    Conditions: every input magnitude at most 127 (binary spikes: 1), every weight a
    multiple of :math:`2^g` with :math:`w / 2^g \in [-128, 127]` (``g`` is the
    largest power of two dividing all weights: Loihi's 8-bit mantissas scaled by
    :math:`2^{6+wgtExp}` shed their common factor), and the bound of the int32 sums,
    :math:`B / 2^g`, below :math:`2^{31}`. The sum is then :math:`2^g` times the int8
    GEMM's, which the caller folds into the exponent shift.
    """
    if magnitudes is None or bound is None or (magnitudes.size and int(magnitudes.max()) > 127):
        return None
    if weights.int8 is None or bound >> weights.shift >= 1 << 31:
        return None
    return weights.shift if int8_gemm_pays() and int8_gemm_works() else None


#: the environment variable that overrides :func:`int8_gemm_pays`, and its values
INT8_GEMM_ENV = "LOIHI_SLAYER_INT8_GEMM"
_INT8_GEMM_CHOICES = {"auto": None, "1": True, "on": True, "0": False, "off": False}
#: CPU features (``torch.cpu.get_capabilities`` keys) with int8 dot-product instructions
#: under which PyTorch's int8 GEMM was measured faster than sgemm (AVX512-VNNI: 2.5x; AMX
#: CPUs have it too). AVX-VNNI alone (client CPUs) is left out: not measured, and where
#: the int8 GEMM is a plain loop it is 30x slower, where sgemm is at worst ~2.5x slower
INT8_DOT_FEATURES = ("avx512_vnni", "amx_int8")


@functools.cache
def _cpu_has_int8_dot() -> bool:
    get = getattr(torch.cpu, "get_capabilities", None)
    if get is None:  # older torch: no capability table, keep sgemm
        return False
    caps = get()
    return any(bool(caps.get(f, False)) for f in INT8_DOT_FEATURES)


def int8_gemm_pays() -> bool:
    """Whether exact int8 GEMMs should replace float ones on this CPU: where it has int8
    dot products (:data:`INT8_DOT_FEATURES`), unless ``LOIHI_SLAYER_INT8_GEMM`` says
    otherwise (``auto``, the default; ``1``/``on``: wherever exact, e.g. to test the path;
    ``0``/``off``: never). Either path gives the same sums bit for bit; only speed differs."""
    raw = os.environ.get(INT8_GEMM_ENV, "auto")
    key = raw.strip().lower()
    if key not in _INT8_GEMM_CHOICES:
        raise ValueError(
            f"{INT8_GEMM_ENV}={raw!r}: expected one of {', '.join(_INT8_GEMM_CHOICES)} "
            "(auto: int8 GEMMs where the CPU has int8 dot products)"
        )
    forced = _INT8_GEMM_CHOICES[key]
    return _cpu_has_int8_dot() if forced is None else forced


def _row_major(a: torch.Tensor) -> torch.Tensor:
    """``a`` itself, or a row-major copy where a size-1 dimension leaves its strides
    ambiguous and it is not laid out row-major."""
    if 1 in a.shape and a.stride() != (a.shape[1], 1):
        return a.clone(memory_format=torch.contiguous_format)
    return a


def int8_mm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``torch._int_mm(a, b)``: the exact int32 product of int8 matrices. An operand with a
    size-1 dimension goes in row-major: torch 2.13's CPU kernel misreads such an operand
    when it is a transposed view (e.g. ``(1, K)`` with strides ``(1, 1)``: any values come
    out, ``tests/test_synapse_int_product.py``); the copy is of a vector."""
    a, b = _row_major(a), _row_major(b)
    return torch._int_mm(a, b) if out is None else torch._int_mm(a, b, out=out)


def _int8_mm(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    int8_mm(torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out))


_INT8_GEMM: list[bool] = []


def int8_gemm_works() -> bool:
    """Whether ``torch._int_mm`` exists here and gives exact int32 sums, checked once
    against int64 arithmetic on cases a fast kernel could get wrong: -128 * -128 products
    summed over 4099 terms (far past int16, where a saturating VNNI variant would clip),
    odd inner and outer sizes, an inner size of 1."""
    if not _INT8_GEMM:
        ok = hasattr(torch, "_int_mm")
        rng = np.random.default_rng(0)
        cases = [
            (np.full((3, 4099), -128), np.full((4099, 5), -128)),
            (rng.integers(-128, 128, (17, 33)), rng.integers(-128, 128, (33, 9))),
            (rng.integers(-128, 128, (2, 1)), rng.integers(0, 2, (1, 3))),
        ]
        for a, b in cases if ok else ():
            out = np.empty((a.shape[0], b.shape[1]), np.int32)
            try:
                _int8_mm(a.astype(np.int8), b.astype(np.int8), out)
            except RuntimeError:
                ok = False
                break
            ok = ok and np.array_equal(out, a @ b)
        _INT8_GEMM.append(bool(ok))
    return _INT8_GEMM[0]


class _Plan:
    r"""How a layer's exact GEMM runs: operand dtype, weight matrices, accumulator dtype,
    the exponent folded into the store, and the GEMM (a context manager's ``mm``).

    Either form multiplies the weights divided by their common power of two
    :math:`2^g` (the sums are :math:`2^g` times smaller, so is the bound they need),
    and the store shifts by ``weight_exp + g``: :math:`\lfloor 2^{e} \cdot 2^g s'
    \rfloor = \lfloor 2^{e+g} s' \rfloor` for the GEMM's sum :math:`s'`.
    """

    def __init__(
        self, weights: Weights, mags: np.ndarray | None, bound: int | None, weight_exp: int
    ) -> None:
        self.exp = weight_exp + weights.shift
        if int8_factor(weights, mags, bound) is not None:
            self.dtype, self.acc_dtype = np.dtype(np.int8), np.dtype(np.int32)
            self.mats = weights.int8
        else:
            self.dtype = None if bound is None else exact_float_dtype(bound >> weights.shift)
            self.acc_dtype = self.dtype
            self.mats = None if self.dtype is None else weights.reduced(self.dtype)

    @contextmanager
    def gemm(self) -> Iterator[Callable[[np.ndarray, np.ndarray, np.ndarray], None]]:
        if self.dtype == np.int8:
            with gemm_threads():
                yield _int8_mm
            return
        with _gemm() as mm:
            yield mm


def dense(
    x: np.ndarray,
    weight: np.ndarray,
    weight_exp: int,
    graded: bool,
    latency: int,
    weights: Weights | None = None,
    scratch: Scratch = new_array,
) -> np.ndarray:
    """Exact dense synaptic sums of validated ``(N_in, T)`` input and on-grid weights.

    Same result as :func:`loihi_slayer.fixed.dense` (``backend='cpu'``):
    ``out[o, t] = shift(sum_i W[o, i] x[i, t - latency], weight_exp)``, as int32
    when it fits (int64 otherwise). Runs a float GEMM when
    :func:`exact_float_dtype` allows it, else the integer kernel. ``weights``:
    :func:`dense_weights` of ``weight``, kept by a caller that runs it again;
    ``scratch``: where the arrays come from (:data:`Scratch`).
    """
    x = np.ascontiguousarray(x)  # the copy kernels index it flat
    n_in, steps = x.shape
    n_out = weight.shape[0]
    weights = dense_weights(weight) if weights is None else weights
    mags = input_magnitudes(x, graded)
    bound = None if mags is None else weights.bound(mags[None], binary=not graded)
    plan = _Plan(weights, mags, bound, weight_exp)
    if plan.dtype is None:
        return _dense_integer(x, weight, weight_exp, graded, latency)
    xf = scratch("operand", (n_in, steps), plan.dtype)
    _delayed(x, latency, not graded, xf)
    acc = scratch("sums 0", (n_out, steps), plan.acc_dtype)
    with plan.gemm() as mm:
        mm(plan.mats[0], xf, acc)
    out = scratch("out", (n_out, steps), _sum_dtype(bound, weight_exp, False))
    _store(acc, plan.exp, False, out, 0, 0)
    return out


def dense_weights(weight: np.ndarray) -> Weights:
    """:class:`Weights` of a dense ``(N_out, N_in)`` integer weight."""
    return Weights(np.asarray(weight)[None])


def conv_weights(weight: np.ndarray, groups: int, transpose: bool = False) -> Weights:
    """:class:`Weights` of a (transposed) convolution's integer weight."""
    return Weights(_group_matrices(np.asarray(weight), groups, transpose))


def _dense_integer(x, weight, weight_exp, graded, latency) -> np.ndarray:
    out = np.zeros((1, weight.shape[0], x.shape[1]), np.int64)
    w = np.ascontiguousarray(weight, np.int64)
    n_out = out.shape[1]
    kern, par = cpu.dense_kernel, cpu.PARALLEL[cpu.dense_kernel]
    _workers.run_shared(kern, n_out, out.size, x[None], w, weight_exp, graded, out, parallel=par)
    return _delay_int(out[0], latency)


def _delay_int(a: np.ndarray, latency: int) -> np.ndarray:
    if latency == 0:
        return a
    out = np.zeros_like(a)
    out[..., latency:] = a[..., : a.shape[-1] - latency] if a.shape[-1] > latency else 0
    return out


def _group_matrices(weight: np.ndarray, groups: int, transpose: bool) -> np.ndarray:
    """``(groups, C_out/groups, C_in/groups * kH * kW)`` weight matrices of a conv."""
    kh, kw = weight.shape[2:]
    if transpose:  # (C_in, C_out/g, kH, kW) -> per group (C_out/g, C_in/g, kH, kW)
        c_in, out_g = weight.shape[:2]
        w = weight.reshape(groups, c_in // groups, out_g, kh, kw).transpose(0, 2, 1, 3, 4)
        return np.ascontiguousarray(w).reshape(groups, out_g, -1)
    return weight.reshape(groups, weight.shape[0] // groups, -1)


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    weight_exp: int,
    graded: bool,
    latency: int,
    out_hw: tuple[int, int],
    transpose: bool = False,
    weights: Weights | None = None,
    scratch: Scratch = new_array,
) -> np.ndarray:
    """Exact (transposed) convolution sums of validated ``(C, H, W, T)`` input.

    Same result as :func:`loihi_slayer.fixed.conv2d` / ``conv_transpose2d``
    (``backend='cpu'``, geometry already checked; ``out_hw`` the output size):
    the sum shifted by ``weight_exp`` and wrapped to signed 24 bit, delayed by
    ``latency``; ``(C_out, H_out, W_out, T)`` int32. Runs tiled ``im2col`` +
    float GEMM when :func:`exact_float_dtype` allows it, else the integer kernel;
    pooling (one output channel per group) runs a direct integer kernel. ``weights``:
    :func:`conv_weights` of ``weight``, kept by a caller that runs it again;
    ``scratch``: where the arrays come from (:data:`Scratch`).
    """
    x = np.ascontiguousarray(x)  # the copy kernels index it flat
    c_in, _, _, steps = x.shape
    weights = conv_weights(weight, groups, transpose) if weights is None else weights
    mats = weights.mats
    g_out, fan_in = mats.shape[1:]
    c_out = groups * g_out
    h_out, w_out = out_hw
    if groups > 1 and g_out == 1:  # pooling: one output per group, a GEMV each
        out4 = scratch("out", (c_out, h_out, w_out, steps), np.dtype(np.int32))
        w4 = mats.reshape(c_out, c_in // groups, *weight.shape[2:])
        _direct_conv(
            x,
            w4,
            *stride,
            *padding,
            *dilation,
            groups,
            transpose,
            latency,
            not graded,
            weight_exp,
            out4,
        )
        return out4
    may_take_events = graded and groups == 1 and not transpose and dilation[1] == 1
    events = None
    if may_take_events and weights.took_events:
        events = _compact(x, scratch)
        mags, nonzero = _event_stats(events, c_in)
    else:
        mags, nonzero = input_stats(x, graded)
    weights.took_events = False
    taps = fan_in // (c_in // groups)
    # column (c, k_y, k_x) of a group's matrix reads channel c
    cols = None if mags is None else np.repeat(mags.reshape(groups, -1), taps, axis=1)
    plan = _Plan(weights, mags, weights.bound(cols, binary=not graded), weight_exp)
    if plan.dtype is None:
        return _conv_integer(
            x,
            weight,
            stride,
            padding,
            dilation,
            groups,
            weight_exp,
            graded,
            latency,
            out_hw,
            transpose,
        )
    npix = h_out * w_out
    out = scratch("out", (c_out, npix * steps), np.dtype(np.int32))
    if _events_pay(plan, nonzero, x.size, c_out, w_out * steps, groups, transpose, dilation[1]):
        out4 = out.reshape(c_out, h_out, w_out, steps)
        kh, kw = weight.shape[2:]
        geometry = (kw, *stride, *padding, dilation[0], latency, plan.exp, c_out)
        events = _compact(x, scratch) if events is None else events
        _conv_events(x, weights.event_form(kh, kw, stride[1]), geometry, out4, scratch, events)
        weights.took_events = True
        return out4
    if _pixels_pay(plan, fan_in, steps):
        out4 = out.reshape(c_out, h_out, w_out, steps)
        _conv_pixels(
            x,
            weights,
            weight.shape[2:],
            stride,
            padding,
            dilation,
            transpose,
            plan,
            latency,
            graded,
            out4,
            scratch,
        )
        return out4
    tile = max(1, TILE_ELEMENTS // max(1, fan_in * steps))
    c_per_group = c_in // groups
    geometry = (*weight.shape[2:], *stride, *padding, *dilation, transpose, w_out)
    starts = list(range(0, npix, tile))
    src, lag, word = _gemm_stream(x, latency, graded, plan.dtype, scratch)
    binary = word is None and not graded  # the converted stream holds 0/1 already

    def tiles(worker: int, share: list[int], mm) -> None:
        """im2col + GEMM + store of the tiles starting at ``share`` (own buffers)."""
        cols_buf = scratch(f"cols {worker}", (fan_in * min(tile, npix) * steps,), plan.dtype)
        acc_buf = scratch(f"sums {worker}", (g_out * min(tile, npix) * steps,), plan.acc_dtype)
        for p0 in share:
            ncols = (min(npix, p0 + tile) - p0) * steps
            cols = cols_buf[: fan_in * ncols].reshape(fan_in, ncols)
            acc = acc_buf[: g_out * ncols].reshape(g_out, ncols)
            dst = cols if word is None else cols.view(word)
            for g in range(groups):
                _im2col(src, g * c_per_group, *geometry, p0, lag, binary, dst)
                mm(plan.mats[g], cols, acc)
                _store(acc, plan.exp, True, out, g * g_out, p0 * steps)

    # contiguous runs of k tiles, one per worker: the output columns are disjoint
    k = -(-len(starts) // min(_workers.tile_workers(), len(starts)))
    with plan.gemm() as mm:
        _workers.in_workers(
            lambda j: tiles(j, starts[j * k : (j + 1) * k], mm), -(-len(starts) // k)
        )
    return out.reshape(c_out, h_out, w_out, steps)


def _events_pay(
    plan: _Plan,
    nonzero: int | None,
    size: int,
    c_out: int,
    row_steps: int,
    groups: int,
    transpose: bool,
    col_dilation: int,
) -> bool:
    """Whether a convolution runs from its input's non-zero values (:mod:`.event_conv`):
    graded input sparse enough (:func:`.event_conv.events_pay`), one group, not
    transposed, no dilation along columns (the kernel's taps then reach consecutive
    output columns), and sums exact in float32."""
    return (
        nonzero is not None
        and groups == 1
        and not transpose
        and col_dilation == 1
        and plan.dtype == np.float32
        and event_conv.events_pay(nonzero, size, c_out, row_steps)
    )


def _pixels_pay(plan: _Plan, fan_in: int, steps: int) -> bool:
    """Whether a convolution runs pixel by pixel (:mod:`.pixel_conv`): float32 sums, a
    fan-in of at most :data:`PIXEL_MAX_FAN_IN`, and at most twice the steps' work in
    the padded time axis (fewer than 8 steps are padded to 16 and take the GEMM).

    PilotNet's first convolution (3 -> 24 channels, 3 x 3, stride 2, 42 % dense graded
    input, two workers, kept memory; AVX-512 EPYC, alternating, medians of 11-31): pixel
    by pixel 0.68x the GEMM's time at T = 32, 0.72-0.74x at T = 12 and 20 (padded to 16 and 32),
    0.56x at T = 48. With fan-ins of 216 and 576 (PilotNet's next convolutions, their
    GEMM path) 0.95-1.01x: nothing to gain, so the GEMM keeps them."""
    return (
        plan.dtype == np.float32
        and fan_in <= PIXEL_MAX_FAN_IN
        and pixel_conv.padded_steps(steps) <= 2 * steps
    )


def _conv_pixels(
    x: np.ndarray,
    weights: Weights,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    transpose: bool,
    plan: _Plan,
    latency: int,
    graded: bool,
    out: np.ndarray,
    scratch: Scratch,
) -> None:
    """``out`` (``(C_out, H_out, W_out, T)``) by :func:`.pixel_conv.pixel_rows`, the
    input delayed and converted to float32 once, the output rows shared among the tile
    workers."""
    steps = x.shape[-1]
    tp = pixel_conv.padded_steps(steps)
    xp = scratch("pixel input", (*x.shape[:-1], tp), np.dtype(np.float32))
    _delayed(x.reshape(-1, steps), latency, not graded, xp.reshape(-1, tp))
    wt = weights.pixel_form()
    h_out = out.shape[1]
    workers = max(1, min(_workers.tile_workers(), h_out))

    def output_rows(k: int) -> None:
        offs = [scratch(f"pixel taps {k} {r}", (wt.shape[1],), np.dtype(np.int64)) for r in "xw"]
        sums = scratch(f"pixel sums {k}", (wt.shape[2] * tp,), np.dtype(np.float32))
        mine = np.arange(k, h_out, workers, dtype=np.int64)
        pixel_conv.pixel_rows(
            xp,
            wt,
            *kernel,
            *stride,
            *padding,
            *dilation,
            transpose,
            plan.exp,
            mine,
            *offs,
            sums,
            out,
        )

    _workers.in_workers(output_rows, workers)


def _compact(x: np.ndarray, scratch: Scratch) -> tuple[np.ndarray, ...]:
    """The non-zero values of ``x`` (``(C, H, W, T)``) by pixel and step, with the extremes
    of each channel's image rows: :func:`.event_conv.compact`'s ``(first, last, chans,
    values, hi, lo)``, the image rows shared among the tile workers."""
    c_in, h, wd, steps = x.shape
    groups = h * wd * steps
    bounds = [scratch(f"event {k}", (groups,), np.dtype(np.int64)) for k in ("firsts", "lasts")]
    chans = scratch("event channels", (x.size,), np.dtype(np.int32))
    values = scratch("event values", (x.size,), np.dtype(np.float32))
    extremes = [scratch(f"event {k}", (c_in * h,), np.dtype(np.int64)) for k in ("highs", "lows")]
    events = (*bounds, chans, values, *extremes)
    workers = max(1, min(_workers.tile_workers(), h))
    marks = wd * steps * event_conv.mark_words(c_in)

    def part(k: int) -> None:
        mine = scratch(f"event marks {k}", (marks,), np.dtype(np.uint64))
        event_conv.compact(x, h * k // workers, h * (k + 1) // workers, *events, mine)

    _workers.in_workers(part, workers)
    return events


def _event_stats(events: tuple[np.ndarray, ...], channels: int) -> tuple[np.ndarray | None, int]:
    """:func:`input_stats` of a graded input from its :func:`_compact` form: per channel
    the largest magnitude (None when one reaches :data:`_HUGE`), and the non-zero
    values."""
    first, last, hi, lo = events[0], events[1], events[4], events[5]
    top, bottom = hi.reshape(channels, -1).max(axis=1), lo.reshape(channels, -1).min(axis=1)
    nonzero = int(last.sum() - first.sum())
    if channels and (int(top.max()) >= _HUGE or int(bottom.min()) <= -_HUGE):
        return None, nonzero
    return np.maximum(top, -bottom), nonzero


def _conv_events(
    x: np.ndarray,
    wt: np.ndarray,
    geometry: tuple,
    out: np.ndarray,
    scratch: Scratch,
    events: tuple[np.ndarray, ...],
) -> None:
    """``out`` (``(C_out, H_out, W_out, T)``) from the non-zero values of ``x``
    (:func:`_compact`), its output rows shared among the tile workers."""
    steps = x.shape[-1]
    h_out, w_out = out.shape[1:3]
    workers = max(1, min(_workers.tile_workers(), h_out))

    def output_rows(k: int) -> None:
        row_sums = (w_out * steps * wt.shape[-1],)
        acc = scratch(f"event sums {k}", row_sums, np.dtype(np.float32))
        sums = scratch(f"event ints {k}", row_sums, np.dtype(np.int32))
        mine = np.arange(k, h_out, workers, dtype=np.int64)  # interleaved: even shares
        event_conv.event_rows(x.shape, *events[:4], wt, *geometry, mine, acc, sums, out)

    _workers.in_workers(output_rows, workers)


def _gemm_stream(x: np.ndarray, latency: int, graded: bool, dtype: np.dtype, scratch: Scratch):
    """What im2col copies from: ``(src, lag, word)``.

    im2col copies runs of ``T`` values, ``kH * kW`` times each value; runs of 32 int8
    spikes are too short for the vector loops (numba's loop vectorises by 32-64
    bytes and leaves short runs to its scalar remainder: int8 im2col ran at a third of
    float32's rate per value). So where ``T`` values of the GEMM's dtype fill whole
    machine words, the stream is first delayed and converted to that dtype once
    (:func:`_delayed`, spikes cast to 0/1), and im2col then copies words of it
    (``word`` the unsigned dtype, ``lag`` 0); otherwise im2col copies values from
    ``x`` itself with the latency (``word`` None).
    """
    steps = x.shape[-1]
    run = steps * dtype.itemsize
    for size in (8, 4, 2):
        if run % size == 0 and size > dtype.itemsize:
            conv = scratch("operand", x.shape, dtype)
            _delayed(x.reshape(-1, steps), latency, not graded, conv.reshape(-1, steps))
            word = np.dtype(f"u{size}")
            return conv.view(word), 0, word
    return x, latency, None


def _conv_integer(
    x, weight, stride, padding, dilation, groups, weight_exp, graded, latency, out_hw, transpose
) -> np.ndarray:
    c_out = weight.shape[1] * groups if transpose else weight.shape[0]
    out = np.zeros((1, c_out, *out_hw, x.shape[-1]), np.int64)
    kernel = cpu.conv_transpose2d_kernel if transpose else cpu.conv2d_kernel
    w = np.ascontiguousarray(weight, np.int64)
    geometry = (*stride, *padding, *dilation, groups, weight_exp, graded)
    par = cpu.PARALLEL[kernel]
    _workers.run_shared(kernel, c_out, out.size, x[None], w, *geometry, out, parallel=par)
    return _delay_int(out[0], latency)

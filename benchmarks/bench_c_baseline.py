"""Our emulation kernels against a plain C loop of the same integer step, same run.

The C kernels (CUBA-LIF and sigma-delta, exactly the integer semantics of
:mod:`loihi_slayer.fixed.dynamics`: int64 decay products rounded toward zero,
24-bit current wrap, voltage saturation, strict threshold, reset, spikes
written) are compiled here, at benchmark time, with the system C compiler
(``$CC``, default ``cc``; ``-O3 -march=native -fopenmp``, OpenMP threads = numba
threads) and loaded with ctypes. Nothing is compiled at install. Neurons are
stepped in blocks of 16 lanes with branch-free selects, so the compiler can
vectorise across neurons. Both sides must produce the same spikes before any
timing; then they run alternately and the medians and ratio are printed.

Input (issue 8): N neurons, T steps, int32 synaptic sums in 0..40 with ~20 %
non-zero (``--activity`` changes it), iDecay 411, vDecay 205, vThMant 200.

Usage::

    python benchmarks/bench_c_baseline.py [--neurons 100000] [--steps 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from loihi_slayer import fixed

C_SOURCE = r"""
#include <stdint.h>
#define SMAX 8388607LL
#define MASK24 16777215LL
#define LANES 16
static inline int64_t rz12(int64_t x) { return (x + ((x >> 63) & 4095)) >> 12; }

/* CUBA-LIF, shared parameters, refDelay 1: a (N, T) int32 -> s (N, T) int8 */
void cuba(const int32_t *a, int64_t n, int64_t t_len, int64_t di, int64_t dv, int64_t vth,
          int64_t bias, int8_t *s, int32_t *u_out, int32_t *v_out, int rec_uv) {
    #pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < n; b += LANES) {
        int64_t m = n - b < LANES ? n - b : LANES;
        int64_t u[LANES] = {0}, v[LANES] = {0};
        for (int64_t t = 0; t < t_len; t++) {
            #pragma omp simd
            for (int64_t j = 0; j < LANES; j++) {
                if (j < m) {
                    int64_t idx = (b + j) * t_len + t;
                    int64_t uu = rz12(u[j] * (4096 - di)) + (int64_t)a[idx] * 64;
                    uu = ((uu + SMAX) & MASK24) - SMAX;
                    int64_t vv = rz12(v[j] * (4096 - dv)) + uu + bias;
                    vv = vv > SMAX ? SMAX : (vv < -SMAX ? -SMAX : vv);
                    int64_t sp = vv > vth;
                    s[idx] = (int8_t)sp;
                    vv = sp ? 0 : vv;
                    if (rec_uv) { u_out[idx] = (int32_t)uu; v_out[idx] = (int32_t)vv; }
                    u[j] = uu; v[j] = vv;
                }
            }
        }
    }
}

/* sigma-delta (ReLU, no cumulative error): x (N, T) int32 -> payload (N, T) int64 */
void sdnn(const int32_t *x, int64_t n, int64_t t_len, int64_t vth, int64_t bias,
          int64_t state_exp, int64_t *out) {
    #pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < n; b += LANES) {
        int64_t m = n - b < LANES ? n - b : LANES;
        int64_t sg[LANES] = {0}, act[LANES] = {0}, res[LANES] = {0};
        for (int64_t t = 0; t < t_len; t++) {
            #pragma omp simd
            for (int64_t j = 0; j < LANES; j++) {
                if (j < m) {
                    int64_t idx = (b + j) * t_len + t;
                    sg[j] += x[idx];
                    int64_t ac = sg[j] + bias;
                    ac = ac < 0 ? 0 : ac;
                    int64_t d = ac - act[j] + res[j];
                    int64_t ad = d < 0 ? -d : d;
                    int64_t sp = ad >= vth ? d : 0;
                    res[j] = d - sp;
                    act[j] = ac;
                    out[idx] = sp >> state_exp;
                }
            }
        }
    }
}
"""


def compile_c(threads: int) -> ctypes.CDLL | None:
    """Compile the C kernels into a temporary shared library, or None without a compiler."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        print(f"no C compiler ({cc!r} not found): skipping the C baseline", file=sys.stderr)
        return None
    tmp = Path(tempfile.mkdtemp(prefix="loihi_slayer_cbench_"))
    src, lib = tmp / "kernels.c", tmp / "kernels.so"
    src.write_text(C_SOURCE)
    cmd = [cc, "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", str(src), "-o", str(lib)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"C compile failed, skipping the C baseline:\n{done.stderr}", file=sys.stderr)
        return None
    os.environ["OMP_NUM_THREADS"] = str(threads)
    dll = ctypes.CDLL(str(lib))
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    dll.cuba.argtypes = [ptr, i64, i64, i64, i64, i64, i64, ptr, ptr, ptr, ctypes.c_int]
    dll.sdnn.argtypes = [ptr, i64, i64, i64, i64, i64, ptr]
    return dll


def _median_time(fn, runs: int, other) -> tuple[float, float]:
    """Median times of ``fn`` and ``other``, measured alternately."""
    a, b = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        a.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        other()
        b.append(time.perf_counter() - t0)
    return statistics.median(a), statistics.median(b)


def main() -> None:
    import numba

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--activity", type=float, default=0.2, help="fraction of non-zero inputs")
    args = ap.parse_args()
    n, t = args.neurons, args.steps
    threads = numba.get_num_threads()
    dll = compile_c(threads)
    if dll is None:
        return
    rng = np.random.default_rng(0)
    a = (rng.integers(0, 41, (n, t)) * (rng.random((n, t)) < args.activity)).astype(np.int32)
    print(f"N={n}, T={t}, activity {args.activity:.0%}, {threads} thread(s), median of "
          f"{args.runs} alternating runs")  # fmt: skip

    # ---- CUBA, spikes only and with u, v recorded
    cp = fixed.CubaParams(i_decay=411, v_decay=205, v_th_mant=200)
    for record in (("s",), ("s", "u", "v")):
        rec_uv = len(record) > 1
        s_c = np.zeros((n, t), np.int8)
        u_c = np.zeros((n, t) if rec_uv else (1,), np.int32)
        v_c = np.zeros_like(u_c)

        def c_run(s_c=s_c, u_c=u_c, v_c=v_c, rec_uv=rec_uv):
            dll.cuba(a.ctypes.data, n, t, 411, 205, 200 << 6, 0, s_c.ctypes.data,
                     u_c.ctypes.data, v_c.ctypes.data, int(rec_uv))  # fmt: skip

        def ours(record=record):
            return fixed.cuba(a, cp, record=record, backend="cpu")[0]

        tr = ours()
        c_run()
        same = np.array_equal(tr["s"], s_c) and (
            not rec_uv or (np.array_equal(tr["u"], u_c) and np.array_equal(tr["v"], v_c))
        )
        if not same:
            raise SystemExit("CUBA: our kernel and the C kernel disagree")
        t_ours, t_c = _median_time(ours, args.runs, c_run)
        _report(f"CUBA record {'/'.join(record)}", n * t, t_ours, t_c)

    # ---- sigma-delta (graded input 0..40 * 256, threshold 1 << 12)
    x = a * 256
    sp = fixed.SigmaDeltaParams(v_th_mant=1, bias=0)
    out_c = np.zeros((n, t), np.int64)

    def c_sd():
        dll.sdnn(x.ctypes.data, n, t, int(sp.v_th), 0, 6, out_c.ctypes.data)

    def ours_sd():
        return fixed.sigma_delta(x, sp, record=("s",), backend="cpu")[0]

    if not np.array_equal(ours_sd()["s"], (c_sd(), out_c)[1]):
        raise SystemExit("sigma-delta: our kernel and the C kernel disagree")
    t_ours, t_c = _median_time(ours_sd, args.runs, c_sd)
    _report("sigma-delta record s", n * t, t_ours, t_c)


def _report(what: str, work: int, t_ours: float, t_c: float) -> None:
    print(f"  {what:<22} ours {work / t_ours:9.3g}/s  C {work / t_c:9.3g}/s  "
          f"ours/C = {t_c / t_ours:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()

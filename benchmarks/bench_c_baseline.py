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
non-zero, then a low-activity variant with ~2 % (``--activity`` changes them),
iDecay 411, vDecay 205, vThMant 200.

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


def _median_times(fns, runs: int) -> list[float]:
    """Median time of each function, the functions called in turn ``runs`` times."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, ts in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def _case(name: str, work: int, ours, ours_out, c_run, check, runs: int) -> None:
    """Check agreement, then time ours (fresh arrays), ours (``out=``) and C in turn."""
    ours_out()
    c_run()
    if not check():
        raise SystemExit(f"{name}: our kernel and the C kernel disagree")
    t_new, t_out, t_c = _median_times([ours, ours_out, c_run], runs)
    print(
        f"  {name:<20} C {work / t_c:9.3g}/s | ours {work / t_new:9.3g}/s "
        f"({t_c / t_new:.2f}x C) | ours out= {work / t_out:9.3g}/s ({t_c / t_out:.2f}x C)"
    )


def main() -> None:
    import numba

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument(
        "--activity",
        type=float,
        nargs="+",
        default=[0.2, 0.02],
        help="fractions of non-zero inputs, one run each",
    )
    args = ap.parse_args()
    n, t = args.neurons, args.steps
    threads = numba.get_num_threads()
    dll = compile_c(threads)
    if dll is None:
        return
    print(
        f"N={n}, T={t}, {threads} thread(s), median of {args.runs} runs, the three taken in "
        "turn; 'ours' allocates its trace arrays per call (as fixed.cuba does by default), "
        "'ours out=' and C write into arrays reused across calls"
    )
    for activity in args.activity:
        rng = np.random.default_rng(0)
        a = (rng.integers(0, 41, (n, t)) * (rng.random((n, t)) < activity)).astype(np.int32)
        print(f"activity {activity:.0%}:")
        _cuba_cases(dll, a, args.runs)
        _sdnn_case(dll, a, args.runs)


def _cuba_cases(dll, a: np.ndarray, runs: int) -> None:
    n, t = a.shape
    cp = fixed.CubaParams(i_decay=411, v_decay=205, v_th_mant=200)
    for record in (("s",), ("s", "u", "v")):
        rec_uv = len(record) > 1
        c_out = {"s": np.zeros((n, t), np.int8)}
        c_out.update({k: np.zeros((n, t) if rec_uv else (1,), np.int32) for k in "uv"})
        ours_out = {"s": np.zeros((n, t), np.int8)}
        ours_out.update({k: np.zeros((n, t), np.int32) for k in record[1:]})

        def c_run(c_out=c_out, rec_uv=rec_uv):
            dll.cuba(
                a.ctypes.data,
                n,
                t,
                411,
                205,
                200 << 6,
                0,
                c_out["s"].ctypes.data,
                c_out["u"].ctypes.data,
                c_out["v"].ctypes.data,
                int(rec_uv),
            )

        def check(record=record, ours_out=ours_out, c_out=c_out):
            return all(np.array_equal(ours_out[k], c_out[k]) for k in record)

        _case(
            f"CUBA record {'/'.join(record)}",
            n * t,
            lambda record=record: fixed.cuba(a, cp, record=record, backend="cpu"),
            lambda record=record, o=ours_out: fixed.cuba(
                a, cp, record=record, backend="cpu", out=o
            ),
            c_run,
            check,
            runs,
        )


def _sdnn_case(dll, a: np.ndarray, runs: int) -> None:
    """Sigma-delta on graded input (0..40) * 256, threshold 1 << 12."""
    n, t = a.shape
    x = a * 256
    sp = fixed.SigmaDeltaParams(v_th_mant=1, bias=0)
    out_c = np.zeros((n, t), np.int64)
    ours_out = {"s": np.zeros((n, t), np.int64)}
    _case(
        "sigma-delta record s",
        n * t,
        lambda: fixed.sigma_delta(x, sp, record=("s",), backend="cpu"),
        lambda: fixed.sigma_delta(x, sp, record=("s",), backend="cpu", out=ours_out),
        lambda: dll.sdnn(x.ctypes.data, n, t, int(sp.v_th), 0, 6, out_c.ctypes.data),
        lambda: np.array_equal(ours_out["s"], out_c),
        runs,
    )


if __name__ == "__main__":
    main()

"""The numba.cuda neuron kernels against the GPU's memory bandwidth (issue 8, item 8).

Runs the generated CUBA and sigma-delta CUDA kernels on device-resident input
(N neurons, T steps, int32 synaptic sums, ~20 % non-zero; spikes recorded) and
prints neuron-steps/s, the bytes the kernel must move (input read + traces
written) per second, and that as a fraction of the device's peak DRAM bandwidth
(``2 * memory clock * bus width``, from the driver), for the tiled kernel the
library launches (a warp per 32 neurons, time tiles through shared memory: coalesced
loads and stores) and for the one-thread-per-neuron kernel on the global arrays
(``kernel_per_thread``), timed alternately. Both are first checked against the CPU
kernel on a slice. Then the training CUBA kernels (``autograd._cuda``: float32
``(N, T)`` arrays, tiled the same way): the forward with the voltage recorded, as in
training (reads ``x``, writes spikes and voltage), and the backward's fast case
(reads the spike gradient and the voltage, writes the input gradient), each checked
against its CPU kernel on a slice. Needs a CUDA GPU (``status`` of the device
tool says whether one is lent); under ``NUMBA_ENABLE_CUDASIM=1`` it runs a tiny
size for a smoke test only, and its times mean nothing.

Usage::

    python benchmarks/bench_cuda.py [--neurons 1000000] [--steps 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from numba import config, cuda

from loihi_slayer import fixed, models
from loihi_slayer.autograd import _cpu as train_cpu
from loihi_slayer.autograd import _cuda as train_cuda
from loihi_slayer.fixed import codegen
from loihi_slayer.fixed.api import SDNN_KERNEL, SDNN_MODES
from loihi_slayer.fixed.cuda import launch, launch_tiled


def peak_bandwidth() -> float | None:
    """Peak DRAM bandwidth in bytes/s from the driver's attributes (None if unknown)."""
    try:
        dev = cuda.get_current_device()
        return 2.0 * dev.MEMORY_CLOCK_RATE * 1e3 * dev.GLOBAL_MEMORY_BUS_WIDTH / 8
    except Exception:  # the simulator has no such attributes
        return None


def device_input(n: int, t: int, rng: np.random.Generator):
    """``(n, t)`` int32 input on the device, generated in slices to bound host memory."""
    d = cuda.device_array((n, t), np.int32)
    rows = max(1, (1 << 26) // max(t, 1))
    for i in range(0, n, rows):
        j = min(n, i + rows)
        h = (rng.integers(0, 41, (j - i, t)) * (rng.random((j - i, t)) < 0.2)).astype(np.int32)
        d[i:j] = h
    return d


def time_kernels(runs_by_name: dict, runs: int) -> dict[str, float]:
    """Median seconds of each ``run()``, the runs alternating."""
    for run in runs_by_name.values():
        run()
    cuda.synchronize()
    ts: dict[str, list[float]] = {k: [] for k in runs_by_name}
    for _ in range(runs):
        for k, run in runs_by_name.items():
            t0 = time.perf_counter()
            run()
            cuda.synchronize()
            ts[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in ts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    n, t = args.neurons, args.steps
    if config.ENABLE_CUDASIM:
        n, t = min(n, 40), min(t, 20)
        print(f"CUDA simulator: smoke test at N={n}, T={t}; the times mean nothing")
    rng = np.random.default_rng(0)
    a = device_input(n, t, rng)
    peak = peak_bandwidth()
    print(
        f"N={n}, T={t}, median of {args.runs}; peak DRAM bandwidth "
        f"{'unknown' if peak is None else f'{peak / 1e9:.0f} GB/s'}"
    )

    cuba = models.get("cuba")
    p = fixed.CubaParams(i_decay=411, v_decay=205, v_th_mant=200)
    table = np.array([[411], [205], [int(p.v_th)], [1], [0], [0]], np.int64)
    _case(
        "CUBA record s",
        codegen.kernel_module(cuba, "cuda"),
        a,
        table,
        3,
        [np.int8, np.int32, np.int32, np.int32],
        1,
        args.runs,
        peak,
        lambda x: fixed.cuba(x, p, record=("s",), backend="cpu")[0]["s"],
    )

    sp = fixed.SigmaDeltaParams(v_th_mant=1)
    rows = [SDNN_MODES["sigma_delta"], int(sp.v_th), 0, sp.shift, 6, 1, 0]
    table = np.array(rows, np.int64).reshape(-1, 1)
    _case(
        "sigma-delta record s",
        codegen.kernel_module(SDNN_KERNEL, "cuda"),
        a,
        table,
        4,
        [np.int64] * 4,
        8,
        args.runs,
        peak,
        lambda x: fixed.sigma_delta(x, sp, record=("s",), backend="cpu")[0]["s"],
    )
    _training_case(a, args.runs, peak)


def _case(name, mod, a, table, n_states, dtypes, s_bytes, runs, peak, cpu_spikes) -> None:
    n, t = a.shape
    d_table = cuda.to_device(table)
    rest = [cuda.device_array((n, 0), d) for d in dtypes[1:]]
    kernels = {
        "tiled": (mod.kernel, launch_tiled(n)),
        "per thread": (mod.kernel_per_thread, launch(n)),
    }
    outs = {k: cuda.device_array((n, t), dtypes[0]) for k in kernels}

    def runner(k):
        kernel, (blocks, threads) = kernels[k]

        def run():
            st = cuda.to_device(np.zeros((n_states, n), np.int64))
            kernel[blocks, threads](a, d_table, 0, t, st, outs[k], *rest)

        return run

    secs = time_kernels({k: runner(k) for k in kernels}, runs)
    k = min(n, 2048)
    want = cpu_spikes(a[:k].copy_to_host())
    for kind, out in outs.items():
        if not np.array_equal(out[:k].copy_to_host(), want):
            raise SystemExit(f"{name}: the {kind} CUDA kernel disagrees with the CPU kernel")
    moved = n * t * (a.dtype.itemsize + s_bytes)
    for kind, sec in secs.items():
        frac = "" if peak is None else f", {moved / sec / peak:.0%} of peak"
        print(
            f"  {name:<22} {kind:<10} {n * t / sec:9.3g} neuron-steps/s, "
            f"{moved / sec / 1e9:7.1f} GB/s{frac}"
        )
    print(f"  {name:<22} tiled / per thread: {secs['per thread'] / secs['tiled']:.2f}x")


def _training_case(a, runs: int, peak: float | None) -> None:
    """The training CUBA forward (spikes and voltage written) and backward (spike gradient
    and voltage read, input gradient written) on float32 ``(N, T)`` device arrays."""
    n, t = a.shape
    x = cuda.device_array((n, t), np.float32)
    rows = max(1, (1 << 26) // max(t, 1))
    for i in range(0, n, rows):  # x = a / 64 (synapse units), in slices
        j = min(n, i + rows)
        x[i:j] = a[i:j].copy_to_host().astype(np.float32) / 64
    dec = (np.array([411], np.int64), np.array([205], np.int64))
    v_th, bias = np.array([200 << 6], np.int64), np.zeros(1, np.int64)
    s_out, vp = (cuda.device_array((n, t), np.float32) for _ in range(2))
    u_out = cuda.device_array((n, 0), np.float32)
    r_out = cuda.device_array((n, 0), np.uint8)
    bad = cuda.device_array(n, np.int8)
    g_s = cuda.device_array((n, t), np.float32)
    g_s[:, :] = 1.0
    g_x = cuda.device_array((n, t), np.float32)
    none = cuda.device_array((n, 0), np.float32)
    empty = cuda.device_array(0, np.float64)
    theta, inv_tau, amp = np.array([200 / 64]), np.array([1 / 0.5]), 1.0
    zeros = cuda.device_array(n, np.float64)
    zeros[:] = 0.0
    blocks, threads = train_cuda.blocks_for(n), train_cuda.THREADS

    def state():
        return [cuda.to_device(np.zeros(n, np.int64)) for _ in range(3)]

    def forward():
        train_cuda.cuba_forward[blocks, threads](
            x, 64.0, 1 / 64, *dec, v_th, 1, bias, *state(), False, s_out, vp, u_out, r_out, bad
        )

    def backward():
        train_cuda.cuba_backward[blocks, threads](
            g_s,
            none,
            none,
            vp,
            none,
            r_out,
            theta,
            v_th,
            64.0,
            inv_tau,
            amp,
            False,
            *dec,
            zeros,
            zeros,
            True,
            True,
            g_x,
            empty,
            empty,
        )

    secs = time_kernels({"forward": forward, "backward": backward}, runs)
    k = min(n, 2048)
    xs = x[:k].copy_to_host()
    s_cpu, vp_cpu = np.empty((k, t), np.float32), np.empty((k, t), np.float32)
    st = [np.zeros(k, np.int64) for _ in range(3)]
    train_cpu.cuba_forward_serial(
        xs,
        64.0,
        1 / 64,
        *dec,
        v_th,
        1,
        bias,
        *st,
        False,
        s_cpu,
        vp_cpu,
        np.empty((k, 0), np.float32),
        np.empty((k, 0), np.uint8),
        np.zeros(k, np.int8),
        train_cpu.NO_POOL,
        np.float32(1),
        0,
        train_cpu.NO_OPERAND,
        train_cpu.NO_COUNTS,
    )
    if not (
        np.array_equal(s_out[:k].copy_to_host(), s_cpu)
        and np.array_equal(vp[:k].copy_to_host(), vp_cpu)
    ):
        raise SystemExit("training CUBA forward: the CUDA kernel disagrees with the CPU kernel")
    g_cpu = np.empty((k, t), np.float32)
    train_cpu.cuba_backward_fast_serial(
        np.ones((k, t), np.float32), vp_cpu, theta, inv_tau, amp, False, *dec, g_cpu, 0
    )
    if not np.allclose(g_x[:k].copy_to_host(), g_cpu, rtol=1e-5, atol=1e-6):
        raise SystemExit("training CUBA backward: the CUDA kernel disagrees with the CPU kernel")
    moved = n * t * 12  # float32: one array read and two written, or two read and one written
    for kind, sec in secs.items():
        frac = "" if peak is None else f", {moved / sec / peak:.0%} of peak"
        print(
            f"  {'training CUBA ' + kind:<22} {'tiled':<10} {n * t / sec:9.3g} neuron-steps/s, "
            f"{moved / sec / 1e9:7.1f} GB/s{frac}"
        )


if __name__ == "__main__":
    main()

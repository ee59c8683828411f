"""Neuron-steps per second of the CUBA emulation kernel: NumPy reference vs njit.

Both are measured in the same run on the same input (N neurons, T steps,
synaptic sums as int32, recording spikes only) and the ratio is printed.
The reference is vectorized over neurons (loop over time in Python).

Usage::

    python benchmarks/bench_cuba_kernel.py [--neurons 100000] [--steps 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from loihi_slayer import fixed


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--ref-steps",
        type=int,
        default=100,
        help="steps for the (slow) reference; its rate is per neuron-step",
    )
    args = ap.parse_args()
    n, t = args.neurons, args.steps
    rng = np.random.default_rng(0)
    # ~10 % input activity through small weights: realistic spiking, no saturation
    a = (rng.integers(-3, 6, (n, t)) * (rng.random((n, t)) < 0.5)).astype(np.int32)
    params = fixed.CubaParams(i_decay=1024, v_decay=128, v_th_mant=80, ref_delay=1)

    fixed.cuba(a[:8, :8], params, backend="cpu")  # compile (cached on disk afterwards)
    cpu_s = best_of(lambda: fixed.cuba(a, params, record=("s",), backend="cpu"), args.repeat)
    tr, _ = fixed.cuba(a, params, record=("s",), backend="cpu")

    rt = min(args.ref_steps, t)
    ref_s = best_of(
        lambda: fixed.cuba(a[:, :rt], params, record=("s",), backend="reference"),
        max(1, args.repeat // 2),
    )
    ref_tr, _ = fixed.cuba(a[:, :rt], params, record=("s",), backend="reference")
    assert np.array_equal(np.asarray(tr["s"])[:, :rt], ref_tr["s"]), "kernels disagree"

    cpu_rate = n * t / cpu_s
    ref_rate = n * rt / ref_s
    print(
        f"CUBA kernel, N={n} neurons, T={t} steps, record spikes only, "
        f"{os.cpu_count()} CPU(s), numba threads={_threads()}"
    )
    print(f"  reference (NumPy, vectorized over neurons, T={rt}): {ref_rate:.3e} neuron-steps/s")
    print(
        f"  njit kernel:                                 {cpu_rate:.3e} neuron-steps/s "
        f"({cpu_s * 1e3:.1f} ms per run)"
    )
    print(f"  ratio njit / reference:                      {cpu_rate / ref_rate:.1f}x")
    print(
        f"  spikes: {int(np.asarray(tr['s']).sum())} "
        f"({np.asarray(tr['s']).mean() * 100:.2f} % of neuron-steps)"
    )
    target = 5e8
    print(f"  target >= {target:.0e} neuron-steps/s: {'met' if cpu_rate >= target else 'NOT met'}")


def _threads() -> int:
    import numba

    return numba.get_num_threads()


if __name__ == "__main__":
    main()

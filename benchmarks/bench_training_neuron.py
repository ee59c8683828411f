"""Training neurons (CUBA, sigma-delta) against the plain C step kernels, same run.

Issue 8 item 3: ``neuron.cuba.Neuron`` forward+backward at (batch 32, 512
neurons, T=200) float32 must take at most 3x the time the plain C CUBA kernel
of :mod:`bench_c_baseline` needs for the same neuron-steps, forward alone at
most 1.5x; the same for ``neuron.sigma_delta.Neuron`` against the C
sigma-delta kernel. The C kernels are compiled here (system C compiler, see
``bench_c_baseline.compile_c``); nothing is compiled at install.

The input is the C benchmark's: integer synaptic sums in 0..40 with ~20 %
non-zero, iDecay 411, vDecay 205, vThMant 200; the training neuron gets them as
``x = A / 64`` (CUBA, ``A = rint(64 x)``) and ``x = 256 A / 2**18``
(sigma-delta, ``rint(2**18 x) = 256 A``, vThMant 1). Before any timing the
spikes / payloads of the training neurons must equal the C kernels'. Then every
case runs once per round, alternately, and the medians over the rounds and the
ratios ours / C are printed.

``--profile`` adds where the time goes: the bare numba kernels on
preallocated arrays (forward with and without the voltage record, backward),
the output allocations, and what the torch custom op and autograd add.

Usage::

    python benchmarks/bench_training_neuron.py [--batch 32] [--neurons 512] [--steps 200]
        [--runs 7] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_c_baseline import compile_c

from loihi_slayer.autograd import _cpu
from loihi_slayer.neuron import cuba, sigma_delta

I_DECAY, V_DECAY, VTH_MANT = 411, 205, 200
#: issue 8 targets: time(ours) / time(C) at most this
TARGETS = {"forward": 1.5, "forward+backward": 3.0}


def _rounds(cases: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median seconds of each case, the cases run alternately once per round."""
    for fn in cases.values():  # warm-up (compilation, allocator)
        fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(runs):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _inputs(args) -> tuple[np.ndarray, int, int]:
    rows, steps = args.batch * args.neurons, args.steps
    rng = np.random.default_rng(0)
    a = rng.integers(0, 41, (rows, steps)) * (rng.random((rows, steps)) < args.activity)
    return a.astype(np.int32), rows, steps


def main() -> None:
    import numba

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--neurons", type=int, default=512)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--activity", type=float, default=0.2, help="fraction of non-zero inputs")
    ap.add_argument("--profile", action="store_true", help="also time the parts")
    args = ap.parse_args()
    threads = numba.get_num_threads()
    dll = compile_c(threads)
    if dll is None:
        return
    a, rows, steps = _inputs(args)
    shape = (args.batch, args.neurons, steps)
    print(
        f"(batch, neurons, T) = {shape}: {rows * steps / 1e6:.2f} M neuron-steps, "
        f"{threads} numba / OpenMP thread(s), torch {torch.get_num_threads()}, median of "
        f"{args.runs} alternating rounds"
    )

    # ---- C kernels
    s_c = np.zeros((rows, steps), np.int8)
    nil = np.zeros(1, np.int32)
    x_sd_int = a * 256
    y_c = np.zeros((rows, steps), np.int64)

    def c_cuba():
        dll.cuba(
            a.ctypes.data,
            rows,
            steps,
            I_DECAY,
            V_DECAY,
            VTH_MANT << 6,
            0,
            s_c.ctypes.data,
            nil.ctypes.data,
            nil.ctypes.data,
            0,
        )

    def c_sdnn():
        dll.sdnn(x_sd_int.ctypes.data, rows, steps, 1 << 12, 0, 6, y_c.ctypes.data)

    # ---- training neurons
    x = torch.from_numpy(a.astype(np.float32) / 64).reshape(shape)
    neuron = cuba.Neuron(VTH_MANT / 64, I_DECAY / 4096, V_DECAY / 4096)
    assert (neuron.v_th_mant, neuron.cx_current_decay) == (VTH_MANT, I_DECAY)
    g = torch.from_numpy(np.random.default_rng(1).standard_normal(shape).astype(np.float32))
    x_sd = torch.from_numpy(x_sd_int.astype(np.float32) / 2.0**18).reshape(shape)
    sd = sigma_delta.Neuron(1 / 64, F.relu)

    def cuba_fwd():
        with torch.no_grad():
            return neuron(x)

    def cuba_fb():
        xi = x.detach().requires_grad_(True)
        neuron(xi).backward(g)
        return xi.grad

    def sd_fwd():
        with torch.no_grad():
            return sd(x_sd)

    def sd_fb():
        xi = x_sd.detach().requires_grad_(True)
        sd(xi).backward(g)
        return xi.grad

    c_cuba()
    c_sdnn()
    if not np.array_equal(cuba_fwd().reshape(rows, steps).numpy(), s_c):
        raise SystemExit("CUBA: the training neuron and the C kernel disagree")
    if not np.array_equal(sd_fwd().reshape(rows, steps).numpy(), y_c / 4096.0):
        raise SystemExit("sigma-delta: the training neuron and the C kernel disagree")
    print(f"  spikes equal the C kernels' (CUBA: {int(s_c.sum())} spikes)")

    cases = {
        "C cuba": c_cuba,
        "cuba forward": cuba_fwd,
        "cuba forward+backward": cuba_fb,
        "C sigma-delta": c_sdnn,
        "sigma-delta forward": sd_fwd,
        "sigma-delta forward+backward": sd_fb,
    }
    if args.profile:
        cases.update(_profile_cases(x, g, rows, steps))
    med = _rounds(cases, args.runs)
    work = rows * steps
    for name, sec in med.items():
        ref = "C sigma-delta" if name.startswith("sigma") else "C cuba"
        line = f"  {name:<38} {sec * 1e3:8.2f} ms  {work / sec / 1e6:7.1f} M/s"
        if not name.startswith("C ") and not name.startswith("  "):
            ratio = sec / med[ref]
            target = TARGETS[name.split()[-1]] if name.split()[-1] in TARGETS else None
            line += f"  ours/C = {ratio:5.2f}"
            if target is not None:
                line += f"  (target <= {target}: {'met' if ratio <= target else 'NOT met'})"
        print(line)


def _profile_cases(x: torch.Tensor, g: torch.Tensor, rows: int, steps: int) -> dict:
    """The bare kernels and allocations (names start with two spaces: no ratio printed)."""
    x2 = x.reshape(rows, steps).numpy()

    def i1(v: int) -> np.ndarray:
        return np.array([v], np.int64)

    s = np.empty((rows, steps), np.float32)
    vp = np.empty((rows, steps), np.float32)
    nil_f = np.empty((rows, 0), np.float32)
    nil_r = np.empty((rows, 0), np.uint8)
    state = np.zeros((3, rows), np.int64)
    bad = np.zeros(rows, np.int8)
    gx = np.empty((rows, steps), np.float32)
    gs = g.reshape(rows, steps).numpy()
    theta = VTH_MANT / 64
    tau = 100 * theta
    k_args = (x2, 64.0, 1 / 4096, i1(I_DECAY), i1(V_DECAY), i1(VTH_MANT << 6), 1, i1(0))

    def k_fwd(rec_v: bool):
        def run():
            state[:] = 0
            _cpu.cuba_forward(
                *k_args,
                state[0],
                state[1],
                state[2],
                False,
                s,
                vp if rec_v else nil_f,
                nil_f,
                nil_r,
                bad,
                _cpu.NO_POOL,
                np.float32(1),
                0,
                _cpu.NO_OPERAND,
                _cpu.NO_COUNTS,
            )

        return run

    def k_bwd():
        _cpu.cuba_backward_fast(
            gs,
            vp,
            np.array([theta]),
            np.array([1 / tau]),
            0.1 / (2 * tau),
            False,
            i1(I_DECAY),
            i1(V_DECAY),
            gx,
            0,
        )

    def alloc():
        return torch.empty(rows, steps), torch.empty(rows, steps)

    # sigma-delta kernels on the same input (x * 2**18 = 256 A)
    x_sd = x2 * np.float32(256 / 64)
    y = np.empty((rows, steps), np.float32)
    mask = np.empty((rows, steps), np.uint8)
    sd_state = np.zeros((4, rows), np.int64)

    def k_sd_fwd(rec_mask: bool):
        def run():
            sd_state[:] = 0
            _cpu.sdnn_forward(
                1,
                x_sd,
                float(1 << 18),
                i1(1 << 12),
                i1(0),
                1,
                0,
                *sd_state,
                y,
                mask if rec_mask else nil_r,
                nil_f,
                bad,
            )

        return run

    def k_sd_bwd():
        _cpu.sdnn_backward(gs, mask, nil_f, np.ones(1), 1.0, 1.0, 1, gx, np.empty(0), np.empty(0))

    return {
        "  kernel cuba_forward (spikes)": k_fwd(False),
        "  kernel cuba_forward (spikes, v)": k_fwd(True),
        "  kernel cuba_backward_fast": k_bwd,
        "  kernel sdnn_forward (y)": k_sd_fwd(False),
        "  kernel sdnn_forward (y, mask)": k_sd_fwd(True),
        "  kernel sdnn_backward": k_sd_bwd,
        "  torch.empty x2 (13 MB each)": alloc,
    }


if __name__ == "__main__":
    main()

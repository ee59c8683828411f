"""Where the event-driven dense product pays: its forward + weight gradient against the
int8-operand GEMM path's, by input density.

Run: ``python benchmarks/bench_event_product.py [--reps 9] [--rounds 3] [--grad]``

For three shapes (the N-MNIST dense 578 -> 128 layer at batch 32, T = 60; a 512 -> 512
feed-forward synapse at batch 32, T = 200; Oxford's 200 -> 256 at batch 1, T = 2000)
and random binary input of each density, one product and its weight gradient through
``int_product`` with the event path on and off (the GEMM on the int8 operand: int8
GEMM or sgemm by CPU), alternating in rounds; prints the median of each and the median
of the per-round ratios. ``MAX_DENSITY`` in ``loihi_slayer/synapse/_event_product.py``
is the break-even these ratios show (event/GEMM = 1) where the GEMM is sgemm. Where it is
the int8 GEMM the forward is always the GEMM (``int8 GEMM`` in the header) and only the
weight gradient can go by events: ``--grad`` times the event weight gradient against
the float32 GEMM it replaces, by gradient size and density, in the fused recurrence's
time-major layout, beside the limit ``grad_max_density`` takes from this machine's
calibration (``loihi_slayer/synapse/_grad_calibration.py``).
"""

from __future__ import annotations

import argparse
import os
import time
import types

import numpy as np
import torch

import loihi_slayer.synapse._int_product as ip
from loihi_slayer.fixed.synapse_fast import INT8_GEMM_ENV, int8_gemm_pays, int8_gemm_works
from loihi_slayer.synapse._event_product import MAX_DENSITY, events_weight_grad
from loihi_slayer.synapse._grad_calibration import grad_max_density

SHAPES = {
    "N-MNIST dense 578->128, B 32, T 60": (32, 578, 60, 128),
    "Recurrent input 512->512, B 32, T 200": (32, 512, 200, 512),
    "Oxford 200->256, B 1, T 2000": (1, 200, 2000, 256),
}
DENSITIES = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)


def _restore(value: str | None) -> None:
    if value is None:
        os.environ.pop(INT8_GEMM_ENV, None)
    else:
        os.environ[INT8_GEMM_ENV] = value


def _median_ms(fn, reps: int) -> float:
    fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(out))


#: (B, I, T, O) of the weight-gradient sweep: gradients of 0.5 to 13 MB
GRAD_SHAPES = (
    (32, 578, 60, 64),
    (32, 578, 60, 128),
    (32, 578, 60, 256),
    (32, 578, 60, 512),
    (32, 256, 200, 256),
    (32, 512, 200, 512),
)
GRAD_DENSITIES = (0.03, 0.06, 0.1, 0.15, 0.2)


def grad_sweep(reps: int, rounds: int) -> None:
    """The event weight gradient against the float32 GEMM (with the operand's float
    copy, as the GEMM path makes it), alternating in rounds; prints event / GEMM time by
    density, and the density ``grad_max_density`` admits."""
    gen = torch.Generator().manual_seed(0)
    for b, n_in, steps, n_out in GRAD_SHAPES:
        grad_bytes = b * steps * n_out * 4
        cells = []
        for density in GRAD_DENSITIES:
            x = (torch.rand(b, n_in, steps, generator=gen) < density).float()
            # the time-major layout of the fused recurrence: operand columns (t, b), the
            # gradient a view of (T, B, O) memory, neither path copies
            q, _, _, _ = ip.int8_operand(x, time_major=True)
            g_rows = torch.randn(steps * b, n_out, generator=gen)
            g = g_rows.view(steps, b, n_out).permute(1, 2, 0)  # time-last view
            ctx = types.SimpleNamespace(operand_time_major=True)
            q_float = torch.empty(n_in, b * steps)

            def events(ctx=ctx, q=q, g=g) -> None:
                events_weight_grad(ctx, q, g)

            def gemm(q=q, q_float=q_float, g_rows=g_rows) -> torch.Tensor:
                return torch.mm(g_rows.t(), q_float.copy_(q).t())

            ratio = [_median_ms(events, reps) / _median_ms(gemm, reps) for _ in range(rounds)]
            cells.append(f"{density:4.2f}: {np.median(ratio):4.2f}")
        print(
            f"  B {b:2d} I {n_in:3d} T {steps:3d} O {n_out:3d} (gradient "
            f"{grad_bytes / 2**20:4.1f} MB, events up to {grad_max_density(n_out):.3f})"
            f"  event / GEMM by density  " + "  ".join(cells)
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--grad", action="store_true", help="the weight-gradient sweep only")
    args = ap.parse_args(argv)
    gemm = "int8 GEMM" if int8_gemm_pays() and int8_gemm_works() else "sgemm"
    print(f"torch threads {torch.get_num_threads()}, MAX_DENSITY {MAX_DENSITY}, {gemm}")
    if args.grad:
        grad_sweep(args.reps, args.rounds)
        return
    gen = torch.Generator().manual_seed(0)
    event_product = ip._event_product
    for name, (b, n_in, steps, n_out) in SHAPES.items():
        print(name)
        w = torch.randint(-127, 128, (n_out, n_in), generator=gen).float() / 64
        w.requires_grad_(True)
        for density in DENSITIES:
            x = (torch.rand(b, n_in, steps, generator=gen) < density).float()
            g = torch.randn(b, n_out, steps, generator=gen)

            def step(x=x, w=w, g=g) -> None:
                ip.int_product(x, w).backward(g)

            ev, gemm, ratio = [], [], []
            saved = os.environ.get(INT8_GEMM_ENV)
            try:
                for _ in range(args.rounds):
                    ip._DENSE_SKIPS.clear()
                    # the event path at every density (it runs where the GEMM is sgemm)
                    os.environ[INT8_GEMM_ENV] = "0"
                    ip._event_product = event_product
                    ip.MAX_DENSITY = 1.0
                    ev.append(_median_ms(step, args.reps))
                    # the GEMM path as the CPU takes it (int8: events weight gradient
                    # where sparse enough)
                    _restore(saved)
                    ip._event_product = lambda *a: None
                    gemm.append(_median_ms(step, args.reps))
                    ratio.append(ev[-1] / gemm[-1])
            finally:
                _restore(saved)
                ip._event_product = event_product
                ip.MAX_DENSITY = MAX_DENSITY
            print(
                f"  density {density:4.2f}: events {np.median(ev):7.2f} ms, GEMM "
                f"{np.median(gemm):7.2f} ms, events / GEMM {np.median(ratio):5.2f}"
            )


if __name__ == "__main__":
    main()

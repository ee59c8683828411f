"""Where the event-driven dense product pays: its forward + weight gradient against the
int8-operand GEMM path's, by input density.

Run: ``python benchmarks/bench_event_product.py [--reps 9] [--rounds 3]``

For three shapes (the N-MNIST dense 578 -> 128 layer at batch 32, T = 60; a 512 -> 512
feed-forward synapse at batch 32, T = 200; Oxford's 200 -> 256 at batch 1, T = 2000)
and random binary input of each density, one product and its weight gradient through
``int_product`` with the event path on and off (the GEMM on the int8 operand: int8
GEMM or sgemm by CPU), alternating in rounds; prints the median of each and the median
of the per-round ratios. ``MAX_DENSITY`` in ``loihi_slayer/synapse/_event_product.py``
is the break-even these ratios show (event/GEMM = 1).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import loihi_slayer.synapse._int_product as ip
from loihi_slayer.synapse._event_product import MAX_DENSITY

SHAPES = {
    "N-MNIST dense 578->128, B 32, T 60": (32, 578, 60, 128),
    "Recurrent input 512->512, B 32, T 200": (32, 512, 200, 512),
    "Oxford 200->256, B 1, T 2000": (1, 200, 2000, 256),
}
DENSITIES = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)


def _median_ms(fn, reps: int) -> float:
    fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(out))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"torch threads {torch.get_num_threads()}, MAX_DENSITY {MAX_DENSITY}")
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
            try:
                for _ in range(args.rounds):
                    ip._DENSE_SKIPS.clear()
                    ip._event_product = event_product
                    ip.MAX_DENSITY = 1.0  # the event path at every density
                    ev.append(_median_ms(step, args.reps))
                    ip._event_product = lambda *a: None
                    gemm.append(_median_ms(step, args.reps))
                    ratio.append(ev[-1] / gemm[-1])
            finally:
                ip._event_product = event_product
                ip.MAX_DENSITY = MAX_DENSITY
            print(
                f"  density {density:4.2f}: events {np.median(ev):7.2f} ms, GEMM "
                f"{np.median(gemm):7.2f} ms, events / GEMM {np.median(ratio):5.2f}"
            )


if __name__ == "__main__":
    main()

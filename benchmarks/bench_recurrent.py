"""Fused recurrence against the step-by-step loop: Recurrent and KWTA forward + backward.

``block.cuba.Recurrent(512 -> 512)`` and ``block.cuba.KWTA(512 -> 512)`` at batch 32,
T = 200 (issue 8, item 4; target >= 10x): one training step (forward, backward of a
sum-of-spikes loss) with the fused kernel and with the step-by-step loop, timed
alternately in the same run, median of ``--repeat`` runs. The two results are
checked equal first (spikes bit for bit, gradients to float tolerance). Also printed:
the feed-forward synapse's own forward + backward (the same in both paths), to show
what is left of the fused step besides the recurrence. ``--alif`` adds the ALIF blocks,
``--family NAME ...`` chooses families (``--family all``: CUBA, ALIF and the four
resonators, whose feed-forward synapse is complex).

Run: ``PYTHONPATH=$PWD python3 benchmarks/bench_recurrent.py [--repeat 5] [--batch 32]
[--steps 200] [--neurons 512] [--alif] [--family cuba rf ...]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from loihi_slayer.block import adrf, adrf_iz, alif, cuba, rf, rf_iz
from loihi_slayer.block import recurrent as rec

PARAMS = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03}
ADAPT = {"threshold_step": 0.1, "threshold_decay": 0.1, "refractory_decay": 0.2}
RES = {"threshold": 0.5, "period": 10, "decay": 0.1}
FAMILIES = {
    "cuba": (cuba, PARAMS),
    "alif": (alif, dict(PARAMS, **ADAPT)),
    # RF's phase surrogate (lava-dl's multipliers: scale 10, width threshold / 2) grows
    # through 512 recurrent inputs by more than 1 per step: at scale_grad 1 its gradient
    # overflows to NaN within 200 steps (in the step-by-step loop too); 0.01 keeps it finite
    "rf": (rf, dict(RES, scale_grad=0.01)),
    "rf_iz": (rf_iz, RES),
    "adrf": (adrf, dict(RES, **ADAPT)),
    "adrf_iz": (adrf_iz, dict(RES, **ADAPT)),
}


def make(family: str, kind: str, n: int) -> torch.nn.Module:
    torch.manual_seed(0)
    mod, params = FAMILIES[family]
    if kind == "Recurrent":
        return mod.Recurrent(params, n, n, weight_scale=2)
    return mod.KWTA(params, n, n, num_winners=n // 8, weight_scale=2)


def step(net: torch.nn.Module, x: torch.Tensor, fused: bool):
    rec.FUSED = fused
    net.zero_grad(set_to_none=True)
    y = net(x)
    y.sum().backward()
    return y.detach(), [p.grad.clone() for p in net.parameters() if p.grad is not None]


def grads_close(ga: list[torch.Tensor], gb: list[torch.Tensor]) -> bool:
    """Equal to float rounding, as the tests compare: elementwise ``rtol`` 1e-4 plus an
    absolute slack of 1e-5 of the tensor's largest value or 1e-7 of the largest gradient
    (long sums cancel to values far below their terms' rounding)."""
    scale = max((float(b.abs().max()) for b in gb), default=0.0)
    return all(
        bool(
            ((a - b).abs() <= max(1e-5 * float(b.abs().max()), 1e-7 * scale) + 1e-4 * b.abs()).all()
        )
        for a, b in zip(ga, gb, strict=True)
    )


def timed(net, x, fused) -> float:
    t0 = time.perf_counter()
    step(net, x, fused)
    return time.perf_counter() - t0


def timed_synapse(net, x) -> float:
    """Forward + backward of the feed-forward synapse alone."""
    t0 = time.perf_counter()
    z = net.synapse(x)
    parts = z if isinstance(z, tuple) else (z,)  # a resonator's complex synapse: (re, im)
    torch.autograd.backward(parts, [torch.ones_like(p) for p in parts])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--neurons", type=int, default=512)
    ap.add_argument("--alif", action="store_true", help="also the ALIF blocks")
    ap.add_argument(
        "--family",
        nargs="+",
        default=["cuba"],
        choices=[*FAMILIES, "all"],
        help="neuron families to time (default cuba; 'all': every family)",
    )
    args = ap.parse_args()
    n = args.neurons
    families = list(FAMILIES) if "all" in args.family else list(args.family)
    if args.alif and "alif" not in families:
        families.append("alif")
    for family, kind in ((f, k) for f in families for k in ("Recurrent", "KWTA")):
        net = make(family, kind, n)
        g = torch.Generator().manual_seed(1)
        x = (torch.rand(args.batch, n, args.steps, generator=g) < 0.2).float()
        y_f, g_f = step(net, x, True)  # also compiles the kernels
        y_s, g_s = step(net, x, False)
        same = torch.equal(y_f, y_s)
        finite = all(bool(torch.isfinite(g).all()) for g in g_f + g_s)
        close = finite and len(g_f) == len(g_s) and grads_close(g_f, g_s)
        fused, loop, syn = [], [], []
        for _ in range(args.repeat):
            fused.append(timed(net, x, True))
            loop.append(timed(net, x, False))
            syn.append(timed_synapse(net, x))
        tf, ts = statistics.median(fused), statistics.median(loop)
        rate = float(y_f.mean())
        print(
            f"{family} {kind:9s} {n} -> {n}, batch {args.batch}, T {args.steps}, spike rate "
            f"{rate:.3f}: fused {tf * 1e3:8.1f} ms  step-by-step {ts * 1e3:8.1f} ms  "
            f"ratio {ts / tf:5.1f}x  (spikes equal: {same}, gradients finite: {finite}, "
            f"close: {close}; "
            f"feed-forward synapse fwd+bwd alone {statistics.median(syn) * 1e3:.1f} ms)"
        )
    rec.FUSED = True


if __name__ == "__main__":
    main()

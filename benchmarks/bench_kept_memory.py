"""What memory kept across steps buys: training steps with and without it, paired.

Run: ``python benchmarks/bench_kept_memory.py [--rounds 6] [--steps 3] [--family ...]``

glibc hands large freed blocks back to the system, so a training step whose arrays are
megabytes lands on fresh pages, each of which faults on first touch (README, "Fresh
memory"). The library's kernels write their whole-sequence arrays into memory kept
across steps (:mod:`loihi_slayer._recycle`). This script times one ``Dense`` 512 -> 512
block per neuron family (batch 32, T = 200, 20 % input spikes, ``zero_grad``, forward,
``sum().backward()``) with the kept memory on and off (``_recycle.ENABLED``: off, every
buffer is new memory), alternating in one process: ``--rounds`` rounds of ``--steps``
steps each way (after two warm-up steps), and prints each way's median step time and
minor page faults per step, and the median of the per-round ratios kept / fresh.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_recurrent import FAMILIES as RECURRENT_FAMILIES

from loihi_slayer import _recycle
from loihi_slayer.block import sigma_delta

#: the recurrent benchmark's families and parameters, and sigma-delta
FAMILIES = {
    **RECURRENT_FAMILIES,
    "sigma_delta": (sigma_delta, {"threshold": 0.1, "activation": torch.relu}),
}


def faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--family", nargs="+", choices=sorted(FAMILIES), default=sorted(FAMILIES))
    args = ap.parse_args(argv)
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(32, 512, 200, generator=gen) < 0.2).float()
    print(
        f"Dense 512 -> 512, batch 32, T 200, 20 % input spikes; torch threads "
        f"{torch.get_num_threads()}; {args.rounds} rounds of {args.steps} steps each way"
    )
    for name in args.family:
        mod, params = FAMILIES[name]
        torch.manual_seed(0)
        blk = mod.Dense(params, 512, 512, weight_scale=2)

        def step(blk: torch.nn.Module = blk) -> None:
            blk.zero_grad(set_to_none=True)
            blk(x).sum().backward()

        times: dict[bool, list[float]] = {True: [], False: []}
        flt = {True: 0.0, False: 0.0}
        try:
            for _ in range(args.rounds):
                for kept in (True, False):
                    _recycle.ENABLED = kept
                    step()
                    step()
                    f0, t0 = faults(), time.perf_counter()
                    for _ in range(args.steps):
                        step()
                    times[kept].append((time.perf_counter() - t0) / args.steps)
                    flt[kept] += (faults() - f0) / (args.steps * args.rounds)
        finally:
            _recycle.ENABLED = True
        ratio = statistics.median(k / f for k, f in zip(times[True], times[False], strict=True))
        kept_ms, fresh_ms = (statistics.median(times[k]) * 1e3 for k in (True, False))
        print(
            f"  {name:12s} kept {kept_ms:7.1f} ms ({flt[True]:6.0f} faults/step)   "
            f"fresh {fresh_ms:7.1f} ms ({flt[False]:6.0f} faults/step)   "
            f"kept / fresh {ratio:.2f}"
        )


if __name__ == "__main__":
    main()

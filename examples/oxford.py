"""lava-dl's Oxford tutorial on loihi_slayer blocks: train, export, and prove the chip matches.

Two ``block.cuba.Dense`` layers (200 -> 256 -> 200) learn to reproduce a spike
pattern; the exported ``network.net`` is emulated and compared with the
training forward in every layer (the train-to-chip gap must be zero).

    python examples/oxford.py --epochs 2000 --out results/oxford
"""

from __future__ import annotations

import argparse
import logging
import sys

from loihi_slayer.demo import run_demo


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=None, help="optional time budget")
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--out", default="results/oxford")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    res = run_demo(args.out, epochs=args.epochs, seconds=args.seconds, lr=args.lr)
    print(f"{res.epochs} epochs, loss {res.losses[-1]:.1f}, output spikes {res.output_spikes} "
          f"(target {res.target_spikes})")  # fmt: skip
    print(res.gap.summary())
    print(f"network {res.network}, plot {res.plot}, golden {res.golden}")
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())

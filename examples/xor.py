"""XOR as spike-train regression with CUBA blocks; trains in seconds, exports, emulates bit-exactly.

Inputs: two rate-coded channels (on = spikes every 2 steps, off = silent) plus
an always-on bias channel; target: one output neuron spiking every 3 steps for
XOR = 1, silent otherwise.

    python examples/xor.py [--epochs 300] [--out results/xor]
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from loihi_slayer import block
from loihi_slayer.block import cuba
from loihi_slayer.loss import SpikeTime

T = 60
PARAMS = {"threshold": 0.5, "current_decay": 0.5, "voltage_decay": 0.2}


def data() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.zeros(4, 3, T)
    y = torch.zeros(4, 1, T)
    for i, (a, b) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        x[i, 0, 1::2] = a
        x[i, 1, 1::2] = b
        x[i, 2, 1::4] = 1
        y[i, 0, 5::3] = float(a ^ b)
    return x, y


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--out", default="results/xor")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    x, y = data()
    x[..., 0] = 0
    net = torch.nn.Sequential(
        cuba.Dense(PARAMS, 3, 16, weight_scale=4), cuba.Dense(PARAMS, 16, 1, weight_scale=4)
    )
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    loss_fn = SpikeTime(time_constant=4)
    for epoch in range(args.epochs):
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if epoch % 50 == 0:
            print(f"epoch {epoch}: loss {float(loss.detach()):.2f}")
    counts = net(x).detach().sum(-1).reshape(-1).tolist()
    print("output spike counts for 00, 01, 10, 11:", counts)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "xor.net")
    block.export_network(net, path)
    gap = block.compare_with_emulator(net, x, path)
    print(gap.summary())
    print(f"exported {path}; train-to-chip gap {'ZERO' if gap.ok else 'NOT zero'}")
    return 0 if gap.ok else 1


if __name__ == "__main__":
    sys.exit(main())

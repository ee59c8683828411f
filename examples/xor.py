"""XOR as a spike-train regression, written as lava-dl writes its regressions, on loihi_slayer.

Inputs: two rate-coded channels (on = spikes every 2 steps, off = silent) plus
an always-on bias channel; target: one output neuron spiking every 3 steps for
XOR = 1, silent otherwise. ``slayer.block.cuba.Dense`` blocks, ``slayer.loss.SpikeTime``,
``slayer.utils.LearningStats`` and ``slayer.utils.Assistant``; the trained
network is exported, emulated and compared layer by layer (zero gap).

    python examples/xor.py [--epochs 300] [--out results/xor]
    python examples/xor.py --quick     # 30 epochs (the test)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import loihi_slayer as slayer  # lava-dl: import lava.lib.dl.slayer as slayer

import h5py
import torch

T = 60


class Network(torch.nn.Module):
    def __init__(self):
        super().__init__()

        neuron_params = {
            "threshold": 0.5,
            "current_decay": 0.5,
            "voltage_decay": 0.2,
            "requires_grad": False,
        }

        self.blocks = torch.nn.ModuleList(
            [
                slayer.block.cuba.Dense(neuron_params, 3, 16, weight_scale=4),
                slayer.block.cuba.Dense(neuron_params, 16, 1, weight_scale=4),
            ]
        )

    def forward(self, spike):
        for block in self.blocks:
            spike = block(spike)
        return spike

    def export_hdf5(self, filename):
        # network export to hdf5 format
        h = h5py.File(filename, "w")
        layer = h.create_group("layer")
        for i, b in enumerate(self.blocks):
            b.export_hdf5(layer.create_group(f"{i}"))
        h.close()


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
    ap.add_argument("--quick", action="store_true", help="30 epochs (smoke test)")
    ap.add_argument("--out", default="results/xor")
    args = ap.parse_args(argv)
    epochs = 30 if args.quick else args.epochs
    trained_folder = args.out
    os.makedirs(trained_folder, exist_ok=True)
    torch.manual_seed(0)

    input, target = data()
    net = Network()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    error = slayer.loss.SpikeTime(time_constant=4)
    stats = slayer.utils.LearningStats()
    assistant = slayer.utils.Assistant(net, error, optimizer, stats)

    t_start = time.time()
    for epoch in range(epochs):
        assistant.train(input, target)
        if epoch % 50 == 0 or epoch == epochs - 1:
            stats.print(epoch, time_elapsed=time.time() - t_start)
        stats.update()  # closes the epoch: best_loss refers to it from here on
        if stats.training.best_loss:
            torch.save(net.state_dict(), trained_folder + "/network.pt")
    stats.save(trained_folder + "/")

    net.load_state_dict(torch.load(trained_folder + "/network.pt"))
    net.export_hdf5(trained_folder + "/network.net")
    counts = net(input).detach().sum(-1).reshape(-1).tolist()
    print("output spike counts for 00, 01, 10, 11:", counts, "(target 0, 19, 19, 0)")
    gap = slayer.block.compare_with_emulator(net, input, trained_folder + "/network.net")
    print(gap.summary())
    print(f"emulator gap: {'zero' if gap.ok else 'NOT zero'}")
    return 0 if gap.ok else 1


if __name__ == "__main__":
    sys.exit(main())

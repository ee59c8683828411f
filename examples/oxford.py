"""lava-dl's Oxford tutorial, written as lava-dl writes it, on loihi_slayer.

Two ``slayer.block.cuba.Dense`` layers (200 -> 256 -> 200) learn to reproduce
the Oxford spike pattern (``input.bs1`` -> ``output.bs1``, 2000 steps of 1 ms)
with ``slayer.loss.SpikeTime``, ``slayer.utils.LearningStats`` and
``slayer.utils.Assistant``; the only change to lava-dl's notebook is the import
line. The trained network is exported (``network.net``), emulated, and every
layer compared with the training forward: the train-to-chip gap must be zero.

    python examples/oxford.py --epochs 60 --out results/oxford
    python examples/oxford.py --quick            # a few epochs (the test)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import loihi_slayer as slayer  # lava-dl: import lava.lib.dl.slayer as slayer
from loihi_slayer.io import data_path

import h5py
import torch


class Network(torch.nn.Module):
    def __init__(self):
        super().__init__()

        neuron_params = {
            "threshold": 0.1,
            "current_decay": 1,
            "voltage_decay": 0.1,
            "requires_grad": True,
        }

        self.blocks = torch.nn.ModuleList(
            [
                slayer.block.cuba.Dense(neuron_params, 200, 256, weight_norm=True),
                slayer.block.cuba.Dense(neuron_params, 256, 200, weight_norm=True),
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--quick", action="store_true", help="5 epochs (smoke test)")
    ap.add_argument("--out", default="results/oxford")
    args = ap.parse_args(argv)
    epochs = 5 if args.quick else args.epochs
    trained_folder = args.out
    os.makedirs(trained_folder, exist_ok=True)
    torch.manual_seed(0)

    net = Network()
    # fused: one pass per parameter (see examples/nmnist.py)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr, fused=True)

    input = slayer.io.read_1d_spikes(data_path("input.bs1"))
    target = slayer.io.read_1d_spikes(data_path("output.bs1"))
    input = input.fill_tensor(torch.zeros(1, 1, 200, 2000)).reshape(1, 200, 2000)
    target = target.fill_tensor(torch.zeros(1, 1, 200, 2000)).reshape(1, 200, 2000)

    error = slayer.loss.SpikeTime(time_constant=2, length=100, filter_order=2, reduction="sum")
    stats = slayer.utils.LearningStats()
    assistant = slayer.utils.Assistant(net, error, optimizer, stats)

    t_start = time.time()
    for epoch in range(epochs):
        assistant.train(input, target)
        if epoch % 20 == 0 or epoch == epochs - 1:
            stats.print(epoch, time_elapsed=time.time() - t_start)
        stats.update()  # closes the epoch: best_loss refers to it from here on
        if stats.training.best_loss:
            torch.save(net.state_dict(), trained_folder + "/network.pt")
    stats.save(trained_folder + "/")

    net.load_state_dict(torch.load(trained_folder + "/network.pt"))
    net.export_hdf5(trained_folder + "/network.net")
    output = net(input)
    print(
        f"output spikes {int(output.sum())} (target {int(target.sum())}), "
        f"best loss {stats.training.min_loss:.1f}, {time.time() - t_start:.0f} s"
    )

    gap = slayer.block.compare_with_emulator(net, input, trained_folder + "/network.net")
    print(gap.summary())
    print(f"emulator gap: {'zero' if gap.ok else 'NOT zero'}")
    return 0 if gap.ok else 1


if __name__ == "__main__":
    sys.exit(main())

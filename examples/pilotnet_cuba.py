"""PilotNet with CUBA-LIF blocks on loihi_slayer: spiking steering-angle regression.

lava-dl's PilotNet network with ``slayer.block.cuba`` blocks: a CUBA input
layer rate-codes the camera frames, four strided convolutions with mean-only
batch norm (the chip bias), three dense layers with norm and neuron dropout,
and an ``Affine`` readout whose voltage is the steering angle. Data: 24x48 road
clips made procedurally by ``pilotnet_data.py`` (no download). The exported
``network.net`` is emulated and compared layer by layer: the gap must be zero.

    python examples/pilotnet_cuba.py --epochs 6 --out results/pilotnet_cuba
    python examples/pilotnet_cuba.py --quick      # 1 epoch of 16 clips (the test)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import loihi_slayer as slayer  # lava-dl: import lava.lib.dl.slayer as slayer

import h5py
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from pilotnet_data import RoadDataset

STEPS = 20  # frames per clip
HEIGHT, WIDTH = 24, 48  # image size
LAG = 8  # blocks with a one-step shift before the readout


class Network(torch.nn.Module):
    def __init__(self):
        super().__init__()

        neuron_params = {  # CUBA-LIF neuron parameters
            "threshold": 0.25,
            "current_decay": 0.5,
            "voltage_decay": 0.1,
            "tau_grad": 1,
            "scale_grad": 1,
            "requires_grad": False,
        }
        input_params = {**neuron_params, "threshold": 1.0}  # rate ~ pixel intensity
        cnn_params = {**neuron_params, "norm": slayer.neuron.norm.MeanOnlyBatchNorm}
        dense_params = {**cnn_params, "dropout": slayer.neuron.Dropout(p=0.2)}
        # readout: a leaky integrator of the last layer's spikes (never spikes: Affine)
        readout_params = {**neuron_params, "current_decay": 1.0, "voltage_decay": 0.1}

        self.blocks = torch.nn.ModuleList(
            [  # sequential network blocks
                # rate coding of the camera frames
                slayer.block.cuba.Input(input_params),
                # convolution layers
                slayer.block.cuba.Conv(
                    cnn_params,
                    3,
                    8,
                    3,
                    padding=0,
                    stride=2,
                    weight_scale=2,
                    weight_norm=True,
                    input_shape=(HEIGHT, WIDTH),
                ),
                slayer.block.cuba.Conv(
                    cnn_params,
                    8,
                    12,
                    3,
                    padding=0,
                    stride=2,
                    weight_scale=2,
                    weight_norm=True,
                    input_shape=(11, 23),
                ),
                slayer.block.cuba.Conv(
                    cnn_params,
                    12,
                    16,
                    3,
                    padding=(1, 0),
                    stride=(2, 1),
                    weight_scale=2,
                    weight_norm=True,
                    input_shape=(5, 11),
                ),
                slayer.block.cuba.Conv(
                    cnn_params,
                    16,
                    16,
                    3,
                    padding=0,
                    stride=1,
                    weight_scale=2,
                    weight_norm=True,
                    input_shape=(3, 9),
                ),
                # flatten layer
                slayer.block.cuba.Flatten(),
                # dense layers
                slayer.block.cuba.Dense(
                    dense_params, 16 * 1 * 7, 50, weight_scale=2, weight_norm=True
                ),
                slayer.block.cuba.Dense(dense_params, 50, 20, weight_scale=2, weight_norm=True),
                slayer.block.cuba.Dense(dense_params, 20, 10, weight_scale=2, weight_norm=True),
                # readout: the voltage of a neuron that never spikes
                slayer.block.cuba.Affine(readout_params, 10, 1, weight_scale=0.1, weight_norm=True),
            ]
        )

    def forward(self, x):
        count = []
        for block in self.blocks:
            x = block(x)
            if hasattr(block, "neuron") and not isinstance(block, slayer.block.cuba.Affine):
                count.append(torch.mean(x).item())
        return x, torch.FloatTensor(count).reshape((1, -1)).to(x.device)

    def export_hdf5(self, filename):
        # network export to hdf5 format
        h = h5py.File(filename, "w")
        layer = h.create_group("layer")
        for i, b in enumerate(self.blocks):
            b.export_hdf5(layer.create_group(f"{i}"))
        h.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--train", type=int, default=96, help="training clips")
    ap.add_argument("--test", type=int, default=32, help="testing clips")
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--quick", action="store_true", help="1 epoch of 16 clips (smoke test)")
    ap.add_argument("--out", default="results/pilotnet_cuba")
    args = ap.parse_args(argv)
    if args.quick:
        args.epochs, args.train, args.test = 1, 16, 8
    trained_folder = args.out
    os.makedirs(trained_folder, exist_ok=True)
    torch.manual_seed(0)

    net = Network()
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)  # lava-dl: RAdam, 0.001, long runs
    train_set = RoadDataset(args.train, STEPS, HEIGHT, WIDTH, seed=1)
    test_set = RoadDataset(args.test, STEPS, HEIGHT, WIDTH, seed=2)
    train_loader = DataLoader(train_set, batch_size=8, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=8)

    def error(output, target):  # rate decoding: mean voltage once the pipeline is full
        return F.mse_loss(output[..., LAG + 4 :].mean(-1).flatten(), target[..., 0].flatten())

    stats = slayer.utils.LearningStats()
    assistant = slayer.utils.Assistant(net, error, optimizer, stats, count_log=True)

    t_start = time.time()
    for epoch in range(args.epochs):
        for input, ground_truth in train_loader:
            assistant.train(input, ground_truth)
        for input, ground_truth in test_loader:
            assistant.test(input, ground_truth)
        stats.print(epoch, time_elapsed=time.time() - t_start)
        stats.update()  # closes the epoch: best_loss refers to it from here on
        if stats.testing.best_loss:
            torch.save(net.state_dict(), trained_folder + "/network.pt")
        stats.save(trained_folder + "/")

    net.load_state_dict(torch.load(trained_folder + "/network.pt"))
    net.export_hdf5(trained_folder + "/network.net")
    rmse = stats.testing.min_loss**0.5
    print(
        f"best test RMSE {rmse:.3f} of the mean readout voltage (angle range [-1, 1]), "
        f"{time.time() - t_start:.0f} s"
    )

    input, _ = next(iter(test_loader))
    gap = slayer.block.compare_with_emulator(net, input[:2], trained_folder + "/network.net")
    print(gap.summary())
    print(f"emulator gap: {'zero' if gap.ok else 'NOT zero'}")
    return 0 if gap.ok else 1


if __name__ == "__main__":
    sys.exit(main())

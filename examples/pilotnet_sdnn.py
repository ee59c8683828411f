"""lava-dl's PilotNet SDNN tutorial on loihi_slayer: sigma-delta blocks regress a steering angle.

The network is lava-dl's (delta-encoded input, four strided convolutions with
mean-only batch norm, three dense layers with norm and neuron dropout, a
sigma-decoded linear readout; ``slayer.utils.Assistant`` with an event-rate
penalty ``lam``), scaled to 24x48 road images made procedurally by
``pilotnet_data.py`` (no download). Every block uses ``delay_shift=True`` so
that the norm biases run on the chip exactly as in training; the exported
``network.net`` is emulated and compared layer by layer: the gap must be zero.

    python examples/pilotnet_sdnn.py --epochs 6 --out results/pilotnet_sdnn
    python examples/pilotnet_sdnn.py --quick      # 1 epoch of 16 clips (the test)
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

        sdnn_params = {  # sigma-delta neuron parameters
            "threshold": 1 / 32,  # delta unit threshold (lava-dl: 0.1 on 200x66 images)
            "tau_grad": 0.5,  # delta unit surrogate gradient relaxation parameter
            "scale_grad": 1,  # delta unit surrogate gradient scale parameter
            "requires_grad": True,  # trainable threshold
            "shared_param": True,  # layer wise threshold
            "activation": F.relu,  # activation function
        }
        sdnn_cnn_params = {  # conv layer has additional mean only batch norm
            **sdnn_params,  # copy all sdnn_params
            "norm": slayer.neuron.norm.MeanOnlyBatchNorm,  # mean only quantized batch norm
        }
        sdnn_dense_params = {  # dense layers have additional dropout units enabled
            **sdnn_cnn_params,  # copy all sdnn_cnn_params
            "dropout": slayer.neuron.Dropout(p=0.2),  # neuron dropout
        }
        shift = {"delay_shift": True}  # chip timing (lava-dl's SDNN default is False)

        self.blocks = torch.nn.ModuleList(
            [  # sequential network blocks
                # delta encoding of the input
                slayer.block.sigma_delta.Input(sdnn_params, **shift),
                # convolution layers
                slayer.block.sigma_delta.Conv(
                    sdnn_cnn_params,
                    3,
                    8,
                    3,
                    padding=0,
                    stride=2,
                    weight_scale=2,
                    weight_norm=True,
                    **shift,
                    input_shape=(24, 48),
                ),
                slayer.block.sigma_delta.Conv(
                    sdnn_cnn_params,
                    8,
                    12,
                    3,
                    padding=0,
                    stride=2,
                    weight_scale=2,
                    weight_norm=True,
                    **shift,
                    input_shape=(11, 23),
                ),
                slayer.block.sigma_delta.Conv(
                    sdnn_cnn_params,
                    12,
                    16,
                    3,
                    padding=(1, 0),
                    stride=(2, 1),
                    weight_scale=2,
                    weight_norm=True,
                    **shift,
                    input_shape=(5, 11),
                ),
                slayer.block.sigma_delta.Conv(
                    sdnn_cnn_params,
                    16,
                    16,
                    3,
                    padding=0,
                    stride=1,
                    weight_scale=2,
                    weight_norm=True,
                    **shift,
                    input_shape=(3, 9),
                ),
                # flatten layer
                slayer.block.sigma_delta.Flatten(),
                # dense layers
                slayer.block.sigma_delta.Dense(
                    sdnn_dense_params, 16 * 1 * 7, 50, weight_scale=2, weight_norm=True, **shift
                ),
                slayer.block.sigma_delta.Dense(
                    sdnn_dense_params, 50, 20, weight_scale=2, weight_norm=True, **shift
                ),
                slayer.block.sigma_delta.Dense(
                    sdnn_dense_params, 20, 10, weight_scale=2, weight_norm=True, **shift
                ),
                # linear readout with sigma decoding of output
                slayer.block.sigma_delta.Output(
                    sdnn_dense_params, 10, 1, weight_scale=2, weight_norm=True
                ),
            ]
        )

    def forward(self, x):
        count = []
        event_cost = 0
        for block in self.blocks:
            # forward computation is as simple as calling the blocks in a loop
            x = block(x)
            if hasattr(block, "neuron"):
                event_cost += torch.mean(torch.abs((x[..., 1:]) - x[..., :-1]))
                count.append(torch.sum((torch.abs(x[..., 1:]) > 0).to(x.dtype)).item())
        return x, event_cost, torch.FloatTensor(count).reshape((1, -1)).to(x.device)

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
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--lam", type=float, default=0.001, help="event-rate penalty")
    ap.add_argument("--quick", action="store_true", help="1 epoch of 16 clips (smoke test)")
    ap.add_argument("--out", default="results/pilotnet_sdnn")
    args = ap.parse_args(argv)
    if args.quick:
        args.epochs, args.train, args.test = 1, 16, 8
    trained_folder = args.out
    os.makedirs(trained_folder, exist_ok=True)
    torch.manual_seed(0)

    net = Network()
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)  # lava-dl: RAdam, 0.001, long runs
    train_loader = DataLoader(
        RoadDataset(args.train, STEPS, HEIGHT, WIDTH, seed=1), batch_size=8, shuffle=True
    )
    test_loader = DataLoader(RoadDataset(args.test, STEPS, HEIGHT, WIDTH, seed=2), batch_size=8)

    def error(output, target):  # steering error once the pipeline is full
        return F.mse_loss(output[..., LAG + 4 :].flatten(), target[..., LAG + 4 :].flatten())

    stats = slayer.utils.LearningStats()
    assistant = slayer.utils.Assistant(net, error, optimizer, stats, count_log=True, lam=args.lam)

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
    print(f"best test RMSE {rmse:.3f} (angle range [-1, 1]), {time.time() - t_start:.0f} s")

    input, _ = next(iter(test_loader))
    gap = slayer.block.compare_with_emulator(net, input[:2], trained_folder + "/network.net")
    print(gap.summary())
    print(f"emulator gap: {'zero' if gap.ok else 'NOT zero'}")
    return 0 if gap.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""slayerPytorch's Oxford tutorial: learn to reproduce a spike pattern (SRM neurons).

The script is slayerPytorch code with only the import changed to
``import loihi_slayer.slayer_pytorch as snn``. Data: ``loihi_slayer/data/input.bs1``
(200 input neurons) and ``output.bs1`` (200 desired output neurons), 1900 ms.

    python examples/slayer_pytorch/oxford.py --epochs 200 --out results/oxford
    python examples/slayer_pytorch/oxford.py --quick      # a few seconds
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import time

import loihi_slayer.slayer_pytorch as snn
from loihi_slayer.io import data_path

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


class Network(torch.nn.Module):
    def __init__(self, netParams):
        super().__init__()
        slayer = snn.layer(netParams["neuron"], netParams["simulation"])
        self.slayer = slayer
        Nin, Nhid, Nout = (int(netParams["layer"][i]["dim"]) for i in range(3))
        self.fc1 = slayer.dense(Nin, Nhid)
        self.fc2 = slayer.dense(Nhid, Nout)

    def forward(self, spikeInput):
        spikeLayer1 = self.slayer.spike(self.fc1(self.slayer.psp(spikeInput)))
        spikeLayer2 = self.slayer.spike(self.fc2(self.slayer.psp(spikeLayer1)))
        return spikeLayer2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 1000)")
    parser.add_argument(
        "--quick", action="store_true", help="short run for tests: 40 epochs, 500 ms, lr 0.03"
    )
    parser.add_argument("--tsample", type=float, default=None, help="override tSample (ms)")
    parser.add_argument("--yaml", default=os.path.join(HERE, "oxford.yaml"))
    parser.add_argument("--input", default=data_path("input.bs1"))
    parser.add_argument("--target", default=data_path("output.bs1"))
    parser.add_argument("--out", default=None, help="directory for loss log and output spikes")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default 0.01)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--plot", action="store_true", help="save plots into --out")
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (40 if args.quick else 1000)
    lr = args.lr if args.lr is not None else (0.03 if args.quick else 0.01)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    netParams = snn.params(args.yaml)
    if args.tsample is not None or args.quick:
        netParams["simulation"]["tSample"] = args.tsample or 500
    Ts = netParams["simulation"]["Ts"]
    Ns = int(netParams["simulation"]["tSample"] / netParams["simulation"]["Ts"])
    Nin = int(netParams["layer"][0]["dim"])
    Nout = int(netParams["layer"][2]["dim"])

    net = Network(netParams).to(device)
    error = snn.loss(netParams).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, amsgrad=True)

    inTD = snn.io.read1Dspikes(args.input)
    input = inTD.toSpikeTensor(torch.zeros((1, 1, Nin, Ns)), samplingTime=Ts)
    input = input.reshape((1, Nin, 1, 1, Ns)).to(device)
    desTD = snn.io.read1Dspikes(args.target)
    desired = desTD.toSpikeTensor(torch.zeros((1, 1, Nout, Ns)), samplingTime=Ts)
    desired = desired.reshape((1, Nout, 1, 1, Ns)).to(device)

    stats = snn.learningStats()
    losslog = []
    bestNet = copy.deepcopy(net)
    t_start = time.time()
    for epoch in range(epochs):
        output = net.forward(input)
        loss = error.spikeTime(output, desired)
        stats.training.numSamples = 1
        stats.training.lossSum = loss.cpu().data.item()
        if epoch % 10 == 0:
            stats.print(epoch, timeElapsed=time.time() - t_start)
        losslog.append(loss.cpu().data.item())
        stats.training.update()
        if stats.training.bestLoss is True:
            bestNet = copy.deepcopy(net)
        if loss < 1e-5:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    output = bestNet.forward(input)
    final = error.spikeTime(output, desired).item()
    logging.info("final loss %.4f (first %.4f)", final, losslog[0])
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "oxford.json"), "w", encoding="utf-8") as fh:
            json.dump({"loss": losslog, "final_loss": final, "epochs": len(losslog)}, fh)
        outTD = snn.io.spikeArrayToEvent(output.reshape((1, Nout, -1)).cpu().data.numpy(), Ts)
        snn.io.encode1Dspikes(os.path.join(args.out, "oxford_output.bs1"), outTD)
        if args.plot:
            stats.plot(saveFig=True, path=args.out)
    return losslog, final


if __name__ == "__main__":
    main()

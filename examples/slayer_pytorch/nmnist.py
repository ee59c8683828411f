"""N-MNIST classification on Loihi neurons (slayerPytorch's ``snn.loihi`` MLP example).

The forward pass of every spiking layer runs the library's bit-accurate integer
CUBA kernel (:func:`loihi_slayer.fixed.cuba`); weights are quantized to Loihi's
even 8-bit mantissas. The script is slayerPytorch code with only the import
changed to ``import loihi_slayer.slayer_pytorch as snn``.

    python examples/slayer_pytorch/nmnist.py --epochs 20
    python examples/slayer_pytorch/nmnist.py --quick --out results/nmnist
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from datetime import datetime

import loihi_slayer.slayer_pytorch as snn

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATASET = "/work/shared/datasets/nmnist-small"


class nmnistDataset(Dataset):
    def __init__(self, datasetPath, sampleFile, samplingTime, sampleLength, limit=None):
        self.path = datasetPath
        self.samples = np.loadtxt(sampleFile).astype("int")
        if limit is not None:
            self.samples = self.samples[:limit]
        self.samplingTime = samplingTime
        self.nTimeBins = int(sampleLength / samplingTime)

    def __getitem__(self, index):
        inputIndex = self.samples[index, 0]
        classLabel = self.samples[index, 1]
        inputSpikes = snn.io.read2Dspikes(
            os.path.join(self.path, str(inputIndex.item()) + ".bs2")
        ).toSpikeTensor(torch.zeros((2, 34, 34, self.nTimeBins)), samplingTime=self.samplingTime)
        desiredClass = torch.zeros((10, 1, 1, 1))
        desiredClass[classLabel, ...] = 1
        return inputSpikes.reshape((-1, 1, 1, inputSpikes.shape[-1])), desiredClass, classLabel

    def __len__(self):
        return self.samples.shape[0]


class Network(torch.nn.Module):
    def __init__(self, netParams):
        super().__init__()
        slayer = snn.loihi(netParams["neuron"], netParams["simulation"])
        self.slayer = slayer
        self.fc1 = slayer.dense(34 * 34 * 2, 512)
        self.fc2 = slayer.dense(512, 10)

    def forward(self, spikeInput):
        # Loihi integrates a spike one time step after it was sent: delayShift by 1 bin.
        spikeLayer1 = self.slayer.delayShift(self.slayer.spikeLoihi(self.fc1(spikeInput)), 1)
        spikeLayer2 = self.slayer.delayShift(self.slayer.spikeLoihi(self.fc2(spikeLayer1)), 1)
        return spikeLayer2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default=DEFAULT_DATASET, help="nmnist-small folder")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default 20)")
    parser.add_argument("--quick", action="store_true", help="1 epoch on 32 + 16 samples")
    parser.add_argument("--train-samples", type=int, default=None)
    parser.add_argument("--test-samples", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--yaml", default=os.path.join(HERE, "nmnist.yaml"))
    parser.add_argument("--out", default=None, help="directory for stats (nmnist.json)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else 20)
    n_train = args.train_samples if args.train_samples is not None else (32 if args.quick else None)
    n_test = args.test_samples if args.test_samples is not None else (16 if args.quick else None)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    netParams = snn.params(args.yaml)
    sim = netParams["simulation"]
    paths = netParams["training"]["path"]
    net = Network(netParams).to(device)
    error = snn.loss(netParams, snn.loihi).to(device)
    optimizer = snn.optimizer.Nadam(net.parameters(), lr=args.lr)

    trainingSet = nmnistDataset(
        args.dataset, os.path.join(args.dataset, paths["train"]), sim["Ts"], sim["tSample"], n_train
    )
    testingSet = nmnistDataset(
        args.dataset, os.path.join(args.dataset, paths["test"]), sim["Ts"], sim["tSample"], n_test
    )
    trainLoader = DataLoader(trainingSet, batch_size=args.batch_size, shuffle=True)
    testLoader = DataLoader(testingSet, batch_size=args.batch_size, shuffle=False)

    stats = snn.learningStats()
    iteration_loss = []
    for epoch in range(epochs):
        tSt = datetime.now()
        for i, (input, target, label) in enumerate(trainLoader, 0):
            input, target = input.to(device), target.to(device)
            output = net.forward(input)
            stats.training.correctSamples += torch.sum(snn.predict.getClass(output) == label).item()
            stats.training.numSamples += len(label)
            loss = error.numSpikes(output, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            stats.training.lossSum += loss.cpu().data.item()
            iteration_loss.append(loss.cpu().data.item())
            stats.print(epoch, i, (datetime.now() - tSt).total_seconds())
        with torch.no_grad():
            for i, (input, target, label) in enumerate(testLoader, 0):
                input, target = input.to(device), target.to(device)
                output = net.forward(input)
                stats.testing.correctSamples += torch.sum(
                    snn.predict.getClass(output) == label
                ).item()
                stats.testing.numSamples += len(label)
                stats.testing.lossSum += error.numSpikes(output, target).cpu().data.item()
                stats.print(epoch, i)
        stats.update()

    result = {
        "train_loss": stats.training.lossLog,
        "train_accuracy": stats.training.accuracyLog,
        "test_loss": stats.testing.lossLog,
        "test_accuracy": stats.testing.accuracyLog,
        "iteration_loss": iteration_loss,
    }
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "nmnist.json"), "w", encoding="utf-8") as fh:
            json.dump(result, fh)
        stats.save(os.path.join(args.out, "nmnist-"))
    return result


if __name__ == "__main__":
    main()

"""slayerPytorch's ``auto.assistant``: the standard train / test loops."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import torch

from ...utils.filter import conv
from ..predict import spikeClassifier

__all__ = ["Assistant"]


class Assistant:
    """Training and testing loops over data loaders yielding ``(input, target, label)``.

    Parameters
    ----------
    net
        Network (``net.module`` is used with ``dataParallel``); it may set
        ``countLog`` to also return spike counts, and ``clamp()`` is called
        after each optimizer step when present.
    trainLoader, testLoader
        Data loaders.
    error
        ``error(output, target, label) -> loss``.
    optimizer, scheduler
        Optimizer and optional scheduler (stepped per iteration).
    stats
        :class:`~loihi_slayer.slayer_pytorch.stats.learningStats` or None.
    dataParallel, showTimeSteps, lossScale, printInterval
        As slayerPytorch.
    """

    def __init__(
        self,
        net,
        trainLoader,
        testLoader,
        error,
        optimizer,
        scheduler=None,
        stats=None,
        dataParallel=False,
        showTimeSteps=False,
        lossScale=None,
        printInterval=1,
    ) -> None:
        self.net = net
        self.module = net.module if dataParallel else net
        self.error = error
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.stats = stats
        self.showTimeSteps = showTimeSteps
        self.lossScale = lossScale
        self.printInterval = printInterval
        self.trainLoader = trainLoader
        self.testLoader = testLoader
        param = next(iter(net.parameters()), None)
        self.device = torch.device("cpu") if param is None else param.device

    def _forward(self, input: torch.Tensor) -> tuple[torch.Tensor, Any]:
        if getattr(self.module, "countLog", False):
            return self.net(input)
        return self.net(input), None

    def _scale(self) -> float:
        return 1.0 if self.lossScale is None else float(self.lossScale)

    def _header(self, i: int, loader, count, input) -> list[str]:
        n = len(loader.dataset)
        head = [f"[{i * loader.batch_size}/{n} ({100.0 * i / max(len(loader), 1):.0f}%)]"]
        if count is not None:
            counts = torch.sum(count, dim=0).tolist()
            head.append("Spike count: " + ", ".join(str(int(c)) for c in counts))
        if self.showTimeSteps:
            head.append(f"nTimeBins: {input.shape[-1]}")
        return head

    def train(self, epoch: int = 0, breakIter: int | None = None, printLog: bool = True) -> None:
        """One training epoch (stops after ``breakIter`` iterations when given)."""
        start = datetime.now()
        for i, (input, target, label) in enumerate(self.trainLoader):
            self.net.train()
            input, target = input.to(self.device), target.to(self.device)
            output, count = self._forward(input)
            loss = self.error(output, target, label)
            if self.stats is not None:
                tr = self.stats.training
                tr.correctSamples += int(torch.sum(spikeClassifier.getClass(output) == label))
                tr.numSamples += len(label)
                tr.lossSum += float(loss.detach().cpu()) * self._scale()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            if hasattr(self.module, "clamp"):
                self.module.clamp()
            if self.stats is not None and printLog and i % self.printInterval == 0:
                elapsed = (datetime.now() - start).total_seconds() / (i + 1)
                head = self._header(i, self.trainLoader, count, input)
                self.stats.print(epoch, i, elapsed / self.trainLoader.batch_size, header=head)
            if breakIter is not None and i >= breakIter:
                break
            if self.scheduler is not None:
                self.scheduler.step()

    def test(
        self,
        epoch: int = 0,
        evalLoss: bool = True,
        slidingWindow: int | None = None,
        breakIter: int | None = None,
        printLog: bool = True,
    ) -> None:
        """One testing epoch; ``slidingWindow`` predicts per time step from a moving spike count."""
        if slidingWindow is not None:
            evalLoss = False
        start = datetime.now()
        for i, (input, target, label) in enumerate(self.testLoader):
            self.net.eval()
            with torch.no_grad():
                input, target = input.to(self.device), target.to(self.device)
                output, count = self._forward(input)
                if slidingWindow is None:
                    predictions = spikeClassifier.getClass(output)
                    n = len(label)
                    correct = int(torch.sum(predictions == label))
                else:
                    window = torch.ones(slidingWindow, device=output.device)
                    filtered = conv(output, window, 1)[..., slidingWindow:]
                    predictions = torch.argmax(filtered.reshape(-1, filtered.shape[-1]), dim=0)
                    n = predictions.shape[0]
                    correct = int(torch.sum(predictions.cpu() == label.cpu()))
                if self.stats is not None:
                    te = self.stats.testing
                    te.correctSamples += correct
                    te.numSamples += n
                    if evalLoss:
                        loss = self.error(output, target, label)
                        te.lossSum += float(loss.detach().cpu()) * self._scale()
                    else:
                        te.lossSum += (1 if slidingWindow is None else n) * self._scale()
            if self.stats is not None and printLog and i % self.printInterval == 0:
                elapsed = (datetime.now() - start).total_seconds() / (i + 1)
                head = self._header(i, self.testLoader, count, input)
                self.stats.print(epoch, i, elapsed / self.testLoader.batch_size, header=head)
            if breakIter is not None and i >= breakIter:
                break

"""slayerPytorch's ``learningStats`` names over :class:`loihi_slayer.stats.LearningStats`.

:meth:`learningStats.print` shows slayerPytorch's progress block through the
wrapped statistics' printer (``stats.printer``, stdout by default), logs the
one-line summary through :mod:`logging` (logger ``loihi_slayer.stats``) and
returns it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import numpy as np

from ..stats import LearningStat, LearningStats

__all__ = ["learningStat", "learningStats"]

logger = logging.getLogger("loihi_slayer.stats")


def _alias(name: str, doc: str) -> property:
    def fget(self: learningStat) -> Any:
        return getattr(self.stat, name)

    def fset(self: learningStat, value: Any) -> None:
        setattr(self.stat, name, value)

    return property(fget, fset, doc=doc)


class learningStat:
    """One phase's statistics with slayerPytorch's attribute names.

    Parameters
    ----------
    stat
        the wrapped :class:`loihi_slayer.stats.LearningStat` (a new one if omitted).
    """

    def __init__(self, stat: LearningStat | None = None) -> None:
        self.stat = LearningStat() if stat is None else stat

    lossSum = _alias("loss_sum", "accumulated loss of the current epoch")
    correctSamples = _alias("correct_samples", "correct samples of the current epoch")
    numSamples = _alias("num_samples", "samples of the current epoch")
    minloss = _alias("min_loss", "best loss so far")
    maxAccuracy = _alias("max_accuracy", "best accuracy so far")
    lossLog = _alias("loss_log", "per-epoch loss")
    accuracyLog = _alias("accuracy_log", "per-epoch accuracy")
    bestLoss = _alias("best_loss", "whether the last epoch set the best loss")
    bestAccuracy = _alias("best_accuracy", "whether the last epoch set the best accuracy")

    def reset(self) -> None:
        """Clear the per-epoch accumulators."""
        self.stat.reset()

    def loss(self) -> float | None:
        """``lossSum / numSamples`` (``None`` without samples)."""
        return self.stat.loss

    def accuracy(self) -> float | None:
        """``correctSamples / numSamples`` (``None`` without samples or classification)."""
        return self.stat.accuracy

    def update(self) -> None:
        """Close the epoch: append to the logs and update the best values."""
        self.stat.update()

    def displayString(self) -> str | None:
        """Summary text, ``None`` without data."""
        text = str(self.stat)
        return text or None


class learningStats:
    """Training and testing statistics (slayerPytorch ``learningStats``).

    Attributes
    ----------
    training, testing, validation : learningStat
        per-phase statistics.
    stats : loihi_slayer.stats.LearningStats
        the wrapped library object.
    """

    def __init__(self) -> None:
        self.stats = LearningStats()
        self.training = learningStat(self.stats.training)
        self.testing = learningStat(self.stats.testing)
        self.validation = learningStat(self.stats.validation)
        self.linesPrinted = 0

    def update(self) -> None:
        """Close the epoch of every phase and reset the accumulators."""
        self.stats.update()

    def print(
        self,
        epoch: int,
        iter: int | None = None,
        timeElapsed: float | None = None,
        header: list[Any] | None = None,
        footer: list[Any] | None = None,
        level: int = logging.INFO,
    ) -> str:
        """Show slayerPytorch's progress block through ``stats.printer``; log and return a line.

        The block is the header lines, ``Epoch : <epoch>(i = <iter>), <ms> ms
        elapsed``, the training and (if any) testing statistics and the footer
        lines; on a terminal it overwrites the previous block.
        """
        line = self.stats.summary(epoch, iter, timeElapsed, header)
        logger.log(level, "%s", line)
        printer = self.stats.printer
        if printer is None:
            return line
        head = f"Epoch : {epoch:10d}"
        if iter is not None:
            head += f"(i = {iter:7d})"
        if timeElapsed is not None:
            head += f", {timeElapsed * 1000:12.4f} ms elapsed"
        lines = [str(h) for h in header or []] + [head]
        lines.append(self.training.displayString() or "")
        if self.testing.displayString() is not None:
            lines.append(self.testing.displayString())
        lines += [str(f) for f in footer or []]
        prefix = ""
        if self.linesPrinted and getattr(sys.stdout, "isatty", lambda: False)():
            prefix = f"\033[{self.linesPrinted}A"
            lines = ["\033[2K" + ln for ln in lines]
        self.linesPrinted = len(lines)
        printer(prefix + "\n".join(lines))
        return line

    def plot(self, figures: tuple[int, int] = (1, 2), saveFig: bool = False, path: str = "") -> Any:
        """Plot loss and accuracy curves; ``saveFig`` writes ``loss.png`` and
        ``accuracy.png`` to ``path``."""
        if saveFig:
            return self.stats.plot(path=path or ".", figures=figures)
        return self.stats.plot(figures=figures)

    def save(self, filename: str = "") -> None:
        """Write ``filename + 'loss.txt'`` and ``filename + 'accuracy.txt'`` (Train, Test
        columns)."""
        for kind in ("loss", "accuracy"):
            train = getattr(self.training, f"{kind}Log")
            test = getattr(self.testing, f"{kind}Log")
            rows = [
                (
                    np.nan if train[i] is None else train[i],
                    np.nan if i >= len(test) or test[i] is None else test[i],
                )
                for i in range(len(train))
            ]
            data = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
            np.savetxt(filename + f"{kind}.txt", data, fmt="%12.6g", header="Train Test")

    def load(self, filename: str = "", numEpoch: int | None = None, modulo: int = 1) -> int:
        """Read logs written by :meth:`save`; returns the number of epochs loaded."""
        data = {
            kind: np.loadtxt(filename + f"{kind}.txt", ndmin=2) for kind in ("loss", "accuracy")
        }
        epochs = data["loss"].shape[0] // modulo * modulo + 1 if numEpoch is None else numEpoch
        for col, phase in enumerate((self.training, self.testing)):
            for kind in ("loss", "accuracy"):
                values = data[kind][:epochs, col]
                log = [None if np.isnan(v) else float(v) for v in values]
                setattr(phase, f"{kind}Log", log)
                present = [v for v in log if v is not None]
                if kind == "loss":
                    phase.minloss = min(present) if present else None
                else:
                    phase.maxAccuracy = max(present) if present else None
        return epochs

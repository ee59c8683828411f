"""Learning statistics, a training assistant and a progress bar.

:class:`LearningStats` follows lava-dl's ``slayer.utils.LearningStats``: one
:class:`LearningStat` for each of training, validation and testing that
accumulates the loss and the number of correct samples during an epoch;
:meth:`LearningStats.update` closes the epoch, logs it and tracks the best
values. :class:`Assistant` bundles the train / validate / test steps as
lava-dl's ``slayer.utils.Assistant``.

:meth:`LearningStats.print` shows the statistics the way lava-dl users see
them, through the object's own ``printer`` (stdout by default; ``None``
silences it), and also logs the one-line summary through :mod:`logging`
(logger ``loihi_slayer.stats``) and returns it; the progress bar is
:mod:`tqdm` (stderr by default).

**Paths.** lava-dl builds file names by string concatenation
(``path + 'loss.txt'``), so ``save('run')`` writes ``runloss.txt``; that is
kept (code relying on it works), and a ``path`` that is an existing directory
or ends with a separator is joined as a directory.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from ._bar_logging import showing
from .errors import FormatError, ParameterError

__all__ = ["LearningStat", "LearningStats", "Assistant", "progress", "stdout_printer"]

logger = logging.getLogger(__name__)


def stdout_printer(text: str) -> None:
    """Default printer of the statistics: one line (or block of lines) to ``sys.stdout``."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _target(path: str | os.PathLike, name: str) -> str:
    """lava-dl's ``path + name``; an existing directory (or ``'.../'``) is joined instead."""
    path = os.fspath(path)
    if path and (os.path.isdir(path) or path.endswith(("/", os.sep))):
        return os.path.join(path, name)
    return path + name


class LearningStat:
    """Loss and accuracy statistics of one phase (training, validation or testing).

    Attributes
    ----------
    loss_sum : float
        accumulated ``loss * batch_size`` in the current epoch.
    correct_samples : int
        accumulated number of correct samples in the current epoch. Setting it
        (also with ``+=``) marks the phase as a classification phase.
    num_samples : int
        accumulated number of samples in the current epoch.
    min_loss, max_accuracy : float or None
        best values over the finished epochs.
    loss_log, accuracy_log : list
        per-epoch values (``None`` for an epoch without data).
    best_loss, best_accuracy : bool
        whether the last finished epoch set a new best value.
    loss_str, loss_unit, accuracy_str, accuracy_unit : str
        names and units shown in the summary (lava-dl).
    """

    def __init__(
        self,
        loss_str: str = "loss",
        loss_unit: str = "",
        accuracy_str: str = "accuracy",
        accuracy_unit: str = "",
    ) -> None:
        self.loss_str, self.loss_unit = loss_str, loss_unit
        self.accuracy_str, self.accuracy_unit = accuracy_str, accuracy_unit
        self.loss_sum = 0.0
        self.num_samples = 0
        self._correct_samples = 0
        self._has_accuracy = False
        self.min_loss: float | None = None
        self.max_accuracy: float | None = None
        self.loss_log: list[float | None] = []
        self.accuracy_log: list[float | None] = []
        self.best_loss = False
        self.best_accuracy = False

    @property
    def correct_samples(self) -> int:
        """Number of correctly classified samples in the current epoch."""
        return self._correct_samples

    @correct_samples.setter
    def correct_samples(self, value: int) -> None:
        self._correct_samples = value
        self._has_accuracy = True

    def reset(self) -> None:
        """Clear the per-epoch accumulators (the logs and best values stay)."""
        self.loss_sum = 0.0
        self.num_samples = 0
        self._correct_samples = 0
        self._has_accuracy = False

    @property
    def loss(self) -> float | None:
        """Mean loss per sample of the current epoch (``None`` without samples)."""
        if self.num_samples > 0:
            return self.loss_sum / self.num_samples
        return None

    @property
    def accuracy(self) -> float | None:
        """Accuracy of the current epoch (``None`` without samples or classifier)."""
        if self.num_samples > 0 and self._has_accuracy:
            return self._correct_samples / self.num_samples
        return None

    @property
    def valid_loss_log(self) -> bool:
        """Whether any epoch has a loss value."""
        return any(v is not None for v in self.loss_log)

    @property
    def valid_accuracy_log(self) -> bool:
        """Whether any epoch has an accuracy value."""
        return any(v is not None for v in self.accuracy_log)

    def update(self) -> None:
        """Close the epoch: append to the logs and update the best values."""
        loss = self.loss
        self.loss_log.append(loss)
        if loss is not None and (self.min_loss is None or loss < self.min_loss):
            self.min_loss = loss
            self.best_loss = True
        else:
            self.best_loss = False
        accuracy = self.accuracy
        self.accuracy_log.append(accuracy)
        if accuracy is not None and (self.max_accuracy is None or accuracy > self.max_accuracy):
            self.max_accuracy = accuracy
            self.best_accuracy = True
        else:
            self.best_accuracy = False

    def __str__(self) -> str:
        loss = self.loss
        if loss is None:
            return ""
        text = f"{self.loss_str} = {loss:11.5f}"
        if self.min_loss is not None:
            text += f" (min = {self.min_loss:11.5f})"
        if self.loss_unit:
            text += f" {self.loss_unit}"
        accuracy = self.accuracy
        if accuracy is not None:
            text += f"    {self.accuracy_str} = {accuracy:7.5f}"
            if self.max_accuracy is not None:
                text += f" (max = {self.max_accuracy:7.5f})"
            if self.accuracy_unit:
                text += f" {self.accuracy_unit}"
        return text


class LearningStats:
    """Training, validation and testing statistics.

    Parameters
    ----------
    loss_str, loss_unit, accuracy_str, accuracy_unit
        names and units of the loss and accuracy (lava-dl); ``loss_str`` and
        ``accuracy_str`` also name the files of :meth:`save`.
    printer
        Keyword only: callable receiving the text :meth:`print` shows
        (default :func:`stdout_printer`; ``None`` prints nothing).

    Attributes
    ----------
    training, validation, testing : LearningStat
        the per-phase statistics.

    Examples
    --------
    >>> stats = LearningStats(printer=None)
    >>> stats.training.loss_sum += 2.0; stats.training.num_samples += 4
    >>> stats.print(0)
    'Epoch    0 | Train loss =     0.50000'
    >>> stats.update()
    """

    def __init__(
        self,
        loss_str: str = "loss",
        loss_unit: str = "",
        accuracy_str: str = "accuracy",
        accuracy_unit: str = "",
        *,
        printer: Callable[[str], None] | None = stdout_printer,
    ) -> None:
        names = (loss_str, loss_unit, accuracy_str, accuracy_unit)
        self.training = LearningStat(*names)
        self.validation = LearningStat(*names)
        self.testing = LearningStat(*names)
        self.printer = printer
        self.lines_printed = 0

    @property
    def phases(self) -> dict[str, LearningStat]:
        """The three phases by name."""
        return {"train": self.training, "valid": self.validation, "test": self.testing}

    def update(self) -> None:
        """Close the epoch for every phase (typically at the end of an epoch)."""
        for stat in self.phases.values():
            stat.update()
            stat.reset()

    def new_line(self) -> None:
        """Start the next :meth:`print` on new lines (instead of overwriting on a terminal)."""
        self.lines_printed = 0

    def __str__(self) -> str:
        parts = [f"Train {self.training}"]
        if str(self.validation):
            parts.append(f"Valid {self.validation}")
        if str(self.testing):
            parts.append(f"Test  {self.testing}")
        return " | ".join(parts)

    def summary(
        self,
        epoch: int,
        iter: int | None = None,
        time_elapsed: float | None = None,
        header: Iterable[Any] | None = None,
    ) -> str:
        """One-line summary (header entries, if any, are prepended with ``' | '``)."""
        text = f"Epoch {epoch:4d}"
        if iter is not None:
            text += f": i = {iter:5d}"
        if time_elapsed is not None:
            text += f", {time_elapsed * 1000:12.4f} ms elapsed"
        body = str(self)
        if body.strip() != "Train":
            text += " | " + body
        if header is not None:
            text = " | ".join([*(str(h) for h in header), text])
        return text

    def print(
        self,
        epoch: int,
        iter: int | None = None,
        time_elapsed: float | None = None,
        header: Iterable[Any] | None = None,
        dataloader: Any = None,
        level: int = logging.INFO,
    ) -> str:
        """Show the statistics (lava-dl layout) through ``printer``, log and return one line.

        The printer receives the header lines, the epoch line (with
        ``samples/total (percent)`` when ``dataloader`` and ``iter`` are given)
        and one line per phase; on a terminal the previous block is
        overwritten, as lava-dl does.

        Parameters
        ----------
        epoch
            current epoch.
        iter
            iteration within the epoch, or ``None``.
        time_elapsed
            elapsed time in seconds, or ``None``.
        header
            extra items shown before the statistics.
        dataloader
            a ``DataLoader`` (``len(dataset)``, ``batch_size``) to show the
            progress in the epoch, or ``None``.
        level
            logging level of the one-line summary.

        Returns
        -------
        str
            the one-line summary.
        """
        header = None if header is None else [str(h) for h in header]
        line = self.summary(epoch, iter, time_elapsed, header)
        logger.log(level, "%s", line)
        if self.printer is not None:
            self.printer(self._block(epoch, iter, time_elapsed, header or [], dataloader))
        return line

    def _block(self, epoch, iter, time_elapsed, header: list[str], dataloader) -> str:
        head = f"Epoch {epoch:4d}"
        if dataloader is not None and iter is not None:
            total = len(dataloader.dataset)
            digits = max(1, math.ceil(math.log10(max(total, 2))))
            done = min(iter * (dataloader.batch_size or 1), total)
            head += f": {done:{digits}d}/{total} ({100.0 * iter / max(len(dataloader), 1):.0f}%)"
        elif iter is not None:
            head += f": i = {iter:5d}"
        if time_elapsed is not None:
            head += f", {time_elapsed * 1000:12.4f} ms elapsed"
        lines = [*header, head, *str(self).split(" | ")]
        prefix = ""
        if self.lines_printed and getattr(sys.stdout, "isatty", lambda: False)():
            prefix = f"\033[{self.lines_printed}A"  # move up over the previous block
            lines = ["\033[2K" + ln for ln in lines]
        self.lines_printed = len(lines)
        return prefix + "\n".join(lines)

    # -------------------------------------------------------------- files
    def save(self, path: str | os.PathLike = "") -> None:
        """Write ``<loss_str>.txt`` and (if any accuracy was logged) ``<accuracy_str>.txt``.

        Each file has a ``#`` header naming the columns (``Epoch``, then
        ``Train``/``Valid``/``Test`` for the phases with data) and one row per
        epoch; missing values are written as ``nan``.

        Parameters
        ----------
        path
            prefix of the file names (lava-dl: ``path + 'loss.txt'``), or a
            directory (see the module docstring); its directory is created.
        """
        for kind in ("loss", "accuracy"):
            logs = {
                name.capitalize(): getattr(stat, f"{kind}_log")
                for name, stat in self.phases.items()
                if getattr(stat, f"valid_{kind}_log")
            }
            if kind == "accuracy" and not logs:
                continue
            n_epochs = len(self.training.loss_log)
            lines = ["# Epoch " + " ".join(f"{name:>12s}" for name in logs)]
            for epoch in range(n_epochs):
                values = [log[epoch] if epoch < len(log) else None for log in logs.values()]
                lines.append(
                    f"{epoch:7d} "
                    + " ".join("         nan" if v is None else f"{v:12.6f}" for v in values)
                )
            file = _target(path, self._file_name(kind))
            os.makedirs(os.path.dirname(file) or ".", exist_ok=True)
            with open(file, "w", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")

    def _file_name(self, kind: str) -> str:
        return f"{getattr(self.training, f'{kind}_str')}.txt"

    def load(self, path: str | os.PathLike = "") -> None:
        """Read back logs written by :meth:`save` (replaces the current logs).

        lava-dl's ``load`` does nothing; this one restores the logs and best values.
        """
        names = {"Train": self.training, "Valid": self.validation, "Test": self.testing}
        for kind in ("loss", "accuracy"):
            file = _target(path, self._file_name(kind))
            if not os.path.exists(file):
                if kind == "loss":
                    raise FileNotFoundError(file)
                continue
            with open(file, encoding="utf-8") as fh:
                rows = fh.read().splitlines()
            if not rows or not rows[0].startswith("# Epoch"):
                raise FormatError("missing '# Epoch ...' header line", file=file)
            columns = rows[0][len("# Epoch") :].split()
            unknown = [c for c in columns if c not in names]
            if unknown:
                raise FormatError(f"unknown columns {unknown}", file=file)
            logs: dict[str, list[float | None]] = {c: [] for c in columns}
            for number, row in enumerate(rows[1:], start=2):
                fields = row.split()
                if len(fields) != len(columns) + 1:
                    raise FormatError(
                        f"line {number} has {len(fields)} fields, expected {len(columns) + 1}",
                        file=file,
                    )
                for column, value in zip(columns, fields[1:], strict=True):
                    number_value = float(value)
                    logs[column].append(None if math.isnan(number_value) else number_value)
            n_epochs = len(rows) - 1
            for column, stat in names.items():
                log = logs.get(column, [None] * n_epochs)
                setattr(stat, f"{kind}_log", log)
                present = [v for v in log if v is not None]
                if kind == "loss":
                    stat.min_loss = min(present) if present else None
                else:
                    stat.max_accuracy = max(present) if present else None

    def plot(
        self,
        figures: tuple[int, int] = (1, 2),
        figsize: tuple[float, float] | None = None,
        path: str | os.PathLike | None = None,
    ) -> list[Any]:
        """Plot the learning curves (loss on a log scale, accuracy).

        Needs matplotlib (``pip install loihi_slayer[plot]``).

        Parameters
        ----------
        figures
            pyplot figure numbers used when ``path`` is ``None``.
        figsize
            figure size.
        path
            prefix (or directory) of ``loss.png`` and ``accuracy.png``; when
            ``None`` pyplot figures ``figures`` are drawn for interactive use.

        Returns
        -------
        list of matplotlib.figure.Figure
            the loss figure and, if accuracy was logged, the accuracy figure.
        """
        from .io.plot import new_figure, require_matplotlib

        require_matplotlib()
        out = []
        for kind, fig_id in zip(("loss", "accuracy"), figures, strict=True):
            logs = {
                label: getattr(stat, f"{kind}_log")
                for label, stat in (
                    ("Training", self.training),
                    ("Validation", self.validation),
                    ("Testing", self.testing),
                )
                if getattr(stat, f"valid_{kind}_log")
            }
            if not logs:
                continue
            if path is None:
                import matplotlib.pyplot as plt

                fig = plt.figure(fig_id, figsize=figsize)
                fig.clf()
            else:
                fig = new_figure(path, figsize)
            ax = fig.add_subplot(1, 1, 1)
            for label, log in logs.items():
                values = [math.nan if v is None else v for v in log]
                if kind == "loss" and all(v > 0 for v in values if not math.isnan(v)):
                    ax.semilogy(values, label=label)
                else:
                    ax.plot(values, label=label)
            stat = self.training
            label = getattr(stat, f"{kind}_str").capitalize()
            unit = getattr(stat, f"{kind}_unit")
            ax.set_xlabel("Epoch")
            ax.set_ylabel(f"{label} {unit}".strip())
            ax.legend()
            if path is not None:
                file = _target(path, f"{kind}.png")
                os.makedirs(os.path.dirname(file) or ".", exist_ok=True)
                fig.savefig(file)
            out.append(fig)
        return out


class Assistant:
    """Training / validation / testing step helper (lava-dl ``slayer.utils.Assistant``).

    Parameters
    ----------
    net
        network; returns ``output``, or ``(output, count)`` with ``count_log``,
        or ``(output, net_loss[, count])`` when ``lam`` is given.
    error
        callable ``(output, target) -> scalar loss``.
    optimizer
        torch optimizer.
    stats
        :class:`LearningStats` to accumulate into, or ``None``.
    classifier
        callable ``output -> prediction`` compared with ``target`` for the
        accuracy; ``None`` for regression.
    count_log
        whether ``net`` also returns a spike count.
    lam
        weight of the network's own loss (e.g. a sparsity loss) added before
        the backward pass; ``None`` if the network returns none.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        error: Callable[[Any, Any], torch.Tensor],
        optimizer: torch.optim.Optimizer,
        stats: LearningStats | None = None,
        classifier: Callable[[Any], Any] | None = None,
        count_log: bool = False,
        lam: float | None = None,
    ) -> None:
        self.net = net
        self.error = error
        self.optimizer = optimizer
        self.stats = stats
        self.classifier = classifier
        self.count_log = count_log
        self.lam = lam
        self.device: torch.device | None = None

    def reduce_lr(self, factor: float = 10 / 3) -> None:
        """Divide the learning rate of every parameter group by ``factor``."""
        if not factor > 0:
            raise ParameterError(f"factor must be > 0, got {factor!r}")
        for group in self.optimizer.param_groups:
            logger.info("Learning rate reduction from %s", group["lr"])
            group["lr"] /= factor

    def _device(self) -> torch.device | None:
        if self.device is None:
            for param in self.net.parameters():
                self.device = param.device
                break
        return self.device

    def _forward(self, input: torch.Tensor) -> tuple[Any, Any, Any]:
        result = self.net(input)
        count = net_loss = None
        if self.count_log and self.lam is not None:
            output, net_loss, count = result
        elif self.count_log:
            output, count = result
        elif self.lam is not None:
            output, net_loss = result
        else:
            output = result
        return output, net_loss, count

    def _record(self, stat: LearningStat, loss: torch.Tensor, output: Any, target: Any) -> None:
        batch = output.shape[0]
        stat.num_samples += batch
        stat.loss_sum += float(loss.detach().cpu().item()) * batch
        if self.classifier is not None:
            prediction = self.classifier(output)
            stat.correct_samples += int(torch.sum(prediction == target).detach().cpu().item())

    def _step(self, input: Any, target: Any, stat_name: str, train: bool) -> Any:
        device = self._device()
        if device is not None:
            input = input.to(device)
            target = target.to(device)
        output, net_loss, count = self._forward(input)
        loss = self.error(output, target)
        if self.stats is not None:
            self._record(getattr(self.stats, stat_name), loss, output, target)
        if train:
            if self.lam is not None:
                loss = loss + self.lam * net_loss
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        if count is None:
            return output
        return output, count

    def train(self, input: torch.Tensor, target: torch.Tensor) -> Any:
        """One training step (forward, loss, backward, optimizer step).

        Returns
        -------
        torch.Tensor or tuple
            the output, or ``(output, count)`` with ``count_log``.
        """
        self.net.train()
        return self._step(input, target, "training", train=True)

    def test(self, input: torch.Tensor, target: torch.Tensor) -> Any:
        """One testing step without gradients (statistics go to ``stats.testing``)."""
        self.net.eval()
        with torch.no_grad():
            return self._step(input, target, "testing", train=False)

    def valid(self, input: torch.Tensor, target: torch.Tensor) -> Any:
        """One validation step without gradients (``stats.validation``)."""
        self.net.eval()
        with torch.no_grad():
            return self._step(input, target, "validation", train=False)


def progress(
    iterable: Iterable[Any],
    stats: LearningStats | None = None,
    epoch: int | None = None,
    desc: str | None = None,
    **tqdm_kwargs: Any,
) -> Iterator[Any]:
    """Iterate with a :mod:`tqdm` progress bar showing the running statistics.

    Parameters
    ----------
    iterable
        e.g. a ``DataLoader``.
    stats
        statistics shown as the bar's postfix after every item.
    epoch
        epoch number shown in the description.
    desc
        description (default ``'Epoch {epoch}'`` when ``epoch`` is given).
    **tqdm_kwargs
        passed to :class:`tqdm.tqdm` (e.g. ``disable=True``, ``leave=False``).

    Yields
    ------
    Any
        the items of ``iterable``.
    """
    from tqdm.auto import tqdm

    if desc is None and epoch is not None:
        desc = f"Epoch {epoch:4d}"
    bar = tqdm(iterable, desc=desc, **tqdm_kwargs)
    with showing(bar):  # log records (a first compile's notice) above the bar
        for item in bar:
            yield item
            if stats is not None:
                bar.set_postfix_str(str(stats), refresh=False)

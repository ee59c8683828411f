"""LearningStats bookkeeping, files and plots; the Assistant; the progress bar."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from helpers import bar_pieces, own_lines, root_console_handler

from loihi_slayer.classifier import Rate
from loihi_slayer.loss import SpikeRate
from loihi_slayer.stats import Assistant, LearningStat, LearningStats, progress


def _epoch(stat: LearningStat, loss_sum: float, n: int, correct: int | None = None) -> None:
    stat.loss_sum += loss_sum
    stat.num_samples += n
    if correct is not None:
        stat.correct_samples += correct


def test_learning_stat_best_tracking():
    stat = LearningStat()
    assert stat.loss is None and stat.accuracy is None
    _epoch(stat, 8.0, 4, 1)
    assert stat.loss == 2.0 and stat.accuracy == 0.25
    stat.update()
    assert (stat.min_loss, stat.max_accuracy, stat.best_loss, stat.best_accuracy) == (
        2.0,
        0.25,
        True,
        True,
    )
    stat.reset()
    _epoch(stat, 12.0, 4, 0)  # worse loss, accuracy 0 (a real value, not None)
    assert stat.accuracy == 0.0
    stat.update()
    assert (stat.best_loss, stat.best_accuracy) == (False, False)
    stat.reset()
    _epoch(stat, 4.0, 4, 3)
    stat.update()
    assert (stat.min_loss, stat.max_accuracy, stat.best_loss, stat.best_accuracy) == (
        1.0,
        0.75,
        True,
        True,
    )
    assert stat.loss_log == [2.0, 3.0, 1.0] and stat.accuracy_log == [0.25, 0.0, 0.75]


def test_regression_mode_has_no_accuracy():
    stats = LearningStats()
    _epoch(stats.training, 3.0, 3)
    assert stats.training.accuracy is None
    stats.update()
    assert stats.training.accuracy_log == [None] and not stats.training.valid_accuracy_log
    # an empty phase logs None and is not "best"
    assert stats.testing.loss_log == [None] and stats.testing.best_loss is False


def test_print_logs_one_line(caplog):
    stats = LearningStats()
    _epoch(stats.training, 2.0, 4, 3)
    _epoch(stats.testing, 1.0, 2, 1)
    with caplog.at_level(logging.INFO, logger="loihi_slayer.stats"):
        line = stats.print(3, iter=7, time_elapsed=0.5, header=["lr 0.01"])
    assert "\n" not in line
    assert line.startswith("lr 0.01 | Epoch    3: i =     7,     500.0000 ms elapsed")
    assert "Train loss =     0.50000" in line and "accuracy = 0.75000" in line
    assert "Test  loss =     0.50000" in line and "Valid" not in line
    assert caplog.records[-1].getMessage() == line
    stats.update()
    line = stats.print(4)
    assert line == "Epoch    4"  # nothing accumulated in the new epoch


def test_save_and_load(tmp_path):
    stats = LearningStats()
    for epoch in range(3):
        _epoch(stats.training, 10.0 - epoch, 10, 5 + epoch)
        if epoch != 1:
            _epoch(stats.testing, 5.0 - epoch, 5, 2)
        stats.update()
    stats.save(tmp_path)
    loss_lines = (tmp_path / "loss.txt").read_text().splitlines()
    assert loss_lines[0].split() == ["#", "Epoch", "Train", "Test"]
    assert loss_lines[2].split() == ["1", "0.900000", "nan"]
    acc_lines = (tmp_path / "accuracy.txt").read_text().splitlines()
    assert acc_lines[3].split() == ["2", "0.700000", "0.400000"]
    other = LearningStats()
    other.load(tmp_path)
    assert other.training.loss_log == pytest.approx([1.0, 0.9, 0.8])
    assert other.testing.loss_log[1] is None
    assert other.testing.min_loss == pytest.approx(0.6)
    assert other.training.max_accuracy == pytest.approx(0.7)
    assert other.validation.loss_log == [None] * 3


def test_plot_saves_png(tmp_path):
    pytest.importorskip("matplotlib")
    stats = LearningStats()
    for epoch in range(4):
        _epoch(stats.training, 4.0 / (epoch + 1), 1, epoch % 2)
        _epoch(stats.validation, 5.0 / (epoch + 1), 1)
        stats.update()
    figs = stats.plot(path=tmp_path)
    assert len(figs) == 2
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "accuracy.png").read_bytes()[:4] == b"\x89PNG"


class _Net(torch.nn.Module):
    def __init__(self, count_log: bool = False, lam: bool = False) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3, 2))
        self.count_log = count_log
        self.lam = lam

    def forward(self, x):  # x: (N, 2, T) -> (N, 3, T)
        out = torch.sigmoid(torch.einsum("ij,njt->nit", self.w, x))
        result = [out]
        if self.lam:
            result.append((self.w**2).sum())
        if self.count_log:
            result.append(torch.tensor([out.sum().item()]))
        return out if len(result) == 1 else tuple(result)


def test_assistant_train_test_valid():
    torch.manual_seed(0)
    net = _Net()
    stats = LearningStats()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    assistant = Assistant(net, SpikeRate(0.9, 0.1), opt, stats, classifier=Rate.predict)
    x = torch.rand(4, 2, 5)
    y = torch.tensor([0, 1, 2, 0])
    before = net.w.detach().clone()
    out = assistant.train(x, y)
    assert out.shape == (4, 3, 5) and net.training
    assert not torch.equal(before, net.w)
    assert stats.training.num_samples == 4
    expected_loss = SpikeRate(0.9, 0.1)(out.detach(), y).item()
    assert stats.training.loss == pytest.approx(expected_loss)
    correct = int((Rate.predict(out) == y).sum())
    assert stats.training.correct_samples == correct
    w = net.w.detach().clone()
    assistant.test(x, y)
    assistant.valid(x, y)
    assert torch.equal(w, net.w) and not net.training  # no update outside training
    assert stats.testing.num_samples == 4 and stats.validation.num_samples == 4
    stats.update()
    assert len(stats.training.loss_log) == 1


def test_assistant_count_log_and_lam():
    net = _Net(count_log=True, lam=True)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    assistant = Assistant(net, SpikeRate(0.9, 0.1), opt, count_log=True, lam=0.01)
    out, count = assistant.train(torch.rand(2, 2, 3), torch.tensor([0, 1]))
    assert out.shape == (2, 3, 3) and count.shape == (1,)
    out, count = assistant.test(torch.rand(2, 2, 3), torch.tensor([0, 1]))
    assert count.shape == (1,)
    assistant.reduce_lr(2.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_progress_bar_yields_all_items():
    stats = LearningStats()
    seen = []
    for item in progress(range(5), stats=stats, epoch=1, disable=True):
        stats.training.loss_sum += item
        stats.training.num_samples += 1
        seen.append(item)
    assert seen == list(range(5))
    assert math.isclose(stats.training.loss, 2.0)


def test_progress_bar_writes_log_records_above_itself(capsys):
    """A record logged inside the loop (a first compile's notice) is written on a line of
    its own by tqdm, not glued to the bar's text; the root logger's handler is its own
    again after the loop."""
    import sys

    with root_console_handler("%(message)s") as handler:
        for item in progress(range(3), epoch=0, file=sys.stderr, mininterval=0):
            if item == 1:
                logging.getLogger("loihi_slayer.probe").warning("notice from the loop")
        assert handler in logging.getLogger().handlers
    err = capsys.readouterr().err
    assert own_lines(err, "notice from the loop") == 1
    assert any(part.startswith("Epoch    0") and "3/3" in part for part in bar_pieces(err))

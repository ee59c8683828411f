"""Rate and moving-window classifiers against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from loihi_slayer.classifier import MovingWindow, Rate
from loihi_slayer.errors import ParameterError


def _spikes():
    s = torch.zeros(2, 3, 4)
    s[0, 1, :3] = 1  # rates sample 0: [0.25, 0.75, 0]
    s[0, 0, 0] = 1
    s[1, 2, :] = 1  # rates sample 1: [0, 0.5, 1]
    s[1, 1, :2] = 1
    return s


def test_rate_predict_and_rate():
    s = _spikes()
    assert Rate.rate(s).tolist() == [[0.25, 0.75, 0.0], [0.0, 0.5, 1.0]]
    assert Rate.predict(s).tolist() == [1, 2]
    assert Rate()(s).tolist() == [1, 2]


def test_rate_confidence_modes():
    s = _spikes()
    prob = Rate.confidence(s)
    assert prob[0].tolist() == pytest.approx([0.25 / (1 + 1e-6), 0.75 / (1 + 1e-6), 0])
    soft = Rate.confidence(s, mode="softmax")
    assert soft[1, 2].item() == pytest.approx(2.718281828 / (1 + 1.6487212707 + 2.718281828))
    logsoft = Rate.confidence(s, mode="logsoftmax")
    assert torch.allclose(logsoft.exp(), soft)
    with pytest.raises(ParameterError, match="mode"):
        Rate.confidence(s, mode="max")


def test_rate_collapses_spatial_dims():
    s = torch.zeros(1, 2, 2, 2, 3)
    s[0, 1, 0, 1, :] = 1  # flattened class index 1*4 + 0*2 + 1 = 5
    assert Rate.predict(s).tolist() == [5]
    assert Rate.confidence(s).shape == (1, 8)


def test_moving_window_rates_predict_confidence():
    s = torch.tensor([[[1.0, 0, 1, 1], [0, 1, 1, 0]]])
    win = MovingWindow(2)
    # causal mean over the last 2 steps, zeros before t = 0
    assert win.rate(s).tolist() == [[[0.5, 0.5, 0.5, 1.0], [0.0, 0.5, 1.0, 0.5]]]
    assert win.predict(s).tolist() == [[0, 0, 1, 0]]
    assert win(s).tolist() == [[0, 0, 1, 0]]
    conf = win.confidence(s)
    assert conf.shape == (1, 2, 4)
    assert conf[0, :, 1].tolist() == pytest.approx([0.5 / (1 + 1e-6), 0.5 / (1 + 1e-6)])
    soft = MovingWindow(2, mode="softmax").confidence(s)
    assert soft.sum(dim=1)[0].tolist() == pytest.approx([1.0] * 4)
    with pytest.raises(ParameterError, match="time_window"):
        MovingWindow(0)

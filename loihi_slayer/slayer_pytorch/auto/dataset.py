"""slayerPytorch's ``auto.dataset``: wrap an event dataset into spike tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ...errors import ParameterError
from ..io import event

__all__ = ["SlayerDataset"]


class SlayerDataset(Dataset):
    """Turn ``(events, label)`` samples into ``(spikes, desiredClass, label)``.

    Parameters
    ----------
    dataset
        Base dataset; item ``i`` is ``(events, label)`` with ``events`` an
        ``(n, 4)`` array of ``x, y, polarity, t [ms]``.
    network
        Object with ``netParams['simulation']`` (``Ts``, ``tSample``),
        ``inputShape`` ``(x, y, channels)`` and ``nOutput``.
    randomShift, binningMode
        Passed to :meth:`~loihi_slayer.slayer_pytorch.io.event.toSpikeTensor`.
    fullDataset
        Bin the whole event stream (length from the last event) instead of ``tSample``.
    """

    def __init__(
        self,
        dataset: Any,
        network: Any,
        randomShift: bool = False,
        binningMode: str = "OR",
        fullDataset: bool = False,
    ) -> None:
        super().__init__()
        sim = network.netParams["simulation"]
        self.dataset = dataset
        self.samplingTime = sim["Ts"]
        self.sampleLength = sim["tSample"]
        self.nTimeBins = int(self.sampleLength / self.samplingTime)
        self.inputShape = tuple(network.inputShape)
        if len(self.inputShape) != 3:
            raise ParameterError(
                f"auto.dataset: network.inputShape must be (x, y, channels), got {self.inputShape}"
            )
        self.nOutput = int(network.nOutput)
        x, y, c = self.inputShape
        self.tensorShape = (c, y, x, self.nTimeBins)
        self.randomShift = randomShift
        self.binningMode = binningMode
        self.fullDataset = fullDataset

    def __getitem__(self, index: int):
        events, label = self.dataset[index]
        events = np.asarray(events)
        shape = self.tensorShape
        if self.fullDataset:
            shape = (*shape[:3], int(np.ceil(events[:, 3].max())) if len(events) else 1)
        spikes = event(events[:, 0], events[:, 1], events[:, 2], events[:, 3]).toSpikeTensor(
            torch.zeros(shape),
            samplingTime=self.samplingTime,
            randomShift=self.randomShift,
            binningMode=self.binningMode,
        )
        desired = torch.zeros((self.nOutput, 1, 1, 1))
        desired[label, ...] = 1
        return spikes, desired, label

    def __len__(self) -> int:
        return len(self.dataset)

"""slayerPytorch's ``spikeClassifier`` (``snn.predict``)."""

from __future__ import annotations

import torch

__all__ = ["spikeClassifier", "getClass"]


class spikeClassifier:
    """Classification by spike count."""

    @staticmethod
    def getClass(spike: torch.Tensor) -> torch.Tensor:
        """Index of the neuron with most spikes per sample, an int64 CPU tensor ``(N,)``.

        Neurons are the flattened ``C, H, W`` axes of an ``NCHWT`` tensor.
        """
        counts = torch.sum(spike.detach(), dim=-1).reshape(spike.shape[0], -1).cpu()
        return torch.max(counts, dim=1)[1]


getClass = spikeClassifier.getClass

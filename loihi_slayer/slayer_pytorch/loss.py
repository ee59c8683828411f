"""slayerPytorch's ``spikeLoss`` (``snn.loss``): ``spikeTime`` and ``numSpikes``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..errors import ParameterError
from ..loss import NumSpikes
from .slayer import spikeLayer

__all__ = ["spikeLoss", "loss"]


def _is_network_descriptor(desc: Any) -> bool:
    try:
        return "training" in desc and "neuron" in desc and "simulation" in desc
    except TypeError:
        return False


class spikeLoss(torch.nn.Module):
    """Spike losses of slayerPytorch.

    Accepted call forms::

        snn.loss(netParams)                         # network descriptor
        snn.loss(netParams, snn.loihi)              # ... with the Loihi PSP
        snn.loss(errorDesc, neuronDesc, simulationDesc[, slayerClass])

    Parameters
    ----------
    errorDescriptor
        ``training.error`` descriptor (``type``, and for ``NumSpikes``
        ``tgtSpikeRegion`` / ``tgtSpikeCount``), or the whole network descriptor.
    neuronDesc, simulationDesc
        neuron and simulation descriptors (omitted with a network descriptor).
    slayerClass
        layer class whose ``psp`` filters the error (``snn.layer`` or ``snn.loihi``).
    """

    def __init__(
        self,
        errorDescriptor: Any,
        neuronDesc: Any = None,
        simulationDesc: Any = None,
        slayerClass: type = spikeLayer,
    ) -> None:
        super().__init__()
        if _is_network_descriptor(errorDescriptor) and (
            neuronDesc is None or isinstance(neuronDesc, type)
        ):
            if isinstance(neuronDesc, type):
                slayerClass = neuronDesc
            net = errorDescriptor
            errorDescriptor = net["training"]["error"]
            neuronDesc, simulationDesc = net["neuron"], net["simulation"]
        if neuronDesc is None or simulationDesc is None:
            raise ParameterError(
                "snn.loss needs a network descriptor or (errorDesc, neuronDesc, simulationDesc)"
            )
        if not isinstance(errorDescriptor, Mapping):
            raise ParameterError(f"errorDescriptor must be a mapping, got {errorDescriptor!r}")
        self.errorDescriptor = errorDescriptor
        self.neuron = neuronDesc
        self.simulation = simulationDesc
        self.slayer = slayerClass(self.neuron, self.simulation)

    def _check_type(self, expected: str) -> None:
        kind = self.errorDescriptor.get("type")
        if kind is not None and kind != expected:
            raise ParameterError(
                f"training.error.type = {kind!r}, but {expected} was requested; "
                f"set type: {expected}"
            )

    @property
    def Ts(self) -> float:
        """Sampling time (ms)."""
        return float(self.simulation["Ts"])

    def spikeTime(self, spikeOut: torch.Tensor, spikeDesired: torch.Tensor) -> torch.Tensor:
        """``1/2 * Ts * sum(psp(spikeOut - spikeDesired) ** 2)``."""
        self._check_type("SpikeTime")
        error = self.slayer.psp(spikeOut - spikeDesired.to(spikeOut))
        return 0.5 * torch.sum(error**2) * self.Ts

    def numSpikes(
        self,
        spikeOut: torch.Tensor,
        desiredClass: torch.Tensor,
        numSpikesScale: float = 1,
    ) -> torch.Tensor:
        """Spike-count loss in ``tgtSpikeRegion`` (see :class:`loihi_slayer.loss.NumSpikes`).

        ``desiredClass`` is a one-hot ``(N, C, 1, 1, 1)`` tensor (or class indices).
        """
        self._check_type("NumSpikes")
        criterion = NumSpikes(
            self.errorDescriptor["tgtSpikeRegion"],
            self.errorDescriptor["tgtSpikeCount"],
            sampling_time=self.Ts,
            psp=self.slayer.psp,
            num_spikes_scale=numSpikesScale,
        )
        return criterion(spikeOut, desiredClass)

    def probSpikes(
        self, spikeOut: torch.Tensor, spikeDesired: torch.Tensor, probSlidingWindow: int = 20
    ) -> None:
        """Not implemented (a stub in slayerPytorch as well)."""
        raise NotImplementedError("probSpikes is not implemented (it is a stub in slayerPytorch)")


#: ``snn.loss`` alias.
loss = spikeLoss

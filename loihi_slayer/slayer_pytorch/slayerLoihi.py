"""slayerPytorch's ``slayerLoihi`` module (``snn.loihi``)."""

from .loihi import spikeLayer

__all__ = ["spikeLayer"]

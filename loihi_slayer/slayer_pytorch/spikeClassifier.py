"""slayerPytorch's ``spikeClassifier`` module (``snn.predict``)."""

from .predict import spikeClassifier

__all__ = ["spikeClassifier"]

"""slayerPytorch's ``spikeLoss`` module (``snn.loss``)."""

from .loss import spikeLoss

__all__ = ["spikeLoss"]

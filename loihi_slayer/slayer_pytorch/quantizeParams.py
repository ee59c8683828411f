"""slayerPytorch's ``quantizeParams`` module."""

from .quantize import quantize, quantizeWeights

__all__ = ["quantize", "quantizeWeights"]

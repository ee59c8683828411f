"""Helpers of the slayerPytorch compatibility layer (``snn.utils``)."""

from __future__ import annotations

from ._core import alpha_kernel, causal_conv, causal_corr, shift
from .quantize import quantize, quantizeWeights

__all__ = ["alpha_kernel", "causal_conv", "causal_corr", "shift", "quantize", "quantizeWeights"]

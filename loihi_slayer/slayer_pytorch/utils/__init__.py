"""Helpers of the slayerPytorch compatibility layer (``snn.utils``).

``snn.utils.optim`` and ``snn.utils.stats`` are the optimizer and the
learning-statistics modules under the names some slayerSNN code imports.
"""

from __future__ import annotations

from .._core import alpha_kernel, causal_conv, causal_corr, shift
from ..quantize import quantize, quantizeWeights
from . import optim, stats

__all__ = [
    "alpha_kernel",
    "causal_conv",
    "causal_corr",
    "optim",
    "quantize",
    "quantizeWeights",
    "shift",
    "stats",
]

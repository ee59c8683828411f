"""Training neurons: forward on Loihi's integer kernels, surrogate-gradient backward."""

from . import cuba, dropout, dynamics, norm, sigma_delta
from .dropout import Dropout
from .norm import MeanOnlyBatchNorm, WgtScaleBatchNorm

__all__ = [
    "Dropout",
    "MeanOnlyBatchNorm",
    "WgtScaleBatchNorm",
    "cuba",
    "dropout",
    "dynamics",
    "norm",
    "sigma_delta",
]

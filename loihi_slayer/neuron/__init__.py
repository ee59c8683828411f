"""Training neurons: forward on Loihi's integer kernels, surrogate-gradient backward."""

from . import adrf, adrf_iz, alif, cuba, dropout, dynamics, norm, rf, rf_iz, sigma_delta
from .dropout import Dropout
from .norm import MeanOnlyBatchNorm, WgtScaleBatchNorm

__all__ = [
    "Dropout",
    "MeanOnlyBatchNorm",
    "WgtScaleBatchNorm",
    "adrf",
    "adrf_iz",
    "alif",
    "cuba",
    "dropout",
    "dynamics",
    "norm",
    "rf",
    "rf_iz",
    "sigma_delta",
]

"""Training neurons: forward on Loihi's integer kernels, surrogate-gradient backward."""

from . import alif, cuba, dropout, norm, sigma_delta
from .dropout import Dropout
from .norm import MeanOnlyBatchNorm

__all__ = ["Dropout", "MeanOnlyBatchNorm", "alif", "cuba", "dropout", "norm", "sigma_delta"]

"""The hardware model: Loihi fixed-point integer dynamics, one source of truth.

Public entry points (see :mod:`.api`): :func:`cuba`, :func:`sigma_delta`,
:func:`delta`, :func:`sigma`, :func:`dense`, :func:`conv2d`, with parameter
sets :class:`CubaParams` and :class:`SigmaDeltaParams`.
"""

from .api import BACKENDS, conv2d, conv_output_size, cuba, delta, dense, sigma, sigma_delta
from .params import CubaParams, SigmaDeltaParams

__all__ = [
    "BACKENDS",
    "CubaParams",
    "SigmaDeltaParams",
    "conv2d",
    "conv_output_size",
    "cuba",
    "delta",
    "dense",
    "sigma",
    "sigma_delta",
]

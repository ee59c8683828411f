"""The hardware model: Loihi fixed-point integer dynamics, one source of truth.

Public entry points (see :mod:`.api`): :func:`cuba`, :func:`sigma_delta`,
:func:`delta`, :func:`sigma`, :func:`dense`, :func:`conv2d`,
:func:`conv_transpose2d`, :func:`pool2d`, :func:`unpool2d`, with parameter
sets :class:`CubaParams` and :class:`SigmaDeltaParams`; :func:`run` runs any
registered neuron model (:mod:`loihi_slayer.models`) on kernels generated from
its step function.
"""

from .api import (
    BACKENDS,
    conv2d,
    conv_output_size,
    conv_transpose2d,
    conv_transpose_output_size,
    cuba,
    delta,
    dense,
    pool2d,
    sigma,
    sigma_delta,
    unpool2d,
)
from .params import CubaParams, SigmaDeltaParams
from .run import run

__all__ = [
    "BACKENDS",
    "CubaParams",
    "SigmaDeltaParams",
    "conv2d",
    "conv_output_size",
    "conv_transpose2d",
    "conv_transpose_output_size",
    "cuba",
    "delta",
    "dense",
    "pool2d",
    "run",
    "sigma",
    "sigma_delta",
    "unpool2d",
]

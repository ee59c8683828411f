"""Drop-in replacement of ``slayerSNN``: ``import loihi_slayer.slayer_pytorch as snn``.

=====================  ==========================================================
``snn.params``         YAML network parameters (:class:`loihi_slayer.params.Params`)
``snn.layer``          SRM spike layer (``spikeLayer``): psp, spike, dense, conv, ...
``snn.loihi``          Loihi spike layer: ``spikeLoihi`` on :func:`loihi_slayer.fixed.cuba`
``snn.loss``           ``spikeTime`` and ``numSpikes`` losses
``snn.predict``        ``getClass`` (spike-count classifier)
``snn.io``             spike file IO and event plotting
``snn.learningStats``  learning statistics with slayerPytorch's names
``snn.quantize``       weight quantization (``quantize(w, step)``, ``quantize.apply``)
``snn.optimizer``      ``Nadam`` (= :class:`torch.optim.NAdam`)
``snn.utils``          kernels and time-shift helpers
=====================  ==========================================================

Tensors are ``NCHWT`` (time last); CPU and CUDA tensors are supported.
"""

from __future__ import annotations

from ..params import Params as params
from . import io, optimizer, utils
from .loihi import loihi
from .loss import loss
from .predict import spikeClassifier as predict
from .quantize import quantize, quantizeWeights
from .slayer import layer, spikeLayer
from .stats import learningStat, learningStats

__all__ = [
    "params",
    "layer",
    "spikeLayer",
    "loihi",
    "loss",
    "predict",
    "io",
    "learningStat",
    "learningStats",
    "quantize",
    "quantizeWeights",
    "optimizer",
    "utils",
]

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
``snn.optimizer``      slayerPytorch's ``Nadam`` (``amsgrad``, ``lr = 1e-3``)
``snn.utils``          kernels and time-shift helpers; ``utils.optim``, ``utils.stats``
``snn.auto``           ``dataset`` (SlayerDataset) and ``assistant`` (Assistant)
=====================  ==========================================================

slayerSNN's module names resolve as submodules too (``slayerParams``,
``slayerLoihi``, ``spikeLoss``, ``spikeClassifier``, ``spikeFileIO``,
``learningStats``, ``quantizeParams``, ``optimizer``, ``slayer``), so
``from spikeFileIO import *`` becomes
``from loihi_slayer.slayer_pytorch.spikeFileIO import *``.

Tensors are ``NCHWT`` (time last); CPU and CUDA tensors are supported.
"""

from __future__ import annotations

from .._numba_cache import guard_cache_writes
from . import auto, io, optimizer, utils
from .loihi import loihi
from .loss import loss
from .predict import spikeClassifier as predict
from .quantize import quantize, quantizeWeights
from .slayer import layer, spikeLayer
from .slayerParams import yamlParams as params
from .stats import learningStat, learningStats

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

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
    "auto",
]

"""Adaptive LIF blocks (lava-dl ``slayer.block.alif`` API) on Loihi's integer kernels.

Every block builds a :class:`loihi_slayer.neuron.alif.Neuron` from
``neuron_params`` (a dict of its constructor arguments, not modified), uses the
neuron's ``quantize_8bit`` as the default weight ``pre_hook_fx`` and shifts its
output by one step (``delay_shift=True``), so that training sees exactly what the
chip computes. The block types are the ones lava-dl's block reference lists for
ALIF (no Affine, no Output). See :mod:`loihi_slayer.block.base` for shapes,
export and time alignment; the neuron is exported generically from its model
declaration (``neuron/type = 'ALIF'`` with ``iDecay, vDecay, thDecay, refDecay,
vThMant, vThStep, refDelay``; a ``norm`` becomes the layer ``bias``).

Examples
--------
>>> from loihi_slayer.block import alif
>>> params = {"threshold": 0.1, "threshold_step": 0.05, "current_decay": 1,
...           "voltage_decay": 0.1, "threshold_decay": 0.1, "refractory_decay": 0.1}
>>> net = torch.nn.Sequential(alif.Dense(params, 200, 256), alif.Dense(params, 256, 200))
"""

from __future__ import annotations

import torch  # noqa: F401  (doctest namespace)

from ..neuron import alif as _alif
from . import base

__all__ = [
    "Average",
    "Conv",
    "ConvT",
    "Dense",
    "Flatten",
    "Input",
    "KWTA",
    "Pool",
    "Recurrent",
    "TimeDecimation",
    "Unpool",
]


class _ALIF:
    family = "alif"
    neuron_class = _alif.Neuron
    default_delay_shift = True


class Input(_ALIF, base.AbstractInput):
    __doc__ = base.AbstractInput.__doc__


class Flatten(_ALIF, base.AbstractFlatten):
    __doc__ = base.AbstractFlatten.__doc__


class Average(_ALIF, base.AbstractAverage):
    __doc__ = base.AbstractAverage.__doc__


class TimeDecimation(_ALIF, base.AbstractTimeDecimation):
    __doc__ = base.AbstractTimeDecimation.__doc__


class Dense(_ALIF, base.AbstractDense):
    __doc__ = base.AbstractDense.__doc__


class Recurrent(_ALIF, base.AbstractRecurrent):
    __doc__ = base.AbstractRecurrent.__doc__


class KWTA(_ALIF, base.AbstractKWTA):
    __doc__ = base.AbstractKWTA.__doc__


class Conv(_ALIF, base.AbstractConv):
    __doc__ = base.AbstractConv.__doc__


class ConvT(_ALIF, base.AbstractConvT):
    __doc__ = base.AbstractConvT.__doc__


class Pool(_ALIF, base.AbstractPool):
    __doc__ = base.AbstractPool.__doc__


class Unpool(_ALIF, base.AbstractUnpool):
    __doc__ = base.AbstractUnpool.__doc__

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

import torch

from ..neuron import alif as _alif
from . import base

__all__ = [
    "AbstractALIF",
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


class AbstractALIF(torch.nn.Module):
    """Base of the ALIF blocks (lava-dl ``AbstractALIF``): neuron family and classes."""

    family = "alif"
    neuron_class = _alif.Neuron
    default_delay_shift = True


class Input(AbstractALIF, base.AbstractInput):
    __doc__ = base.AbstractInput.__doc__


class Flatten(AbstractALIF, base.AbstractFlatten):
    __doc__ = base.AbstractFlatten.__doc__


class Average(AbstractALIF, base.AbstractAverage):
    __doc__ = base.AbstractAverage.__doc__


class TimeDecimation(AbstractALIF, base.AbstractTimeDecimation):
    __doc__ = base.AbstractTimeDecimation.__doc__


class Dense(AbstractALIF, base.AbstractDense):
    __doc__ = base.AbstractDense.__doc__


class Recurrent(AbstractALIF, base.AbstractRecurrent):
    __doc__ = base.AbstractRecurrent.__doc__


class KWTA(AbstractALIF, base.AbstractKWTA):
    __doc__ = base.AbstractKWTA.__doc__


class Conv(AbstractALIF, base.AbstractConv):
    __doc__ = base.AbstractConv.__doc__


class ConvT(AbstractALIF, base.AbstractConvT):
    __doc__ = base.AbstractConvT.__doc__


class Pool(AbstractALIF, base.AbstractPool):
    __doc__ = base.AbstractPool.__doc__


class Unpool(AbstractALIF, base.AbstractUnpool):
    __doc__ = base.AbstractUnpool.__doc__

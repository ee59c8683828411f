"""CUBA-LIF blocks (lava-dl ``slayer.block.cuba`` API) on Loihi's integer kernels.

Every block builds a :class:`loihi_slayer.neuron.cuba.Neuron` from
``neuron_params`` (a dict of its constructor arguments, not modified), uses
the neuron's ``quantize_8bit`` as the default weight ``pre_hook_fx`` and shifts
its output by one step (``delay_shift=True``), so that training sees exactly
what the chip computes. See :mod:`loihi_slayer.block.base` for shapes, export
and time alignment.

Examples
--------
>>> from loihi_slayer.block import cuba
>>> params = {"threshold": 0.1, "current_decay": 1, "voltage_decay": 0.1}
>>> net = torch.nn.Sequential(cuba.Dense(params, 200, 256), cuba.Dense(params, 256, 200))
>>> # train ..., then: block.export_network(net, "network.net")   # doctest: +SKIP
"""

from __future__ import annotations

import torch

from ..neuron import cuba as _cuba
from . import base

__all__ = [
    "AbstractCuba",
    "Affine",
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


class AbstractCuba(torch.nn.Module):
    """Base of the CUBA blocks: neuron family, neuron class and default ``delay_shift``."""

    family = "cuba"
    neuron_class = _cuba.Neuron
    default_delay_shift = True


class Input(AbstractCuba, base.AbstractInput):
    __doc__ = base.AbstractInput.__doc__


class Flatten(AbstractCuba, base.AbstractFlatten):
    __doc__ = base.AbstractFlatten.__doc__


class Average(AbstractCuba, base.AbstractAverage):
    __doc__ = base.AbstractAverage.__doc__


class TimeDecimation(AbstractCuba, base.AbstractTimeDecimation):
    __doc__ = base.AbstractTimeDecimation.__doc__


class Dense(AbstractCuba, base.AbstractDense):
    __doc__ = base.AbstractDense.__doc__


class Affine(AbstractCuba, base.AbstractAffine):
    __doc__ = base.AbstractAffine.__doc__


class Recurrent(AbstractCuba, base.AbstractRecurrent):
    __doc__ = base.AbstractRecurrent.__doc__


class KWTA(AbstractCuba, base.AbstractKWTA):
    __doc__ = base.AbstractKWTA.__doc__


class Conv(AbstractCuba, base.AbstractConv):
    __doc__ = base.AbstractConv.__doc__


class ConvT(AbstractCuba, base.AbstractConvT):
    __doc__ = base.AbstractConvT.__doc__


class Pool(AbstractCuba, base.AbstractPool):
    __doc__ = base.AbstractPool.__doc__


class Unpool(AbstractCuba, base.AbstractUnpool):
    __doc__ = base.AbstractUnpool.__doc__

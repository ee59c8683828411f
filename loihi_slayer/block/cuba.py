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

import torch  # noqa: F401  (doctest namespace)

from ..neuron import cuba as _cuba
from . import base

__all__ = [
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


class _Cuba:
    family = "cuba"
    neuron_class = _cuba.Neuron
    default_delay_shift = True


class Input(_Cuba, base.AbstractInput):
    __doc__ = base.AbstractInput.__doc__


class Flatten(_Cuba, base.AbstractFlatten):
    __doc__ = base.AbstractFlatten.__doc__


class Average(_Cuba, base.AbstractAverage):
    __doc__ = base.AbstractAverage.__doc__


class TimeDecimation(_Cuba, base.AbstractTimeDecimation):
    __doc__ = base.AbstractTimeDecimation.__doc__


class Dense(_Cuba, base.AbstractDense):
    __doc__ = base.AbstractDense.__doc__


class Affine(_Cuba, base.AbstractAffine):
    __doc__ = base.AbstractAffine.__doc__


class Recurrent(_Cuba, base.AbstractRecurrent):
    __doc__ = base.AbstractRecurrent.__doc__


class KWTA(_Cuba, base.AbstractKWTA):
    __doc__ = base.AbstractKWTA.__doc__


class Conv(_Cuba, base.AbstractConv):
    __doc__ = base.AbstractConv.__doc__


class ConvT(_Cuba, base.AbstractConvT):
    __doc__ = base.AbstractConvT.__doc__


class Pool(_Cuba, base.AbstractPool):
    __doc__ = base.AbstractPool.__doc__


class Unpool(_Cuba, base.AbstractUnpool):
    __doc__ = base.AbstractUnpool.__doc__

"""Resonate-and-fire Izhikevich blocks (lava-dl ``slayer.block.rf_iz`` API) on Loihi's
integer kernels.

Every block builds a :class:`loihi_slayer.neuron.rf_iz.Neuron` from
``neuron_params`` (a dict of its constructor arguments, not modified), feeds it
through a complex synapse (:mod:`loihi_slayer.synapse.complex`) whose default
``pre_hook_fx`` is the neuron's ``quantize_8bit``, and shifts its output by one
step (``delay_shift=True``), so that training sees exactly what the chip
computes. The block types are the ones lava-dl's block reference lists for
``rf_iz``. Export: see :mod:`loihi_slayer.block._complex` (``Dense``,
``Conv``, ``ConvT``, ``Pool``, ``Unpool`` and ``Input`` are written; blocks with
a complex recurrent or KWTA synapse are refused with a message naming the block).

Examples
--------
>>> from loihi_slayer.block import rf_iz
>>> params = {"threshold": 0.1, "period": 10, "decay": 0.1}
>>> net = torch.nn.Sequential(rf_iz.Dense(params, 20, 16), rf_iz.Dense(params, 16, 4))
"""

from __future__ import annotations

import torch

from ..neuron import rf_iz as _neuron
from . import _complex, base

__all__ = [
    "AbstractRFIz",
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


class AbstractRFIz(torch.nn.Module):
    """Base of the RF_IZ blocks (lava-dl ``AbstractRFIz``): neuron family and classes."""

    family = "rf_iz"
    neuron_class = _neuron.Neuron
    default_delay_shift = True


class Input(AbstractRFIz, _complex.Input):
    __doc__ = _complex.Input.__doc__


class Flatten(AbstractRFIz, base.AbstractFlatten):
    __doc__ = base.AbstractFlatten.__doc__


class Average(AbstractRFIz, base.AbstractAverage):
    __doc__ = base.AbstractAverage.__doc__


class TimeDecimation(AbstractRFIz, base.AbstractTimeDecimation):
    __doc__ = base.AbstractTimeDecimation.__doc__


class Dense(AbstractRFIz, _complex.Dense):
    __doc__ = _complex.Dense.__doc__


class Affine(AbstractRFIz, _complex.Affine):
    __doc__ = _complex.Affine.__doc__


class Recurrent(AbstractRFIz, _complex.Recurrent):
    __doc__ = _complex.Recurrent.__doc__


class KWTA(AbstractRFIz, _complex.KWTA):
    __doc__ = _complex.KWTA.__doc__


class Conv(AbstractRFIz, _complex.Conv):
    __doc__ = _complex.Conv.__doc__


class ConvT(AbstractRFIz, _complex.ConvT):
    __doc__ = _complex.ConvT.__doc__


class Pool(AbstractRFIz, _complex.Pool):
    __doc__ = _complex.Pool.__doc__


class Unpool(AbstractRFIz, _complex.Unpool):
    __doc__ = _complex.Unpool.__doc__

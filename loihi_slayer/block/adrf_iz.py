"""Adaptive resonate-and-fire Izhikevich blocks (lava-dl ``slayer.block.adrf_iz`` API) on Loihi's
integer kernels.

Every block builds a :class:`loihi_slayer.neuron.adrf_iz.Neuron` from
``neuron_params`` (a dict of its constructor arguments, not modified), feeds it
through a complex synapse (:mod:`loihi_slayer.synapse.complex`) whose default
``pre_hook_fx`` is the neuron's ``quantize_8bit``, and shifts its output by one
step (``delay_shift=True``), so that training sees exactly what the chip
computes. The block types are the ones lava-dl's block reference lists for
``adrf_iz``. Export: see :mod:`loihi_slayer.block._complex` (``Dense``,
``Conv``, ``ConvT``, ``Pool``, ``Unpool`` and ``Input`` are written; blocks with
a complex recurrent or KWTA synapse are refused with a message naming the block).

Examples
--------
>>> from loihi_slayer.block import adrf_iz
>>> params = {"threshold": 0.1, "threshold_step": 0.05, "period": 10, "decay": 0.1,
...           "threshold_decay": 0.1, "refractory_decay": 0.1}
>>> net = torch.nn.Sequential(adrf_iz.Dense(params, 20, 16), adrf_iz.Dense(params, 16, 4))
"""

from __future__ import annotations

import torch

from ..neuron import adrf_iz as _neuron
from . import _complex, base

__all__ = [
    "AbstractADRFIZ",
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


class AbstractADRFIZ(torch.nn.Module):
    """Base of the ADRF_IZ blocks (lava-dl ``AbstractADRFIZ``): neuron family and classes."""

    family = "adrf_iz"
    neuron_class = _neuron.Neuron
    default_delay_shift = True


class Input(AbstractADRFIZ, _complex.Input):
    __doc__ = _complex.Input.__doc__


class Flatten(AbstractADRFIZ, base.AbstractFlatten):
    __doc__ = base.AbstractFlatten.__doc__


class Average(AbstractADRFIZ, base.AbstractAverage):
    __doc__ = base.AbstractAverage.__doc__


class TimeDecimation(AbstractADRFIZ, base.AbstractTimeDecimation):
    __doc__ = base.AbstractTimeDecimation.__doc__


class Dense(AbstractADRFIZ, _complex.Dense):
    __doc__ = _complex.Dense.__doc__


class Recurrent(AbstractADRFIZ, _complex.Recurrent):
    __doc__ = _complex.Recurrent.__doc__


class KWTA(AbstractADRFIZ, _complex.KWTA):
    __doc__ = _complex.KWTA.__doc__


class Conv(AbstractADRFIZ, _complex.Conv):
    __doc__ = _complex.Conv.__doc__


class ConvT(AbstractADRFIZ, _complex.ConvT):
    __doc__ = _complex.ConvT.__doc__


class Pool(AbstractADRFIZ, _complex.Pool):
    __doc__ = _complex.Pool.__doc__


class Unpool(AbstractADRFIZ, _complex.Unpool):
    __doc__ = _complex.Unpool.__doc__

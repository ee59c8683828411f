"""Adaptive resonate-and-fire (phase threshold) blocks (lava-dl ``slayer.block.adrf`` API)
on Loihi's integer kernels.

Every block builds a :class:`loihi_slayer.neuron.adrf.Neuron` from
``neuron_params`` (a dict of its constructor arguments, not modified), feeds it
through a complex synapse (:mod:`loihi_slayer.synapse.complex`) whose default
``pre_hook_fx`` is the neuron's ``quantize_8bit``, and shifts its output by one
step (``delay_shift=True``), so that training sees exactly what the chip
computes. The block types are the ones lava-dl's block reference lists for
``adrf``. Export: see :mod:`loihi_slayer.block._complex` (``Dense``,
``Conv``, ``ConvT``, ``Pool``, ``Unpool`` and ``Input`` are written; blocks with
a complex recurrent or KWTA synapse are refused with a message naming the block).

Examples
--------
>>> from loihi_slayer.block import adrf
>>> params = {"threshold": 0.1, "threshold_step": 0.05, "period": 10, "decay": 0.1,
...           "threshold_decay": 0.1, "refractory_decay": 0.1}
>>> net = torch.nn.Sequential(adrf.Dense(params, 20, 16), adrf.Dense(params, 16, 4))
"""

from __future__ import annotations

import torch

from ..neuron import adrf as _neuron
from . import _complex, base

__all__ = [
    "AbstractADRF",
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


class AbstractADRF(torch.nn.Module):
    """Base of the ADRF blocks (lava-dl ``AbstractADRF``): neuron family and classes."""

    family = "adrf"
    neuron_class = _neuron.Neuron
    default_delay_shift = True


class Input(AbstractADRF, _complex.Input):
    __doc__ = _complex.Input.__doc__


class Flatten(AbstractADRF, base.AbstractFlatten):
    __doc__ = base.AbstractFlatten.__doc__


class Average(AbstractADRF, base.AbstractAverage):
    __doc__ = base.AbstractAverage.__doc__


class TimeDecimation(AbstractADRF, base.AbstractTimeDecimation):
    __doc__ = base.AbstractTimeDecimation.__doc__


class Dense(AbstractADRF, _complex.Dense):
    __doc__ = _complex.Dense.__doc__


class Recurrent(AbstractADRF, _complex.Recurrent):
    __doc__ = _complex.Recurrent.__doc__


class KWTA(AbstractADRF, _complex.KWTA):
    __doc__ = _complex.KWTA.__doc__


class Conv(AbstractADRF, _complex.Conv):
    __doc__ = _complex.Conv.__doc__


class ConvT(AbstractADRF, _complex.ConvT):
    __doc__ = _complex.ConvT.__doc__


class Pool(AbstractADRF, _complex.Pool):
    __doc__ = _complex.Pool.__doc__


class Unpool(AbstractADRF, _complex.Unpool):
    __doc__ = _complex.Unpool.__doc__

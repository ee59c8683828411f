"""Resonate-and-fire (phase threshold) blocks (lava-dl ``slayer.block.rf`` API) on Loihi's
integer kernels.

Every block builds a :class:`loihi_slayer.neuron.rf.Neuron` from
``neuron_params`` (a dict of its constructor arguments, not modified), feeds it
through a complex synapse (:mod:`loihi_slayer.synapse.complex`) whose default
``pre_hook_fx`` is the neuron's ``quantize_8bit``, and shifts its output by one
step (``delay_shift=True``), so that training sees exactly what the chip
computes. The block types are the ones lava-dl's block reference lists for
``rf``. Export: see :mod:`loihi_slayer.block._complex` (``Dense``,
``Conv``, ``ConvT``, ``Pool``, ``Unpool`` and ``Input`` are written; blocks with
a complex recurrent or KWTA synapse are refused with a message naming the block).

Examples
--------
>>> from loihi_slayer.block import rf
>>> params = {"threshold": 0.1, "period": 10, "decay": 0.1}
>>> net = torch.nn.Sequential(rf.Dense(params, 20, 16), rf.Dense(params, 16, 4))
"""

from __future__ import annotations

import torch

from ..neuron import rf as _neuron
from . import _complex, base

__all__ = [
    "AbstractRF",
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


class AbstractRF(torch.nn.Module):
    """Base of the RF blocks (lava-dl ``AbstractRF``): neuron family and classes."""

    family = "rf"
    neuron_class = _neuron.Neuron
    default_delay_shift = True


class Input(AbstractRF, _complex.Input):
    __doc__ = _complex.Input.__doc__


class Flatten(AbstractRF, base.AbstractFlatten):
    __doc__ = base.AbstractFlatten.__doc__


class Average(AbstractRF, base.AbstractAverage):
    __doc__ = base.AbstractAverage.__doc__


class TimeDecimation(AbstractRF, base.AbstractTimeDecimation):
    __doc__ = base.AbstractTimeDecimation.__doc__


class Dense(AbstractRF, _complex.Dense):
    __doc__ = _complex.Dense.__doc__


class Affine(AbstractRF, _complex.Affine):
    __doc__ = _complex.Affine.__doc__


class Recurrent(AbstractRF, _complex.Recurrent):
    __doc__ = _complex.Recurrent.__doc__


class KWTA(AbstractRF, _complex.KWTA):
    __doc__ = _complex.KWTA.__doc__


class Conv(AbstractRF, _complex.Conv):
    __doc__ = _complex.Conv.__doc__


class ConvT(AbstractRF, _complex.ConvT):
    __doc__ = _complex.ConvT.__doc__


class Pool(AbstractRF, _complex.Pool):
    __doc__ = _complex.Pool.__doc__


class Unpool(AbstractRF, _complex.Unpool):
    __doc__ = _complex.Unpool.__doc__

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

import torch  # noqa: F401  (doctest namespace)

from ..neuron import rf as _neuron
from . import _complex, base

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


class _RF:
    family = "rf"
    neuron_class = _neuron.Neuron
    default_delay_shift = True


class Input(_RF, _complex.Input):
    __doc__ = _complex.Input.__doc__


class Flatten(_RF, base.AbstractFlatten):
    __doc__ = base.AbstractFlatten.__doc__


class Average(_RF, base.AbstractAverage):
    __doc__ = base.AbstractAverage.__doc__


class TimeDecimation(_RF, base.AbstractTimeDecimation):
    __doc__ = base.AbstractTimeDecimation.__doc__


class Dense(_RF, _complex.Dense):
    __doc__ = _complex.Dense.__doc__


class Affine(_RF, _complex.Affine):
    __doc__ = _complex.Affine.__doc__


class Recurrent(_RF, _complex.Recurrent):
    __doc__ = _complex.Recurrent.__doc__


class KWTA(_RF, _complex.KWTA):
    __doc__ = _complex.KWTA.__doc__


class Conv(_RF, _complex.Conv):
    __doc__ = _complex.Conv.__doc__


class ConvT(_RF, _complex.ConvT):
    __doc__ = _complex.ConvT.__doc__


class Pool(_RF, _complex.Pool):
    __doc__ = _complex.Pool.__doc__


class Unpool(_RF, _complex.Unpool):
    __doc__ = _complex.Unpool.__doc__

"""Sigma-delta blocks (lava-dl ``slayer.block.sigma_delta`` API) on Loihi's integer kernels.

Every block builds a :class:`loihi_slayer.neuron.sigma_delta.Neuron` from
``neuron_params`` (dict with ``threshold`` and ``activation``, not modified),
uses its ``quantize_8bit`` as the default weight ``pre_hook_fx`` and exact
float64 synapses (the graded payloads need it for bit exactness).
``delay_shift`` defaults to False as in lava-dl; set it True on every block to
get the exact chip timing of :mod:`loihi_slayer.block.base` (with False, layer
``k`` lags the chip by ``k`` steps, exact only without bias).

``Input`` runs the delta encoder on ``quantize_8bit(x)`` (lava-dl); ``Output``
is a dense synapse into a sigma accumulator (float64 output, exact).
"""

from __future__ import annotations

import torch

from ..neuron import sigma_delta as _sd
from . import base

__all__ = [
    "AbstractSDRelu",
    "Average",
    "Conv",
    "ConvT",
    "Dense",
    "Flatten",
    "Input",
    "Output",
    "Pool",
    "Unpool",
]


class AbstractSDRelu(torch.nn.Module):
    """Base of the sigma-delta blocks: neuron family, neuron class and default ``delay_shift``."""

    family = "sigma_delta"
    exact_synapse = True
    payload_scale = 4096
    neuron_class = _sd.Neuron
    default_delay_shift = False


class Input(AbstractSDRelu, base.AbstractInput):
    __doc__ = base.AbstractInput.__doc__

    def _run_neuron(self, z):
        return self.neuron.delta(z)


class Output(AbstractSDRelu, base.AbstractOutput):
    __doc__ = base.AbstractOutput.__doc__


class Flatten(AbstractSDRelu, base.AbstractFlatten):
    __doc__ = base.AbstractFlatten.__doc__


class Average(AbstractSDRelu, base.AbstractAverage):
    __doc__ = base.AbstractAverage.__doc__


class Dense(AbstractSDRelu, base.AbstractDense):
    __doc__ = base.AbstractDense.__doc__


class Conv(AbstractSDRelu, base.AbstractConv):
    __doc__ = base.AbstractConv.__doc__


class ConvT(AbstractSDRelu, base.AbstractConvT):
    __doc__ = base.AbstractConvT.__doc__


class Pool(AbstractSDRelu, base.AbstractPool):
    __doc__ = base.AbstractPool.__doc__


class Unpool(AbstractSDRelu, base.AbstractUnpool):
    __doc__ = base.AbstractUnpool.__doc__

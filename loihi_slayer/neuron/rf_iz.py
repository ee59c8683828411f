r"""Resonate-and-fire neuron with an Izhikevich reset (lava-dl ``slayer.neuron.rf_iz``,
``RF_IZHIKEVICH``).

.. math::

    \mathrm{re}[t] &= \operatorname{rz}(C\,\mathrm{re}[t-1]/4096)
        - \operatorname{rz}(S\,\mathrm{im}[t-1]/4096) + 2^6 A_{re}[t]\\
    \mathrm{im}[t] &= \operatorname{rz}(S\,\mathrm{re}[t-1]/4096)
        + \operatorname{rz}(C\,\mathrm{im}[t-1]/4096) + 2^6 A_{im}[t]\\
    s[t] &= \mathrm{im}[t] \ge 2^6\vartheta_{mant};\qquad
        \text{if } s[t]:\ \mathrm{re}[t] \leftarrow 0,\ \mathrm{im}[t] \leftarrow
        2^6\vartheta_{mant} - 1

(integer, saturated to 24 bits: :mod:`loihi_slayer.models.rf_iz`; the outputs
``re``, ``im`` are the pre-reset values), with
:math:`A = \operatorname{rint}(\mathrm{scale}\cdot x)` the complex synaptic sums,
:math:`S, C` the integer rotation of :mod:`loihi_slayer.neuron._resonator`
(spec §6.2/§6.3) and float outputs in units of ``s_scale = 64 * scale``.
Surrogate: lava-dl's real spike function on the spike condition's variable
``im`` (``τ = 100·tau_grad·θ``, ``ρ = 0.1·scale_grad``; ``re`` gets its gradient
only through the rotation), through the transposed rotation with the reset
ignored, as lava-dl (:mod:`loihi_slayer.autograd.resonator`).
"""

from __future__ import annotations

import torch

from .. import models
from ..autograd.resonator import IMAG
from . import rf as _phase
from ._resonator import ImagSpike
from .rf import neuron_params as neuron_params  # the same mapping

TAU_RHO_MULT = 100.0
SCALE_RHO_MULT = 0.1


class Neuron(_phase.Neuron):
    r"""RF_IZ neuron (Izhikevich reset); forward on the integer kernels.

    Parameters
    ----------
    threshold
        Threshold :math:`\vartheta` (quantized to ``trunc(θ·scale)/scale``;
        ``vThMant`` must fit 17 bits).
    period
        Oscillation period :math:`P \ge 4` (with ``shared_param=False``: a scalar
        spreads ±1 % per channel, or a ``(min, max)`` pair).
    decay
        Decay :math:`\alpha \in [0, 1]` (scalar or ``(min, max)``, as ``period``).
    tau_grad, scale_grad
        Surrogate width and scale: ``τ = 100·tau_grad·θ``, ``ρ = 0.1·scale_grad``.
    scale
        Weight scale (``w_scale``); the state scale is ``64·scale``.
    norm
        Must be None: a complex synapse has no bias on the chip.
    dropout
        Optional module applied to the spikes.
    shared_param
        One rotation for all neurons (True) or one per channel (False).
    persistent_state
        Keep the state across calls (reset when the batch size changes).
    requires_grad
        Learn ``sin_decay`` and ``cos_decay``.
    graded_spike
        Emit the imaginary part as payload instead of 1.
    log_init
        Per-channel frequencies log-spaced (True) or uniform (False).
    shape, backend
        Keyword only: neuron shape ``(C,)`` or ``(C, H, W)``; kernel backend
        (``'auto'``, ``'cpu'``, ``'cuda'``, ``'reference'``).
    """

    model = models.get("rf_iz")
    TAU_RHO_MULT = TAU_RHO_MULT
    SCALE_RHO_MULT = SCALE_RHO_MULT
    mode = IMAG

    def spike(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        """Spikes ``imag >= θ`` of given responses (``real`` is not used, as lava-dl)."""
        s = ImagSpike.apply(
            imag,
            self.threshold,
            self.tau_rho * TAU_RHO_MULT,
            self.scale_rho * SCALE_RHO_MULT,
            self.graded_spike,
        )
        return self.drop(s) if self.drop is not None else s

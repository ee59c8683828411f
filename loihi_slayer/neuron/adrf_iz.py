r"""Adaptive resonate-and-fire, Izhikevich spike (lava-dl ``slayer.neuron.adrf_iz``,
``ADRF_IZHIKEVICH``).

.. math::

    \mathrm{re}[t] &= \operatorname{rz}(C\,\mathrm{re}[t-1]/4096)
        - \operatorname{rz}(S\,\mathrm{im}[t-1]/4096) + 2^6 A_{re}[t]\\
    \mathrm{im}[t] &= \operatorname{rz}(S\,\mathrm{re}[t-1]/4096)
        + \operatorname{rz}(C\,\mathrm{im}[t-1]/4096) + 2^6 A_{im}[t]\\
    r[t] &= \operatorname{rz}(r[t-1](4096-\mathrm{refDecay})/4096)\\
    \vartheta[t] &= \operatorname{rz}\big((\vartheta[t-1]-\vartheta_0)(4096-\mathrm{thDecay})
        /4096\big) + \vartheta_0\\
    s[t] &= \mathrm{im}[t] \ge \vartheta[t] + r[t];\qquad
        \text{if } s[t]:\ r \mathrel{+}= 2\vartheta[t],\ \vartheta \mathrel{+}= 2^6\mathrm{vThStep}

(integer, saturated to 24 bits: :mod:`loihi_slayer.models.adrf_iz`; no reset of ``re``, ``im``;
:math:`\vartheta_0 = 2^6\mathrm{vThMant}`), with
:math:`A = \operatorname{rint}(\mathrm{scale}\cdot x)` the complex synaptic sums,
:math:`S, C` the integer rotation of :mod:`loihi_slayer.neuron._resonator`
(spec §6.2) and float outputs in units of ``s_scale = 64 * scale``. Surrogate:
lava-dl's real spike function on the spike condition's variable ``im`` against
the effective threshold ``θ[t] + r[t]`` (``τ = 100·tau_grad·θ``,
``ρ = 0.1·scale_grad``), through the transposed rotation
(:mod:`loihi_slayer.autograd.resonator`); no gradient through ``θ``, ``r``.

lava-dl's ``adrf_iz`` has no ``device_params`` and no ``neuron_params``; both
are provided here (type ``ADRF_IZHIKEVICH``, the netx fields of spec
``netx-hdf5.md`` §4.5).
"""

from __future__ import annotations

import torch

from .. import models
from ..autograd.resonator import IMAG
from . import adrf as _phase
from ._resonator import ImagSpike
from .adrf import neuron_params as neuron_params  # the same mapping

TAU_RHO_MULT = 100.0
SCALE_RHO_MULT = 0.1


class Neuron(_phase.Neuron):
    r"""ADRF_IZ neuron (adaptive threshold on ``im``); forward on the integer kernels.

    Parameters
    ----------
    threshold
        Base threshold :math:`\vartheta_0` (quantized to ``trunc(θ·scale)/scale``;
        ``vThMant`` must fit 17 bits).
    threshold_step
        Threshold increase per spike (``vThStep = trunc(step·scale)``, 17 bits).
    period
        Oscillation period :math:`P \ge 4` (with ``shared_param=False``: a scalar
        spreads ±1 % per channel, or a ``(min, max)`` pair).
    decay
        Decay :math:`\alpha \in [0, 1]` (scalar or ``(min, max)``, as ``period``).
    threshold_decay, refractory_decay
        Fractions in ``[0, 1]`` per step (``thDecay``, ``refDecay`` ×4096); with
        ``shared_param=False`` a ``(min, max)`` pair draws per channel.
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
        Learn ``sin_decay`` and ``cos_decay`` (the threshold decays get no gradient).
    graded_spike
        Emit the imaginary part as payload instead of 1.
    log_init
        Per-channel frequencies log-spaced (True) or uniform (False).
    shape, backend
        Keyword only: neuron shape ``(C,)`` or ``(C, H, W)``; kernel backend
        (``'auto'``, ``'cpu'``, ``'cuda'``, ``'reference'``).
    """

    model = models.get("adrf_iz")
    TAU_RHO_MULT = TAU_RHO_MULT
    SCALE_RHO_MULT = SCALE_RHO_MULT
    mode = IMAG

    def spike(
        self,
        real: torch.Tensor,
        imag: torch.Tensor,
        threshold: torch.Tensor,
        refractory: torch.Tensor,
    ) -> torch.Tensor:
        """Spikes ``imag >= threshold + refractory`` (``real`` is not used, as lava-dl)."""
        s = ImagSpike.apply(
            imag,
            threshold + refractory,
            self.tau_rho * TAU_RHO_MULT,
            self.scale_rho * SCALE_RHO_MULT,
            self.graded_spike,
        )
        return self.drop(s) if self.drop is not None else s

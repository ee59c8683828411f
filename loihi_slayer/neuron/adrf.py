r"""Adaptive resonate-and-fire, phase threshold (lava-dl ``slayer.neuron.adrf``, ``ADRF_PHASE``).

.. math::

    \mathrm{re}[t] &= \operatorname{rz}(C\,\mathrm{re}[t-1]/4096)
        - \operatorname{rz}(S\,\mathrm{im}[t-1]/4096) + 2^6 A_{re}[t]\\
    \mathrm{im}[t] &= \operatorname{rz}(S\,\mathrm{re}[t-1]/4096)
        + \operatorname{rz}(C\,\mathrm{im}[t-1]/4096) + 2^6 A_{im}[t]\\
    r[t] &= \operatorname{rz}(r[t-1](4096-\mathrm{refDecay})/4096)\\
    \vartheta[t] &= \operatorname{rz}\big((\vartheta[t-1]-\vartheta_0)(4096-\mathrm{thDecay})
        /4096\big) + \vartheta_0\\
    s[t] &= \mathrm{re}[t] \ge \vartheta[t] + r[t] \;\wedge\; \mathrm{im}[t] \ge 0
        \;\wedge\; \mathrm{im}[t-1] < 0;\qquad
        \text{if } s[t]:\ r \mathrel{+}= 2\vartheta[t],\ \vartheta \mathrel{+}= 2^6\mathrm{vThStep}

(integer, saturated to 24 bits: :mod:`loihi_slayer.models.adrf`;
:math:`\vartheta_0 = 2^6\mathrm{vThMant}`), with
:math:`A = \operatorname{rint}(\mathrm{scale}\cdot x)` the complex synaptic sums,
:math:`S, C` the integer rotation of :mod:`loihi_slayer.neuron._resonator`
(spec §6.2) and float outputs in units of ``s_scale = 64 * scale``. Surrogate:
lava-dl's complex spike (:mod:`loihi_slayer.spike.complex`) with
``τ = 100·tau_grad·θ``, ``ρ = 0.1·scale_grad`` (lava-dl's ADRF multipliers)
against the effective threshold ``θ[t] + r[t]``, through the transposed rotation
(:mod:`loihi_slayer.autograd.resonator`); no gradient through ``θ``, ``r``.

lava-dl's ``adrf.neuron_params`` is broken (spec §6.4): trailing commas make
``sin_decay``/``cos_decay`` tuples, so it raises a TypeError, and it would take
``threshold_step`` from ``vThMant``. :func:`neuron_params` here returns the
intended mapping (``threshold_step`` from ``vThStep``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import models
from ..autograd.resonator import PHASE
from ..spike import complex as complex_spike
from ._resonator import AdaptiveResonatorNeuron

TAU_RHO_MULT = 100.0
SCALE_RHO_MULT = 0.1


def neuron_params(device_params: dict, scale: int = 1 << 6, p_scale: int = 1 << 12) -> dict:
    """Constructor arguments from exported device parameters (lava-dl's mapping, fixed)."""
    s = np.asarray(device_params["sinDecay"], np.float64) / p_scale
    c = np.asarray(device_params["cosDecay"], np.float64) / p_scale
    return {
        "threshold": device_params["vThMant"] / scale,
        "period": 2 * np.pi / np.arctan2(s, c),
        "decay": 1 - np.sqrt(s * s + c * c),
        "threshold_step": device_params["vThStep"] / scale,
        "threshold_decay": device_params["thDecay"] / p_scale,
        "refractory_decay": device_params["refDecay"] / p_scale,
    }


class Neuron(AdaptiveResonatorNeuron):
    r"""ADRF neuron (adaptive phase threshold); forward on the integer kernels.

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
        Emit the real part as payload instead of 1.
    log_init
        Per-channel frequencies log-spaced (True) or uniform (False).
    shape, backend
        Keyword only: neuron shape ``(C,)`` or ``(C, H, W)``; kernel backend
        (``'auto'``, ``'cpu'``, ``'cuda'``, ``'reference'``).
    """

    model = models.get("adrf")
    TAU_RHO_MULT = TAU_RHO_MULT
    SCALE_RHO_MULT = SCALE_RHO_MULT
    mode = PHASE

    def __init__(
        self,
        threshold: float,
        threshold_step: float,
        period: float | Sequence[float],
        decay: float | Sequence[float],
        threshold_decay: float | Sequence[float],
        refractory_decay: float | Sequence[float],
        tau_grad: float = 1,
        scale_grad: float = 1,
        scale: int = 1 << 6,
        norm: Any = None,
        dropout: torch.nn.Module | None = None,
        shared_param: bool = True,
        persistent_state: bool = False,
        requires_grad: bool = False,
        graded_spike: bool = False,
        log_init: bool = True,
        *,
        shape: Sequence[int] | None = None,
        backend: str = "auto",
    ) -> None:
        self._setup(
            threshold,
            period,
            decay,
            tau_grad,
            scale_grad,
            scale,
            norm,
            dropout,
            shared_param,
            persistent_state,
            requires_grad,
            graded_spike,
            log_init,
            shape,
            backend,
            {"threshold_decay": threshold_decay, "refractory_decay": refractory_decay},
        )
        self._setup_step(threshold_step)

    def spike(
        self,
        real: torch.Tensor,
        imag: torch.Tensor,
        threshold: torch.Tensor,
        refractory: torch.Tensor,
    ) -> torch.Tensor:
        """Phase-threshold spikes against ``threshold + refractory`` (exact float compares)."""
        last = self._imag_before if self._imag_before is not None else 0.0
        s = complex_spike.Spike.apply(
            real,
            imag,
            threshold + refractory,
            self.tau_rho * TAU_RHO_MULT,
            self.scale_rho * SCALE_RHO_MULT,
            self.graded_spike,
            last,
            1,
        )
        return self.drop(s) if self.drop is not None else s

r"""Resonate-and-fire neuron with a phase threshold (lava-dl ``slayer.neuron.rf``, ``RF_PHASE``).

.. math::

    \mathrm{re}[t] &= \operatorname{rz}(C\,\mathrm{re}[t-1]/4096)
        - \operatorname{rz}(S\,\mathrm{im}[t-1]/4096) + 2^6 A_{re}[t]\\
    \mathrm{im}[t] &= \operatorname{rz}(S\,\mathrm{re}[t-1]/4096)
        + \operatorname{rz}(C\,\mathrm{im}[t-1]/4096) + 2^6 A_{im}[t]\\
    s[t] &= \mathrm{re}[t] \ge 2^6\vartheta_{mant} \;\wedge\; \mathrm{im}[t] \ge 0
        \;\wedge\; \mathrm{im}[t-1] < 0

(integer, saturated to 24 bits: :mod:`loihi_slayer.models.rf`), with
:math:`A = \operatorname{rint}(\mathrm{scale}\cdot x)` the complex synaptic sums,
:math:`S, C` the integer rotation of :mod:`loihi_slayer.neuron._resonator`
(spec §6.2) and float outputs in units of ``s_scale = 64 * scale``. Surrogate:
lava-dl's complex spike (:mod:`loihi_slayer.spike.complex`) with
``τ = 0.5·tau_grad·θ``, ``ρ = 10·scale_grad``, through the transposed rotation
(:mod:`loihi_slayer.autograd.resonator`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import models
from ..autograd.resonator import PHASE
from ..spike import complex as complex_spike
from ._resonator import ResonatorNeuron

TAU_RHO_MULT = 0.5
SCALE_RHO_MULT = 10.0


def neuron_params(device_params: dict, scale: int = 1 << 6, p_scale: int = 1 << 12) -> dict:
    """Constructor arguments ``threshold, period, decay`` from exported device parameters."""
    s = np.asarray(device_params["sinDecay"], np.float64) / p_scale
    c = np.asarray(device_params["cosDecay"], np.float64) / p_scale
    return {
        "threshold": device_params["vThMant"] / scale,
        "period": 2 * np.pi / np.arctan2(s, c),
        "decay": 1 - np.sqrt(s * s + c * c),
    }


class Neuron(ResonatorNeuron):
    r"""RF neuron (phase threshold); forward on the integer kernels.

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
        Surrogate width and scale: ``τ = 0.5·tau_grad·θ``, ``ρ = 10·scale_grad``.
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
        Emit the real part as payload instead of 1.
    log_init
        Per-channel frequencies log-spaced (True) or uniform (False).
    shape, backend
        Keyword only: neuron shape ``(C,)`` or ``(C, H, W)``; kernel backend
        (``'auto'``, ``'cpu'``, ``'cuda'``, ``'reference'``).
    """

    model = models.get("rf")
    TAU_RHO_MULT = TAU_RHO_MULT
    SCALE_RHO_MULT = SCALE_RHO_MULT
    mode = PHASE

    def __init__(
        self,
        threshold: float,
        period: float | Sequence[float],
        decay: float | Sequence[float],
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
        )

    def dynamics(self, input: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Real and imaginary responses ``(N, *shape, T)`` (advances the persistent state)."""
        _, re, im, _, _ = self._run(input)
        return re, im

    def spike(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        """Phase-threshold spikes of given responses (exact float compare on the state grid)."""
        last = self._imag_before if self._imag_before is not None else 0.0
        s = complex_spike.Spike.apply(
            real,
            imag,
            self.threshold,
            self.tau_rho * TAU_RHO_MULT,
            self.scale_rho * SCALE_RHO_MULT,
            self.graded_spike,
            last,
            1,
        )
        return self.drop(s) if self.drop is not None else s

r"""Adaptive LIF neuron for training (lava-dl ``slayer.neuron.alif`` API).

The forward pass is the chip's integer ALIF (spec ``loihi-fixed-point.md`` §6.1,
lava-nc's fixed-point ATRLIF), run by the registered model's generated kernels
(:mod:`loihi_slayer.models.alif`, through :func:`loihi_slayer.fixed.run`):

.. math::

    a[t] &= \operatorname{rne}(\mathrm{scale}\cdot x[t]) + b \\
    u[t] &= \operatorname{sat}\big(\operatorname{rz}(u[t-1](4096-D_u)/4096) + 2^6 a[t]\big)\\
    v[t] &= \operatorname{sat}\big(\operatorname{rz}(v[t-1](4096-D_v)/4096) + u[t]\big)\\
    r[t] &= \operatorname{rz}(r[t-1](4096-D_r)/4096), \qquad
    \vartheta[t] = \operatorname{rz}\big((\vartheta[t-1]-\vartheta_0)(4096-D_\vartheta)/4096\big)
        + \vartheta_0\\
    s[t] &= v[t] \ge \vartheta[t] + r[t];\qquad
        \text{if } s[t]:\ r[t] \mathrel{+}= 2\vartheta[t],\ \vartheta[t] \mathrel{+}= \Delta

with :math:`\vartheta_0 = 2^6\,\mathrm{vThMant}`, :math:`\Delta = 2^6\,\mathrm{vThStep}`,
:math:`D = \operatorname{rne}(4096\,\alpha)` and ``b`` the bias mantissa of a
:class:`~loihi_slayer.neuron.norm.MeanOnlyBatchNorm`. lava-dl applies ALIF's
``norm`` to the input *before* the current integrator, so the norm's
``x - Q(mean)`` is a chip bias added to the synaptic input every step (exported
as the layer ``bias``; the emulator adds it to the model's input). Float outputs
(current, voltage, threshold, refractory) are the integer states over
``s_scale = 64 * scale``.

**Exactness.** ``a`` is the exact integer synaptic sum when ``x`` is a multiple of
``1/scale``: weights on the ``quantize_8bit`` grid (``pre_hook_fx``, the blocks'
default) with 0/1 spikes give multiples of ``2/scale``, and the norm subtracts a
mean on the same grid. Float32 synapse sums are exact while :math:`|a| < 2^{24}`.
States saturate at :math:`\pm(2^{23}-1)` (24-bit registers), where lava-dl's
int64 arithmetic would keep growing.

**Differences from lava-dl** (each brings training to what the chip computes):
``v``, ``θ`` and ``r`` are compared as integers (lava-dl compares floats, equal on
this grid); ``threshold_decay``/``refractory_decay`` outside ``[0, 1]`` are refused
(lava-dl does not check them); :func:`neuron_params` maps ``vThStep`` to
``threshold_step`` (lava-dl maps ``vThMant``); ``ref_delay`` (keyword only,
default 1 = lava-dl) adds Loihi's refractory delay of the model.

The backward pass is lava-dl's surrogate at ``v - (θ + r)`` with θ and r held
constant, as compiled kernels: see :mod:`loihi_slayer.autograd.alif`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .. import models
from ..autograd import _family
from ..autograd.alif import SCALE_RHO_MULT, TAU_RHO_MULT, AlifOp, Surrogate, spike
from ..errors import ParameterError
from ._family import Decay, FamilyNeuron
from .base import check_finite_float
from .norm import MeanOnlyBatchNorm

__all__ = ["Neuron", "neuron_params"]


def neuron_params(device_params: dict, scale: int = 1 << 6, p_scale: int = 1 << 12) -> dict:
    """Translate exported device parameters back to constructor arguments.

    ``threshold_step`` comes from ``vThStep`` (lava-dl reads ``vThMant`` there).
    """
    return {
        "threshold": device_params["vThMant"] / scale,
        "threshold_step": device_params["vThStep"] / scale,
        "current_decay": device_params["iDecay"] / p_scale,
        "voltage_decay": device_params["vDecay"] / p_scale,
        "threshold_decay": device_params["thDecay"] / p_scale,
        "refractory_decay": device_params["refDecay"] / p_scale,
    }


class Neuron(FamilyNeuron):
    r"""Adaptive-threshold LIF neuron; forward on the integer kernels, surrogate backward.

    Parameters
    ----------
    threshold
        Base threshold :math:`\vartheta_0` (quantized to ``trunc(θ·scale)/scale``).
    threshold_step
        Threshold increase per spike (quantized the same way).
    current_decay, voltage_decay, threshold_decay, refractory_decay
        Decay fractions in ``[0, 1]`` (stored ×4096, used as ``rne``). With
        ``shared_param=False`` a scalar current/voltage decay draws per-channel
        values within ±1 % (threshold/refractory: the value itself), a pair
        ``(min, max)`` uniformly in that range, when the shape is set (lava-dl).
    tau_grad, scale_grad
        Surrogate width and scale: ``τ = 100·tau_grad·θ0``, ``ρ = 0.1·scale_grad``.
    scale
        Weight scale (``w_scale``); the state scale is ``64·scale``.
    norm
        ``None`` or :class:`~loihi_slayer.neuron.norm.MeanOnlyBatchNorm` (class or
        factory), applied to the input; exported as the chip bias.
    dropout
        Optional module applied to the spikes.
    shared_param
        One set of decays for all neurons (True) or one per channel (False).
    persistent_state
        Keep ``u, v, θ, r`` across calls (restarted when the batch size changes).
    requires_grad
        Learn the current and voltage decays (lava-dl also makes the threshold
        and refractory decays parameters; they receive no gradient).
    graded_spike
        Emit ``v`` as the spike payload (training only: the chip's ALIF spikes are
        binary, so export refuses it).
    ref_delay
        Keyword only: Loihi refractory delay ``refDelay`` (1 = none, lava-dl's value;
        ``R > 1`` holds ``v`` at 0 for ``R - 1`` steps after a spike).
    shape
        Neuron shape ``(C,)`` or ``(C, H, W)`` (else :meth:`init_shape`, or the
        first input when all parameters are shared).
    backend
        ``'auto'`` (njit for CPU tensors, numba.cuda for CUDA tensors), ``'cpu'``,
        ``'cuda'`` or ``'reference'``.

    Raises
    ------
    ParameterError
        A decay outside ``[0, 1]``, a threshold or threshold step outside 17 bits,
        ``ref_delay`` outside ``[1, 63]``.
    """

    model = models.get("alif")
    decays = (
        Decay("current_decay", "i_decay"),
        Decay("voltage_decay", "v_decay"),
        Decay("threshold_decay", "th_decay", jitter=False, clamp=False, learnable=False),
        Decay("refractory_decay", "ref_decay", jitter=False, clamp=False, learnable=False),
    )

    def __init__(
        self,
        threshold: float,
        threshold_step: float,
        current_decay: float | Sequence[float],
        voltage_decay: float | Sequence[float],
        threshold_decay: float | Sequence[float],
        refractory_decay: float | Sequence[float],
        tau_grad: float = 1,
        scale_grad: float = 1,
        scale: int = 1 << 6,
        norm: Callable | None = None,
        dropout: torch.nn.Module | None = None,
        shared_param: bool = True,
        persistent_state: bool = False,
        requires_grad: bool = False,
        graded_spike: bool = False,
        *,
        ref_delay: int = 1,
        shape: Sequence[int] | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__(
            threshold,
            tau_grad,
            scale_grad,
            scale,
            persistent_state,
            shared_param,
            requires_grad,
            {
                "current_decay": current_decay,
                "voltage_decay": voltage_decay,
                "threshold_decay": threshold_decay,
                "refractory_decay": refractory_decay,
            },
            None,
            backend,
        )
        step = self._float_arg("threshold_step", threshold_step)
        self.threshold_step = int(step * self.w_scale) / self.w_scale
        self._check_device(
            "threshold_step", "v_th_step", self.v_th_step, "trunc(threshold_step * scale)"
        )
        if isinstance(ref_delay, bool) or not isinstance(ref_delay, (int, np.integer)):
            raise ParameterError(f"{self._name}: ref_delay must be an int, got {ref_delay!r}")
        self._ref_delay = int(ref_delay)
        self._check_device("ref_delay", "ref_delay", self._ref_delay)
        self.graded_spike = bool(graded_spike)
        if self.tau_grad <= 0:
            raise ParameterError(f"{self._name}: tau_grad must be > 0, got {self.tau_grad}")
        self.norm = None
        if norm is not None:
            self.norm = norm()
            if not isinstance(self.norm, MeanOnlyBatchNorm):
                raise ParameterError(
                    f"{self._name}: norm must build a MeanOnlyBatchNorm (it maps to the chip "
                    f"bias), got {type(self.norm).__name__}"
                )
            self.norm.pre_hook_fx = self.quantize_8bit
        self.drop = dropout
        if shape is not None:
            self.init_shape(shape)

    def _float_arg(self, name: str, value) -> float:
        return check_finite_float(f"{self._name}: {name}", value)

    # ------------------------------------------------------------- properties
    @property
    def v_th_step(self) -> int:
        """Threshold step mantissa ``vThStep = trunc(threshold_step * scale)``."""
        return int(self.threshold_step * self.w_scale)

    @property
    def ref_delay(self) -> int:
        """Refractory delay ``refDelay`` (1: none)."""
        return self._ref_delay

    @property
    def cx_current_decay(self):
        """Hardware ``iDecay`` (int, or int array per channel)."""
        return self.decay_int("current_decay")

    @property
    def cx_voltage_decay(self):
        """Hardware ``vDecay``."""
        return self.decay_int("voltage_decay")

    @property
    def cx_threshold_decay(self):
        """Hardware ``thDecay``."""
        return self.decay_int("threshold_decay")

    @property
    def cx_refractory_decay(self):
        """Hardware ``refDecay``."""
        return self.decay_int("refractory_decay")

    @property
    def bias_mant(self) -> np.ndarray | None:
        """Per-channel chip bias ``-Q(running_mean) * scale`` of the norm, or None."""
        if self.norm is None:
            return None
        return torch.round(self.norm.bias.detach()).to(torch.int64).cpu().numpy()

    @property
    def device_params(self) -> dict:
        """Export parameters (netx field names, lava-dl's ``'type'``)."""
        return {
            "type": self.model.netx_type,
            "iDecay": self.cx_current_decay,
            "vDecay": self.cx_voltage_decay,
            "thDecay": self.cx_threshold_decay,
            "refDecay": self.cx_refractory_decay,
            "vThMant": self.v_th_mant,
            "vThStep": self.v_th_step,
            "refDelay": self.ref_delay,
            "gradedSpike": self.graded_spike,
        }

    def _surrogate(self) -> Surrogate:
        theta = self.threshold if self.threshold > 0 else 1.0 / self.w_scale
        return Surrogate(
            TAU_RHO_MULT * self.tau_grad * theta,
            SCALE_RHO_MULT * self.scale_grad,
            self.graded_spike,
        )

    # ----------------------------------------------------------------- state
    @property
    def current_state(self) -> torch.Tensor | None:
        """Persistent current ``u / s_scale``, or None."""
        return self._state_float("u")

    @property
    def voltage_state(self) -> torch.Tensor | None:
        """Persistent voltage ``v / s_scale``, or None."""
        return self._state_float("v")

    @property
    def threshold_state(self) -> torch.Tensor | None:
        """Persistent adaptive threshold ``θ / s_scale``, or None."""
        return self._state_float("th")

    @property
    def refractory_state(self) -> torch.Tensor | None:
        """Persistent refractory state ``r / s_scale``, or None."""
        return self._state_float("r")

    # ---------------------------------------------------------------- forward
    def _run(self, x: torch.Tensor, want_trace: bool):
        self._check_input(x)
        if self.requires_grad:
            self.clamp()
        if self.norm is not None:
            x = self.norm(x)  # x - Q(mean): stays on the 2/scale grid
        params = self.model_params(
            v_th_mant=self.v_th_mant, v_th_step=self.v_th_step, ref_delay=self.ref_delay
        )
        lead = tuple(x.shape[:-1])
        op = AlifOp(
            self,
            params,
            self._get_state(lead, params),
            self._surrogate(),
            self.current_decay.requires_grad,
            self.voltage_decay.requires_grad,
            (self.current_decay.numel(), self.voltage_decay.numel()),
            torch.is_grad_enabled()
            and (
                x.requires_grad
                or self.current_decay.requires_grad
                or self.voltage_decay.requires_grad
            ),
        )
        return _family.apply(op, x, want_trace, self.current_decay, self.voltage_decay)

    def dynamics(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Current, voltage, threshold and refractory state, each ``(N, *shape, T)``.

        Threshold and refractory are the values before a spike's update (lava-dl);
        the persistent state is advanced.
        """
        _, current, voltage, threshold, refractory = self._run(x, True)
        return current, voltage, threshold, refractory

    def spike(
        self, voltage: torch.Tensor, threshold: torch.Tensor, refractory: torch.Tensor
    ) -> torch.Tensor:
        """Spikes of :meth:`dynamics` outputs (``v >= θ + r`` on the integer grid).

        Equals :meth:`forward` for ``ref_delay == 1``; with a longer refractory delay
        use :meth:`forward` (the hold is not visible in the traces).
        """
        s = spike(voltage, threshold, refractory, self.s_scale, self._surrogate())
        return self.drop(s) if self.drop is not None else s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes ``(N, *shape, T)`` (binary, or ``v`` where ``graded_spike``)."""
        s = self._run(x, False)[0]
        return self.drop(s) if self.drop is not None else s

r"""Shared machinery of the resonator training neurons (``rf``, ``rf_iz``, ``adrf``, ``adrf_iz``).

The float parameters map to the integer rotation as lava-dl (spec
``loihi-fixed-point.md`` §6.2): for a period :math:`P` and a decay :math:`\alpha`

.. math::

    S = \operatorname{rne}\big(4096(1-\alpha)\sin(2\pi/P)\big),\qquad
    C = \operatorname{rne}\big(4096(1-\alpha)\cos(2\pi/P)\big)

with the stored floats (the learnable parameters ``sin_decay``, ``cos_decay``)
clamped to a gain :math:`\sqrt{S^2 + C^2} \le 4095`, :math:`S \ge 1` and
:math:`C \ge 0` before the rounding, and :math:`P \ge 4` enforced at
construction. The integers are used as they are by the kernels, the export and
the emulator (never recomputed through float trigonometry, §6.6).

The forward runs the integer kernels of the model declared in
:mod:`loihi_slayer.models` (class attribute ``model``) through
:class:`loihi_slayer.autograd.resonator.ResonatorFunction`; see there for the
exactness condition and the surrogate gradient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..autograd.resonator import (
    PHASE,
    ResonatorFunction,
    ResonatorSpec,
    ResonatorState,
    rotation_int,
    surrogate_tau,
)
from ..errors import ParameterError
from ..fixed.params import VTH_MANT_MAX
from . import base

#: Smallest period: a rotation within the first quadrant (cos >= 0).
MIN_PERIOD = 4.0


def _check_unit(name: str, value: float, where: str) -> float:
    v = base.check_finite_float(f"{where}: {name}", value)
    if not 0.0 <= v <= 1.0:
        raise ParameterError(f"{where}: {name} = {v} is outside the allowed range [0, 1]")
    return v


def _check_period(value: float, where: str) -> float:
    v = base.check_finite_float(f"{where}: period", value)
    if not v >= MIN_PERIOD:
        raise ParameterError(
            f"{where}: period = {v} is outside the allowed range [{MIN_PERIOD:g}, inf) "
            f"(a discrete resonator needs at least 4 steps per oscillation)"
        )
    return v


def param_range(name: str, value: Any, shared: bool, where: str, check, bounds) -> tuple:
    """``(lo, hi)`` of a parameter: a scalar, or a ``(min, max)`` pair when not shared.

    A scalar with ``shared_param=False`` spreads ±1 % (lava-dl's per-channel
    jitter of the period and decay) within ``bounds``; ``bounds = None`` keeps it exact.
    """
    if np.isscalar(value) or (isinstance(value, torch.Tensor) and value.numel() == 1):
        v = check(name, float(value), where)
        if shared or bounds is None:
            return v, v
        return max(v * 0.99, bounds[0]), min(v * 1.01, bounds[1])
    if shared:
        raise ParameterError(
            f"{where}: {name} must be a scalar when shared_param=True, got {value!r}"
        )
    vals = list(value)
    if len(vals) != 2:
        raise ParameterError(
            f"{where}: {name} must be a scalar or a (min, max) pair, got {value!r}"
        )
    lo, hi = (check(name, float(v), where) for v in vals)
    return lo, hi


class ImagSpike(torch.autograd.Function):
    """``s = [im >= θ]`` (graded: ``s·im``) with lava-dl's real-spike surrogate on ``im``."""

    @staticmethod
    def forward(ctx, imag, threshold, tau_rho, scale_rho, graded):
        th = torch.as_tensor(threshold, dtype=imag.dtype, device=imag.device)
        s = (imag >= th).to(imag.dtype)
        ctx.save_for_backward(imag, th)
        ctx.cfg = (float(tau_rho), float(scale_rho), bool(graded))
        return s * imag if graded else s

    @staticmethod
    def backward(ctx, g):
        imag, th = ctx.saved_tensors
        tau, rho, graded = ctx.cfg
        d = imag - th
        if graded:
            sd = rho * torch.exp(torch.clamp(d, max=0) / tau)
        else:
            sd = rho / (2 * tau) * torch.exp(-torch.abs(d) / tau)
        return g * sd, None, None, None, None


class ResonatorNeuron(base.Neuron):
    """Base of the four resonator neurons (see the module docstring).

    Subclasses set ``model`` (a :mod:`loihi_slayer.models` declaration),
    ``TAU_RHO_MULT``, ``SCALE_RHO_MULT`` and ``mode`` (phase spike or ``im >= θ``).
    """

    model: Any = None
    TAU_RHO_MULT: float = 100.0
    SCALE_RHO_MULT: float = 0.1
    mode: int = PHASE

    def _setup(
        self,
        threshold: float,
        period: Any,
        decay: Any,
        tau_grad: float,
        scale_grad: float,
        scale: int,
        norm: Any,
        dropout: torch.nn.Module | None,
        shared_param: bool,
        persistent_state: bool,
        requires_grad: bool,
        graded_spike: bool,
        log_init: bool,
        shape: Sequence[int] | None,
        backend: str,
    ) -> None:
        base.Neuron.__init__(
            self, threshold, tau_grad, scale_grad, scale, persistent_state, shared_param,
            requires_grad, None, backend,
        )  # fmt: skip
        where = self.where
        if self.v_th_mant > VTH_MANT_MAX:
            raise ParameterError(
                f"{where}: threshold = {threshold} gives vThMant = {self.v_th_mant}, outside the "
                f"hardware range [0, {VTH_MANT_MAX}]"
            )
        self.tau_rho = surrogate_tau(self._threshold, self.tau_grad, 1.0, where)
        self.scale_rho = self.scale_grad
        if norm is not None:
            raise ParameterError(
                f"{where}: norm = {norm!r} is not supported: a complex synapse has no bias on the "
                f"chip (netx ignores it), so a norm could not be deployed; use norm=None"
            )
        self.norm = None
        self.drop = dropout
        self.graded_spike = bool(graded_spike)
        self.log_init = bool(log_init)
        self._period_range = param_range(
            "period", period, self.shared_param, where, lambda n, v, w: _check_period(v, w),
            (MIN_PERIOD, math.inf),
        )  # fmt: skip
        self._decay_range = param_range(
            "decay", decay, self.shared_param, where, _check_unit, (0.0, 1.0)
        )
        sin0, cos0 = self._rotation(self._period_range[0], self._decay_range[0])
        self.sin_decay = torch.nn.Parameter(
            torch.tensor([sin0], dtype=torch.float32), requires_grad=self.requires_grad
        )
        self.cos_decay = torch.nn.Parameter(
            torch.tensor([cos0], dtype=torch.float32), requires_grad=self.requires_grad
        )
        self._state: ResonatorState | None = None
        self._imag_before: torch.Tensor | None = None
        self._shape_arg = shape

    def _finish(self) -> None:
        """Clamp and fix the shape (call at the end of the subclass ``__init__``)."""
        self.clamp()
        if self._shape_arg is not None:
            self.init_shape(self._shape_arg)
        del self._shape_arg

    @property
    def where(self) -> str:
        """``neuron.<name>.Neuron``: the prefix of error messages."""
        return f"neuron.{self.model.name}.Neuron"

    def _rotation(self, period, decay):
        """Float ``(4096(1-α) sin(2π/P), 4096(1-α) cos(2π/P))``."""
        if isinstance(period, torch.Tensor):
            w = 2 * math.pi / period
            return self.p_scale * (1 - decay) * torch.sin(w), self.p_scale * (
                1 - decay
            ) * torch.cos(w)
        w = 2 * math.pi / period
        return self.p_scale * (1 - decay) * math.sin(w), self.p_scale * (1 - decay) * math.cos(w)

    # ------------------------------------------------------------------ shape
    def _draw(self, c: int, device) -> None:
        """Per-channel rotation (lava-dl: log-spaced or uniform frequencies, uniform decays)."""
        p_lo, p_hi = self._period_range
        d_lo, d_hi = self._decay_range
        if self.log_init:
            freq = torch.logspace(-math.log10(p_hi), -math.log10(p_lo), steps=c)
        else:
            freq = 1 / p_hi + (1 / p_lo - 1 / p_hi) * torch.rand(c)
        decay = d_lo + (d_hi - d_lo) * torch.rand(c)
        sin_v, cos_v = self._rotation(1 / freq, decay)
        self.sin_decay.data = sin_v.to(device=device, dtype=torch.float32)
        self.cos_decay.data = cos_v.to(device=device, dtype=torch.float32)

    def init_shape(self, shape: Sequence[int]) -> None:
        """Fix the neuron shape; draws per-channel parameters when ``shared_param=False``."""
        super().init_shape(shape)
        c = self.shape[0]
        if not self.shared_param and self.sin_decay.numel() != c:
            with torch.no_grad():
                self._draw(c, self.sin_decay.device)
            self.clamp()

    def clamp(self) -> None:
        """Clamp the rotation to a gain <= 4095 with ``sin_decay >= 1``, ``cos_decay >= 0``."""
        with torch.no_grad():
            s, c = self.sin_decay.data, self.cos_decay.data
            gain = torch.sqrt(s * s + c * c)
            factor = torch.where(gain > self.p_scale - 1, (self.p_scale - 1) / gain, 1.0)
            s.mul_(factor).clamp_(1, self.p_scale - 1)
            c.mul_(factor).clamp_(0, self.p_scale - 1)

    # ------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.sin_decay.device

    @staticmethod
    def _scalar_or_array(val: np.ndarray):
        return int(val[0]) if val.size == 1 else val

    @property
    def cx_sin_decay(self):
        """Hardware ``sinDecay`` (int, or int array per channel)."""
        self.clamp()
        return self._scalar_or_array(rotation_int(self.sin_decay))

    @property
    def cx_cos_decay(self):
        """Hardware ``cosDecay`` (int, or int array per channel)."""
        self.clamp()
        return self._scalar_or_array(rotation_int(self.cos_decay))

    @property
    def decay(self):
        """Decay :math:`1 - \\sqrt{S^2 + C^2}/4096` of the integer rotation."""
        s = np.asarray(self.cx_sin_decay, np.float64) / self.p_scale
        c = np.asarray(self.cx_cos_decay, np.float64) / self.p_scale
        return 1 - np.sqrt(s * s + c * c)

    @property
    def lam(self):
        """:math:`-\\ln(1 - \\alpha)`."""
        return -np.log(1 - self.decay)

    @property
    def frequency(self):
        """Frequency :math:`\\operatorname{atan2}(S, C)/2\\pi` of the integer rotation."""
        return np.arctan2(self.cx_sin_decay, self.cx_cos_decay) / 2 / np.pi

    @property
    def period(self):
        """Oscillation period ``1 / frequency``."""
        return 1 / self.frequency

    def _extra_params(self) -> dict[str, Any]:
        """Further integer device parameters of the model (adaptive models)."""
        return {}

    @property
    def device_params(self) -> dict:
        """Device parameters with netx field names (and ``type``, ``gradedSpike``)."""
        out = {
            "type": self.model.netx_type,
            "sinDecay": self.cx_sin_decay,
            "cosDecay": self.cx_cos_decay,
            "vThMant": self.v_th_mant,
        }
        fields = {p.name: p.field for p in self.model.params}
        for k, v in self._extra_params().items():
            out[fields[k]] = v
        out["gradedSpike"] = self.graded_spike
        return out

    # ----------------------------------------------------------------- state
    def reset_state(self) -> None:
        """Forget the persistent state."""
        self._state = None

    def _state_values(self, name: str) -> torch.Tensor | None:
        if self._state is None:
            return None
        v = self._state.values[name]
        return v.reshape(-1, *self.shape).to(torch.float32) / self.s_scale

    @property
    def real_state(self) -> torch.Tensor | None:
        """Persistent real state ``re / s_scale`` (after the last step), or None."""
        return self._state_values("re")

    @property
    def imag_state(self) -> torch.Tensor | None:
        """Persistent imaginary state ``im / s_scale`` (after the last step), or None."""
        return self._state_values("im")

    def _holder(self, x: torch.Tensor) -> ResonatorState | None:
        st = self._state
        if not self.persistent_state:
            return None
        rows = x.numel() // x.shape[-1]
        if st is None or st.values["re"].numel() != rows or st.values["re"].device != x.device:
            self._state = None
            return None
        return st

    def spec(self) -> ResonatorSpec:
        """The op configuration for the current parameters."""
        c, hw = self._channels(self.shape) if self.shape else (1, 1)
        extra = self._extra_params()
        return ResonatorSpec(
            model=self.model, scale=self.w_scale, v_th_mant=self.v_th_mant,
            tau_rho=self.tau_rho * self.TAU_RHO_MULT,
            scale_rho=self.scale_rho * self.SCALE_RHO_MULT, graded=self.graded_spike,
            mode=self.mode, reset=self.model.name == "rf_iz", channels=c, per_channel=hw,
            extra=extra, where=self.where, backend=self.backend,
        )  # fmt: skip

    def _split(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(x, (tuple, list)):
            if len(x) != 2:
                raise ParameterError(
                    f"{self.where}: expected a complex input (real, imag), got {len(x)} tensors"
                )
            re, im = x
            self._check_input(re)
            self._check_input(im)
            return re, im
        self._check_input(x)  # a real input drives the real part (an input block)
        return x, torch.zeros_like(x)

    def _run(self, x: Any):
        re, im = self._split(x)
        if self.requires_grad:
            self.clamp()
        holder = self._holder(re)
        # the phase condition of spike() compares with im before this call's first step
        self._imag_before = None
        if holder is not None:
            im0 = holder.values["im"].reshape(re.shape[:-1]).to(re.dtype) / self.s_scale
            self._imag_before = im0
        box = None
        if self.persistent_state:
            box = ResonatorState({})
        out = ResonatorFunction.apply(re, im, self.sin_decay, self.cos_decay, self.spec(),
                                      holder, box)  # fmt: skip
        if box is not None:
            self._state = box
        return out

    # ---------------------------------------------------------------- forward
    def forward(self, x: Any) -> torch.Tensor:
        """Spikes ``(N, *shape, T)`` of a complex input ``(real, imag)`` (fused kernel)."""
        s = self._run(x)[0]
        return self.drop(s) if self.drop is not None else s


class AdaptiveResonatorNeuron(ResonatorNeuron):
    r"""Base of ADRF and ADRF_IZ: the resonator plus ALIF's adaptive threshold and refractory
    state (spec §6.4/§6.5).

    ``threshold_step`` is quantized like the threshold (``vThStep = trunc(step·scale)``,
    17 bits); ``threshold_decay`` and ``refractory_decay`` are fractions in
    ``[0, 1]`` stored ×4096 (``thDecay``, ``refDecay`` = rne). As in lava-dl they
    are parameters (``requires_grad`` follows the neuron's) but receive no
    gradient: the threshold dynamics are not differentiated.
    """

    def _setup_adaptive(self, threshold_step: Any, threshold_decay: Any,
                        refractory_decay: Any) -> None:  # fmt: skip
        where = self.where
        step = base.check_finite_float(f"{where}: threshold_step", threshold_step)
        mant = int(step * self.w_scale)
        if not 0 <= mant <= VTH_MANT_MAX:
            raise ParameterError(
                f"{where}: threshold_step = {step} gives vThStep = {mant}, outside the hardware "
                f"range [0, {VTH_MANT_MAX}]"
            )
        self.threshold_step = mant / self.w_scale
        self._th_decay_range = param_range(
            "threshold_decay", threshold_decay, self.shared_param, where, _check_unit, None
        )
        self._ref_decay_range = param_range(
            "refractory_decay", refractory_decay, self.shared_param, where, _check_unit, None
        )
        self.threshold_decay = torch.nn.Parameter(
            torch.tensor([self.p_scale * self._th_decay_range[0]], dtype=torch.float32),
            requires_grad=self.requires_grad,
        )
        self.refractory_decay = torch.nn.Parameter(
            torch.tensor([self.p_scale * self._ref_decay_range[0]], dtype=torch.float32),
            requires_grad=self.requires_grad,
        )

    def _draw(self, c: int, device) -> None:
        super()._draw(c, device)
        for p, (lo, hi) in (
            (self.threshold_decay, self._th_decay_range),
            (self.refractory_decay, self._ref_decay_range),
        ):
            p.data = (self.p_scale * (lo + (hi - lo) * torch.rand(c))).to(device)

    def clamp(self) -> None:
        """Clamp the rotation (see :class:`ResonatorNeuron`) and the decays to ``[0, 4096]``."""
        super().clamp()
        with torch.no_grad():
            self.threshold_decay.data.clamp_(0, self.p_scale)
            self.refractory_decay.data.clamp_(0, self.p_scale)

    @property
    def v_th_step(self) -> int:
        """Threshold step mantissa ``vThStep = trunc(threshold_step · scale)``."""
        return int(self.threshold_step * self.w_scale)

    @property
    def cx_threshold_decay(self):
        """Hardware ``thDecay`` (int, or int array per channel)."""
        self.clamp()
        return self._scalar_or_array(rotation_int(self.threshold_decay))

    @property
    def cx_refractory_decay(self):
        """Hardware ``refDecay`` (int, or int array per channel)."""
        self.clamp()
        return self._scalar_or_array(rotation_int(self.refractory_decay))

    def _extra_params(self) -> dict[str, Any]:
        return {
            "th_decay": self.cx_threshold_decay,
            "ref_decay": self.cx_refractory_decay,
            "v_th_step": self.v_th_step,
        }

    @property
    def threshold_state(self) -> torch.Tensor | None:
        """Persistent adaptive threshold ``th / s_scale``, or None."""
        return self._state_values("th")

    @property
    def refractory_state(self) -> torch.Tensor | None:
        """Persistent refractory state ``r / s_scale``, or None."""
        return self._state_values("r")

    def dynamics(self, input: Any):
        """``(real, imag, threshold, refractory)``, each ``(N, *shape, T)``.

        ``threshold`` and ``refractory`` are the values the spike condition
        compares with (before a spike's update), as lava-dl reports them.
        """
        _, re, im, th, r = self._run(input)
        return re, im, th, r

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

The neurons are :class:`~loihi_slayer.neuron._family.FamilyNeuron` subclasses
(threshold and decay checks, input conversion, persistent integer state): the
forward runs the integer kernels of the model declared in
:mod:`loihi_slayer.models` (class attribute ``model``) and
:class:`loihi_slayer.autograd.resonator.ResonatorFunction` gives the surrogate
gradient; see there for the exactness condition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..autograd.resonator import PHASE, ResonatorFunction, ResonatorSpec, rotation_int
from ..errors import ParameterError
from . import base
from ._family import Decay, FamilyNeuron

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


class ResonatorNeuron(FamilyNeuron):
    """Base of the four resonator neurons (see the module docstring).

    Subclasses set ``model`` (a :mod:`loihi_slayer.models` declaration),
    ``TAU_RHO_MULT``, ``SCALE_RHO_MULT``, ``mode`` (phase spike or ``im >= θ``)
    and ``decays`` (the adaptive threshold and refractory decays of ADRF/ADRF_IZ).
    """

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
        decays: dict[str, Any] | None = None,
    ) -> None:
        FamilyNeuron.__init__(
            self,
            threshold,
            tau_grad,
            scale_grad,
            scale,
            persistent_state,
            shared_param,
            requires_grad,
            decays or {},
            None,
            backend,
        )
        where = self._name
        self.tau_rho = self.tau_grad * self._threshold
        self.scale_rho = self.scale_grad
        if not (math.isfinite(self.tau_rho) and self.tau_rho > 0):
            raise ParameterError(
                f"{where}: threshold * tau_grad must be positive for the surrogate gradient, got "
                f"threshold = {self._threshold}, tau_grad = {self.tau_grad}"
            )
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
            "period",
            period,
            self.shared_param,
            where,
            lambda n, v, w: _check_period(v, w),
            (MIN_PERIOD, math.inf),
        )
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
        self._imag_before: torch.Tensor | None = None
        self.clamp()
        if shape is not None:
            self.init_shape(shape)

    def _rotation(self, period, decay):
        """Float ``(4096(1-α) sin(2π/P), 4096(1-α) cos(2π/P))``."""
        lib = torch if isinstance(period, torch.Tensor) else math
        w = 2 * math.pi / period
        gain = self.p_scale * (1 - decay)
        return gain * lib.sin(w), gain * lib.cos(w)

    # ------------------------------------------------------------------ shape
    def init_shape(self, shape: Sequence[int]) -> None:
        """Fix the neuron shape; draws per-channel parameters when ``shared_param=False``.

        The rotation: frequencies log-spaced (``log_init``) or uniform between
        the period bounds, decays uniform (lava-dl).
        """
        super().init_shape(shape)
        c = self.shape[0]
        if not self.shared_param and self.sin_decay.numel() != c:
            p_lo, p_hi = self._period_range
            d_lo, d_hi = self._decay_range
            if self.log_init:
                freq = torch.logspace(-math.log10(p_hi), -math.log10(p_lo), steps=c)
            else:
                freq = 1 / p_hi + (1 / p_lo - 1 / p_hi) * torch.rand(c)
            decay = d_lo + (d_hi - d_lo) * torch.rand(c)
            sin_v, cos_v = self._rotation(1 / freq, decay)
            with torch.no_grad():
                self.sin_decay.data = sin_v.to(self.sin_decay.device, torch.float32)
                self.cos_decay.data = cos_v.to(self.cos_decay.device, torch.float32)
            self.clamp()

    def clamp(self) -> None:
        """Clamp the rotation to a gain <= 4095 with ``sin_decay >= 1``, ``cos_decay >= 0``
        (lava-dl; a zero gain becomes ``(1, 0)``), and the decays (:class:`FamilyNeuron`)."""
        super().clamp()
        if "sin_decay" not in self._parameters:
            return
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

    def _device_values(self) -> dict[str, Any]:
        """Integer device parameters (model parameter name -> value) beyond the decays."""
        return {
            "sin_decay": self.cx_sin_decay,
            "cos_decay": self.cx_cos_decay,
            "v_th_mant": self.v_th_mant,
        }

    @property
    def device_params(self) -> dict:
        """Device parameters with netx field names (and ``type``, ``gradedSpike``)."""
        values = self._device_values()
        for d in self.decays:
            values[d.param] = self.decay_int(d.arg)
        out = {"type": self.model.netx_type}
        out.update({p.field: values[p.name] for p in self.model.params})
        out["gradedSpike"] = self.graded_spike
        return out

    # ----------------------------------------------------------------- state
    @property
    def real_state(self) -> torch.Tensor | None:
        """Persistent real state ``re / s_scale`` (after the last step), or None."""
        return self._state_float("re")

    @property
    def imag_state(self) -> torch.Tensor | None:
        """Persistent imaginary state ``im / s_scale`` (after the last step), or None."""
        return self._state_float("im")

    def spec(self) -> ResonatorSpec:
        """The op configuration for the current parameters."""
        c, hw = self._channels(self.shape) if self.shape else (1, 1)
        return ResonatorSpec(
            model=self.model,
            scale=self.w_scale,
            v_th_mant=self.v_th_mant,
            tau_rho=self.tau_rho * self.TAU_RHO_MULT,
            scale_rho=self.scale_rho * self.SCALE_RHO_MULT,
            graded=self.graded_spike,
            mode=self.mode,
            reset=self.model.name == "rf_iz",
            channels=c,
            per_channel=hw,
            backend=self.backend,
        )

    def _split(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(x, (tuple, list)):
            if len(x) != 2:
                raise ParameterError(
                    f"{self._name}: expected a complex input (real, imag), got {len(x)} tensors"
                )
            re, im = x
            self._check_input(re)
            self._check_input(im)
            if re.shape != im.shape:
                raise ParameterError(
                    f"{self._name}: real input {tuple(re.shape)} and imaginary input "
                    f"{tuple(im.shape)} differ in shape"
                )
            return re, im
        self._check_input(x)  # a real input drives the real part (an input block)
        return x, torch.zeros_like(x)

    def _run(self, x: Any, want_trace: bool = True):
        """Kernel forward; the op's outputs, or ``(spikes,)`` when neither traces nor a
        gradient can be asked for (eval: only the spikes are recorded)."""
        re, im = self._split(x)
        if self.requires_grad:
            self.clamp()
        spatial = (1,) * (len(self.shape) - 1)
        values = {
            k: (v if np.isscalar(v) else np.asarray(v).reshape((-1,) + spatial))
            for k, v in self._device_values().items()
        }
        params = self.model_params(**values)
        lead = tuple(re.shape[:-1])
        state = self._get_state(lead, params)
        # spike() compares the phase with im before this call's first step
        self._imag_before = torch.as_tensor(state["im"], dtype=re.dtype, device=re.device)
        self._imag_before = self._imag_before / self.s_scale
        grad = torch.is_grad_enabled() and any(
            t.requires_grad for t in (re, im, self.sin_decay, self.cos_decay)
        )
        record = self.model.traces if (grad or want_trace or self.graded_spike) else ("s",)
        ints = (self.int_input(re), self.int_input(im))
        traces, final = self.run_model(ints, params, state, record)
        self._keep_state(final)
        if len(record) == 1:
            return (traces["s"].to(re.dtype),)
        return ResonatorFunction.apply(
            re, im, self.sin_decay, self.cos_decay, self.spec(), traces, state
        )

    # ---------------------------------------------------------------- forward
    def forward(self, x: Any) -> torch.Tensor:
        """Spikes ``(N, *shape, T)`` of a complex input ``(real, imag)``."""
        s = self._run(x, want_trace=False)[0]
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

    decays = (
        Decay("threshold_decay", "th_decay", jitter=False, learnable=False),
        Decay("refractory_decay", "ref_decay", jitter=False, learnable=False),
    )

    def _setup_step(self, threshold_step: Any) -> None:
        step = base.check_finite_float(f"{self._name}: threshold_step", threshold_step)
        mant = int(step * self.w_scale)
        self._check_device("threshold_step", "v_th_step", mant, "trunc(threshold_step * scale)")
        self.threshold_step = mant / self.w_scale

    @property
    def v_th_step(self) -> int:
        """Threshold step mantissa ``vThStep = trunc(threshold_step · scale)``."""
        return int(self.threshold_step * self.w_scale)

    @property
    def cx_threshold_decay(self):
        """Hardware ``thDecay`` (int, or int array per channel)."""
        return self.decay_int("threshold_decay")

    @property
    def cx_refractory_decay(self):
        """Hardware ``refDecay`` (int, or int array per channel)."""
        return self.decay_int("refractory_decay")

    def _device_values(self) -> dict[str, Any]:
        out = super()._device_values()
        out["v_th_step"] = self.v_th_step
        return out

    @property
    def threshold_state(self) -> torch.Tensor | None:
        """Persistent adaptive threshold ``th / s_scale``, or None."""
        return self._state_float("th")

    @property
    def refractory_state(self) -> torch.Tensor | None:
        """Persistent refractory state ``r / s_scale``, or None."""
        return self._state_float("r")

    def dynamics(self, input: Any):
        """``(real, imag, threshold, refractory)``, each ``(N, *shape, T)``.

        ``threshold`` and ``refractory`` are the values the spike condition
        compares with (before a spike's update), as lava-dl reports them.
        """
        _, re, im, th, r = self._run(input)
        return re, im, th, r

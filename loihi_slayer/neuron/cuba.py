r"""Loihi CUBA-LIF neuron for training (lava-dl ``slayer.neuron.cuba`` API).

The forward pass is Loihi's integer arithmetic (spec §2.1), run by the shared
kernel step :func:`loihi_slayer.fixed.dynamics.cuba_step`:

.. math::

    A[t] &= \operatorname{rint}(\mathrm{scale}\cdot x[t]) \\
    u[t] &= \operatorname{wrap}_{24}\!\big(\operatorname{rz}(u[t-1]\,(4096 - D_u) / 4096)
            + 2^6 A[t]\big) \\
    v[t] &= \operatorname{sat}_{24}\!\big(\operatorname{rz}(v[t-1]\,(4096 - D_v) / 4096)
            + u[t] + 2^6 b\big) \\
    s[t] &= \big[v[t] > 2^6\,\vartheta_{mant}\big], \qquad v[t] \leftarrow 0
            \text{ if } s[t]

and, with ``ref_delay = R > 1`` (hardware ``refDelay``), a spike holds ``v`` at 0
for the ``R - 1`` following steps (no spike there) while ``u`` keeps integrating
(spec §2.2-2.3, :func:`~loihi_slayer.fixed.dynamics.cuba_step`).

with :math:`D = \operatorname{rne}(\operatorname{clamp}(4096\,\alpha, 0, 4096))`,
:math:`\vartheta_{mant} = \operatorname{trunc}(\vartheta\cdot\mathrm{scale})` and
``b`` the bias mantissa from a :class:`~loihi_slayer.neuron.norm.MeanOnlyBatchNorm`.
Float outputs are ``u / s_scale`` and ``v / s_scale`` with
``s_scale = 64 * scale`` (4096 by default: the lava-dl float convention).

**Input grid.** ``x`` is the synapse output in weight units. With weights on
the ``quantize_8bit`` grid and binary spikes it is a multiple of ``2/scale``,
and ``scale * x`` is the exact integer synaptic sum ``A``. Off-grid input is
rounded to the nearest integer (half to even); float32 synapse sums are exact
while ``|A| < 2**24``.

The backward pass is lava-dl's surrogate gradient (spec §5.4) as compiled
kernels; see :mod:`loihi_slayer.autograd.cuba`. Refractory steps carry no
voltage gradient: ``v`` is constant (0) there, so neither the surrogate nor the
voltage scan passes through them; the current scan is unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .._recycle import recycled_for
from ..autograd._dispatch import resolve_backend
from ..autograd.cuba import (
    BatchMean,
    CubaState,
    cuba_apply,
    cuba_pooled_spikes,
    make_spec,
    surrogate_spike,
)
from ..errors import ParameterError
from ..fixed.params import CUBA_RANGES, int_param
from ..safety.clamp import warn_clamped
from . import base
from .norm import MeanOnlyBatchNorm

logger = logging.getLogger(__name__)


def neuron_params(device_params: dict, scale: int = 1 << 6, p_scale: int = 1 << 12) -> dict:
    """Translate exported device parameters back to constructor arguments."""
    return {
        "threshold": device_params["vThMant"] / scale,
        "current_decay": device_params["iDecay"] / p_scale,
        "voltage_decay": device_params["vDecay"] / p_scale,
    }


def _decay_range(name: str, value, shared: bool) -> tuple[float, float]:
    if np.isscalar(value):
        v = base.check_finite_float(name, value)
        warn_clamped(logger, name, v, 0.0, 1.0)  # lava-dl clamps the decay; so do we
        return (v, v) if shared else (v * 0.99, v * 1.01)
    if shared:
        raise ParameterError(f"{name} must be a scalar when shared_param=True, got {value!r}")
    vals = list(value)
    if len(vals) != 2:
        raise ParameterError(f"{name} must be a scalar or a (min, max) pair, got {value!r}")
    lo, hi = (base.check_finite_float(name, v) for v in vals)
    return lo, hi


class Neuron(base.Neuron):
    r"""Loihi CUBA neuron; forward on the integer kernels, surrogate-gradient backward.

    Parameters
    ----------
    threshold
        Threshold :math:`\vartheta` (quantized to ``trunc(θ·scale)/scale``).
    current_decay, voltage_decay
        Decay fractions :math:`\alpha_u, \alpha_v` in ``[0, 1]`` (stored ×4096,
        clamped to ``[0, 4096]``, used as ``rne``). With ``shared_param=False``
        a scalar draws per-channel values within ±1 %, a pair ``(min, max)``
        uniformly in that range (lava-dl), when the shape is set.
    tau_grad, scale_grad
        Surrogate width and scale: ``τ = 100·tau_grad·θ``, ``ρ = 0.1·scale_grad``.
    scale
        Weight scale (``w_scale``); the state scale is ``64·scale``.
    norm
        ``None`` or :class:`~loihi_slayer.neuron.norm.MeanOnlyBatchNorm` (class
        or factory); mapped to the Loihi bias.
    dropout
        Optional module applied to the spikes (e.g. :class:`~.dropout.Dropout`).
    shared_param
        One decay pair for all neurons (True) or one per channel (False).
    persistent_state
        Keep ``u, v`` across calls (reset when the batch size changes).
    requires_grad
        Learn the decays.
    graded_spike
        Emit the pre-reset voltage as payload instead of 1.
    shape
        Neuron shape ``(C,)`` or ``(C, H, W)`` (else :meth:`init_shape`, or the
        first input when all parameters are shared).
    backend
        ``'auto'`` (njit for CPU tensors, numba.cuda for CUDA tensors), ``'cpu'``,
        ``'cuda'`` or ``'reference'``.
    ref_delay
        Keyword only: hardware refractory delay ``refDelay`` ``R`` in ``[1, 63]``
        (:data:`loihi_slayer.fixed.params.CUBA_RANGES`); a spike holds ``v`` at 0
        for ``R - 1`` further steps. 1 (default, lava-dl) means no refractory period.
    """

    def __init__(
        self,
        threshold: float,
        current_decay: float | Sequence[float],
        voltage_decay: float | Sequence[float],
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
        shape: Sequence[int] | None = None,
        backend: str = "auto",
        ref_delay: int = 1,
    ) -> None:
        super().__init__(
            threshold,
            tau_grad,
            scale_grad,
            scale,
            persistent_state,
            shared_param,
            requires_grad,
            None,
            backend,
        )
        self.graded_spike = bool(graded_spike)
        ref = int_param("neuron.cuba.Neuron: ref_delay", ref_delay, *CUBA_RANGES["ref_delay"])
        if ref.ndim:
            raise ParameterError(
                f"neuron.cuba.Neuron: ref_delay must be one integer in "
                f"{list(CUBA_RANGES['ref_delay'])}, got {ref_delay!r}"
            )
        self._ref_delay = int(ref)
        self._i_range = _decay_range("current_decay", current_decay, self.shared_param)
        self._v_range = _decay_range("voltage_decay", voltage_decay, self.shared_param)
        self.current_decay = torch.nn.Parameter(
            torch.tensor([self.p_scale * self._i_range[0]], dtype=torch.float32),
            requires_grad=self.requires_grad,
        )
        self.voltage_decay = torch.nn.Parameter(
            torch.tensor([self.p_scale * self._v_range[0]], dtype=torch.float32),
            requires_grad=self.requires_grad,
        )
        if norm is not None:
            self.norm = norm()
            if not isinstance(self.norm, MeanOnlyBatchNorm):
                raise ParameterError(
                    f"CUBA Neuron: norm must build a MeanOnlyBatchNorm (it maps to the Loihi "
                    f"bias), got {type(self.norm).__name__}"
                )
            self.norm.pre_hook_fx = self.quantize_8bit
        else:
            self.norm = None
        self.drop = dropout
        # persistent state (lava-dl buffers): u / s_scale and the post-reset v / s_scale,
        # (N, *shape); exact in float32 (|u|, |v| <= 2**23, s_scale a power of two)
        self.register_buffer("current_state", torch.zeros(1), persistent=False)
        self.register_buffer("voltage_state", torch.zeros(1), persistent=False)
        self.register_buffer(  # remaining refractory steps (int64), same layout
            "refractory_state", torch.zeros(1, dtype=torch.int64), persistent=False
        )
        self.clamp()
        if shape is not None:
            self.init_shape(shape)
        self.make_spec()

    # ----------------------------------------------------------------- setup
    def make_spec(self) -> None:
        """Rebuild the kernel configuration (after changing ``tau_grad`` etc.)."""
        c, hw = self._channels(self.shape) if self.shape else (1, 1)
        self._spec = make_spec(
            self._threshold if self._threshold > 0 else 1.0 / self.w_scale,
            self.w_scale,
            self.tau_grad,
            self.scale_grad,
            self.graded_spike,
            c,
            hw,
            self.backend,
            self._ref_delay,
        )
        if self._threshold == 0:
            self._spec.v_th_mant = 0

    def init_shape(self, shape: Sequence[int]) -> None:
        """Fix the neuron shape; draws per-channel decays when ``shared_param=False``."""
        super().init_shape(shape)
        c = self.shape[0]
        if not self.shared_param and self.current_decay.numel() != c:
            with torch.no_grad():
                for p, (lo, hi) in (
                    (self.current_decay, self._i_range),
                    (self.voltage_decay, self._v_range),
                ):
                    p.data = self.p_scale * (lo + (hi - lo) * torch.rand(c, device=p.device))
            self.clamp()
        if self.norm is not None:
            self.norm.init_features(c)
        self.make_spec()

    def clamp(self) -> None:
        """Clamp the stored decays to ``[0, 4096]``."""
        with torch.no_grad():
            self.current_decay.data.clamp_(0, self.p_scale)
            self.voltage_decay.data.clamp_(0, self.p_scale)

    # ------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.current_decay.device

    def _cx(self, p: torch.Tensor):
        self.clamp()
        val = torch.round(p.detach()).cpu().numpy().astype(np.int64)
        return int(val[0]) if val.size == 1 else val

    @property
    def cx_current_decay(self):
        """Hardware ``iDecay`` (int, or int array per channel)."""
        return self._cx(self.current_decay)

    @property
    def cx_voltage_decay(self):
        """Hardware ``vDecay`` (int, or int array per channel)."""
        return self._cx(self.voltage_decay)

    @property
    def ref_delay(self) -> int:
        """Hardware refractory delay ``refDelay`` (1: no refractory period)."""
        return self._ref_delay

    @property
    def bias(self):
        """Bias mantissas (per channel, ints) from the norm's running mean, or None."""
        if self.norm is None:
            return None
        return torch.round(self.norm.bias.detach()).to(torch.int64).cpu().numpy()

    @property
    def device_params(self) -> dict:
        """Export parameters exactly as lava-dl writes them."""
        return {
            "type": "CUBA",
            "iDecay": self.cx_current_decay,
            "vDecay": self.cx_voltage_decay,
            "vThMant": self.v_th_mant,
            "refDelay": self.ref_delay,
            "gradedSpike": self.graded_spike,
        }

    # ----------------------------------------------------------------- state
    def reset_state(self) -> None:
        """Forget the persistent state (the buffers ``current_state``, ``voltage_state``,
        ``refractory_state``)."""
        self.current_state = self.current_state.new_zeros(1)
        self.voltage_state = self.voltage_state.new_zeros(1)
        self.refractory_state = self.refractory_state.new_zeros(1)

    def _get_state(self, x: torch.Tensor) -> CubaState:
        """Integer state from the buffers (zeros unless persistent with a matching shape)."""
        rows = x.numel() // x.shape[-1]
        if self.persistent_state and self.current_state.numel() == rows:

            def to_int(buf: torch.Tensor) -> torch.Tensor:
                buf = buf.detach().to(device=x.device, dtype=torch.float64).reshape(rows)
                return torch.round(buf * self.s_scale).to(torch.int64)

            rc = self.refractory_state.detach().to(device=x.device, dtype=torch.int64)
            rc = rc.reshape(rows).clone() if rc.numel() == rows else rc.new_zeros(rows)
            return CubaState(to_int(self.current_state), to_int(self.voltage_state), rc)
        return CubaState.zeros(rows, x.device, scratch=True)

    def _keep_state(self, st: CubaState, x: torch.Tensor) -> None:
        if self.persistent_state:
            shape = x.shape[:-1]
            self.current_state = st.u.reshape(shape).to(torch.float32) / self.s_scale
            self.voltage_state = st.v.reshape(shape).to(torch.float32) / self.s_scale
            if st.rc is not None:
                self.refractory_state = st.rc.reshape(shape).clone()

    def _bias_arg(self):
        if self.norm is None:
            return None
        if self.training and self.norm.update:
            return BatchMean()
        mant = torch.round(self.norm.pre_hook_fx(self.norm.running_mean, descale=True))
        return -mant.to(torch.int64) * 64

    def _run(self, x: torch.Tensor, want_trace: bool, shift: bool = False):
        self._check_input(x)
        if self.requires_grad:
            self.clamp()
        st = self._get_state(x)
        bias = self._bias_arg()
        out = cuba_apply(
            x, self.current_decay, self.voltage_decay, self._spec, st, bias, want_trace, shift
        )
        if isinstance(bias, BatchMean):
            self.norm.update_running_mean(bias.mean)
        self._keep_state(st, x)
        return out

    # ---------------------------------------------------------------- forward
    def dynamics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Current (post-norm, as lava-dl) and pre-reset voltage, each ``(N, *shape, T)``.

        The persistent state is advanced (post-reset voltage).
        """
        _, current, voltage = self._run(x, True)
        return current, voltage

    def spike(self, voltage: torch.Tensor) -> torch.Tensor:
        """Spikes of a pre-reset voltage (exact compare ``v·s_scale > vThMant·64``)."""
        s = surrogate_spike(voltage, self._spec)
        return self.drop(s) if self.drop is not None else s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes ``(N, *shape, T)``; equals ``spike(dynamics(x)[1])``, fused in one kernel."""
        s, _, _ = self._run(x, False)
        return self.drop(s) if self.drop is not None else s

    def shifted_forward(self, x: torch.Tensor) -> torch.Tensor | None:
        """``spike.shift(forward(x))`` (the spikes one step later, zeros first) with the shift
        inside the kernels (:func:`~loihi_slayer.autograd.cuba.cuba_apply`'s ``shift``), for
        a block's delay shift; the same values and gradients. None where that path does not
        apply: dropout (its mask would fall on other steps), hooks on this module (forward
        hooks would see shifted spikes, backward hooks would not run: the block calls this
        method, not the module), or a subclass with its own ``forward``.
        """
        if (
            type(self).forward is not Neuron.forward
            or type(self)._run is not Neuron._run
            or self.drop is not None
            or self._forward_hooks
            or self._forward_pre_hooks
            or self._backward_hooks
            or self._backward_pre_hooks
        ):
            return None
        s, _, _ = self._run(x, False, shift=True)
        return s

    def pooled_forward(
        self, x: torch.Tensor, kernel: tuple[int, int], weight: float, shift: bool
    ) -> torch.Tensor | None:
        """``forward`` of the sum pool of ``x`` (then shifted one step when ``shift``) in one
        kernel pass, for a pool block (:func:`~loihi_slayer.autograd.cuba.cuba_pooled_spikes`
        gives the sums and conditions); None where that path does not apply: a gradient
        to compute, a norm (batch statistics), dropout, hooks on this module, a subclass
        with its own ``forward``, a CUDA backend, or an input the kernel refuses (the
        caller's unfused path then raises the error, the state untouched).
        """
        learning = torch.is_grad_enabled() and (
            self.current_decay.requires_grad or self.voltage_decay.requires_grad
        )
        if (
            learning
            or type(self).forward is not Neuron.forward
            or type(self)._run is not Neuron._run
            or self.norm is not None
            or self.drop is not None
            or self._forward_hooks
            or self._forward_pre_hooks
            or resolve_backend(self.backend, x) != "cpu"
        ):
            return None
        n, c, h, w, steps = x.shape
        # the output's shape, device and dtype for the neuron's checks and state (no memory)
        carrier = x.new_empty(1).expand(n, c, h // kernel[0], w // kernel[1], steps)
        self._check_input(carrier)
        if self.requires_grad:
            self.clamp()
        st = self._get_state(carrier)
        try:
            s = cuba_pooled_spikes(
                x,
                kernel,
                weight,
                self.current_decay,
                self.voltage_decay,
                self._spec,
                st,
                None,
                shift,
                recycled_for(self, "pooled spikes"),
                recycled_for(self, "pooled operand"),
            )
        except ParameterError:
            return None
        self._keep_state(st, carrier)
        return s

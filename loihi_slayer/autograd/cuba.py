r"""CUBA-LIF training op: integer forward (Loihi bit-exact), surrogate backward.

Forward (per neuron, integer hardware units, ``S = s_scale = 64 * scale``):

.. math::

    A[t] &= \operatorname{rint}(\mathrm{scale}\cdot x[t]) \\
    u[t] &= \operatorname{wrap}_{24}\big(\operatorname{rz}(u[t-1](4096-D_u)/4096)
            + 2^6 A[t]\big) \\
    v[t] &= \operatorname{sat}_{24}\big(\operatorname{rz}(v[t-1](4096-D_v)/4096)
            + u[t] + b\big) \\
    s[t] &= v[t] > \vartheta_{mant} \cdot 2^6, \qquad v[t] \leftarrow 0 \text{ if } s[t]

i.e. exactly :func:`loihi_slayer.fixed.dynamics.cuba_step`; the float outputs are
``u/S`` (current), the pre-reset ``v/S`` (voltage) and the spikes.

Backward (lava-dl's surrogate, spec §5.4; resets ignored):

.. math::

    \frac{\partial s}{\partial v} &= \frac{\rho}{2\tau}
        e^{-|v-\vartheta|/\tau} \quad (\text{graded: } \rho\, e^{\min(v-\vartheta, 0)/\tau}),
        \qquad \tau = 100\,\tau_{grad}\vartheta,\ \rho = 0.1\,\mathrm{scale\_grad} \\
    g_v[t] &= \frac{\partial L}{\partial s[t]}\frac{\partial s}{\partial v}
              + (1 - D_v/4096)\, g_v[t+1], \qquad
    g_u[t] = g_v[t] + (1 - D_u/4096)\, g_u[t+1], \qquad
    \frac{\partial L}{\partial x[t]} = g_u[t]

Decay gradients (parameter ``p = 4096 * decay``; the rounding of ``p`` is
straight-through) are the analytic ones of this recursion,
:math:`\partial L/\partial p_v = -\frac{1}{4096}\sum_t g_v[t]\, v^{post}[t-1]` and
:math:`\partial L/\partial p_u = -\frac{1}{4096}\sum_t g_u[t]\, u[t-1]`, where
``v_post`` is the post-reset voltage (the value the decay really multiplies).
lava-dl instead returns :math:`\sum_t g[t+1]\, y[t]` with the *pre-reset*
output ``y`` and without the factor :math:`-1/4096` (wrong sign and scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ParameterError
from . import _cpu, reference
from ._dispatch import empty2d, kernel_array, launch, resolve_backend

TAU_RHO_MULT = 100.0
SCALE_RHO_MULT = 0.1


@dataclass
class CubaSpec:
    """Static configuration of one CUBA op call.

    Attributes
    ----------
    scale
        Weight scale (``w_scale``; lava-dl default 64): ``A = rint(scale * x)``.
    v_th_mant
        Threshold mantissa; the integer compare is ``v > v_th_mant << 6``.
    tau_rho, scale_rho
        Surrogate width and amplitude (already including lava-dl's
        ``TAU_RHO_MULT``/``SCALE_RHO_MULT``).
    graded
        Graded spikes (payload = pre-reset voltage).
    channels, per_channel
        Neuron layout ``C`` and ``H*W`` used to expand per-channel parameters.
    backend
        ``'auto'``, ``'cpu'``, ``'cuda'`` or ``'reference'``.
    """

    scale: int
    v_th_mant: int
    tau_rho: float
    scale_rho: float
    graded: bool
    channels: int
    per_channel: int
    backend: str = "auto"

    @property
    def s_scale(self) -> int:
        """State scale ``64 * scale`` (hardware state = float state * s_scale)."""
        return self.scale * 64

    @property
    def theta(self) -> float:
        """The quantized float threshold ``v_th_mant / scale``."""
        return self.v_th_mant / self.scale


@dataclass
class CubaState:
    """Integer neuron state ``u, v`` (post-reset), int64 vectors of length ``rows``."""

    u: torch.Tensor
    v: torch.Tensor


@dataclass
class BatchMean:
    """Mean-only batch-norm request: ``bias = -quantize_8bit(mean_c(current))``.

    ``mean`` receives the per-channel batch mean of the (pre-norm) current.
    """

    mean: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)


def decay_int(param: torch.Tensor) -> np.ndarray:
    """``rne(clamp(p, 0, 4096))`` as int64 (``p`` is the decay stored x4096)."""
    d = torch.round(param.detach().clamp(0, 4096)).to(torch.int64).cpu().numpy()
    return d.reshape(-1)


def _expand(values: np.ndarray, spec: CubaSpec) -> np.ndarray:
    values = np.asarray(values).reshape(-1)
    if values.size == 1:
        return values
    if values.size != spec.channels:
        raise ParameterError(
            f"per-channel parameter has {values.size} values, expected {spec.channels} channels"
        )
    return np.repeat(values, spec.per_channel)


def _check_bad(bad, name: str = "input") -> None:
    bad_np = bad.cpu().numpy() if isinstance(bad, torch.Tensor) else np.asarray(bad)
    if bad_np.any():
        raise ParameterError(
            f"CUBA neuron: {name} contains NaN/inf or values whose integer synaptic sum "
            f"|rint(x * scale)| reaches 2**31 ({int(bad_np.sum())} neuron rows affected)"
        )


def run_forward(
    x2: torch.Tensor,
    spec: CubaSpec,
    i_dec: np.ndarray,
    v_dec: np.ndarray,
    bias: np.ndarray,
    state: CubaState,
    rec_v: bool,
    rec_u: bool,
    backend: str,
):
    """Run the fused forward kernel on a ``(rows, T)`` tensor; updates ``state``."""
    rows, steps = x2.shape
    v_th = np.array([spec.v_th_mant << 6], np.int64)
    in_scale = float(spec.scale)
    out_scale = 1.0 / spec.s_scale
    if backend == "reference":
        s, vp, u, u_end, v_end = reference.cuba_forward(
            x2.detach().cpu().numpy(), in_scale, out_scale, i_dec, v_dec, v_th, bias,
            state.u.cpu().numpy(), state.v.cpu().numpy(), spec.graded,
        )  # fmt: skip
        if not np.all(np.isfinite(x2.detach().cpu().numpy())):
            _check_bad(np.ones(1))
        state.u.copy_(torch.from_numpy(u_end))
        state.v.copy_(torch.from_numpy(v_end))

        def conv(a):
            return torch.from_numpy(np.ascontiguousarray(a)).to(x2.dtype)

        return conv(s), (conv(vp) if rec_v else None), (conv(u) if rec_u else None)
    s_out = torch.empty_like(x2)
    vp_out = torch.empty_like(x2) if rec_v else empty2d(rows, x2)
    u_out = torch.empty_like(x2) if rec_u else empty2d(rows, x2)
    bad = torch.zeros(rows, dtype=torch.int8, device=x2.device)
    args = (x2, in_scale, out_scale, i_dec, v_dec, v_th, bias, state.u, state.v,
            spec.graded, s_out, vp_out, u_out, bad)  # fmt: skip
    if backend == "cpu":
        _cpu.cuba_forward(*[kernel_array(a, backend) if isinstance(a, torch.Tensor) else a
                            for a in args])  # fmt: skip
    else:
        from . import _cuda

        launch(_cuda.cuba_forward, rows, *args)
    _check_bad(bad)
    return s_out, (vp_out if rec_v else None), (u_out if rec_u else None)


def run_backward(
    g_s, g_v, g_u, vp, u_rec, spec: CubaSpec, i_dec, v_dec, u0, v0,
    do_v: bool, do_u: bool, want_di: bool, want_dv: bool, backend: str,
):  # fmt: skip
    """Surrogate + reverse scans on ``(rows, T)`` tensors. Returns ``(g_x, g_di, g_dv)``."""
    rows, steps = vp.shape
    theta = np.array([spec.theta], np.float64)
    tau = np.array([spec.tau_rho], np.float64)
    amp = spec.scale_rho if spec.graded else spec.scale_rho / (2.0 * spec.tau_rho)
    v_th = np.array([spec.v_th_mant << 6], np.int64)
    if backend == "reference":

        def np_or_none(t):
            return None if t is None else t.detach().cpu().numpy()

        g_x, g_di, g_dv = reference.cuba_backward(
            np_or_none(g_s), np_or_none(g_v), np_or_none(g_u), vp.cpu().numpy(),
            np_or_none(u_rec), theta, tau, spec.scale_rho, spec.graded, i_dec, v_dec,
            u0.cpu().numpy() / spec.s_scale, v0.cpu().numpy() / spec.s_scale, spec.s_scale,
            v_th, do_v, do_u,
        )  # fmt: skip
        return (
            torch.from_numpy(g_x).to(vp.dtype),
            torch.from_numpy(g_di) if want_di else None,
            torch.from_numpy(g_dv) if want_dv else None,
        )
    g_x = torch.empty_like(vp)
    if (
        backend == "cpu" and g_s is not None and g_v is None and g_u is None
        and do_v and do_u and not want_di and not want_dv and vp.dtype == torch.float32
    ):  # fmt: skip
        _cpu.cuba_backward_fast(
            g_s.contiguous().numpy(), vp.numpy(), theta, 1.0 / tau, amp, spec.graded,
            i_dec, v_dec, g_x.numpy(),
        )  # fmt: skip
        return g_x, None, None
    dt = vp.dtype
    g_s_ = g_s.contiguous().to(dt) if g_s is not None else empty2d(rows, vp)
    g_v_ = g_v.contiguous().to(dt) if g_v is not None else empty2d(rows, vp)
    g_u_ = g_u.contiguous().to(dt) if g_u is not None else empty2d(rows, vp)
    u_rec_ = u_rec if (u_rec is not None and want_di) else empty2d(rows, vp)
    g_di = torch.zeros(rows if want_di else 0, dtype=torch.float64, device=vp.device)
    g_dv = torch.zeros(rows if want_dv else 0, dtype=torch.float64, device=vp.device)
    u0f = u0.to(torch.float64) / spec.s_scale
    v0f = v0.to(torch.float64) / spec.s_scale
    args = (g_s_, g_v_, g_u_, vp, u_rec_, theta, v_th, float(spec.s_scale), 1.0 / tau, amp,
            spec.graded, i_dec, v_dec, u0f, v0f, do_v, do_u, g_x, g_di, g_dv)  # fmt: skip
    if backend == "cpu":
        _cpu.cuba_backward(
            *[kernel_array(a, backend) if isinstance(a, torch.Tensor) else a for a in args]
        )
    else:
        from . import _cuda

        launch(_cuda.cuba_backward, rows, *args)
    return g_x, (g_di if want_di else None), (g_dv if want_dv else None)


def _reduce_param_grad(g_rows: torch.Tensor, n_values: int, spec: CubaSpec, batch: int):
    g = g_rows.reshape(batch, spec.channels, spec.per_channel)
    if n_values == 1:
        return g.sum().reshape(1)
    return g.sum(dim=(0, 2))


class CubaFunction(torch.autograd.Function):
    """``(x, current_decay, voltage_decay) -> (spike, current, voltage)`` on the kernels.

    ``x`` is ``(N, *neuron_shape, T)``. ``current``/``voltage`` are only
    computed when ``want_trace`` is true (otherwise empty tensors).
    ``bias`` is ``None``, a per-channel int64 array of hardware biases
    (``bias_mant << 6``), or a :class:`BatchMean` request.
    """

    @staticmethod
    def forward(ctx, x, current_decay, voltage_decay, spec, state, bias, want_trace):
        ctx.set_materialize_grads(False)
        backend = resolve_backend(spec.backend, x)
        shape = x.shape
        steps = shape[-1]
        x2 = x.detach().reshape(-1, steps)
        if not x2.is_contiguous():
            x2 = x2.contiguous()
        rows = x2.shape[0]
        batch = rows // (spec.channels * spec.per_channel)
        i_dec = _expand(decay_int(current_decay), spec)
        v_dec = _expand(decay_int(voltage_decay), spec)
        want_di = current_decay.requires_grad
        want_dv = voltage_decay.requires_grad
        u0 = state.u.clone() if (want_di or want_dv) else state.u
        v0 = state.v.clone() if (want_di or want_dv) else state.v
        clamp_ok = None
        if isinstance(bias, BatchMean):
            tmp = CubaState(state.u.clone(), state.v.clone())
            _, _, u_pre = run_forward(
                x2, spec, i_dec, v_dec, np.zeros(1, np.int64), tmp, False, True, backend
            )
            mean = (
                u_pre.to(torch.float64)
                .reshape(batch, spec.channels, spec.per_channel * steps)
                .mean(dim=(0, 2))
            )
            q = torch.round(mean * spec.scale / 2) * 2
            clamp_ok = ((q >= -256) & (q <= 254)).to(x.dtype)
            q = q.clamp(-256, 254)
            bias.mean = mean.to(x.dtype)
            bias_int = (-q).to(torch.int64).cpu().numpy() << 6
            bias_vec = _expand(bias_int, spec)
        elif bias is None:
            bias_vec = np.zeros(1, np.int64)
        else:
            bias_vec = _expand(np.asarray(bias, np.int64), spec)
        rec_u = want_trace or want_di
        s, vp, u = run_forward(x2, spec, i_dec, v_dec, bias_vec, state, True, rec_u, backend)
        ctx.spec = spec
        ctx.backend = backend
        ctx.shape = shape
        ctx.batch = batch
        ctx.dec = (i_dec, v_dec, current_decay.numel(), voltage_decay.numel())
        ctx.flags = (want_di, want_dv, isinstance(bias, BatchMean))
        ctx.save_for_backward(
            vp,
            u if want_di else None,
            u0 if (want_di or want_dv) else None,
            v0 if (want_di or want_dv) else None,
            clamp_ok,
        )
        if want_trace:
            current = u
            if bias_vec.size > 1 or bias_vec[0] != 0:
                b = torch.from_numpy(bias_vec.astype(np.float64) / spec.s_scale)
                b = b.to(device=x.device, dtype=x.dtype).reshape(1, -1, 1)
                current = u.reshape(batch, -1, steps) + b
            current = current.reshape(shape)
            voltage = vp.reshape(shape)
        else:
            current = voltage = x.new_empty(0)
        ctx.mark_non_differentiable(*(() if want_trace else (current, voltage)))
        return s.reshape(shape), current, voltage

    @staticmethod
    def backward(ctx, g_s, g_cur, g_vol):
        vp, u, u0, v0, clamp_ok = ctx.saved_tensors
        spec, backend, shape = ctx.spec, ctx.backend, ctx.shape
        i_dec, v_dec, n_i, n_v = ctx.dec
        want_di, want_dv, batch_norm = ctx.flags
        steps = shape[-1]

        def flat(g):
            return None if g is None or g.numel() == 0 else g.reshape(-1, steps)

        g_s, g_cur, g_vol = flat(g_s), flat(g_cur), flat(g_vol)
        rows = vp.shape[0]
        if u0 is None:
            u0 = torch.zeros(rows, dtype=torch.int64, device=vp.device)
            v0 = u0
        if g_s is None and g_cur is None and g_vol is None:
            return None, None, None, None, None, None, None
        if not batch_norm:
            g_x, g_di, g_dv = run_backward(
                g_s, g_vol, g_cur, vp, u, spec, i_dec, v_dec, u0, v0,
                True, True, want_di, want_dv, backend,
            )  # fmt: skip
        else:
            g_c, _, g_dv = run_backward(
                g_s, g_vol, g_cur, vp, None, spec, i_dec, v_dec, u0, v0,
                True, False, False, want_dv, backend,
            )  # fmt: skip
            gc = g_c.reshape(ctx.batch, spec.channels, spec.per_channel * steps)
            gc = gc - clamp_ok.reshape(1, -1, 1) * gc.mean(dim=(0, 2), keepdim=True)
            g_x, g_di, _ = run_backward(
                None, None, gc.reshape(rows, steps), vp, u, spec, i_dec, v_dec, u0, v0,
                False, True, want_di, False, backend,
            )  # fmt: skip
        g_i_param = g_v_param = None
        if want_di and g_di is not None:
            g_i_param = _reduce_param_grad(g_di, n_i, spec, ctx.batch).to(vp.dtype)
        if want_dv and g_dv is not None:
            g_v_param = _reduce_param_grad(g_dv, n_v, spec, ctx.batch).to(vp.dtype)
        return g_x.reshape(shape), g_i_param, g_v_param, None, None, None, None


def surrogate_spike(voltage: torch.Tensor, spec: CubaSpec) -> torch.Tensor:
    """Spike function on a (pre-reset) voltage with the exact integer compare.

    Forward: ``s = v * s_scale > v_th_mant << 6`` (graded: ``s * v``); backward:
    the surrogate of :class:`CubaFunction` (no scan).
    """
    return _SpikeFunction.apply(voltage, spec)


class _SpikeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, spec):
        vi = torch.round(v.detach().to(torch.float64) * spec.s_scale)
        spk = (vi > (spec.v_th_mant << 6)).to(v.dtype)
        ctx.save_for_backward(v)
        ctx.spec = spec
        return spk * v if spec.graded else spk

    @staticmethod
    def backward(ctx, g):
        (v,) = ctx.saved_tensors
        spec = ctx.spec
        if spec.graded:
            d = spec.scale_rho * torch.exp(torch.clamp(v - spec.theta, max=0) / spec.tau_rho)
        else:
            d = (
                spec.scale_rho
                / (2 * spec.tau_rho)
                * torch.exp(-torch.abs(v - spec.theta) / spec.tau_rho)
            )
        return g * d, None


def make_spec(
    threshold: float, scale: int, tau_grad: float, scale_grad: float, graded: bool,
    channels: int, per_channel: int, backend: str = "auto",
) -> CubaSpec:  # fmt: skip
    """Build a :class:`CubaSpec` from lava-dl neuron arguments."""
    v_th_mant = int(threshold * scale)
    theta = v_th_mant / scale
    tau_rho = tau_grad * theta * TAU_RHO_MULT
    if not math.isfinite(tau_rho) or tau_rho <= 0:
        raise ParameterError(
            f"threshold * tau_grad must be positive for the surrogate gradient, got "
            f"threshold = {theta} (vThMant {v_th_mant}), tau_grad = {tau_grad}"
        )
    return CubaSpec(scale, v_th_mant, tau_rho, scale_grad * SCALE_RHO_MULT, bool(graded),
                    channels, per_channel, backend)  # fmt: skip

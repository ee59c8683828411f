r"""Resonator training op (RF, RF_IZ, ADRF, ADRF_IZ): integer forward, surrogate backward.

**Forward.** The neuron turns the complex synaptic input ``(x_re, x_im)``
(float, weight units) into the integer sums
:math:`A = \operatorname{rint}(\mathrm{scale}\cdot x)` and runs the model's
integer kernels, :func:`loihi_slayer.fixed.run` (njit, numba.cuda or the NumPy
reference; the same code the emulator runs); this op wraps the traces. Its
float outputs are the integer traces divided by ``s_scale = 64 * scale``:
``re``, ``im`` (pre-reset), the adaptive threshold ``th`` and refractory state
``r``, and the spikes (graded: the payload ``re`` for the phase models, ``im``
for the Izhikevich models, as lava-dl).

*Exactness.* :math:`\mathrm{scale}\cdot x` is the exact integer sum when the
weights lie on the ``quantize_8bit`` grid, the inputs are binary spikes and the
float32 sums are exact (:math:`|A| < 2^{24}`). The result then equals lava-dl's
int64 forward while the states stay within 24 bits (the chip saturates
them to :math:`\pm(2^{23}-1)`; lava-dl does not) and equals the chip always.

**Backward.** lava-dl's surrogate and the transposed rotation, as compiled
kernels (:mod:`._resonator_bwd`, :mod:`._resonator_cuda`) with a NumPy
reference (:mod:`._resonator_ref`); see :mod:`._resonator_bwd` for the
equations. Spike condition and surrogate variable, as lava-dl:

- RF, ADRF (phase threshold): the complex spike of
  :mod:`loihi_slayer.spike.complex` gives gradients to both ``re`` (the
  threshold condition) and ``im`` (the zero crossing);
- RF_IZ, ADRF_IZ: the spike is ``im >= θ``; the surrogate acts on ``im`` only.

The adaptive threshold and refractory state pass no gradient (lava-dl returns
None for them); the Izhikevich reset is ignored by the backward (as lava-dl).
The rotation parameters get the analytic gradient of the recursion (lava-dl
omits the factor 1/4096 and ignores the initial state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._recycle import kept_empty
from .._threads import follow_torch_threads
from . import _resonator_bwd, _resonator_ref
from ._convert import FLOAT_TRACE, scaled_sum, spikes_float
from ._dispatch import empty2d, kernel_array, launch, resolve_backend
from ._first_order import first_order

#: Spike-condition families: 0 = phase threshold on ``re`` (RF, ADRF), 1 = ``im >= θ``.
PHASE, IMAG = 0, 1


@dataclass
class ResonatorSpec:
    """Static configuration of one resonator op call.

    Attributes
    ----------
    model
        The :class:`~loihi_slayer.models.base.NeuronModel` (``rf``, ``rf_iz``, ...).
    scale
        Weight scale (``w_scale``): ``A = rint(scale * x)``, states ``/ (64 * scale)``.
    v_th_mant
        Threshold mantissa (base threshold of the adaptive models).
    tau_rho, scale_rho
        Surrogate width and amplitude (with lava-dl's multipliers applied).
    graded
        Graded payload instead of binary spikes.
    mode
        :data:`PHASE` or :data:`IMAG` (which spike condition).
    reset
        The model has the Izhikevich reset (``rf_iz``).
    channels, per_channel
        Neuron layout ``C`` and ``H*W`` (per-channel parameters are expanded over ``H*W``).
    backend
        ``'auto'``, ``'cpu'``, ``'cuda'`` or ``'reference'``.
    """

    model: Any
    scale: int
    v_th_mant: int
    tau_rho: float
    scale_rho: float
    graded: bool
    mode: int
    reset: bool
    channels: int
    per_channel: int
    backend: str = "auto"

    @property
    def s_scale(self) -> int:
        """State scale ``64 * scale``."""
        return 64 * self.scale

    @property
    def theta(self) -> float:
        """Float (base) threshold ``v_th_mant / scale``."""
        return self.v_th_mant / self.scale

    @property
    def adaptive(self) -> bool:
        """The model has the adaptive threshold ``th`` and refractory state ``r``."""
        return "th" in self.model.states


def rotation_int(param: torch.Tensor) -> np.ndarray:
    """``rne(p)`` of a stored rotation parameter (sin/cos decay ×4096) as int64."""
    return torch.round(param.detach()).to(torch.int64).cpu().numpy().reshape(-1)


def run_backward(
    g_s,
    g_re,
    g_im,
    re,
    im,
    thr,
    spk,
    spec: ResonatorSpec,
    sin_q,
    cos_q,
    re0,
    im0,
    want_p: bool,
    backend: str,
    out_dtype: torch.dtype | None = None,
):
    """Backward kernels on ``(rows, T)`` tensors; returns ``(g_xre, g_xim, g_sin, g_cos)``
    (``g_x*`` in ``out_dtype``, default ``re``'s: the compiled kernels compute in float64).

    ``g_sin``/``g_cos`` are per-row float64 (None unless ``want_p``).
    """
    rows = re.shape[0]
    sin_v = np.asarray(sin_q, np.float64).reshape(-1) / 4096.0
    cos_v = np.asarray(cos_q, np.float64).reshape(-1) / 4096.0
    if sin_v.size > 1:
        reps = rows // (spec.channels * spec.per_channel)
        sin_v = np.tile(np.repeat(sin_v, spec.per_channel), reps)
        cos_v = np.tile(np.repeat(cos_v, spec.per_channel), reps)
    im_reset = (spec.v_th_mant * 64 - 1) / spec.s_scale
    cfg = (spec.theta, spec.tau_rho, spec.scale_rho, spec.graded, spec.mode)
    if backend == "reference":

        def host(t):
            return None if t is None else t.detach().cpu().numpy()

        g_xre, g_xim, g_sin, g_cos = _resonator_ref.backward(
            host(g_s),
            host(g_re),
            host(g_im),
            host(re),
            host(im),
            host(thr),
            host(spk),
            *cfg,
            sin_v,
            cos_v,
            host(re0),
            host(im0),
            im_reset,
            want_p,
        )
        out = (torch.from_numpy(g_xre).to(re.dtype), torch.from_numpy(g_xim).to(re.dtype))
        if not want_p:
            return (*out, None, None)
        return (*out, torch.from_numpy(g_sin), torch.from_numpy(g_cos))

    def given(t, dtype=None):
        if t is None:
            return empty2d(rows, re, dtype)
        return t.contiguous()

    # in memory kept across steps (fresh, every page of these faults)
    g_dt = re.dtype if out_dtype is None else out_dtype
    g_xre = kept_empty("family input grad", tuple(re.shape), g_dt, re)
    g_xim = kept_empty("family input grad", tuple(re.shape), g_dt, re)
    n_p = rows if want_p else 0
    g_sin = torch.zeros(n_p, dtype=torch.float64, device=re.device)
    g_cos = torch.zeros(n_p, dtype=torch.float64, device=re.device)
    # the initial state is read only for the parameter gradients
    zero = torch.zeros(n_p or 1, dtype=torch.float64, device=re.device)
    args = (
        given(g_s),
        given(g_re),
        given(g_im),
        re,
        im,
        given(thr),
        given(spk, torch.int8),
        *cfg,
        sin_v,
        cos_v,
        zero if re0 is None else re0.to(torch.float64).contiguous(),
        zero if im0 is None else im0.to(torch.float64).contiguous(),
        im_reset,
        g_xre,
        g_xim,
        g_sin,
        g_cos,
    )
    if backend == "cpu":
        follow_torch_threads()
        _resonator_bwd.backward(
            *[kernel_array(a, backend) if isinstance(a, torch.Tensor) else a for a in args]
        )
    else:
        from . import _resonator_cuda

        if re.is_cuda:
            args = tuple(
                torch.from_numpy(a).to(re.device) if isinstance(a, np.ndarray) else a for a in args
            )
        launch(_resonator_cuda.backward, rows, *args)
    return g_xre, g_xim, (g_sin if want_p else None), (g_cos if want_p else None)


def _reduce(g_rows: torch.Tensor, n_values: int, spec: ResonatorSpec) -> torch.Tensor:
    g = g_rows.reshape(-1, spec.channels, spec.per_channel)
    if n_values == 1:
        return g.sum().reshape(1)
    return g.sum(dim=(0, 2))


class ResonatorFunction(torch.autograd.Function):
    """``(x_re, x_im, sin_decay, cos_decay) -> (spike, re, im, th, r)``.

    ``x_re``/``x_im`` are ``(N, *neuron_shape, T)``; ``traces`` are the integer
    traces the model's kernels computed from them (``s, re, im[, th, r]``, torch
    tensors) and ``init`` the initial integer state (``name -> array``). ``th``
    and ``r`` are the adaptive threshold and refractory state ``/ s_scale``
    (non-differentiable; empty for RF/RF_IZ).
    """

    @staticmethod
    def forward(ctx, x_re, x_im, sin_decay, cos_decay, spec, traces, init):
        ctx.set_materialize_grads(False)
        backend = resolve_backend(spec.backend, x_re)
        shape = x_re.shape
        steps = shape[-1]
        sin_q, cos_q = rotation_int(sin_decay), rotation_int(cos_decay)
        dt = x_re.dtype
        inv = 1.0 / spec.s_scale
        re = scaled_sum(traces["re"].reshape(-1, steps), None, inv, dt, kept=FLOAT_TRACE)
        im = scaled_sum(traces["im"].reshape(-1, steps), None, inv, dt, kept=FLOAT_TRACE)
        spk = traces["s"].reshape(-1, steps)
        s = spikes_float(spk, dt)
        if spec.graded:
            s = s * (re if spec.mode == PHASE else im)
        thr = None
        out_th = out_r = x_re.new_empty(0)
        if spec.adaptive:
            th_i, r_i = traces["th"].reshape(-1, steps), traces["r"].reshape(-1, steps)
            thr = scaled_sum(th_i, r_i, inv, dt, kept=FLOAT_TRACE)
            out_th = scaled_sum(th_i, None, inv, dt).reshape(shape)
            out_r = scaled_sum(r_i, None, inv, dt).reshape(shape)
        want_p = sin_decay.requires_grad or cos_decay.requires_grad
        re0 = im0 = None
        if want_p:
            re0, im0 = (
                torch.as_tensor(np.asarray(init[k], np.float64).reshape(-1) * inv, device=re.device)
                for k in ("re", "im")
            )
        ctx.spec, ctx.backend, ctx.shape = spec, backend, shape
        ctx.rot = (sin_q, cos_q, sin_decay.numel(), cos_decay.numel(), want_p)
        # the traces saved as the outputs they are (the same memory): a create_graph
        # backward then reaches the inputs through them (``first_order``)
        re_out, im_out = re.reshape(shape), im.reshape(shape)
        ctx.save_for_backward(
            re_out, im_out, thr, spk if (spec.reset and want_p) else None, re0, im0
        )
        ctx.mark_non_differentiable(out_th, out_r)
        return s.reshape(shape), re_out, im_out, out_th, out_r

    @staticmethod
    @first_order("ResonatorFunction (the resonator kernels)")
    def backward(ctx, g_s, g_re, g_im, _g_th, _g_r):
        re, im, thr, spk, re0, im0 = ctx.saved_tensors
        spec, backend, shape = ctx.spec, ctx.backend, ctx.shape
        sin_q, cos_q, n_sin, n_cos, want_p = ctx.rot
        steps = shape[-1]
        re, im = re.reshape(-1, steps), im.reshape(-1, steps)

        def flat(g):
            return None if g is None else g.reshape(-1, steps).contiguous()

        if g_s is None and g_re is None and g_im is None:
            return (None,) * 7
        g_xre, g_xim, g_sin, g_cos = run_backward(
            flat(g_s),
            flat(g_re),
            flat(g_im),
            re,
            im,
            thr,
            spk,
            spec,
            sin_q,
            cos_q,
            re0,
            im0,
            want_p,
            backend,
        )
        gs = gc = None
        if want_p:
            gs = _reduce(g_sin, n_sin, spec).to(re.dtype)
            gc = _reduce(g_cos, n_cos, spec).to(re.dtype)
        return g_xre.reshape(shape), g_xim.reshape(shape), gs, gc, None, None, None

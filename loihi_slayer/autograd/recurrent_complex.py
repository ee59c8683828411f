r"""Fused recurrence of the resonator Recurrent and KWTA blocks (RF, RF_IZ, ADRF, ADRF_IZ):
the whole time loop in one compiled call, forward and backward.

A resonator Recurrent/KWTA block computes, step by step,

.. math::

    a_{re}[t] = z_{re}[t] + W_{re}\, s[t-1] + b, \qquad
    a_{im}[t] = z_{im}[t] + W_{im}\, s[t-1] + b, \qquad
    s[t] = f(a_{re}[t], a_{im}[t])

with ``f`` the resonator training neuron (its integer state carried between steps
without gradient) and :math:`s[-1] = 0`; KWTA feeds the same lateral weights into
both parts (:mod:`loihi_slayer.block._complex`). :func:`resonator_recurrent` runs the
loop in one kernel generated from the model's declared step
(:func:`loihi_slayer.fixed.codegen.kernel_module`, target ``'recurrent'``), so the four
models share this module, and returns exactly the spikes and end state of the
step-by-step loop. The conditions are those of :mod:`.recurrent` (exact feedback on
the ``1/scale`` grid, binary spikes, no dropout, CPU, eager mode).

**Backward** (the step-by-step block's gradients: each neuron call is one step, its
state a constant of the gradient):

.. math::

    g_s[t] &= \frac{\partial L}{\partial s[t]}
        + W_{re}^\top g_{re}[t+1] + W_{im}^\top g_{im}[t+1] \\
    g_{re}[t] &= g_s[t]\,\frac{\partial s}{\partial \mathrm{re}}[t], \qquad
    g_{im}[t] = g_s[t]\,\frac{\partial s}{\partial \mathrm{im}}[t]

with the neuron's surrogate (its own backward kernel, :func:`.resonator.run_backward`:
the phase spike of RF and ADRF, the spike on ``im`` of the Izhikevich models),
:math:`\partial L/\partial z_{re}[t] = g_{re}[t]`,
:math:`\partial L/\partial z_{im}[t] = g_{im}[t]`, the feedback
weight gradients :math:`\sum_t g_{re}[t]\,s[t-1]^\top` (and ``im``), and the rotation
gradients of one step (:mod:`._resonator_bwd`) summed over steps, taken at the state
before each step:

.. math::

    \frac{\partial L}{\partial S} = \frac{1}{4096}\sum_t \big(g_{im}[t]\,\mathrm{re}^-[t]
        - g_{re}[t]\,\mathrm{im}^-[t]\big), \qquad
    \frac{\partial L}{\partial C} = \frac{1}{4096}\sum_t \big(g_{re}[t]\,\mathrm{re}^-[t]
        + g_{im}[t]\,\mathrm{im}^-[t]\big)

The surrogate is one flat parallel pass over all steps
(:func:`._resonator_bwd.surrogate_steps`). The sequential part: with KWTA's lateral
weights ``o + (d - o) I`` one compiled call for the whole loop, O(n) per row
(:func:`._recurrent_cpu.complex_backward_compact`); with dense feedback one BLAS
``(B, n) x (n, n)`` product per part and step (as fast as a compiled loop of dot
products here, see :func:`_compiled_loop`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._recycle import kept_empty
from .._threads import follow_torch_threads, numba_threads
from ..fixed.codegen import kernel_module
from . import _recurrent_cpu as _kern
from . import _recurrent_gemm as _gemm
from ._convert import scaled_sum
from ._first_order import first_order
from ._resonator_bwd import surrogate_steps
from .recurrent import (
    _check_bad,
    _compact,
    _parallel,
    _per_neuron,
    _time_major,
    add_feedback_grad,
    feedback_weight_grad,
    narrow_parts,
)
from .resonator import IMAG, ResonatorSpec, _reduce

__all__ = ["resonator_recurrent"]

#: states recorded before each step for the rotation gradients (the first two of every
#: resonator model)
_PRE_STATES = ("re", "im")

#: the recurrence's whole-sequence arrays live in memory kept across steps
#: (:func:`~loihi_slayer._recycle.kept_empty`), by role: the integer traces, the states
#: before each step and the spikes of the forward; the float traces, the surrogate, the
#: spike gradient and the input gradient of the backward. Fresh memory faulted page by
#: page at every step: ``rf.Recurrent`` 512 -> 512 at batch 32, T = 200 allocated about
#: 120 MB per step, 150 of its 450-550 ms on the Zen 3 VM (cProfile). Their roles' names
#: start with this.
KEPT_ROLE = "resonator recurrence: "


def _kept(role: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """Uninitialised ``shape`` memory of ``role`` (see :data:`KEPT_ROLE`)."""
    return kept_empty(KEPT_ROLE + role, shape, dtype)


@dataclass
class _Config:
    """What the op needs besides its differentiable inputs."""

    spec: ResonatorSpec
    m: tuple[np.ndarray, np.ndarray]  # feedback mantissas, kernel layout, narrowed
    fb_bias: np.ndarray  # (2,) int64, narrowed with them
    grid: float  # the feedback's grid step: 1 / scale times their common power of two
    table: np.ndarray  # (P, n) int64 parameters
    state: np.ndarray  # (S, B * n) int64, updated in place
    shared_weight: bool  # KWTA: one weight feeds both parts
    kwta: bool  # the weight is KWTA's o + (d - o) I (feedback_weight_grad)
    n_rot: int  # values of sin_decay and cos_decay (one, or one per channel)


class _Recurrence(torch.autograd.Function):
    """``(z_re, z_im, w_re, w_im, sin_decay, cos_decay) -> s`` (time-major ``(T, B, n)``)."""

    @staticmethod
    def forward(ctx, z_re, z_im, w_re, w_im, sin_decay, cos_decay, cfg: _Config):
        spec = cfg.spec
        model = spec.model
        batch, n, steps = z_re.shape
        zs = [_time_major(z) for z in (z_re, z_im)]
        traces = [_kept(f"trace {k}", (steps, batch, n), torch.int32) for k in model.traces]
        pre = _kept("pre", (len(_PRE_STATES), steps, batch, n), torch.int32)
        bad = torch.zeros(batch, dtype=torch.int8)
        mod = kernel_module(model, "recurrent")
        kern = mod.kernel if _parallel(batch, n, steps) else mod.kernel_serial
        kern(
            *(z.numpy() for z in zs),
            *cfg.m,
            cfg.fb_bias,
            cfg.grid,
            float(spec.scale),
            cfg.table,
            cfg.state,
            *(t.numpy() for t in traces),
            pre.numpy(),
            bad.numpy(),
        )
        _check_bad(bad, model.name.upper())
        tr = dict(zip(model.traces, traces, strict=True))
        s = _kept("spikes", (steps, batch, n), z_re.dtype).copy_(tr["s"])
        ctx.cfg = cfg
        ctx.save_for_backward(s, tr["re"], tr["im"], tr.get("th"), tr.get("r"), pre, w_re, w_im)
        ctx.mark_non_differentiable(pre)
        # no zeros materialised for ``pre``'s gradient: 26 MB filled per step at 512
        # neurons, batch 32, T = 200 (8 ms, Zen 3); a missing spike gradient is None
        ctx.set_materialize_grads(False)
        return s, pre

    @staticmethod
    @first_order("the complex recurrence (resonator Recurrent block)")
    def backward(ctx, g_s, _g_pre):
        s, re_i, im_i, th_i, r_i, pre, w_re, w_im = ctx.saved_tensors
        cfg = ctx.cfg
        spec = cfg.spec
        steps, batch, n = s.shape
        dt = s.dtype
        inv = 1.0 / spec.s_scale

        d_re, d_im = _surrogate(re_i, im_i, th_i, r_i, spec, dt)
        real_part = spec.mode != IMAG  # the Izhikevich spike passes nothing to re
        args = (d_re, d_im, w_re, w_im, cfg.shared_weight, real_part)
        gx = None
        if dt == torch.float32:  # compiled: KWTA's compact feedback, else dense in tiles
            gx = _compiled_loop(g_s, *args)
            if gx is None:
                gx = _tiled_loop(g_s, *args)
        if gx is None:
            gx = _stepped_loop(g_s, s, *args)
        need = ctx.needs_input_grad
        g_wim = None
        if cfg.shared_weight and (need[2] or need[3]):
            both = torch.add(gx[0], gx[1], out=_kept("input grad sum", gx.shape[1:], gx.dtype))
            g_wre = feedback_weight_grad(both, s, w_re, cfg.kwta)
        else:
            g_wre = feedback_weight_grad(gx[0], s, w_re) if need[2] else None
            g_wim = feedback_weight_grad(gx[1], s, w_im) if need[3] else None
        g_sin = g_cos = None
        if need[4] or need[5]:
            gr, gi = gx[0].to(torch.float64), gx[1].to(torch.float64)
            re0, im0 = pre[0], pre[1]
            k = inv / 4096.0
            # per (batch item, neuron) row, reduced to the parameter as the neuron does
            rows_sin = (gi * re0 - gr * im0).sum(0).reshape(-1) * k
            rows_cos = (gr * re0 + gi * im0).sum(0).reshape(-1) * k
            g_sin = _reduce(rows_sin, cfg.n_rot, spec).to(dt)
            g_cos = _reduce(rows_cos, cfg.n_rot, spec).to(dt)
        return gx[0].permute(1, 2, 0), gx[1].permute(1, 2, 0), g_wre, g_wim, g_sin, g_cos, None


def _feedback_form(shared: bool, real_part: bool) -> int:
    """How the feedback's gradient is formed (``_recurrent_cpu.FB_*``): the parts' sum
    through one shared weight, each part through its own, or the imaginary part alone
    (the Izhikevich spike passes nothing to ``re``)."""
    return _kern.FB_SUM if shared else (_kern.FB_BOTH if real_part else _kern.FB_IMAG)


def _compiled_loop(
    g_s: Tensor | None,
    d_re: Tensor,
    d_im: Tensor,
    w_re: Tensor,
    w_im: Tensor,
    shared: bool,
    real_part: bool,
) -> Tensor | None:
    """The backward's time loop in one compiled call where every weight it uses is
    KWTA's ``o + (d - o) I`` (:func:`._recurrent_cpu.complex_backward_compact`, O(n) per
    row): float32 ``(2, T, B, n)`` input gradients of the two parts; else None (dense
    feedback: :func:`_tiled_loop`, or the step loop below its size)."""
    steps, batch, n = d_im.shape
    form = _feedback_form(shared, real_part)
    parts = {_kern.FB_SUM: (0,), _kern.FB_BOTH: (0, 1), _kern.FB_IMAG: (1,)}[form]
    compact = {k: _compact(w.detach().to(torch.float32)) for k, w in enumerate((w_re, w_im))}
    if n < 2 or any(compact[k].shape[0] != 1 for k in parts):
        return None
    diag = np.zeros(2, np.float32)
    off = np.zeros(2, np.float32)
    for k in parts:
        diag[k], off[k] = float(compact[k][0, 0]), float(compact[k][0, 1])
    gx = _kept("input grad", (2, steps, batch, n), torch.float32)
    if not real_part:
        gx[0].zero_()
    g_src = _NO_GRAD if g_s is None else g_s.to(torch.float32).contiguous().numpy()
    follow_torch_threads()
    _kern.complex_backward_compact(
        g_src, d_re.numpy(), d_im.numpy(), diag, off, form, real_part, gx.numpy()
    )
    return gx


def _tiled_loop(
    g_s: Tensor | None,
    d_re: Tensor,
    d_im: Tensor,
    w_re: Tensor,
    w_im: Tensor,
    shared: bool,
    real_part: bool,
) -> Tensor | None:
    """The backward's time loop in one compiled call where the feedback weights it uses
    are dense (no KWTA form) and the layer has :data:`._recurrent_gemm.GEMM_MIN_NEURONS`
    neurons or more: each step's products in register tiles
    (:func:`._recurrent_gemm.complex_backward_gemm`; with a weight per part one sum over
    both parts' terms, the weights stacked), the surrogate products as
    :func:`_stepped_loop`'s; else None. At 512 neurons, batch 32, T = 200 (Zen 4, scratch
    ``cpair.py`` of stop 58, 7 alternating rounds): 40.0 against the step loop's 59.5 ms
    with a weight per part, 22.3 against 31.8 with the imaginary part's alone. (4 x 2
    dot-product blocks had paired 0.97-1.17 against the step loop on the Zen 3 VM.)"""
    steps, batch, n = d_im.shape
    form = _feedback_form(shared, real_part)
    used = {_kern.FB_SUM: (w_re,), _kern.FB_BOTH: (w_re, w_im), _kern.FB_IMAG: (w_im,)}[form]
    dense = [_compact(w.detach().to(torch.float32)) for w in used]
    if n < _gemm.GEMM_MIN_NEURONS or any(w.shape[0] != n for w in dense):
        return None
    rows = np.concatenate([w.numpy() for w in dense]) if len(dense) > 1 else dense[0].numpy()
    gx = _kept("input grad", (2, steps, batch, n), torch.float32)
    if not real_part:  # the Izhikevich spike passes nothing to re
        gx[0].zero_()
    g_src = _NO_GRAD if g_s is None else g_s.to(torch.float32).contiguous().numpy()
    follow_torch_threads()
    _gemm.complex_backward_gemm(
        g_src,
        d_re.contiguous().numpy(),
        d_im.contiguous().numpy(),
        _gemm.packed_weights(rows),
        form,
        real_part,
        numba_threads(),
        _gemm.wide_tiles(),
        gx.numpy(),
    )
    return gx


_NO_GRAD = np.zeros((0, 0, 0), np.float32)
_NO_THRESHOLD = np.zeros(0, np.float32)


def _stepped_loop(
    g_s: Tensor | None,
    s: Tensor,
    d_re: Tensor,
    d_im: Tensor,
    w_re: Tensor,
    w_im: Tensor,
    shared: bool,
    real_part: bool,
) -> Tensor:
    """The backward's time loop step by step with PyTorch: one BLAS product per part and
    step (dense feedback, float64 training), and the reference the compiled loop
    (:func:`_compiled_loop`) is tested against."""
    steps, batch, n = s.shape
    dt = s.dtype
    g = _kept("spike grad", (steps, batch, n), dt)  # the loop adds into it
    if g_s is None:
        g.zero_()
    else:
        g.copy_(g_s)
    gx = _kept("input grad", (2, steps, batch, n), dt)
    if not real_part:  # the Izhikevich spike passes nothing to re
        gx[0].zero_()
    w_fb = [_compact(w.detach().to(dt)) for w in (w_re, w_im)]
    fused = dt == torch.float32  # each step's surrogate products in one compiled call
    if fused:
        g_np, dre_np, dim_np, gx_np = g.numpy(), d_re.numpy(), d_im.numpy(), gx.numpy()
    for t in range(steps - 1, -1, -1):
        gt = g[t]
        if t < steps - 1:
            if shared:
                add_feedback_grad(gt, gx[0, t + 1] + gx[1, t + 1], w_fb[0])
            else:
                if real_part:
                    add_feedback_grad(gt, gx[0, t + 1], w_fb[0])
                add_feedback_grad(gt, gx[1, t + 1], w_fb[1])
        if fused:
            _kern.surrogate_step(g_np, dre_np, dim_np, t, real_part, gx_np)
            continue
        g64 = gt.to(torch.float64)
        if real_part:
            gx[0, t] = g64 * d_re[t]
        gx[1, t] = g64 * d_im[t]
    return gx


def _surrogate(re_i, im_i, th_i, r_i, spec: ResonatorSpec, dt: torch.dtype):
    """``(ds/dre, ds/dim)`` float64 ``(T, B, n)`` at the integer traces: what the neuron's
    backward kernel (:func:`.resonator.run_backward`) gives for each step alone with a
    unit spike gradient (:func:`._resonator_bwd.surrogate_steps`, its operations in one
    flat pass), on the float traces the neuron computes (``/ s_scale`` in ``dt``, by the
    same conversion), its float64 results kept."""
    shape = re_i.shape
    inv = 1.0 / spec.s_scale

    def traced(role, a, b=None):
        out = _kept(role, (a.numel(),), dt)
        return scaled_sum(a.reshape(-1), None if b is None else b.reshape(-1), inv, dt, out)

    thr = _NO_THRESHOLD if th_i is None else traced("float th", th_i, r_i).numpy()
    d_re = _kept("surrogate re", shape, torch.float64)
    d_im = _kept("surrogate im", shape, torch.float64)
    follow_torch_threads()
    surrogate_steps(
        traced("float re", re_i).numpy(),
        traced("float im", im_i).numpy(),
        thr,
        float(spec.theta),
        float(spec.tau_rho),
        float(spec.scale_rho),
        bool(spec.graded),
        int(spec.mode),
        d_re.reshape(-1).numpy(),
        d_im.reshape(-1).numpy(),
    )
    return d_re.reshape(shape), d_im.reshape(shape)


def resonator_recurrent(
    neuron: Any,
    z: tuple[Tensor, Tensor],
    w: tuple[Tensor, Tensor],
    b: Tensor | None,
    grids: tuple[tuple[np.ndarray, int], tuple[np.ndarray, int]],
    kwta: bool = False,
) -> Tensor:
    """Spikes ``(B, n, T)`` of the resonator recurrence (see the module docstring).

    Parameters
    ----------
    neuron
        The block's resonator neuron (:class:`loihi_slayer.neuron._resonator.ResonatorNeuron`);
        its persistent state is read and written back as the step-by-step loop does.
    z
        Feed-forward input ``(z_re, z_im)``, each ``(B, n, T)``.
    w
        Feedback weights ``(w_re, w_im)`` ``(n, n)`` in ``z``'s dtype (the same tensor
        twice for KWTA); gradients flow into them.
    b
        Constant feedback bias (KWTA) or None; its mantissa is in ``grids``.
    grids
        :func:`.recurrent.feedback_grid` of each part (neither None).
    kwta
        The weights are a KWTA block's ``o + (d - o) I`` (the same tensor twice): their
        gradient is that of a weight of this form
        (:func:`.recurrent.feedback_weight_grad`).
    """
    z_re, z_im = z
    for part in z:
        neuron._check_input(part)
    if neuron.requires_grad:
        neuron.clamp()
    batch, n, steps = z_re.shape
    params = neuron.model_params(**neuron._device_values())
    lead = (batch, n)
    state = neuron._get_state(lead, params)
    model = neuron.model
    st = np.stack([np.asarray(state[k], np.int64).reshape(-1) for k in model.states])
    spec = neuron.spec()
    shared = w[0] is w[1]
    # the mantissas in their narrowest integer type, their common power of two in the
    # grid step (as CUBA's recurrence: int8 rows summed in int16 blocks)
    m, fb_bias, grid = narrow_parts(
        [_compact(torch.from_numpy(m)).numpy() for m, _ in grids],
        [bm for _, bm in grids],
        1.0 / spec.scale,
    )
    cfg = _Config(
        spec=spec,
        m=m,
        fb_bias=np.array(fb_bias, np.int64),
        grid=grid,
        table=_per_neuron(params.vectors((n,)), n),
        state=st,
        shared_weight=shared,
        kwta=bool(kwta) and shared,
        n_rot=neuron.sin_decay.numel(),
    )
    s, pre = _Recurrence.apply(z_re, z_im, w[0], w[1], neuron.sin_decay, neuron.cos_decay, cfg)
    neuron._keep_state({k: st[i].reshape(lead) for i, k in enumerate(model.states)})
    if steps:
        neuron._imag_before = pre[1, -1].to(z_re.dtype) / spec.s_scale
    return s.permute(1, 2, 0)

r"""CUBA-LIF training op: integer forward (Loihi bit-exact), surrogate backward.

Forward (per neuron, integer hardware units, ``S = s_scale = 64 * scale``):

.. math::

    A[t] &= \operatorname{rint}(\mathrm{scale}\cdot x[t]) \\
    u[t] &= \operatorname{wrap}_{24}\big(\operatorname{rz}(u[t-1](4096-D_u)/4096)
            + 2^6 A[t]\big) \\
    v[t] &= \operatorname{sat}_{24}\big(\operatorname{rz}(v[t-1](4096-D_v)/4096)
            + u[t] + b\big) \\
    s[t] &= v[t] > \vartheta_{mant} \cdot 2^6, \qquad v[t] \leftarrow 0 \text{ if } s[t]

i.e. exactly :func:`loihi_slayer.fixed.dynamics.cuba_step`, including the
hardware refractory period: with ``refDelay = R > 1`` a spike holds ``v`` at 0
(no spike) for the next ``R - 1`` steps while ``u`` keeps integrating. The float
outputs are ``u/S`` (current), the pre-reset ``v/S`` (voltage, 0 on refractory
steps) and the spikes.

Backward (lava-dl's surrogate, spec §5.4; resets ignored):

.. math::

    \frac{\partial s}{\partial v} &= \frac{\rho}{2\tau}
        e^{-|v-\vartheta|/\tau} \quad (\text{graded: } \rho\, e^{\min(v-\vartheta, 0)/\tau}),
        \qquad \tau = 100\,\tau_{grad}\vartheta,\ \rho = 0.1\,\mathrm{scale\_grad} \\
    g_v[t] &= \frac{\partial L}{\partial s[t]}\frac{\partial s}{\partial v}
              + (1 - D_v/4096)\, g_v[t+1], \qquad
    g_u[t] = g_v[t] + (1 - D_u/4096)\, g_u[t+1], \qquad
    \frac{\partial L}{\partial x[t]} = g_u[t]

On a refractory step ``v`` does not depend on anything, so :math:`g_v[t] = 0`
there (no surrogate, no voltage-trace gradient, no carry to :math:`t-1`); the
current scan is unchanged. With ``R = 1`` this is lava-dl's backward.

Decay gradients (parameter ``p = 4096 * decay``; the rounding of ``p`` is
straight-through) are the analytic ones of this recursion,
:math:`\partial L/\partial p_v = -\frac{1}{4096}\sum_t g_v[t]\, v^{post}[t-1]` and
:math:`\partial L/\partial p_u = -\frac{1}{4096}\sum_t g_u[t]\, u[t-1]`, where
``v_post`` is the post-reset voltage (the value the decay really multiplies).
lava-dl instead returns :math:`\sum_t g[t+1]\, y[t]` with the *pre-reset*
output ``y`` and without the factor :math:`-1/4096` (wrong sign and scale).

The pair runs as the custom op ``loihi_slayer::cuba`` (:func:`.op.kernel_op`);
:func:`cuba_apply` is the entry point (``CubaFunction.apply`` is kept as an alias).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .. import _operand_handoff as handoff
from .._recycle import Recycled, kept_empty
from ..errors import ParameterError
from . import _cpu, reference
from ._dispatch import (
    copy_small,
    empty2d,
    kernel_array,
    launch,
    resolve_backend,
    stack_small,
    use_parallel,
)
from .op import kernel_op
from .spike import spike_op

TAU_RHO_MULT = 100.0
SCALE_RHO_MULT = 0.1

#: CPU forward kernels by (refractory period, parallel: see ``_dispatch.use_parallel``)
_CPU_FORWARD = {
    (False, True): _cpu.cuba_forward,
    (False, False): _cpu.cuba_forward_serial,
    (True, True): _cpu.cuba_forward_refractory,
    (True, False): _cpu.cuba_forward_refractory_serial,
}
#: CPU backward kernels by (fast path, parallel)
_CPU_BACKWARD = {
    (True, True): _cpu.cuba_backward_fast,
    (True, False): _cpu.cuba_backward_fast_serial,
    (False, True): _cpu.cuba_backward,
    (False, False): _cpu.cuba_backward_serial,
}
#: the fast backward on neuron-last spike gradients, by parallel
_CPU_BACKWARD_NL = {True: _cpu.cuba_backward_fast_nl, False: _cpu.cuba_backward_fast_nl_serial}


def neuron_last(g: Tensor) -> bool:
    """Whether ``g`` is a ``(B, N, T)`` view of neuron-last ``(B, T, N)`` memory: the input
    gradient a dense synapse's float product leaves (one row of ``N`` values per step)."""
    return g.dim() == 3 and not g.is_contiguous() and g.transpose(1, 2).is_contiguous()


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
    ref_delay
        Hardware ``refDelay`` ``R``: a spike holds ``v`` at 0 for ``R - 1``
        further steps (1: no refractory period).
    """

    scale: int
    v_th_mant: int
    tau_rho: float
    scale_rho: float
    graded: bool
    channels: int
    per_channel: int
    backend: str = "auto"
    ref_delay: int = 1

    @property
    def s_scale(self) -> int:
        """State scale ``64 * scale`` (hardware state = float state * s_scale)."""
        return self.scale * 64

    @property
    def theta(self) -> float:
        """The quantized float threshold ``v_th_mant / scale``."""
        return self.v_th_mant / self.scale


def _state_row(k: int, doc: str) -> property:
    """Row ``k`` of a :class:`CubaState` as a property (read: :meth:`CubaState._row`, set:
    :meth:`CubaState._replace`)."""
    return property(lambda st: st._row(k), lambda st, t: st._replace(k, t), doc=doc)


class CubaState:
    """Integer neuron state (length-``rows`` int64 vectors): current ``u``, post-reset
    voltage ``v`` and remaining refractory steps ``rc`` (``None``: zeros).

    A state made by :meth:`zeros` or :meth:`assign` holds one ``(3, rows)`` tensor and
    makes its row views only when one is read (each costs about 1 us, and a neuron
    without persistent state never reads them)."""

    __slots__ = ("_u", "_v", "_rc", "_packed", "_split", "scratch")

    def __init__(self, u: torch.Tensor, v: torch.Tensor, rc: torch.Tensor | None = None) -> None:
        self._u, self._v, self._rc = u, v, rc
        self._packed: torch.Tensor | None = None
        self._split = True
        #: nobody else holds this state (see :meth:`zeros`)
        self.scratch = False

    def __repr__(self) -> str:
        return f"CubaState(u={self.u!r}, v={self.v!r}, rc={self.rc!r})"

    def _row(self, k: int) -> torch.Tensor | None:
        if not self._split:  # the packed tensor's rows, made once
            p = self._packed
            self._u, self._v, self._rc, self._split = p[0], p[1], p[2], True
        return (self._u, self._v, self._rc)[k]

    def _replace(self, k: int, value: torch.Tensor | None) -> None:
        rows = [self._row(0), self._row(1), self._row(2)]
        rows[k] = value
        self._u, self._v, self._rc = rows
        self._packed = None  # no longer the packed tensor's rows

    u = _state_row(0, "Current ``u``.")
    v = _state_row(1, "Post-reset voltage ``v``.")
    rc = _state_row(2, "Remaining refractory steps (``None``: zeros).")

    @classmethod
    def zeros(cls, rows: int, device: torch.device, scratch: bool = False) -> CubaState:
        """The zero state of ``rows`` neurons, as rows of one ``(3, rows)`` tensor.
        ``scratch``: the caller keeps no other reference to the state's memory and reads
        the state only after a successful call, so a kernel may advance it in place
        rather than in a copy (a neuron without persistent state: 40 us a call for the
        18 496 neurons of N-MNIST's pool block)."""
        st = cls.__new__(cls)
        st.scratch = scratch
        dev = device if isinstance(device, torch.device) else torch.device(device)
        if dev.type == "cpu":  # NumPy's zeros: a third of torch's cost
            st.assign(torch.from_numpy(np.zeros((3, rows), np.int64)))
        else:
            st.assign(torch.zeros((3, rows), dtype=torch.int64, device=device))
        return st

    def stacked(self) -> torch.Tensor:
        """``(3, rows)`` int64: ``u, v, rc``. Where no row has been replaced since this
        state was made from one tensor (:meth:`zeros`, :meth:`assign`), that tensor itself
        (no copy: callers read it, as the kernel ops do), else a new one."""
        if self._packed is not None:
            return self._packed
        rc = torch.zeros_like(self._u) if self._rc is None else self._rc
        return stack_small((self._u, self._v, rc))

    def assign(self, stacked: torch.Tensor) -> None:
        """Take the state from a ``(3, rows)`` tensor (rows of it, no copy)."""
        self._packed, self._split = stacked, False


@dataclass
class BatchMean:
    """Mean-only batch-norm request: ``bias = -quantize_8bit(mean_c(current))``.

    ``mean`` receives the per-channel batch mean of the (pre-norm) current.
    """

    mean: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)


#: the attribute of a decay parameter that holds its last :func:`decay_int` and the key
#: it was computed for
_DECAY_MEMO = "_loihi_slayer_decay_int"


def decay_int(param: torch.Tensor) -> np.ndarray:
    """``rne(clamp(p, 0, 4096))`` as int64 (``p`` is the decay stored x4096).

    Kept on ``param`` until its version, memory or shape may have changed (an optimizer
    step, ``load_state_dict``, ``.data =``): a neuron's forward and backward read it
    four times a step, about 3 us each. The array is shared: read it, never write it.
    """
    try:
        key = (param._version, param.data_ptr(), param.shape, param.device)
    except RuntimeError:  # a tensor without plain memory (functorch, fake): no memo
        key = None
    memo = getattr(param, _DECAY_MEMO, None)
    if key is not None and memo is not None and memo[0] == key:
        return memo[1]
    p = param.detach()
    value = None
    if p.numel() == 1 and p.device.type == "cpu":  # a shared decay: no tensor operations
        f = float(p)
        if f == f:  # Python's round is half to even, as torch.round; NaN takes torch's path
            value = np.array([round(min(max(f, 0.0), 4096.0))], np.int64)
    if value is None:
        value = torch.round(p.clamp(0, 4096)).to(torch.int64).cpu().numpy().reshape(-1)
    if key is not None:
        try:
            setattr(param, _DECAY_MEMO, (key, value))
        except (AttributeError, RuntimeError):  # a tensor that takes no attributes
            pass
    return value


def batch_mean_bias(mean: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hardware bias ``-quantize_8bit(mean) << 6`` (int64) and where the clamp passes gradient."""
    q = torch.round(mean * scale / 2) * 2
    ok = (q >= -256) & (q <= 254)
    return (-q.clamp(-256, 254)).to(torch.int64) * 64, ok


def _expand(values: np.ndarray, spec: CubaSpec) -> np.ndarray:
    values = np.asarray(values).reshape(-1)
    if values.size == 1:
        return values
    if values.size != spec.channels:
        raise ParameterError(
            f"per-channel parameter has {values.size} values, expected {spec.channels} channels"
        )
    return np.repeat(values, spec.per_channel)


def lane_decays(
    spec: CubaSpec, current_decay: torch.Tensor, voltage_decay: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """The kernels' integer decays ``(iDecay, vDecay)``: :func:`decay_int` of each, one
    value or one per neuron of a batch entry (:func:`_expand`)."""
    return _expand(decay_int(current_decay), spec), _expand(decay_int(voltage_decay), spec)


def hardware_bias(bias: torch.Tensor, spec: CubaSpec) -> np.ndarray:
    """The kernels' int64 hardware biases from the op's ``bias`` tensor (integer already,
    or converted), one value or one per neuron of a batch entry."""
    values = bias.detach().cpu().numpy()
    return _expand(values if values.dtype == np.int64 else values.astype(np.int64), spec)


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
    state: torch.Tensor,
    rec_v: bool,
    rec_u: bool,
    backend: str,
    *,
    pool: tuple[np.ndarray, np.float32] | None = None,
    shift: bool = False,
    spikes_into: Recycled | None = None,
    operand_into: tuple[np.ndarray, np.ndarray] | None = None,
):
    """Run the fused forward kernel on a ``(rows, T)`` tensor; updates ``state`` ``(3, rows)``.

    Returns ``(s, v_pre, u, refractory)``; ``v_pre``/``u`` are None unless
    recorded, ``refractory`` (uint8) is ``(rows, 0)`` when ``ref_delay == 1``.
    CPU only: ``pool = ((kH, kW, H', W'), w)`` makes the neuron input the sum pool of
    ``x2`` (see :func:`._cpu.cuba_forward`; ``rows`` is then ``state``'s), and ``shift``
    delays the spikes by one step; the spikes go into ``spikes_into``'s memory where that
    is free (:mod:`loihi_slayer._recycle`). ``operand_into = (q, counts)`` (CPU, spikes
    of 0/1): the kernel also writes the spikes as the next dense product's int8 operand
    ``q`` ``(I, B, T)`` and their counts ``(B, I)`` (see :func:`._cpu.cuba_forward`).
    """
    rows, steps = state.shape[1], x2.shape[1]
    cpu_only = pool is not None or shift or spikes_into is not None or operand_into is not None
    if cpu_only and backend != "cpu":
        raise ValueError(
            "run_forward: pooled, shifted or recycled spikes and the int8 operand need the "
            f"cpu backend, got {backend}"
        )
    v_th = np.array([spec.v_th_mant << 6], np.int64)
    in_scale = float(spec.scale)
    out_scale = 1.0 / spec.s_scale
    rec_r = spec.ref_delay > 1
    if backend == "reference":
        s, vp, u, refr, *end = reference.cuba_forward(
            x2.detach().cpu().numpy(),
            in_scale,
            out_scale,
            i_dec,
            v_dec,
            v_th,
            bias,
            state[0].cpu().numpy(),
            state[1].cpu().numpy(),
            spec.graded,
            spec.ref_delay,
            state[2].cpu().numpy(),
        )
        if not np.all(np.isfinite(x2.detach().cpu().numpy())):
            _check_bad(np.ones(1))
        state.copy_(torch.from_numpy(np.stack(end)))

        def conv(a):
            return torch.from_numpy(np.ascontiguousarray(a)).to(x2.dtype)

        r_out = torch.from_numpy(refr.astype(np.uint8)) if rec_r else empty2d(rows, x2, torch.uint8)
        return conv(s), (conv(vp) if rec_v else None), (conv(u) if rec_u else None), r_out
    # whole-sequence arrays in memory kept across steps (fresh, each page faults)
    s_out = (
        kept_empty("cuba spikes", (rows, steps), x2.dtype, x2)
        if spikes_into is None
        else spikes_into.empty((rows, steps), x2.dtype)
    )
    vp_out = kept_empty("cuba voltage", (rows, steps), x2.dtype, x2) if rec_v else None
    u_out = kept_empty("cuba current", (rows, steps), x2.dtype, x2) if rec_u else None

    def kernel_args(x_, st, s_, vp_, u_, r_, bad_) -> tuple:
        """The forward kernels' arguments, arrays as the backend takes them."""
        head = (x_, in_scale, out_scale, i_dec, v_dec, v_th, int(spec.ref_delay), bias)
        return (*head, st[0], st[1], st[2], spec.graded, s_, vp_, u_, r_, bad_)

    if backend == "cpu":
        r_out = (
            torch.empty((rows, steps), dtype=torch.uint8)
            if rec_r
            else torch.from_numpy(np.empty((rows, 0), np.uint8))
        )
        # NumPy views and placeholders made directly: each torch allocation and
        # conversion costs 1-2 us, a fifth of a small neuron's forward
        xn = x2.detach().numpy()
        unused = np.empty((rows, 0), xn.dtype)
        bad = np.zeros(rows, np.int8)
        geometry, weight = (_cpu.NO_POOL, np.float32(1)) if pool is None else pool
        _cpu.run_cuba_forward(
            _CPU_FORWARD[rec_r, use_parallel(rows, steps)],
            *kernel_args(
                xn,
                state.numpy(),
                s_out.numpy(),
                unused if vp_out is None else vp_out.numpy(),
                unused if u_out is None else u_out.numpy(),
                r_out.numpy(),
                bad,
            ),
            geometry,
            weight,
            int(shift),
            *((_cpu.NO_OPERAND, _cpu.NO_COUNTS) if operand_into is None else operand_into),
        )
        if np.count_nonzero(bad):  # (a third of ndarray.any's cost on small arrays)
            _check_bad(bad)
        return s_out, vp_out, u_out, r_out
    from . import _cuda

    r_out = (
        torch.empty((rows, steps), dtype=torch.uint8, device=x2.device)
        if rec_r
        else empty2d(rows, x2, torch.uint8)
    )
    bad_t = torch.zeros(rows, dtype=torch.int8, device=x2.device)
    placeholder = empty2d(rows, x2)
    launch(
        _cuda.cuba_forward,
        rows,
        *kernel_args(
            x2,
            state,
            s_out,
            placeholder if vp_out is None else vp_out,
            placeholder if u_out is None else u_out,
            r_out,
            bad_t,
        ),
    )
    _check_bad(bad_t)
    return s_out, vp_out, u_out, r_out


def _time_shifted(a: torch.Tensor, by: int) -> torch.Tensor:
    """``(rows, T)`` ``a`` moved ``by = ±1`` steps along time, zeros where nothing arrives:
    ``+1`` is the block's shift of the spikes, ``-1`` the shift of their gradient back.
    In memory kept across steps (:func:`~loihi_slayer._recycle.kept_empty`), only the
    steps nothing arrives at zeroed: fresh zeroed memory took 0.3-0.4 ms a call on the
    Oxford network's (256, 2000) gradient, page by page."""
    out = kept_empty("time-shifted", tuple(a.shape), a.dtype, a)
    if by > 0:
        out[:, :by] = 0
        out[:, by:] = a[:, :-by]
    else:
        out[:, by:] = 0
        out[:, :by] = a[:, -by:]
    return out


def run_backward(
    g_s,
    g_v,
    g_u,
    vp,
    u_rec,
    spec: CubaSpec,
    i_dec,
    v_dec,
    u0,
    v0,
    do_v: bool,
    do_u: bool,
    want_di: bool,
    want_dv: bool,
    backend: str,
    refr=None,
    lag: int = 0,
):
    """Surrogate + reverse scans on ``(rows, T)`` tensors. Returns ``(g_x, g_di, g_dv)``.

    ``refr`` (uint8 ``(rows, T)``, or ``(rows, 0)``/None without refractory)
    marks the refractory steps, which carry no voltage gradient. ``lag = 1``: ``g_s`` is
    the gradient of the spikes shifted one step later (:func:`cuba_apply`'s ``shift``).
    ``g_s`` may also be a neuron-last ``(B, N, T)`` view (:func:`neuron_last`): the CPU
    fast path (spike gradient only, float32) then reads it as it lies and returns ``g_x``
    in the same layout, with no transposing copy on either side; elsewhere it is
    reshaped to ``(rows, T)``.
    """
    rows, steps = vp.shape
    has_r = refr is not None and refr.shape[1] > 0
    fast = (
        backend == "cpu"
        and g_s is not None
        and g_v is None
        and g_u is None
        and not has_r
        and do_v
        and do_u
        and not want_di
        and not want_dv
        and vp.dtype == torch.float32
    )
    if g_s is not None and g_s.dim() == 3 and not fast:
        g_s = g_s.reshape(rows, steps)
    theta = np.array([spec.theta], np.float64)
    tau = np.array([spec.tau_rho], np.float64)
    amp = spec.scale_rho if spec.graded else spec.scale_rho / (2.0 * spec.tau_rho)
    v_th = np.array([spec.v_th_mant << 6], np.int64)
    if lag and backend == "reference":
        g_s, lag = (None if g_s is None else _time_shifted(g_s, -1)), 0
    if backend == "reference":

        def np_or_none(t):
            return None if t is None else t.detach().cpu().numpy()

        g_x, g_di, g_dv = reference.cuba_backward(
            np_or_none(g_s),
            np_or_none(g_v),
            np_or_none(g_u),
            vp.cpu().numpy(),
            np_or_none(u_rec),
            theta,
            tau,
            spec.scale_rho,
            spec.graded,
            i_dec,
            v_dec,
            u0.cpu().numpy() / spec.s_scale,
            v0.cpu().numpy() / spec.s_scale,
            spec.s_scale,
            v_th,
            do_v,
            do_u,
            np_or_none(refr) if has_r else None,
        )
        return (
            torch.from_numpy(g_x).to(vp.dtype),
            torch.from_numpy(g_di) if want_di else None,
            torch.from_numpy(g_dv) if want_dv else None,
        )
    if fast:
        parallel = use_parallel(rows, steps)
        if g_s.dim() == 3:  # neuron-last (see neuron_last): (B, T, N) in and out
            kernel, g_in = _CPU_BACKWARD_NL[parallel], g_s.transpose(1, 2)
            g_x = kept_empty("cuba input grad", (g_s.shape[0], steps, g_s.shape[1]), vp.dtype)
        else:
            kernel, g_in = _CPU_BACKWARD[True, parallel], g_s.contiguous()
            g_x = kept_empty("cuba input grad", tuple(vp.shape), vp.dtype)
        kernel(
            g_in.numpy(),
            vp.numpy(),
            theta,
            1.0 / tau,
            amp,
            spec.graded,
            i_dec,
            v_dec,
            g_x.numpy(),
            lag,
        )
        return (g_x.transpose(1, 2) if g_s.dim() == 3 else g_x), None, None
    g_x = kept_empty("cuba input grad", tuple(vp.shape), vp.dtype, vp)
    if lag and g_s is not None:  # the other kernels read the unshifted gradient
        g_s = _time_shifted(g_s, -1)
    dt = vp.dtype
    g_s_ = g_s.contiguous().to(dt) if g_s is not None else empty2d(rows, vp)
    g_v_ = g_v.contiguous().to(dt) if g_v is not None else empty2d(rows, vp)
    g_u_ = g_u.contiguous().to(dt) if g_u is not None else empty2d(rows, vp)
    u_rec_ = u_rec if (u_rec is not None and want_di) else empty2d(rows, vp)
    refr_ = refr if has_r else empty2d(rows, vp, torch.uint8)
    g_di = torch.zeros(rows if want_di else 0, dtype=torch.float64, device=vp.device)
    g_dv = torch.zeros(rows if want_dv else 0, dtype=torch.float64, device=vp.device)
    u0f = u0.to(torch.float64) / spec.s_scale
    v0f = v0.to(torch.float64) / spec.s_scale
    args = (
        g_s_,
        g_v_,
        g_u_,
        vp,
        u_rec_,
        refr_,
        theta,
        v_th,
        float(spec.s_scale),
        1.0 / tau,
        amp,
        spec.graded,
        i_dec,
        v_dec,
        u0f,
        v0f,
        do_v,
        do_u,
        g_x,
        g_di,
        g_dv,
    )
    if backend == "cpu":
        _CPU_BACKWARD[False, use_parallel(rows, steps)](
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


# ---------------------------------------------------------------- the custom op
# Arguments: tensors, then the configuration packed in two lists (few schema
# arguments keep the per-call dispatch overhead small):
#   config = [scale, v_th_mant, ref_delay, graded, channels, per_channel, batch_mean, rec_u,
#             rec_v, shift]
#   rho = [tau_rho, scale_rho]
# Outputs: s (shape of x), v_pre (rows, T | 0), u (rows, T | 0), refractory
# (rows, T | 0, uint8), state (3, rows) int64, batch mean (channels | 0, float64).


def op_config(
    spec: CubaSpec, batch_mean: bool, rec_u: bool, rec_v: bool = True, shift: bool = False
) -> tuple[list[int], list[float]]:
    """The ``config`` and ``rho`` arguments of ``loihi_slayer::cuba`` for ``spec``.

    ``rec_v = False`` (no gradient and no trace wanted) skips the voltage record:
    the ``v_pre`` output is then ``(rows, 0)``. ``shift``: the spikes come out one step
    later (``s[..., 0] = 0``; the traces stay where they are).
    """
    ints = [
        spec.scale,
        spec.v_th_mant,
        spec.ref_delay,
        int(spec.graded),
        spec.channels,
        spec.per_channel,
        int(batch_mean),
        int(rec_u),
        int(rec_v),
        int(shift),
    ]
    return ints, [spec.tau_rho, spec.scale_rho]


def _op_spec(config: Sequence[int], rho: Sequence[float], backend: str) -> CubaSpec:
    scale, v_th_mant, ref_delay, graded, channels, per_channel = config[:6]
    return CubaSpec(
        scale, v_th_mant, rho[0], rho[1], bool(graded), channels, per_channel, backend, ref_delay
    )


def _cuba_forward(
    x: Tensor,
    current_decay: Tensor,
    voltage_decay: Tensor,
    bias: Tensor,
    state: Tensor,
    config: list[int],
    rho: list[float],
    backend: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    spec = _op_spec(config, rho, backend)
    batch_mean, rec_u, rec_v = bool(config[6]), bool(config[7]), bool(config[8])
    shift = bool(config[9])
    backend = resolve_backend(backend, x)
    steps = x.shape[-1]
    x2 = x.detach().reshape(-1, steps)
    if not x2.is_contiguous():
        x2 = x2.contiguous()
    rows = x2.shape[0]
    channels, per_channel = spec.channels, spec.per_channel
    batch = rows // (channels * per_channel)
    i_dec, v_dec = lane_decays(spec, current_decay, voltage_decay)
    mean = torch.empty(0, dtype=torch.float64, device=x.device)
    if batch_mean:
        tmp = copy_small(state)
        _, _, u_pre, _ = run_forward(
            x2, spec, i_dec, v_dec, np.zeros(1, np.int64), tmp, False, True, backend
        )
        mean = (
            u_pre.to(torch.float64).reshape(batch, channels, per_channel * steps).mean(dim=(0, 2))
        )
        bias = batch_mean_bias(mean, spec.scale)[0]
    bias_vec = hardware_bias(bias, spec)
    state_end = copy_small(state)
    fused = shift and backend == "cpu"  # the CPU kernel writes the spikes shifted
    s, vp, u, refr = run_forward(
        x2, spec, i_dec, v_dec, bias_vec, state_end, rec_v, rec_u, backend, shift=fused
    )
    if shift and not fused:
        s = _time_shifted(s, 1)
    if u is None:
        u = empty2d(rows, x2)
    if vp is None:
        vp = empty2d(rows, x2)
    return s.reshape(x.shape), vp, u, refr, state_end, mean


def _cuba_forward_fake(x, current_decay, voltage_decay, bias, state, config, rho, backend):
    _, _, ref_delay, _, channels, _, batch_mean, rec_u, rec_v, _shift = config
    steps = x.shape[-1]
    rows = x.numel() // steps
    return (
        x.new_empty(x.shape),
        x.new_empty((rows, steps if rec_v else 0)),
        x.new_empty((rows, steps if rec_u else 0)),
        x.new_empty((rows, steps if ref_delay > 1 else 0), dtype=torch.uint8),
        state.new_empty(state.shape),
        x.new_empty((channels if batch_mean else 0,), dtype=torch.float64),
    )


def _cuba_save(inputs, output):
    x, current_decay, voltage_decay, _bias, state, config, rho, backend = inputs
    _, vp, u, refr, _, mean = output
    return (vp, u, refr, state, current_decay, voltage_decay, mean), (
        list(x.shape),
        config,
        rho,
        backend,
    )


def _cuba_backward(
    g_s: Tensor | None,
    g_vp: Tensor | None,
    g_u: Tensor | None,
    g_refr: Tensor | None,
    g_state: Tensor | None,
    g_mean: Tensor | None,
    vp: Tensor,
    u: Tensor,
    refr: Tensor,
    state: Tensor,
    current_decay: Tensor,
    voltage_decay: Tensor,
    mean: Tensor,
    shape: list[int],
    config: list[int],
    rho: list[float],
    backend: str,
    needs: list[bool],
) -> tuple[Tensor, Tensor, Tensor]:
    spec = _op_spec(config, rho, backend)
    batch_mean = bool(config[6])
    lag = int(config[9])  # the spikes were shifted: their gradient arrives one step late
    channels, per_channel = spec.channels, spec.per_channel
    backend = resolve_backend(backend, vp)
    rows, steps = vp.shape
    batch = rows // (channels * per_channel)

    def flat(g):
        return None if g is None or g.numel() == 0 else g.reshape(rows, steps)

    # a neuron-last spike gradient stays as it is (no transposing copy): see run_backward
    g_s = g_s if g_s is not None and g_s.numel() and neuron_last(g_s) else flat(g_s)
    g_vp, g_u = flat(g_vp), flat(g_u)
    _, want_di, want_dv = needs
    i_dec, v_dec = lane_decays(spec, current_decay, voltage_decay)
    u_rec = u if u.shape[1] else None
    if want_di and u_rec is None:  # the kernels would read past the (rows, 0) placeholder
        raise ParameterError(
            "loihi_slayer::cuba: the current decay's gradient needs the current recorded in "
            "the forward (config rec_u = 1; cuba_apply sets it whenever the decay requires "
            "a gradient)"
        )
    u0, v0 = state[0], state[1]
    if g_s is None and g_vp is None and g_u is None:
        g_x, g_di, g_dv = torch.zeros_like(vp), None, None
    elif not batch_mean:
        g_x, g_di, g_dv = run_backward(
            g_s,
            g_vp,
            g_u,
            vp,
            u_rec,
            spec,
            i_dec,
            v_dec,
            u0,
            v0,
            True,
            True,
            want_di,
            want_dv,
            backend,
            refr,
            lag,
        )
    else:
        g_c, _, g_dv = run_backward(
            g_s,
            g_vp,
            g_u,
            vp,
            None,
            spec,
            i_dec,
            v_dec,
            u0,
            v0,
            True,
            False,
            False,
            want_dv,
            backend,
            refr,
            lag,
        )
        clamp_ok = batch_mean_bias(mean, spec.scale)[1].to(g_c.dtype)
        gc = g_c.reshape(batch, channels, per_channel * steps)
        gc = gc - clamp_ok.reshape(1, -1, 1) * gc.mean(dim=(0, 2), keepdim=True)
        g_x, g_di, _ = run_backward(
            None,
            None,
            gc.reshape(rows, steps),
            vp,
            u_rec,
            spec,
            i_dec,
            v_dec,
            u0,
            v0,
            False,
            True,
            want_di,
            False,
            backend,
        )

    def param_grad(g, p, want):
        if not want:
            return p.new_empty(0)
        if g is None:
            return torch.zeros_like(p)
        return _reduce_param_grad(g, p.numel(), spec, batch).to(p.dtype)

    return (
        g_x.reshape(shape),
        param_grad(g_di, current_decay, want_di),
        param_grad(g_dv, voltage_decay, want_dv),
    )


def _cuba_backward_fake(
    g_s,
    g_vp,
    g_u,
    g_refr,
    g_state,
    g_mean,
    vp,
    u,
    refr,
    state,
    current_decay,
    voltage_decay,
    mean,
    shape,
    config,
    rho,
    backend,
    needs,
):
    return (
        vp.new_empty(shape),
        current_decay.new_empty(current_decay.shape if needs[1] else (0,)),
        voltage_decay.new_empty(voltage_decay.shape if needs[2] else (0,)),
    )


cuba_op = kernel_op(
    "cuba",
    _cuba_forward,
    _cuba_forward_fake,
    _cuba_backward,
    _cuba_backward_fake,
    save=_cuba_save,
    grad_inputs=("x", "current_decay", "voltage_decay"),
)


def cuba_apply(
    x,
    current_decay,
    voltage_decay,
    spec: CubaSpec,
    state: CubaState,
    bias,
    want_trace: bool,
    shift: bool = False,
):
    """``(x, current_decay, voltage_decay) -> (spike, current, voltage)`` on the kernels.

    ``x`` is ``(N, *neuron_shape, T)``. ``current``/``voltage`` are only
    computed when ``want_trace`` is true (otherwise empty tensors). ``shift``: the
    spikes come out one step later (a block's delay shift, fused into the CPU kernels:
    the forward writes them shifted, the backward reads their gradient one step on).
    ``bias`` is ``None``, a per-channel int64 tensor/array of hardware biases
    (``bias_mant << 6``), or a :class:`BatchMean` request (its ``mean`` is
    set). ``state`` is advanced. Runs as the custom op ``loihi_slayer::cuba``.
    """
    batch_mean = isinstance(bias, BatchMean)
    if batch_mean or bias is None:
        bias_t = torch.zeros(1, dtype=torch.int64, device=x.device)
    else:
        bias_t = torch.as_tensor(bias, dtype=torch.int64, device=x.device).reshape(-1)
    grad = torch.is_grad_enabled() and (
        x.requires_grad or current_decay.requires_grad or voltage_decay.requires_grad
    )
    config, rho = op_config(
        spec, batch_mean, want_trace or current_decay.requires_grad, want_trace or grad, shift
    )
    s, vp, u, _, st_end, mean = cuba_op(
        x, current_decay, voltage_decay, bias_t, state.stacked(), config, rho, spec.backend
    )
    state.assign(st_end)
    if batch_mean:
        bias.mean = mean.detach().to(x.dtype)
        bias_t = batch_mean_bias(mean, spec.scale)[0]
    if not want_trace:
        empty = x.new_empty(0)
        return s, empty, empty
    current = u
    if bias is not None:
        b = (bias_t.to(x.dtype) / spec.s_scale).reshape(1, -1, 1)
        current = u.reshape(-1, spec.channels, spec.per_channel * x.shape[-1]) + b
    return s, current.reshape(x.shape), vp.reshape(x.shape)


def cuba_pooled_spikes(
    x: Tensor,
    kernel: tuple[int, int],
    weight: float,
    current_decay: Tensor,
    voltage_decay: Tensor,
    spec: CubaSpec,
    state: CubaState,
    bias,
    shift: bool,
    spikes_into: Recycled | None = None,
    operand_into: Recycled | None = None,
) -> Tensor:
    r"""Spikes of a CUBA neuron fed by a sum pool, pooled inside the forward kernel.

    .. math::

        z[n, c, i, j, t] = w \sum_{a < k_H} \sum_{b < k_W} x[n, c, k_H i + a, k_W j + b, t]

    is the input of :func:`cuba_apply` (the same float32 sums as
    ``synapse.Pool``), and ``shift`` delays the spikes one step (``s[..., 0] = 0``).
    One pass over ``x``: neither ``z`` nor the unshifted spikes are written. Forward
    only (no gradient), CPU float32 ``x`` ``(N, C, H, W, T)`` whose ``H``, ``W`` are
    multiples of the kernel; ``bias`` is None or per-channel int64 hardware biases.
    ``state`` is advanced. A NaN/inf or out-of-range input raises the neuron's
    :class:`ParameterError` with ``state`` unchanged (unless it is a ``scratch`` state,
    advanced in place: see :meth:`CubaState.zeros`). The spikes go into
    ``spikes_into``'s memory where that is free (see :func:`run_forward`). With
    ``operand_into`` (spikes of 0/1, not graded) the kernel also writes them as a dense
    product's int8 operand, in that memory, and offers it for them
    (:mod:`loihi_slayer.synapse._operand_handoff`).
    """
    n, c, h, w, steps = x.shape
    kh, kw = kernel
    out_shape = (n, c, h // kh, w // kw, steps)
    x2 = x.detach().reshape(-1, steps)
    if not x2.is_contiguous():
        x2 = x2.contiguous()
    bias_vec = np.zeros(1, np.int64) if bias is None else np.asarray(bias, np.int64).reshape(-1)
    state_end = state.stacked() if state.scratch else copy_small(state.stacked())
    geometry = np.array([kh, kw, h // kh, w // kw], np.int64)
    operand = None
    if operand_into is not None and not spec.graded:
        handoff.clear()  # the last offer's memory, free again unless still in use
        n_in = c * (h // kh) * (w // kw)
        q = operand_into.empty((n_in, n * steps), torch.int8)
        counts = torch.empty((n, n_in), dtype=torch.int32)
        operand = (q.numpy().reshape(n_in, n, steps), counts.numpy())
    s, _, _, _ = run_forward(
        x2,
        spec,
        *lane_decays(spec, current_decay, voltage_decay),
        _expand(bias_vec, spec),
        state_end,
        False,
        False,
        "cpu",
        pool=(geometry, np.float32(weight)),
        shift=shift,
        spikes_into=spikes_into,
        operand_into=operand,
    )
    state.assign(state_end)
    if operand is not None:
        handoff.offer(s, q, counts)
    return s.reshape(out_shape)


class CubaFunction:
    """Compatibility name: ``CubaFunction.apply(...)`` is :func:`cuba_apply`."""

    apply = staticmethod(cuba_apply)


def surrogate_spike(voltage: torch.Tensor, spec: CubaSpec) -> torch.Tensor:
    """Spike function on a (pre-reset) voltage with the exact integer compare.

    Forward: ``s = rint(v * s_scale) > v_th_mant << 6`` (graded: ``s * v``); backward:
    the surrogate of :func:`cuba_apply` (no scan). Runs as the op ``loihi_slayer::spike``.
    """
    return spike_op(
        voltage,
        float(spec.v_th_mant << 6),
        spec.s_scale,
        spec.theta,
        spec.tau_rho,
        spec.scale_rho,
        spec.graded,
    )


def make_spec(
    threshold: float,
    scale: int,
    tau_grad: float,
    scale_grad: float,
    graded: bool,
    channels: int,
    per_channel: int,
    backend: str = "auto",
    ref_delay: int = 1,
) -> CubaSpec:
    """Build a :class:`CubaSpec` from lava-dl neuron arguments."""
    v_th_mant = int(threshold * scale)
    theta = v_th_mant / scale
    tau_rho = tau_grad * theta * TAU_RHO_MULT
    if not math.isfinite(tau_rho) or tau_rho <= 0:
        raise ParameterError(
            f"threshold * tau_grad must be positive for the surrogate gradient, got "
            f"threshold = {theta} (vThMant {v_th_mant}), tau_grad = {tau_grad}"
        )
    return CubaSpec(
        scale,
        v_th_mant,
        tau_rho,
        scale_grad * SCALE_RHO_MULT,
        bool(graded),
        channels,
        per_channel,
        backend,
        int(ref_delay),
    )

r"""Fused recurrence of the Recurrent and KWTA blocks (CUBA and ALIF neurons): one custom
op per family for the whole time loop (:mod:`._recurrent_cpu` kernels), forward and
backward.

A Recurrent/KWTA block computes, step by step,

.. math::

    a[t] = z[t] + \big(W_{fb}\, s[t-1] + b_{fb}\big), \qquad s[t] = f(a[t])

with ``f`` the training neuron (state carried between steps, no gradient
through it) and :math:`s[-1] = 0`. :func:`cuba_recurrent` (CUBA) and
:func:`alif_recurrent` (ALIF) run that loop in one kernel call and return exactly
the spikes and end state of the step-by-step loop, and the same gradients (to
float rounding) for ``z``, :math:`W_{fb}` and the current/voltage decays.

**When it applies** (:func:`feedback_grid`): the feedback must be *exact* in the
block's dtype, so that its value does not depend on the order PyTorch sums in:
:math:`2^k W_{fb}` and :math:`2^k b_{fb}` integers for ``2**k = scale`` (the
``quantize_8bit`` grid) with every row's :math:`\sum_i |2^k W_{oi}| + |2^k b|`
below :math:`2^{24}` (float32) or :math:`2^{53}` (float64). Binary spikes, no
dropout, CPU tensors, eager mode (:func:`supports`); CUBA: no batch-statistics
norm; ALIF: no norm (the entry points return None). Otherwise the caller keeps the
step-by-step loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .._recycle import kept_empty
from .._threads import follow_torch_threads, numba_threads
from ..errors import ParameterError
from ..fixed.workers import PARALLEL_MIN_WORK
from ..synapse._event_product import event_weight_grad, nonzero_count
from ..synapse._grad_calibration import grad_max_density
from . import _recurrent_cpu as _kern
from . import _recurrent_gemm as _gemm
from .cuba import BatchMean, decay_int
from .op import kernel_op

__all__ = [
    "alif_recurrent",
    "cuba_recurrent",
    "feedback_grid",
    "feedback_weight_grad",
    "supports",
]

#: significand bits of the dtypes the fused feedback is exact in
_EXACT_BITS = {torch.float32: 24, torch.float64: 53}


def feedback_grid(w: Tensor, b: Tensor | None, scale: int) -> tuple[np.ndarray, int] | None:
    """Integer feedback mantissas ``(m_t, b_mant)`` if the feedback is exact, else None.

    ``m_t[i, o] = scale * w[o, i]`` (int32, transposed for the kernel) and
    ``b_mant = scale * b``. None when ``scale`` is not a power of two, a value is
    off the ``1/scale`` grid, or a row's absolute sum reaches the dtype's exact range.
    """
    if scale < 1 or scale & (scale - 1) or w.dtype not in _EXACT_BITS:
        return None
    if b is not None and b.numel() != 1:
        return None
    bm = 0.0 if b is None else float(b.detach().to(torch.float64).reshape(-1)[0]) * scale
    if not (np.isfinite(bm) and np.rint(bm) == bm):
        return None
    src = w.detach().cpu().contiguous().numpy()
    m_t = np.empty(src.shape[::-1], np.int32)
    ok, top = _kern.feedback_mantissas(src, float(scale), m_t)
    limit = float(1 << _EXACT_BITS[w.dtype])
    if not ok or top + abs(bm) >= min(limit, 2.0**31):
        return None
    return m_t, int(bm)


def _narrow(m: np.ndarray, bias: int, grid: float) -> tuple[np.ndarray, int, float]:
    r"""The same feedback with fewer bytes per spiking row: the mantissas' common power of
    two :math:`2^e` moved into the grid step, and the quotients in the narrowest integer
    type that holds them (int8 for 8-bit weights, whose mantissas are even):

    .. math:: \mathrm{grid} \cdot (b + \textstyle\sum m) =
        (\mathrm{grid}\, 2^e) \cdot (b / 2^e + \textstyle\sum m / 2^e)

    exactly (a power of two scales a float without rounding). A row of a 512-neuron
    feedback matrix is then 512 bytes, and the matrix stays in the L2 cache.
    """
    (m_e,), (b_e,), grid_e = narrow_parts((m,), (bias,), grid)
    return m_e, b_e, grid_e


def narrow_parts(
    ms: Sequence[np.ndarray], biases: Sequence[int], grid: float
) -> tuple[tuple[np.ndarray, ...], tuple[int, ...], float]:
    """:func:`_narrow` of several feedback matrices and biases that share one grid step
    (a resonator's real and imaginary parts): the power of two common to all of them
    moves into the grid, each matrix into its own narrowest integer type."""
    bits = 0
    for m, bias in zip(ms, biases, strict=True):
        bits |= abs(int(bias))
        if m.size:
            bits |= int(np.bitwise_or.reduce(np.abs(m), axis=None))
    e = (bits & -bits).bit_length() - 1 if bits else 0
    shifted = [m >> e for m in ms]
    narrowed = tuple(np.ascontiguousarray(m, _narrowest(m)) for m in shifted)
    return narrowed, tuple(int(b) >> e for b in biases), grid * 2.0**e


def _narrowest(m: np.ndarray) -> type:
    """The narrowest of int8, int16, int32 that holds every value of ``m``."""
    low, high = (int(m.min()), int(m.max())) if m.size else (0, 0)
    for dtype in (np.int8, np.int16, np.int32):
        if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
            return dtype
    raise AssertionError("feedback_grid bounds every mantissa below 2**31")


def supports(neuron, z: Tensor) -> bool:
    """Whether :func:`cuba_recurrent` reproduces the step-by-step loop for ``neuron`` on ``z``."""
    return (
        not torch.compiler.is_compiling()
        and not z.is_cuda
        and z.dtype in _EXACT_BITS
        and neuron.backend in ("auto", "cpu")
        and not neuron.graded_spike
        and neuron.drop is None
    )


def _per_neuron(values: np.ndarray, n: int) -> np.ndarray:
    """A parameter vector (or ``(P, M)`` table) with ``M`` = 1 or ``n``, as ``n`` columns."""
    v = np.asarray(values, np.int64)
    return np.ascontiguousarray(np.broadcast_to(v, v.shape[:-1] + (n,)) if v.ndim else v)


def _compact(m: Tensor) -> Tensor:
    """``[[d, o]]`` when the square matrix ``m`` is ``o + (d - o) I`` (KWTA's lateral
    weights; the kernels then take O(n) per step), else ``m`` itself."""
    n = m.shape[0]
    if n < 2:
        return m
    a = m.detach().numpy()
    diag, off = a[0, 0], a[0, 1]
    n_off = int(np.count_nonzero(a == off)) - (n if diag == off else 0)
    if n_off == n * n - n and bool(np.all(np.diagonal(a) == diag)):
        return torch.from_numpy(np.array([[diag, off]], dtype=a.dtype))
    return m


#: the recurrence's arrays (each the size of the block's input: the spikes and voltages
#: of the forward, the surrogate and the input gradient of the backward) live in memory
#: kept across steps (:func:`~loihi_slayer._recycle.kept_empty`): fresh memory would
#: fault page by page at every step. Their roles' names start with this.
KEPT_ROLE = "recurrence: "


# ---------------------------------------------------------------- the custom op
# config = [scale, v_th_mant, ref_delay, fb_bias_mant, kwta], rho = [tau_rho, scale_rho]
# (kwta: the feedback weight is KWTA's o + (d - o) I, see :func:`feedback_weight_grad`)
# Outputs (time-major): s (T, B, n), vp (T, B, n), refractory (T | 0, B, n) uint8,
# state before each step (2, T | 0, B, n) int32, end state (3, B * n) int64.


def _forward(
    z: Tensor,
    w: Tensor,
    m_t: Tensor,
    current_decay: Tensor,
    voltage_decay: Tensor,
    bias: Tensor,
    state: Tensor,
    config: list[int],
    rho: list[float],
    rec_pre: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    scale, v_th_mant, ref_delay, fb_bias = config[:4]
    batch, n, steps = z.shape
    zt = _time_major(z)
    s, vp = (kept_empty(KEPT_ROLE + r, zt.shape, zt.dtype) for r in ("spikes", "voltage"))
    r_out = torch.empty((steps if ref_delay > 1 else 0, batch, n), dtype=torch.uint8)
    pre = torch.empty((2, steps if rec_pre else 0, batch, n), dtype=torch.int32)
    st = state.clone()
    bad = torch.zeros(batch, dtype=torch.int8)
    # per-neuron vectors: no index arithmetic in the step loop
    per_neuron = (decay_int(current_decay), decay_int(voltage_decay), bias.numpy())
    i_dec, v_dec, bias_n = (_per_neuron(a, n) for a in per_neuron)
    kern = _kern.forward_parallel if _parallel(batch, n, steps) else _kern.forward_serial
    m_k, fb_k, grid = _narrow(_compact(m_t).numpy(), fb_bias, 1.0 / scale)
    kern(
        zt.numpy(),
        m_k,
        fb_k,
        grid,
        float(scale),
        i_dec,
        v_dec,
        v_th_mant << 6,
        ref_delay,
        bias_n,
        st[0].numpy(),
        st[1].numpy(),
        st[2].numpy(),
        s.numpy(),
        vp.numpy(),
        1.0 / (64 * scale),
        r_out.numpy(),
        pre.numpy(),
        bad.numpy(),
    )
    _check_bad(bad, "CUBA")
    return s, vp, r_out, pre, st


def _forward_fake(z, w, m_t, current_decay, voltage_decay, bias, state, config, rho, rec_pre):
    batch, n, steps = z.shape
    ref_delay = config[2]
    return (
        z.new_empty((steps, batch, n)),
        z.new_empty((steps, batch, n)),
        z.new_empty((steps if ref_delay > 1 else 0, batch, n), dtype=torch.uint8),
        z.new_empty((2, steps if rec_pre else 0, batch, n), dtype=torch.int32),
        state.new_empty(state.shape),
    )


def _save(inputs, output):
    z, w, _m_t, current_decay, voltage_decay, _bias, _state, config, rho, _rec = inputs
    s, vp, r_out, pre, _ = output
    return (s, vp, r_out, pre, w, current_decay, voltage_decay), (config, rho)


def _backward(
    g_s: Tensor | None,
    g_vp: Tensor | None,
    g_r: Tensor | None,
    g_pre: Tensor | None,
    g_st: Tensor | None,
    s: Tensor,
    vp: Tensor,
    r_out: Tensor,
    pre: Tensor,
    w: Tensor,
    current_decay: Tensor,
    voltage_decay: Tensor,
    config: list[int],
    rho: list[float],
    needs: list[bool],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    scale, v_th_mant = config[0], config[1]
    tau = rho[0]
    sur = (v_th_mant / scale, 1.0 / tau, rho[1] / (2.0 * tau))
    return _backward_common(
        g_s, s, vp, r_out, pre, w, current_decay, voltage_decay, scale, sur, needs, _flag(config, 4)
    )


def _flag(config: list[int], i: int) -> bool:
    """The op config's flag at ``i`` (False in a config made without it)."""
    return len(config) > i and bool(config[i])


def _backward_common(
    g_s,
    s,
    vp,
    r_out,
    pre,
    w,
    current_decay,
    voltage_decay,
    scale: int,
    sur: tuple[float, float, float],
    needs: list[bool],
    kwta: bool = False,
):
    r"""The gradients of the recurrence (the step-by-step block's: the neuron state is
    carried between steps without gradient, the time dependence is the spike feedback):

    .. math::

        g_s[t] &= \frac{\partial L}{\partial s[t]} + W_{fb}^\top g_a[t+1] \\
        g_a[t] &= g_s[t]\,\sigma[t], \qquad
            \sigma[t] = \frac{\rho}{2\tau}e^{-|v[t]-\vartheta|/\tau}
            \quad (\text{0 on refractory steps}) \\
        \frac{\partial L}{\partial W_{fb}} &= \sum_t g_a[t]\, s[t-1]^\top, \qquad
        \frac{\partial L}{\partial z[t]} = g_a[t]

    and, per neuron, :math:`-\sum_t g_a[t]\,u[t-1]` and :math:`-\sum_t g_a[t]\,v[t-1]`
    (the state before each step, scaled) for the decay gradients. For ALIF ``vp`` holds
    :math:`v - \vartheta[t] - r[t]` and :math:`\vartheta = 0` (the adaptive threshold
    and refractory state are constants of the gradient, as in the ALIF training neuron).

    The surrogate :math:`\sigma` is one vectorised pass (:func:`surrogate`); the time
    loop (the ``(B, n) x (n, n)`` product per step) one compiled call for float32
    (:func:`_fused_backward_loop`), else one BLAS call per step on a contiguous time-major
    slab. ``sur = (theta, 1 / tau, amp)``. Returns ``(g_z, g_w,
    g_current_decay, g_voltage_decay)`` (empty where not needed). ``g_z`` is a time-last
    view of time-major memory, as the block's feed-forward product takes it.
    """
    steps, batch, n = vp.shape
    sigma = surrogate(vp, r_out, *sur)
    # kept across steps, as the surrogate's (fresh, both would fault page by page)
    g_a = kept_empty(KEPT_ROLE + "input grad", tuple(vp.shape), vp.dtype)
    w_fb = _compact(w.detach().to(vp.dtype))
    if vp.dtype == torch.float32 and w_fb.shape[0] == n:
        _fused_backward_loop(g_s, sigma, w_fb, g_a)
    elif vp.dtype == torch.float32:  # KWTA's compact o + (d - o) I, O(n) per row
        _compact_backward_loop(g_s, sigma, w_fb, g_a)
    else:  # float64: the step loop (also the reference of the compiled ones)
        for t in range(steps - 1, -1, -1):
            g = g_a[t]
            if g_s is None:
                g.zero_()
            else:
                g.copy_(g_s[t])
            if t < steps - 1:  # g_a[t+1] W_fb: the feedback's gradient into s[t]
                add_feedback_grad(g, g_a[t + 1], w_fb)
            g.mul_(sigma[t])
    g_w = feedback_weight_grad(g_a, s, w, kwta) if needs[1] else w.new_empty(0)
    g_dec = torch.zeros((2, n), dtype=torch.float64)
    if needs[2] or needs[3]:
        g64 = g_a.to(torch.float64)
        for k in range(2):
            g_dec[k] = (g64 * pre[k]).sum((0, 1))
    dec = -g_dec / (4096.0 * 64 * scale)
    return (
        g_a.permute(1, 2, 0),
        g_w,
        _decay_grad(dec[0], current_decay) if needs[2] else current_decay.new_empty(0),
        _decay_grad(dec[1], voltage_decay) if needs[3] else voltage_decay.new_empty(0),
    )


def surrogate(vp: Tensor, r_out: Tensor, theta: float, inv_tau: float, amp: float) -> Tensor:
    r"""The spike surrogate :math:`\mathrm{amp}\,e^{-|v_p - \vartheta| / \tau}` of time-major
    ``vp``, 0 on refractory steps (``r_out`` non-zero; ``r_out`` with no steps: none).
    float32: one compiled pass into kept memory (:func:`._recurrent_cpu.surrogate`);
    other dtypes: PyTorch's ``exp``."""
    if vp.dtype != torch.float32:
        sigma = torch.exp((vp - theta).abs_().mul_(-inv_tau)).mul_(amp)
        if r_out.shape[0]:
            sigma.masked_fill_(r_out.bool(), 0.0)
        return sigma
    sigma = kept_empty(KEPT_ROLE + "surrogate", tuple(vp.shape), vp.dtype)
    refr = r_out.contiguous().reshape(-1).numpy() if r_out.shape[0] else _NO_REFRACTORY
    src = vp.contiguous().reshape(-1).numpy()
    args = (src, refr, theta, inv_tau, amp, sigma.reshape(-1).numpy())
    if vp.numel() >= PARALLEL_MIN_WORK:
        follow_torch_threads()
        _kern.surrogate(*args)
    else:
        _kern.surrogate_serial(*args)
    return sigma


_NO_REFRACTORY = np.zeros(0, np.uint8)


def _fused_backward_loop(g_s: Tensor | None, sigma: Tensor, w_fb: Tensor, g_a: Tensor) -> None:
    """The time loop of :func:`_backward_common` in one parallel call into ``g_a``: from
    :data:`._recurrent_gemm.GEMM_MIN_NEURONS` neurons on as register-tiled products
    (:func:`._recurrent_gemm.backward_gemm`), below as row updates
    (:func:`._recurrent_cpu.backward_loop`, a job per
    :data:`._recurrent_cpu.BACKWARD_ROWS` batch items at most, at least one per thread)."""
    batch, n = sigma.shape[1], sigma.shape[2]
    g_src = _NO_GRAD if g_s is None else g_s.contiguous().numpy()
    follow_torch_threads()
    threads = numba_threads()
    if n >= _gemm.GEMM_MIN_NEURONS:
        w_rows = _gemm.packed_weights(w_fb.numpy())
        sig = sigma.contiguous().numpy()
        _gemm.backward_gemm(g_src, sig, w_rows, threads, _gemm.wide_tiles(), g_a.numpy())
        return
    rows = max(1, min(_kern.BACKWARD_ROWS, -(-batch // threads)))
    _kern.backward_loop(g_src, sigma.numpy(), w_fb.contiguous().numpy(), rows, g_a.numpy())


def _compact_backward_loop(g_s: Tensor | None, sigma: Tensor, w_fb: Tensor, g_a: Tensor) -> None:
    """The time loop of :func:`_backward_common` for KWTA's compact feedback ``[[d, o]]``
    (:func:`_compact`) in one parallel call into ``g_a``
    (:func:`._recurrent_cpu.backward_compact`)."""
    g_src = _NO_GRAD if g_s is None else g_s.contiguous().numpy()
    follow_torch_threads()
    diag, off = w_fb[0].numpy()
    _kern.backward_compact(g_src, sigma.numpy(), diag, off, g_a.numpy())


_NO_GRAD = np.zeros((0, 0, 0), np.float32)


def add_feedback_grad(g: Tensor, nxt: Tensor, w_fb: Tensor) -> None:
    """``g += nxt @ w_fb`` in place (the feedback's gradient into the spikes); ``w_fb``
    ``(n, n)`` or its compact KWTA form ``[[d, o]]`` (:func:`_compact`: O(n) per row)."""
    if w_fb.shape[0] != g.shape[-1]:  # W = o + (d - o) I
        diag, off = w_fb[0, 0], w_fb[0, 1]
        g.add_(nxt.sum(1, keepdim=True) * off).add_(nxt * (diag - off))
    else:
        g.addmm_(nxt, w_fb)


def feedback_weight_grad(g_a: Tensor, s: Tensor, w: Tensor, kwta: bool = False) -> Tensor:
    r""":math:`G = \sum_t g_a[t]\, s[t-1]^\top` of time-major ``(T, B, n)`` arrays, as ``w``'s
    dtype: the gradient of the feedback weight ``w`` (``(n, n)``, feedback ``w s[t-1]``).

    float32 spikes no denser than the machine's limit for ``n`` outputs
    (:func:`~loihi_slayer.synapse._grad_calibration.grad_max_density`) go event by event,
    one gradient row added per spike
    (:func:`~loihi_slayer.synapse._event_product.event_weight_grad`, the spikes read in
    place, neuron-last), else one BLAS product.

    With ``kwta`` the weight is a KWTA block's :math:`W = o\,\mathbf{1}\mathbf{1}^\top +
    (d - o) I`, a function of :math:`(d, o)` alone, and the gradient returned is
    :math:`G`'s projection onto the matrices of that form,

    .. math::

        G' = \frac{\operatorname{tr} G}{n} I
            + \frac{\Sigma G - \operatorname{tr} G}{n^2 - n}\,(\mathbf{1}\mathbf{1}^\top - I),
        \quad \operatorname{tr} G = \sum_{t, b, i} g_a[t, b, i]\, s[t-1, b, i], \quad
        \Sigma G = \sum_{t, b} \Big(\sum_i g_a[t, b, i]\Big)\Big(\sum_j s[t-1, b, j]\Big)

    which gives :math:`d`, :math:`o` (and whatever they are computed from, e.g. the
    self-excitation) exactly the gradient :math:`G` gives them, from O(T B n) sums
    instead of the O(T B n^2) product (its diagonal and off-diagonal sums are
    :math:`G`'s). Float64 sums.
    """
    if kwta and g_a.shape[-1] > 1:
        return _kwta_weight_grad(g_a, s, w)
    n = g_a.shape[-1]
    prev, rows = s[:-1], g_a[1:].reshape(-1, n)
    limit = grad_max_density(n) if g_a.dtype == torch.float32 else 0.0
    if limit > 0 and prev.numel() and nonzero_count(prev) <= limit * prev.numel():
        g_w = event_weight_grad(prev.permute(2, 0, 1).numpy(), rows.contiguous().numpy())
        return g_w.to(w.dtype)
    return (rows.t() @ prev.reshape(-1, n)).to(w.dtype)


def _kwta_weight_grad(g_a: Tensor, s: Tensor, w: Tensor) -> Tensor:
    """The projected gradient of :func:`feedback_weight_grad` with ``kwta``."""
    steps, batch, n = g_a.shape
    part = np.zeros((batch, 2))
    if g_a.dtype == s.dtype and g_a.dtype in (torch.float32, torch.float64):
        follow_torch_threads()
        _kern.kwta_sums(g_a.contiguous().numpy(), s.contiguous().numpy(), part)
        trace, total = part.sum(0)  # batch items in order: the same sums on any thread count
    else:
        f64 = torch.float64
        rows, prev = g_a[1:].to(f64), s[:-1].to(f64)
        trace = float((rows * prev).sum())
        total = float((rows.sum(-1) * prev.sum(-1)).sum())
    off = (total - trace) / (n * n - n)
    g = torch.full((n, n), off, dtype=torch.float64)
    g.diagonal().add_(trace / n - off)
    return g.to(w.dtype)


def _decay_grad(per_neuron: Tensor, p: Tensor) -> Tensor:
    g = per_neuron.sum().reshape(1) if p.numel() == 1 else per_neuron
    return g.to(p.dtype).reshape(p.shape)


def _backward_fake(
    g_s,
    g_vp,
    g_r,
    g_pre,
    g_st,
    s,
    vp,
    r_out,
    pre,
    w,
    current_decay,
    voltage_decay,
    config,
    rho,
    needs,
):
    steps, batch, n = vp.shape
    return (
        vp.new_empty((batch, n, steps)),
        w.new_empty(w.shape if needs[1] else (0,)),
        current_decay.new_empty(current_decay.shape if needs[2] else (0,)),
        voltage_decay.new_empty(voltage_decay.shape if needs[3] else (0,)),
    )


def _time_major(z: Tensor) -> Tensor:
    """The block's ``(B, n, T)`` input as a contiguous ``(T, B, n)`` array."""
    return z.detach().permute(2, 0, 1).contiguous()


def _parallel(batch: int, n: int, steps: int) -> bool:
    if batch > 1 and batch * n * steps >= PARALLEL_MIN_WORK:
        follow_torch_threads()
        return True
    return False


cuba_recurrent_op = kernel_op(
    "cuba_recurrent",
    _forward,
    _forward_fake,
    _backward,
    _backward_fake,
    save=_save,
    grad_inputs=("z", "w", "current_decay", "voltage_decay"),
)


# ---------------------------------------------------------------------- ALIF op
# config = [scale, fb_bias_mant], rho = [tau, amp]
# Outputs (time-major): s (T, B, n), d = (v - th - r) / s_scale (T, B, n), state before
# each step (2, T | 0, B, n) int32, end state (5, B * n) int64 (u, v, th, r, rc).

_ALIF_STATE = ("u", "v", "th", "r", "rc")


def _alif_forward(
    z: Tensor,
    w: Tensor,
    m_t: Tensor,
    current_decay: Tensor,
    voltage_decay: Tensor,
    table: Tensor,
    state: Tensor,
    config: list[int],
    rho: list[float],
    rec_pre: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    scale, fb_bias = config[:2]
    batch, n, steps = z.shape
    zt = _time_major(z)
    s, d = (kept_empty(KEPT_ROLE + r, zt.shape, zt.dtype) for r in ("spikes", "voltage"))
    pre = torch.empty((2, steps if rec_pre else 0, batch, n), dtype=torch.int32)
    st = state.clone()
    bad = torch.zeros(batch, dtype=torch.int8)
    kern = _kern.alif_parallel if _parallel(batch, n, steps) else _kern.alif_serial
    m_k, fb_k, grid = _narrow(_compact(m_t).numpy(), fb_bias, 1.0 / scale)
    kern(
        zt.numpy(),
        m_k,
        fb_k,
        grid,
        float(scale),
        _per_neuron(table.numpy(), n),
        st.numpy(),
        s.numpy(),
        d.numpy(),
        1.0 / (64 * scale),
        pre.numpy(),
        bad.numpy(),
    )
    _check_bad(bad, "ALIF")
    return s, d, pre, st


def _alif_forward_fake(z, w, m_t, current_decay, voltage_decay, table, state, config, rho, rec_pre):
    batch, n, steps = z.shape
    return (
        z.new_empty((steps, batch, n)),
        z.new_empty((steps, batch, n)),
        z.new_empty((2, steps if rec_pre else 0, batch, n), dtype=torch.int32),
        state.new_empty(state.shape),
    )


def _alif_save(inputs, output):
    z, w, _m_t, current_decay, voltage_decay, _table, _state, config, rho, _rec = inputs
    s, d, pre, _ = output
    return (s, d, pre, w, current_decay, voltage_decay), (config, rho)


def _alif_backward(
    g_s: Tensor | None,
    g_d: Tensor | None,
    g_pre: Tensor | None,
    g_st: Tensor | None,
    s: Tensor,
    d: Tensor,
    pre: Tensor,
    w: Tensor,
    current_decay: Tensor,
    voltage_decay: Tensor,
    config: list[int],
    rho: list[float],
    needs: list[bool],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    steps, batch, n = d.shape
    no_refractory = torch.empty((0, batch, n), dtype=torch.uint8)  # the hold passes gradient
    return _backward_common(
        g_s,
        s,
        d,
        no_refractory,
        pre,
        w,
        current_decay,
        voltage_decay,
        config[0],
        (0.0, 1.0 / rho[0], rho[1]),
        needs,
        _flag(config, 2),
    )


def _alif_backward_fake(
    g_s, g_d, g_pre, g_st, s, d, pre, w, current_decay, voltage_decay, config, rho, needs
):
    return _backward_fake(
        None,
        None,
        None,
        None,
        None,
        s,
        d,
        None,
        pre,
        w,
        current_decay,
        voltage_decay,
        config,
        rho,
        needs,
    )


alif_recurrent_op = kernel_op(
    "alif_recurrent",
    _alif_forward,
    _alif_forward_fake,
    _alif_backward,
    _alif_backward_fake,
    save=_alif_save,
    grad_inputs=("z", "w", "current_decay", "voltage_decay"),
)


def _check_bad(bad: Tensor, family: str) -> None:
    if bool(bad.any()):
        raise ParameterError(
            f"{family} neuron: input contains NaN/inf or values whose integer synaptic sum "
            f"|rint(x * scale)| reaches 2**31 ({int(bad.sum())} batch items affected)"
        )


# ---------------------------------------------------------------- entry points


def cuba_recurrent(
    neuron,
    z: Tensor,
    w: Tensor,
    b: Tensor | None,
    grid: tuple[np.ndarray, int],
    kwta: bool = False,
) -> Tensor:
    """Spikes ``(B, n, T)`` of the CUBA recurrence :math:`s[t] = f(z[t] + W s[t-1] + b)`.

    Parameters
    ----------
    neuron
        The block's :class:`loihi_slayer.neuron.cuba.Neuron` (persistent state is
        read from and written back to its buffers, as the step-by-step loop does).
    z
        Feed-forward synaptic input ``(B, n, T)``.
    w, b
        Feedback weight ``(n, n)`` (weight units, in ``z``'s dtype; gradient flows
        into it) and feedback bias (constant) or None.
    grid
        ``feedback_grid(w, b, neuron.w_scale)`` (must not be None).
    kwta
        ``w`` is a KWTA block's ``o + (d - o) I``, a function of ``(d, o)`` alone: its
        gradient is that of a weight of this form (:func:`feedback_weight_grad`).

    Returns None (nothing run) when the norm computes batch statistics.
    """
    if isinstance(neuron._bias_arg(), BatchMean):
        return None
    neuron._check_input(z)
    if neuron.requires_grad:
        neuron.clamp()
    batch, n, steps = z.shape
    st = neuron._get_state(z)
    bias = neuron._bias_arg()
    bias_t = torch.zeros(1, dtype=torch.int64) if bias is None else bias.reshape(-1).cpu()
    spec = neuron._spec
    m_t, fb_bias = grid
    config = [int(spec.scale), int(spec.v_th_mant), int(spec.ref_delay), int(fb_bias), int(kwta)]
    rho = [float(spec.tau_rho), float(spec.scale_rho)]
    rec_pre = bool(neuron.current_decay.requires_grad or neuron.voltage_decay.requires_grad)
    s, _, _, _, st_end = cuba_recurrent_op(
        z,
        w,
        torch.from_numpy(m_t),
        neuron.current_decay,
        neuron.voltage_decay,
        bias_t,
        st.stacked(),
        config,
        rho,
        rec_pre,
    )
    st.assign(st_end)
    neuron._keep_state(st, z)
    return s.permute(1, 2, 0)


def alif_recurrent(
    neuron,
    z: Tensor,
    w: Tensor,
    b: Tensor | None,
    grid: tuple[np.ndarray, int],
    kwta: bool = False,
) -> Tensor | None:
    """:func:`cuba_recurrent` for :class:`loihi_slayer.neuron.alif.Neuron` (the model's
    integer step, :func:`loihi_slayer.models.alif.step`; the surrogate at ``v - θ - r``).

    Returns None (nothing run) for a neuron with a norm (applied to the input of
    every step; not fused).
    """
    if neuron.norm is not None:
        return None
    neuron._check_input(z)
    if neuron.requires_grad:
        neuron.clamp()
    batch, n, steps = z.shape
    params = neuron.model_params(
        v_th_mant=neuron.v_th_mant, v_th_step=neuron.v_th_step, ref_delay=neuron.ref_delay
    )
    lead = (batch, n)
    state = neuron._get_state(lead, params)
    st = np.stack([np.asarray(state[k], np.int64).reshape(-1) for k in _ALIF_STATE])
    names = [p.name for p in neuron.model.params]
    table = params.vectors((n,))[[names.index(k) for k in _kern.ALIF_PARAMS]]
    sur = neuron._surrogate()
    m_t, fb_bias = grid
    s, _, _, st_end = alif_recurrent_op(
        z,
        w,
        torch.from_numpy(m_t),
        neuron.current_decay,
        neuron.voltage_decay,
        torch.from_numpy(np.ascontiguousarray(table)),
        torch.from_numpy(st),
        [int(neuron.w_scale), int(fb_bias), int(kwta)],
        [float(sur.tau), float(sur.amp)],
        bool(neuron.current_decay.requires_grad or neuron.voltage_decay.requires_grad),
    )
    end = st_end.numpy()
    neuron._keep_state({k: end[i].reshape(lead) for i, k in enumerate(_ALIF_STATE)})
    return s.permute(1, 2, 0)

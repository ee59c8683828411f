r"""Surrogate gradient through two chained leaky integrators with a per-step threshold.

The backward of the LIF-like families (ALIF; any model whose voltage ``v`` integrates a
current ``u`` that integrates the input, and spikes on ``v`` against a threshold
that may move every step), in three forms that the tests keep equal: a NumPy
reference (:func:`reference`), ``njit`` (:func:`cpu`) and ``numba.cuda``
(:mod:`._li_scan_cuda`, imported lazily). Per row, with ``a_v = 1 - vDecay/4096``
and ``a_u = 1 - iDecay/4096`` and the surrogate :math:`\sigma` of spec §5.4:

.. math::

    \sigma(v, \vartheta) &= \frac{\rho}{2\tau} e^{-|v-\vartheta|/\tau}
        \quad(\text{graded: } \rho\, e^{\min(v-\vartheta, 0)/\tau}) \\
    g_v[t] &= g_s[t]\,\sigma(v[t], \vartheta[t]) + \bar g_v[t] + a_v\, g_v[t+1] \\
    g_u[t] &= g_v[t] + \bar g_u[t] + a_u\, g_u[t+1],
        \qquad \partial L/\partial x[t] = g_u[t] \\
    \partial L/\partial p_v &= -\tfrac{1}{4096}\textstyle\sum_t g_v[t]\, v^{post}[t-1],
        \qquad \partial L/\partial p_u = -\tfrac{1}{4096}\textstyle\sum_t g_u[t]\, u[t-1]

with :math:`\bar g_v, \bar g_u` the gradients arriving on the voltage and current
traces, :math:`v^{post}` the voltage the decay really multiplies (after any hold),
and :math:`u[-1], v^{post}[-1]` the initial state. The threshold
:math:`\vartheta[t]` is a constant of the scan (no gradient flows into it), and
spikes do not enter the recursion (resets and holds are ignored, as lava-dl).

The exponential is :func:`._fastexp.exp_nonpos` (inlined arithmetic, not a libm call).

Arrays are 2-D ``(rows, T)`` float (the scans accumulate in float64); ``(rows, 0)``
means "not given". Decays are
int64 vectors of length 1 or ``rows`` (indexed ``row % len``); ``g_di``/``g_dv``
have length ``rows`` when wanted, else 0.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from .._recycle import kept_empty
from .._threads import follow_torch_threads
from ._dispatch import empty2d, kernel_array, launch
from ._fastexp import exp_nonpos

__all__ = ["backward", "cpu", "reference"]


def _per_row(arr: np.ndarray, rows: int) -> np.ndarray:
    arr = np.asarray(arr).reshape(-1)
    return np.broadcast_to(arr, (rows,)) if arr.size == 1 else arr


def reference(
    g_s,
    g_v,
    g_u,
    v,
    theta,
    u_rec,
    v_post,
    inv_tau,
    amp,
    graded,
    i_decay,
    v_decay,
    u0,
    v0,
    want_di,
    want_dv,
):
    """NumPy form: returns ``(g_x, g_di, g_dv)`` (per-row decay gradients, or None)."""
    v = np.asarray(v, np.float64)
    rows, steps = v.shape
    g = np.zeros((rows, steps))
    if g_s is not None and g_s.shape[1]:
        z = v - theta
        if graded:
            sur = amp * np.exp(np.minimum(z, 0.0) * inv_tau)
        else:
            sur = amp * np.exp(-np.abs(z) * inv_tau)
        g = g + g_s * sur
    if g_v is not None and g_v.shape[1]:
        g = g + g_v
    gu_ext = g_u if (g_u is not None and g_u.shape[1]) else np.zeros((rows, steps))
    av = 1.0 - _per_row(v_decay, rows) / 4096.0
    ai = 1.0 - _per_row(i_decay, rows) / 4096.0
    gv = np.zeros(rows)
    gu = np.zeros(rows)
    g_x = np.zeros((rows, steps))
    acc_v = np.zeros(rows)
    acc_i = np.zeros(rows)
    for t in range(steps - 1, -1, -1):
        gv = g[:, t] + av * gv
        gu = gv + gu_ext[:, t] + ai * gu
        g_x[:, t] = gu
        if want_dv:
            acc_v += gv * (v_post[:, t - 1] if t > 0 else v0)
        if want_di:
            acc_i += gu * (u_rec[:, t - 1] if t > 0 else u0)
    return (
        g_x,
        -acc_i / 4096.0 if want_di else None,
        -acc_v / 4096.0 if want_dv else None,
    )


@njit(parallel=True, cache=True)
def cpu(
    g_s,
    g_v,
    g_u,
    v,
    theta,
    u_rec,
    v_post,
    inv_tau,
    amp,
    graded,
    i_decay,
    v_decay,
    u0,
    v0,
    g_x,
    g_di,
    g_dv,
):
    """``njit`` form, one row per ``prange`` iteration; writes ``g_x``, ``g_di``, ``g_dv``."""
    rows, steps = g_x.shape
    has_s = g_s.shape[1] > 0
    has_v = g_v.shape[1] > 0
    has_u = g_u.shape[1] > 0
    want_di = g_di.shape[0] > 0
    want_dv = g_dv.shape[0] > 0
    ni, nv = i_decay.shape[0], v_decay.shape[0]
    for n in prange(rows):
        av = 1.0 - v_decay[n % nv] / 4096.0
        ai = 1.0 - i_decay[n % ni] / 4096.0
        gv = 0.0
        gu = 0.0
        acc_v = 0.0
        acc_i = 0.0
        # first pass: each step's input to the voltage scan, into g_x[n] (a flat loop that
        # LLVM vectorises, the exponential included; inside the scan it was not)
        for t in range(steps):
            gt = 0.0
            if has_s:
                z = v[n, t] - theta[n, t]
                if graded:
                    sd = amp * exp_nonpos(min(z, 0.0) * inv_tau)
                else:
                    sd = amp * exp_nonpos(-abs(z) * inv_tau)
                gt = g_s[n, t] * sd
            if has_v:
                gt += g_v[n, t]
            g_x[n, t] = gt
        for t in range(steps - 1, -1, -1):
            gv = g_x[n, t] + av * gv
            gut = gv
            if has_u:
                gut += g_u[n, t]
            gu = gut + ai * gu
            g_x[n, t] = gu
            if want_dv:
                acc_v += gv * (v_post[n, t - 1] if t > 0 else v0[n])
            if want_di:
                acc_i += gu * (u_rec[n, t - 1] if t > 0 else u0[n])
        if want_dv:
            g_dv[n] = -acc_v / 4096.0
        if want_di:
            g_di[n] = -acc_i / 4096.0


def backward(
    backend: str,
    g_s,
    g_v,
    g_u,
    v,
    theta,
    u_rec,
    v_post,
    inv_tau: float,
    amp: float,
    graded: bool,
    i_decay: np.ndarray,
    v_decay: np.ndarray,
    u0,
    v0,
    want_di: bool,
    want_dv: bool,
):
    """Run the scan on ``backend`` (``'cpu'``, ``'cuda'``, ``'reference'``).

    Tensors are ``(rows, T)`` (``None`` for gradients that do not arrive and for
    ``u_rec``/``v_post`` when the decay gradients are not wanted); ``u0``/``v0``
    are ``(rows,)``. Returns ``g_x`` in ``v``'s dtype (the scans run in float64) and
    the float64 per-row decay gradients (or None), on ``v``'s device.
    """
    rows, steps = v.shape
    dev, dt = v.device, v.dtype

    def same(t):
        return empty2d(rows, v) if t is None else t.to(dt).contiguous()

    args = [same(t) for t in (g_s, g_v, g_u, v, theta, u_rec, v_post)]
    u0 = u0.to(device=dev, dtype=torch.float64).contiguous()
    v0 = v0.to(device=dev, dtype=torch.float64).contiguous()
    if backend == "reference":
        host = [a.cpu().numpy() for a in args]
        g_x, g_di, g_dv = reference(
            *host,
            inv_tau,
            amp,
            graded,
            i_decay,
            v_decay,
            u0.cpu().numpy(),
            v0.cpu().numpy(),
            want_di,
            want_dv,
        )

        def back(a):
            return None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(dev)

        return back(g_x).to(dt), back(g_di), back(g_dv)
    g_x = kept_empty("family input grad", (rows, steps), dt, v)  # fresh memory faults
    g_di = torch.zeros(rows if want_di else 0, dtype=torch.float64, device=dev)
    g_dv = torch.zeros(rows if want_dv else 0, dtype=torch.float64, device=dev)
    full = (
        *args,
        float(inv_tau),
        float(amp),
        bool(graded),
        np.ascontiguousarray(i_decay, np.int64),
        np.ascontiguousarray(v_decay, np.int64),
        u0,
        v0,
        g_x,
        g_di,
        g_dv,
    )
    if backend == "cpu":
        follow_torch_threads()
        cpu(*[kernel_array(a, backend) if isinstance(a, torch.Tensor) else a for a in full])
    else:
        from . import _li_scan_cuda

        launch(_li_scan_cuda.kernel, rows, *full)
    return g_x, (g_di if want_di else None), (g_dv if want_dv else None)

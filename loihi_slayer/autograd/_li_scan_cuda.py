"""``numba.cuda`` form of :func:`loihi_slayer.autograd._li_scan.cpu` (one thread per row).

Same contract and formulas as :mod:`._li_scan`; imported only when a CUDA backend
runs (under ``NUMBA_ENABLE_CUDASIM=1`` in numba's simulator).
"""

from __future__ import annotations

import math

from numba import cuda

__all__ = ["kernel"]


@cuda.jit
def kernel(
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
    n = cuda.grid(1)
    rows = g_x.shape[0]
    steps = g_x.shape[1]
    if n >= rows:
        return
    has_s = g_s.shape[1] > 0
    has_v = g_v.shape[1] > 0
    has_u = g_u.shape[1] > 0
    av = 1.0 - v_decay[n % v_decay.shape[0]] / 4096.0
    ai = 1.0 - i_decay[n % i_decay.shape[0]] / 4096.0
    gv = 0.0
    gu = 0.0
    acc_v = 0.0
    acc_i = 0.0
    for k in range(steps):
        t = steps - 1 - k
        gt = 0.0
        if has_s:
            z = v[n, t] - theta[n, t]
            if graded:
                sd = amp * math.exp(min(z, 0.0) * inv_tau)
            else:
                sd = amp * math.exp(-abs(z) * inv_tau)
            gt = g_s[n, t] * sd
        if has_v:
            gt += g_v[n, t]
        gv = gt + av * gv
        gut = gv
        if has_u:
            gut += g_u[n, t]
        gu = gut + ai * gu
        g_x[n, t] = gu
        if g_dv.shape[0] > 0:
            if t > 0:
                acc_v += gv * v_post[n, t - 1]
            else:
                acc_v += gv * v0[n]
        if g_di.shape[0] > 0:
            if t > 0:
                acc_i += gu * u_rec[n, t - 1]
            else:
                acc_i += gu * u0[n]
    if g_dv.shape[0] > 0:
        g_dv[n] = -acc_v / 4096.0
    if g_di.shape[0] > 0:
        g_di[n] = -acc_i / 4096.0

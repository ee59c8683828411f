"""numba.cuda training kernels, one thread per row, same contracts as :mod:`._cpu`.

The integer step is :func:`loihi_slayer.fixed.dynamics.cuba_step` /
:func:`~loihi_slayer.fixed.dynamics.sdnn_step` compiled as device functions.
Nothing is compiled at import; under ``NUMBA_ENABLE_CUDASIM=1`` the kernels run
in numba's simulator (tests).
"""

from __future__ import annotations

import math

from numba import cuda

from ..fixed import dynamics
from ._convert import INPUT_LIMIT

THREADS = 128

_cuba_step = cuda.jit(device=True)(dynamics.cuba_step)
_sdnn_step = cuda.jit(device=True)(dynamics.sdnn_step)


def blocks_for(n: int, threads: int = THREADS) -> int:
    """Number of blocks covering ``n`` threads (at least one)."""
    return max(1, (n + threads - 1) // threads)


@cuda.jit
def cuba_forward(
    x,
    in_scale,
    out_scale,
    i_decay,
    v_decay,
    v_th,
    ref_delay,
    bias,
    u_st,
    v_st,
    rc_st,
    graded,
    s_out,
    vp_out,
    u_out,
    r_out,
    bad,
):
    n = cuda.grid(1)
    if n >= x.shape[0]:
        return
    di = i_decay[n % i_decay.shape[0]]
    dv = v_decay[n % v_decay.shape[0]]
    th = v_th[n % v_th.shape[0]]
    b = bias[n % bias.shape[0]]
    u = u_st[n]
    v = v_st[n]
    rc = rc_st[n]
    for t in range(x.shape[1]):
        f = x[n, t] * in_scale
        if not (abs(f) < INPUT_LIMIT):
            bad[n] = 1
            f = 0.0
        a = u - u + int(math.floor(f + 0.5))
        if f - math.floor(f) == 0.5 and (a & 1) == 1:
            a -= 1  # round half to even, as np.rint
        if r_out.shape[1] > 0:
            r_out[n, t] = 1 if rc > 0 else 0
        u, v, rc, s, vp = _cuba_step(u, v, rc, a, di, dv, th, ref_delay, b, 0)
        if graded:
            s_out[n, t] = vp * out_scale if s else 0.0
        else:
            s_out[n, t] = s
        if vp_out.shape[1] > 0:
            vp_out[n, t] = vp * out_scale
        if u_out.shape[1] > 0:
            u_out[n, t] = u * out_scale
    u_st[n] = u
    v_st[n] = v
    rc_st[n] = rc


@cuda.jit
def cuba_backward(
    g_s,
    g_v,
    g_u,
    vp,
    u_rec,
    refr,
    theta,
    v_th,
    s_scale,
    inv_tau,
    amp,
    graded,
    i_decay,
    v_decay,
    u0,
    v0,
    do_v,
    do_u,
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
    th = theta[n % theta.shape[0]]
    it = inv_tau[n % inv_tau.shape[0]]
    th_int = v_th[n % v_th.shape[0]]
    av = 1.0 - v_decay[n % v_decay.shape[0]] / 4096.0
    ai = 1.0 - i_decay[n % i_decay.shape[0]] / 4096.0
    gv = 0.0
    gu = 0.0
    acc_v = 0.0
    acc_i = 0.0
    for k in range(steps):
        t = steps - 1 - k
        if do_v:
            gt = 0.0
            if has_s:
                diff = vp[n, t] - th
                if graded:
                    sd = amp * math.exp(min(diff, 0.0) * it)
                else:
                    sd = amp * math.exp(-abs(diff) * it)
                gt = g_s[n, t] * sd
            if has_v:
                gt = gt + g_v[n, t]
            gv = gt + av * gv
            if refr.shape[1] > 0 and refr[n, t] != 0:
                gv = 0.0
        gut = gv
        if has_u:
            gut = gut + g_u[n, t]
        if do_u:
            gu = gut + ai * gu
            g_x[n, t] = gu
        else:
            g_x[n, t] = gut
        if g_dv.shape[0] > 0:
            if t > 0:
                vprev = vp[n, t - 1]
                if math.floor(vprev * s_scale + 0.5) > th_int:
                    vprev = 0.0
                acc_v += gv * vprev
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


@cuda.jit
def sdnn_forward(
    mode,
    x,
    in_scale,
    v_th,
    bias,
    relu,
    cum_error,
    sigma_st,
    act_st,
    res_st,
    err_st,
    y_out,
    mask_out,
    d_out,
    bad,
):
    n = cuda.grid(1)
    if n >= x.shape[0]:
        return
    th = v_th[n % v_th.shape[0]]
    b = bias[n % bias.shape[0]]
    sg = sigma_st[n]
    ac = act_st[n]
    rs = res_st[n]
    er = err_st[n]
    for t in range(x.shape[1]):
        f = x[n, t] * in_scale
        if not (abs(f) < INPUT_LIMIT * 1024.0):
            bad[n] = 1
            f = 0.0
        a = sg - sg + int(math.floor(f + 0.5))
        if f - math.floor(f) == 0.5 and (a & 1) == 1:
            a -= 1
        d_prev = ac - rs
        sg, ac, rs, er, p = _sdnn_step(mode, a, sg, ac, rs, er, th, b, 12, 6, relu, cum_error)
        y_out[n, t] = p * (1.0 / 4096.0)
        if mask_out.shape[1] > 0:
            mask_out[n, t] = 1 if (ac > 0 or relu == 0) else 0
        if d_out.shape[1] > 0:
            d_out[n, t] = (ac - d_prev) * (1.0 / 262144.0)
    sigma_st[n] = sg
    act_st[n] = ac
    res_st[n] = rs
    err_st[n] = er


@cuda.jit
def sdnn_backward(g, mask, d, theta, tau_grad, scale_grad, mode, g_x, g_b, g_th):
    n = cuda.grid(1)
    rows = g.shape[0]
    steps = g.shape[1]
    if n >= rows:
        return
    gnext = 0.0
    acc = 0.0
    gb = 0.0
    for k in range(steps):
        t = steps - 1 - k
        gt = g[n, t]
        ga = gt - gnext
        gnext = gt
        if mode == 0:
            g_x[n, t] = ga
        else:
            if mask.shape[1] > 0 and mask[n, t] == 0:
                ga = 0.0
            acc = acc + ga
            gb += ga
            g_x[n, t] = acc
    if g_b.shape[0] > 0:
        g_b[n] = gb
    if g_th.shape[0] > 0:
        th = theta[n % theta.shape[0]]
        gth = 0.0
        for t in range(steps):
            dv = d[n, t]
            sub = abs(dv) - th
            if sub > 0:
                gth += -dv * scale_grad * math.exp(-sub / tau_grad) / th * g[n, t]
            elif dv > 0:
                gth -= g[n, t]
            elif dv < 0:
                gth += g[n, t]
        g_th[n] = gth

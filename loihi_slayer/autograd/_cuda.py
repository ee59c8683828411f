"""numba.cuda training kernels, same contracts as :mod:`._cpu`, tiled through shared memory.

Each block is one warp stepping :data:`._cuda_tiles.ROWS` rows; time passes through
float64 shared tiles of :data:`._cuda_tiles.TILE` steps, loaded and stored with
coalesced accesses (:mod:`._cuda_tiles`), so a warp's global reads and writes are
runs of consecutive time steps of a row instead of 32 rows ``T`` apart. The integer
step is :func:`loihi_slayer.fixed.dynamics.cuba_step` /
:func:`~loihi_slayer.fixed.dynamics.sdnn_step` compiled as device functions.
Nothing is compiled at import; under ``NUMBA_ENABLE_CUDASIM=1`` the kernels run
in numba's simulator (tests).
"""

from __future__ import annotations

import math

from numba import cuda, float64

from ..fixed import dynamics
from ._convert import INPUT_LIMIT
from ._cuda_tiles import (
    ROWS,
    TILE,
    WIDTH,
    block_rows,
    load,
    scan_product,
    store,
    tile_from_end,
)
from ._cuda_tiles import blocks_for as blocks_for

#: threads per block of every training kernel (the tiled ones need exactly one warp)
THREADS = ROWS

_cuba_step = cuda.jit(device=True)(dynamics.cuba_step)
_sdnn_step = cuda.jit(device=True)(dynamics.sdnn_step)


@cuda.jit(device=True)
def _chip_input(f, limit):
    """``(rint(f), 0)`` as int64 (round half to even, as ``np.rint`` on the CPU), or
    ``(0, 1)`` when ``|f|`` is not below ``limit`` or not finite."""
    ok = abs(f) < limit
    return round(f if ok else 0.0), 0 if ok else 1


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
    xs = cuda.shared.array((ROWS, WIDTH), float64)
    ss = cuda.shared.array((ROWS, WIDTH), float64)
    vs = cuda.shared.array((ROWS, WIDTH), float64)
    us = cuda.shared.array((ROWS, WIDTH), float64)
    rs = cuda.shared.array((ROWS, WIDTH), float64)
    rows, steps = x.shape
    if rows == 0:
        return
    tid = cuda.threadIdx.x
    n0, n, live, nl = block_rows(rows)
    di = i_decay[nl % i_decay.shape[0]]
    dv = v_decay[nl % v_decay.shape[0]]
    th = v_th[nl % v_th.shape[0]]
    b = bias[nl % bias.shape[0]]
    u = u_st[nl]
    v = v_st[nl]
    rc = rc_st[nl]
    refused = 0
    for t0 in range(0, steps, TILE):
        tl = min(TILE, steps - t0)
        load(x, xs, n0, t0, tl)
        cuda.syncthreads()
        if live:
            for c in range(tl):
                a, r = _chip_input(xs[tid, c] * in_scale, INPUT_LIMIT)
                refused |= r
                rs[tid, c] = 1.0 if rc > 0 else 0.0
                u, v, rc, s, vp = _cuba_step(u, v, rc, a, di, dv, th, ref_delay, b, 0)
                if graded:
                    ss[tid, c] = vp * out_scale if s else 0.0
                else:
                    ss[tid, c] = s
                vs[tid, c] = vp * out_scale
                us[tid, c] = u * out_scale
        cuda.syncthreads()
        store(ss, s_out, n0, t0, tl)
        store(vs, vp_out, n0, t0, tl)
        store(us, u_out, n0, t0, tl)
        store(rs, r_out, n0, t0, tl)
        cuda.syncthreads()
    if live:
        u_st[n] = u
        v_st[n] = v
        rc_st[n] = rc
        if refused:
            bad[n] = 1


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
    # vp and u_rec tiles hold the step before the tile in column 0 (the decay gradients)
    gss = cuda.shared.array((ROWS, WIDTH), float64)
    gvs = cuda.shared.array((ROWS, WIDTH), float64)
    gus = cuda.shared.array((ROWS, WIDTH), float64)
    vps = cuda.shared.array((ROWS, WIDTH), float64)
    urs = cuda.shared.array((ROWS, WIDTH), float64)
    rfs = cuda.shared.array((ROWS, WIDTH), float64)
    gxs = cuda.shared.array((ROWS, WIDTH), float64)
    rows, steps = g_x.shape
    if rows == 0:
        return
    tid = cuda.threadIdx.x
    n0, n, live, nl = block_rows(rows)
    has_s = g_s.shape[1] > 0
    has_v = g_v.shape[1] > 0
    has_u = g_u.shape[1] > 0
    has_r = refr.shape[1] > 0
    want_dv = g_dv.shape[0] > 0
    want_di = g_di.shape[0] > 0
    th = theta[nl % theta.shape[0]]
    it = inv_tau[nl % inv_tau.shape[0]]
    th_int = v_th[nl % v_th.shape[0]]
    av = 1.0 - v_decay[nl % v_decay.shape[0]] / 4096.0
    ai = 1.0 - i_decay[nl % i_decay.shape[0]] / 4096.0
    gv = 0.0
    gu = 0.0
    acc_v = 0.0
    acc_i = 0.0
    for k0 in range(0, steps, TILE):  # tiles from the end, each scanned backwards
        lo, hi, tl = tile_from_end(k0, steps)
        load(g_s, gss, n0, lo, tl)
        load(g_v, gvs, n0, lo, tl)
        load(g_u, gus, n0, lo, tl)
        load(vp, vps, n0, lo - 1, tl + 1)
        if want_di:
            load(u_rec, urs, n0, lo - 1, tl + 1)
        load(refr, rfs, n0, lo, tl)
        cuda.syncthreads()
        if live:
            for k in range(tl):
                c = tl - 1 - k
                t = lo + c
                if do_v:
                    gt = 0.0
                    if has_s:
                        diff = vps[tid, c + 1] - th
                        if graded:
                            sd = amp * math.exp(min(diff, 0.0) * it)
                        else:
                            sd = amp * math.exp(-abs(diff) * it)
                        gt = gss[tid, c] * sd
                    if has_v:
                        gt = gt + gvs[tid, c]
                    gv = gt + av * gv
                    if has_r and rfs[tid, c] != 0:
                        gv = 0.0
                gut = gv
                if has_u:
                    gut = gut + gus[tid, c]
                if do_u:
                    gu = gut + ai * gu
                    gxs[tid, c] = gu
                else:
                    gxs[tid, c] = gut
                if want_dv:  # the post-reset voltage before step t: 0 after a spike
                    vprev = v0[n]
                    if t > 0:
                        vprev = vps[tid, c]
                        if math.floor(vprev * s_scale + 0.5) > th_int:
                            vprev = 0.0
                    acc_v += gv * vprev
                if want_di:
                    acc_i = scan_product(acc_i, gu, urs[tid, c], t, u0[n])
        cuda.syncthreads()
        store(gxs, g_x, n0, lo, tl)
        cuda.syncthreads()
    if live:
        if want_dv:
            g_dv[n] = -acc_v / 4096.0
        if want_di:
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
    xs = cuda.shared.array((ROWS, WIDTH), float64)
    ys = cuda.shared.array((ROWS, WIDTH), float64)
    ms = cuda.shared.array((ROWS, WIDTH), float64)
    ds = cuda.shared.array((ROWS, WIDTH), float64)
    rows, steps = x.shape
    if rows == 0:
        return
    tid = cuda.threadIdx.x
    n0, n, live, nl = block_rows(rows)
    th = v_th[nl % v_th.shape[0]]
    b = bias[nl % bias.shape[0]]
    sg = sigma_st[nl]
    ac = act_st[nl]
    rs = res_st[nl]
    er = err_st[nl]
    refused = 0
    for t0 in range(0, steps, TILE):
        tl = min(TILE, steps - t0)
        load(x, xs, n0, t0, tl)
        cuda.syncthreads()
        if live:
            for c in range(tl):
                a, r = _chip_input(xs[tid, c] * in_scale, INPUT_LIMIT * 1024.0)
                refused |= r
                d_prev = ac - rs
                sg, ac, rs, er, p = _sdnn_step(
                    mode, a, sg, ac, rs, er, th, b, 12, 6, relu, cum_error
                )
                ys[tid, c] = p * (1.0 / 4096.0)
                ms[tid, c] = 1.0 if (ac > 0 or relu == 0) else 0.0
                ds[tid, c] = (ac - d_prev) * (1.0 / 262144.0)
        cuda.syncthreads()
        store(ys, y_out, n0, t0, tl)
        store(ms, mask_out, n0, t0, tl)
        store(ds, d_out, n0, t0, tl)
        cuda.syncthreads()
    if live:
        sigma_st[n] = sg
        act_st[n] = ac
        res_st[n] = rs
        err_st[n] = er
        if refused:
            bad[n] = 1


@cuda.jit
def sdnn_backward(g, mask, d, theta, tau_grad, scale_grad, mode, g_x, g_b, g_th):
    gs = cuda.shared.array((ROWS, WIDTH), float64)
    ms = cuda.shared.array((ROWS, WIDTH), float64)
    ds = cuda.shared.array((ROWS, WIDTH), float64)
    gxs = cuda.shared.array((ROWS, WIDTH), float64)
    rows, steps = g.shape
    if rows == 0:
        return
    tid = cuda.threadIdx.x
    n0, n, live, nl = block_rows(rows)
    has_m = mask.shape[1] > 0
    gnext = 0.0
    acc = 0.0
    gb = 0.0
    for k0 in range(0, steps, TILE):  # the delta's and the sum's reverse scan
        lo, hi, tl = tile_from_end(k0, steps)
        load(g, gs, n0, lo, tl)
        load(mask, ms, n0, lo, tl)
        cuda.syncthreads()
        if live:
            for k in range(tl):
                c = tl - 1 - k
                gt = gs[tid, c]
                ga = gt - gnext
                gnext = gt
                if mode == 0:
                    gxs[tid, c] = ga
                else:
                    if has_m and ms[tid, c] == 0:
                        ga = 0.0
                    acc = acc + ga
                    gb += ga
                    gxs[tid, c] = acc
        cuda.syncthreads()
        store(gxs, g_x, n0, lo, tl)
        cuda.syncthreads()
    if live and g_b.shape[0] > 0:
        g_b[n] = gb
    if g_th.shape[0] == 0:
        return
    th = theta[nl % theta.shape[0]]
    gth = 0.0
    for t0 in range(0, steps, TILE):  # the threshold's gradient, forwards
        tl = min(TILE, steps - t0)
        load(g, gs, n0, t0, tl)
        load(d, ds, n0, t0, tl)
        cuda.syncthreads()
        if live:
            for c in range(tl):
                dv = ds[tid, c]
                gt = gs[tid, c]
                sub = abs(dv) - th
                if sub > 0:
                    gth += -dv * scale_grad * math.exp(-sub / tau_grad) / th * gt
                elif dv > 0:
                    gth -= gt
                elif dv < 0:
                    gth += gt
        cuda.syncthreads()
    if live:
        g_th[n] = gth

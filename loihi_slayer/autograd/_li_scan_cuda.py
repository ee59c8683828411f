"""``numba.cuda`` form of :func:`loihi_slayer.autograd._li_scan.cpu`, tiled through shared
memory as the other training kernels (:mod:`._cuda_tiles`).

Same contract and formulas as :mod:`._li_scan`; imported only when a CUDA backend
runs (under ``NUMBA_ENABLE_CUDASIM=1`` in numba's simulator).
"""

from __future__ import annotations

import math

from numba import cuda, float64

from ._cuda_tiles import (
    ROWS,
    TILE,
    WIDTH,
    block_rows,
    load,
    load_difference,
    scan_product,
    store,
    tile_from_end,
)

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
    # u_rec and v_post tiles hold the step before the tile in column 0
    gss = cuda.shared.array((ROWS, WIDTH), float64)
    gvs = cuda.shared.array((ROWS, WIDTH), float64)
    gus = cuda.shared.array((ROWS, WIDTH), float64)
    zs = cuda.shared.array((ROWS, WIDTH), float64)  # v - theta
    urs = cuda.shared.array((ROWS, WIDTH), float64)
    vqs = cuda.shared.array((ROWS, WIDTH), float64)
    gxs = cuda.shared.array((ROWS, WIDTH), float64)
    rows, steps = g_x.shape
    if rows == 0:
        return
    tid = cuda.threadIdx.x
    n0, n, live, nl = block_rows(rows)
    has_s = g_s.shape[1] > 0
    has_v = g_v.shape[1] > 0
    has_u = g_u.shape[1] > 0
    want_dv = g_dv.shape[0] > 0
    want_di = g_di.shape[0] > 0
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
        if has_s:
            load_difference(v, theta, zs, n0, lo, tl)
        if want_di:
            load(u_rec, urs, n0, lo - 1, tl + 1)
        if want_dv:
            load(v_post, vqs, n0, lo - 1, tl + 1)
        cuda.syncthreads()
        if live:
            for k in range(tl):
                c = tl - 1 - k
                t = lo + c
                gt = 0.0
                if has_s:
                    z = zs[tid, c]
                    if graded:
                        sd = amp * math.exp(min(z, 0.0) * inv_tau)
                    else:
                        sd = amp * math.exp(-abs(z) * inv_tau)
                    gt = gss[tid, c] * sd
                if has_v:
                    gt += gvs[tid, c]
                gv = gt + av * gv
                gut = gv
                if has_u:
                    gut += gus[tid, c]
                gu = gut + ai * gu
                gxs[tid, c] = gu
                if want_dv:
                    acc_v = scan_product(acc_v, gv, vqs[tid, c], t, v0[n])
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

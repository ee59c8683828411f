"""NumPy reference of the resonator backward (slow, vectorised over rows, obviously correct).

The same formulas as :mod:`._resonator_bwd`, written independently as array code
with a Python loop over reversed time; the compiled kernels are tested against it.
Arguments follow :func:`._resonator_bwd.backward` but ``None`` replaces the
"not given" arrays; returns ``(g_xre, g_xim, g_sin, g_cos)`` (the last two None
unless ``want_p``).
"""

from __future__ import annotations

import numpy as np


def _per_row(v, rows: int) -> np.ndarray:
    v = np.asarray(v, np.float64).reshape(-1)
    return np.broadcast_to(v, (rows,)) if v.size == 1 else v


def surrogate(re, im, thr, tau, rho, graded, mode):
    """``(ds/dre, ds/dim)`` over ``(rows, T)`` arrays (mode 0: phase spike, 1: spike on im)."""
    if mode == 1:
        d = im - thr
        if graded:
            return np.zeros_like(im), rho * np.exp(np.minimum(d, 0.0) / tau)
        return np.zeros_like(im), rho / (2 * tau) * np.exp(-np.abs(d) / tau)
    d = re - thr
    if graded:
        dr = np.exp(-np.maximum(-d, 0.0) / tau)
    else:
        dr = np.exp(-np.abs(d) / tau) / (2 * tau)
    di = np.exp(-np.abs(im) / tau) / (2 * tau)
    step = 0.5 * (1 + np.sign(d) * (1 - 2 * tau * dr))
    return rho * dr * di, -rho / tau * np.sign(im) * di * step


def backward(
    g_s,
    g_re,
    g_im,
    re,
    im,
    thr,
    spk,
    theta,
    tau,
    rho,
    graded,
    mode,
    sin_d,
    cos_d,
    re0,
    im0,
    im_reset,
    want_p,
):
    re = np.asarray(re, np.float64)
    im = np.asarray(im, np.float64)
    rows, steps = re.shape
    th = np.full_like(re, theta) if thr is None else np.asarray(thr, np.float64)
    big_re = np.zeros_like(re) if g_re is None else np.asarray(g_re, np.float64).copy()
    big_im = np.zeros_like(re) if g_im is None else np.asarray(g_im, np.float64).copy()
    if g_s is not None:
        d_re, d_im = surrogate(re, im, th, tau, rho, graded, mode)
        g = np.asarray(g_s, np.float64)
        big_re += g * d_re
        big_im += g * d_im
    s = _per_row(sin_d, rows)
    c = _per_row(cos_d, rows)
    re_post, im_post = re.copy(), im.copy()
    if spk is not None:
        fired = np.asarray(spk) != 0
        re_post[fired] = 0.0
        im_post[fired] = im_reset
    re_prev = np.concatenate([np.asarray(re0, np.float64)[:, None], re_post[:, :-1]], axis=1)
    im_prev = np.concatenate([np.asarray(im0, np.float64)[:, None], im_post[:, :-1]], axis=1)
    g_xre = np.zeros_like(re)
    g_xim = np.zeros_like(re)
    nxt_re = np.zeros(rows)
    nxt_im = np.zeros(rows)
    for t in range(steps - 1, -1, -1):
        cur_re = big_re[:, t] + c * nxt_re + s * nxt_im
        cur_im = big_im[:, t] - s * nxt_re + c * nxt_im
        g_xre[:, t], g_xim[:, t] = cur_re, cur_im
        nxt_re, nxt_im = cur_re, cur_im
    if not want_p:
        return g_xre, g_xim, None, None
    g_sin = np.sum(g_xim * re_prev - g_xre * im_prev, axis=1) / 4096.0
    g_cos = np.sum(g_xre * re_prev + g_xim * im_prev, axis=1) / 4096.0
    return g_xre, g_xim, g_sin, g_cos

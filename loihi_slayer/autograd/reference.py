"""Plain NumPy reference of the training kernels (slow, obviously correct).

The forward passes convert the float inputs exactly as the compiled kernels
do and then call the independent integer reference
:mod:`loihi_slayer.fixed.reference`; the backward passes are the surrogate
formulas written as array code with a Python loop over (reversed) time. The
tests compare the njit and numba.cuda kernels with these functions.
"""

from __future__ import annotations

import numpy as np

from ..fixed import reference as fixed_reference
from ..fixed.params import CubaParams, SigmaDeltaParams


def _per_row(arr: np.ndarray, rows: int) -> np.ndarray:
    arr = np.asarray(arr)
    return np.resize(arr, rows) if arr.size > 1 else np.broadcast_to(arr.reshape(-1), (rows,))


def cuba_forward(
    x,
    in_scale,
    out_scale,
    i_decay,
    v_decay,
    v_th,
    bias,
    u_st,
    v_st,
    graded,
    ref_delay=1,
    rc_st=None,
):
    """Returns ``(s, v_pre, u, refractory, u_state, v_state, rc_state)``.

    ``refractory`` (bool, ``(rows, T)``) is derived from the spikes, independently
    of the kernels' counter: step ``t`` is refractory when ``t < rc0`` or a spike
    happened in steps ``t - R + 1 .. t - 1``.
    """
    x = np.asarray(x, dtype=np.float64)
    rows, steps = x.shape
    a = np.rint(x * in_scale).astype(np.int64)
    th = _per_row(v_th, rows)
    params = CubaParams(
        i_decay=_per_row(i_decay, rows),
        v_decay=_per_row(v_decay, rows),
        v_th_mant=th >> 6,
        bias_mant=_per_row(bias, rows) >> 6,
        bias_exp=6,
        ref_delay=ref_delay,
    )
    assert np.all((th & 63) == 0) and np.all((_per_row(bias, rows) & 63) == 0)
    rc0 = np.zeros(rows, np.int64) if rc_st is None else np.asarray(rc_st, np.int64)
    tr, st = fixed_reference.cuba(a, params, state={"u": u_st, "v": v_st, "rc": rc0})
    spikes = tr["s"].astype(bool)
    refr = np.arange(steps)[None, :] < rc0[:, None]
    for lag in range(1, min(ref_delay, steps)):
        refr[:, lag:] |= spikes[:, :-lag]
    vp = tr["v_pre"] * out_scale
    s = tr["s"].astype(np.float64)
    if graded:
        s = s * vp
    return s, vp, tr["u"] * out_scale, refr, st["u"], st["v"], st["rc"]


def surrogate(vp, theta, tau_rho, scale_rho, graded):
    """lava-dl's spike derivative ``ds/dv`` (spec §5.4) with ``theta_arg = theta``."""
    vp = np.asarray(vp, dtype=np.float64)
    if graded:
        return scale_rho * np.exp(np.minimum(vp - theta, 0.0) / tau_rho)
    return scale_rho / (2.0 * tau_rho) * np.exp(-np.abs(vp - theta) / tau_rho)


def cuba_backward(
    g_s,
    g_v,
    g_u,
    vp,
    u_rec,
    theta,
    tau_rho,
    scale_rho,
    graded,
    i_decay,
    v_decay,
    u0,
    v0,
    s_scale,
    v_th,
    do_v=True,
    do_u=True,
    refr=None,
):
    """Returns ``(g_x, g_i_decay_per_row, g_v_decay_per_row)``; ``None`` grads are zero.

    ``do_v = False`` skips the voltage scan (no spike/voltage gradient),
    ``do_u = False`` skips the current scan (``g_x = g_v + g_u``). On refractory
    steps (``refr``) the voltage gradient is zero (``v`` is held at 0).
    """
    vp = np.asarray(vp, dtype=np.float64)
    rows, steps = vp.shape
    theta = _per_row(theta, rows)[:, None]
    tau = _per_row(tau_rho, rows)[:, None]
    av = 1.0 - _per_row(v_decay, rows) / 4096.0
    ai = 1.0 - _per_row(i_decay, rows) / 4096.0
    g = np.zeros((rows, steps))
    if g_s is not None:
        g = g + np.asarray(g_s, np.float64) * surrogate(vp, theta, tau, scale_rho, graded)
    if g_v is not None:
        g = g + np.asarray(g_v, np.float64)
    gu_ext = np.zeros((rows, steps)) if g_u is None else np.asarray(g_u, np.float64)
    spiked = np.rint(vp * s_scale).astype(np.int64) > _per_row(v_th, rows)[:, None]
    v_post = np.where(spiked, 0.0, vp)
    gv = np.zeros(rows)
    gu = np.zeros(rows)
    g_x = np.zeros((rows, steps))
    g_dv = np.zeros(rows)
    g_di = np.zeros(rows)
    u_rec = None if u_rec is None else np.asarray(u_rec, np.float64)
    if not do_v:
        g = np.zeros((rows, steps))
        av = np.zeros(rows)
    if not do_u:
        ai = np.zeros(rows)
    held = np.zeros((rows, steps), bool) if refr is None else np.asarray(refr, bool)
    for t in range(steps - 1, -1, -1):
        gv = np.where(held[:, t], 0.0, g[:, t] + av * gv)
        gu = gv + gu_ext[:, t] + ai * gu
        g_x[:, t] = gu
        v_prev = v_post[:, t - 1] if t > 0 else np.asarray(v0, np.float64)
        g_dv += gv * v_prev
        if u_rec is not None:
            u_prev = u_rec[:, t - 1] if t > 0 else np.asarray(u0, np.float64)
            g_di += gu * u_prev
    return g_x, -g_di / 4096.0, -g_dv / 4096.0


def sdnn_forward(mode, x, in_scale, v_th, bias, relu, cum_error, state):
    """Returns ``(y, mask, d, state)`` via :func:`loihi_slayer.fixed.reference.sigma_delta`."""
    x = np.asarray(x, dtype=np.float64)
    rows = x.shape[0]
    a = np.rint(x * in_scale).astype(np.int64)
    th = _per_row(v_th, rows)
    b = _per_row(bias, rows)
    params = SigmaDeltaParams(
        v_th_mant=th >> 12,
        bias=b >> 12,
        activation="relu" if relu else "unit",
        cum_error=bool(cum_error),
    )
    st0 = {k: np.asarray(v, np.int64) for k, v in state.items()}
    tr, st = fixed_reference.sigma_delta(
        a, params, mode="delta" if mode == 0 else "sigma_delta", state=st0
    )
    act = tr["act"]
    act_prev = np.concatenate([st0["act"][:, None], act[:, :-1]], axis=1)
    res_prev = np.concatenate([st0["residue"][:, None], tr["residue"][:, :-1]], axis=1)
    d = (act - act_prev + res_prev) / 2.0**18
    mask = (act > 0) | (not relu)
    return tr["s"] / 4096.0, mask, d, st


def sdnn_backward(g, mask, d, theta, tau_grad, scale_grad, mode):
    """Returns ``(g_x, g_bias_per_row, g_threshold_per_row)``."""
    g = np.asarray(g, np.float64)
    rows, steps = g.shape
    ga = g.copy()
    ga[:, :-1] -= g[:, 1:]
    if mode == 0:
        g_x = ga
        gz = ga
    else:
        gz = ga * (np.ones_like(ga) if mask is None else mask)
        g_x = np.flip(np.cumsum(np.flip(gz, 1), 1), 1)
    g_th = None
    if d is not None:
        th = _per_row(theta, rows)[:, None]
        sub = np.abs(d) - th
        g_th = np.sum(
            np.where(sub > 0, -d * scale_grad * np.exp(-sub / tau_grad) / th, -np.sign(d)) * g,
            axis=1,
        )
    return g_x, gz.sum(1), g_th

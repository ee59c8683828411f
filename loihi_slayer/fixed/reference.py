"""Slow, obviously correct NumPy int64 reference of every fixed-point operation.

This module is the spec (``shared/spec/loihi-fixed-point.md``) written as array
code, vectorized over neurons with a Python loop over time. It shares no code
with the fast kernels: the tests compare them bit for bit.
"""

from __future__ import annotations

import numpy as np

from .params import CubaParams, SigmaDeltaParams

TWO23 = 1 << 23
TWO24 = 1 << 24


def decay(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``x * (4096 - d) / 4096`` rounded toward zero (sign-magnitude shift)."""
    prod = x * (4096 - d)
    return np.sign(prod) * (np.abs(prod) >> 12)


def wrap_current(u: np.ndarray) -> np.ndarray:
    """Wrap into ``(-2**23, 2**23]``.

    lava-nc: ``u > 2**23 -> u - 2**24``; ``u <= -2**23 -> u + 2**24``.
    """
    k = -((-(u - TWO23)) // TWO24)  # ceil((u - 2**23) / 2**24)
    return u - k * TWO24


def saturate_voltage(v: np.ndarray) -> np.ndarray:
    """Clip to ``[-(2**23 - 1), 2**23 - 1]``."""
    return np.clip(v, -(TWO23 - 1), TWO23 - 1)


def scale_by_exp(a: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``a * 2**e`` for ``e >= 0``, ``floor(a / 2**-e)`` otherwise."""
    e = np.broadcast_to(e, a.shape)
    pos = a * (2 ** np.maximum(e, 0))
    neg = np.floor_divide(a, 2 ** np.maximum(-e, 0))
    return np.where(e >= 0, pos, neg)


def cuba(
    a_in: np.ndarray,
    params: CubaParams,
    state: dict | None = None,
    reset: np.ndarray | None = None,
) -> tuple[dict, dict]:
    """Run CUBA-LIF neurons over time.

    Parameters
    ----------
    a_in
        Integer synaptic sums, shape ``(*neurons, T)``.
    params
        Neuron parameters, broadcastable to the neuron shape.
    state
        Optional initial ``{'u', 'v', 'rc'}`` arrays of the neuron shape.
    reset
        Optional boolean ``(T,)``: zero u, v and the refractory counter at the
        start of each marked step.

    Returns
    -------
    traces, state
        ``traces`` maps ``'s', 'u', 'v', 'v_pre'`` to ``(*neurons, T)`` int64
        arrays (``v`` after the reset, ``v_pre`` before it); ``state`` is the
        final state.
    """
    a = np.asarray(a_in).astype(np.int64)
    shape, steps = a.shape[:-1], a.shape[-1]

    def full(arr):
        arr = np.asarray(arr)
        # a one-element parameter is shared, whatever its rank (also for a scalar neuron)
        return np.broadcast_to(arr.reshape(()) if arr.size == 1 else arr, shape).astype(np.int64)

    def p(name):
        return full(params.array(name))

    di, dv, ref = p("i_decay"), p("v_decay"), p("ref_delay")
    vth = full(params.v_th)
    mant, exp = p("bias_mant"), p("bias_exp")
    bias = np.where(exp >= 0, mant * 2 ** np.maximum(exp, 0), mant // 2 ** np.maximum(-exp, 0))
    wexp = p("wgt_exp")
    state = state or {}
    u = np.array(state.get("u", np.zeros(shape)), dtype=np.int64).reshape(shape)
    v = np.array(state.get("v", np.zeros(shape)), dtype=np.int64).reshape(shape)
    rc = np.array(state.get("rc", np.zeros(shape)), dtype=np.int64).reshape(shape)
    out = {k: np.zeros(shape + (steps,), np.int64) for k in ("s", "u", "v", "v_pre")}
    for t in range(steps):
        if reset is not None and reset[t]:
            u[...], v[...], rc[...] = 0, 0, 0
        u = wrap_current(decay(u, di) + scale_by_exp(a[..., t], wexp) * 64)
        refractory = rc > 0
        v_new = saturate_voltage(decay(v, dv) + u + bias)
        spike = ~refractory & (v_new > vth)
        out["v_pre"][..., t] = np.where(refractory, 0, v_new)
        v = np.where(refractory | spike, 0, v_new)
        rc = np.where(refractory, rc - 1, np.where(spike, ref - 1, 0))
        out["s"][..., t] = spike
        out["u"][..., t] = u
        out["v"][..., t] = v
    return out, {"u": u, "v": v, "rc": rc}


def sigma_delta(
    a_in: np.ndarray,
    params: SigmaDeltaParams,
    mode: str = "sigma_delta",
    state: dict | None = None,
    reset: np.ndarray | None = None,
) -> tuple[dict, dict]:
    """Run sigma-delta neurons (lava-nc ``PySigmaDeltaModelFixed`` and friends).

    Parameters
    ----------
    a_in
        Integer inputs ``(*neurons, T)``.
    params
        Neuron parameters.
    mode
        ``'delta'`` (input encoder: ``a = a_in << (E+S)``), ``'sigma_delta'``
        (``sigma += a_in``, ``a = act(sigma + bias)``) or ``'sigma'``
        (accumulator only; output = sigma).
    state
        Optional initial ``{'sigma', 'act', 'residue', 'error'}``.
    reset
        Optional boolean ``(T,)``; zero all state at the start of marked steps.

    Returns
    -------
    traces, state
        ``traces`` maps ``'s'`` (graded payload), ``'sigma'``, ``'act'``,
        ``'residue'`` to int64 ``(*neurons, T)`` arrays.
    """
    x = np.asarray(a_in).astype(np.int64)
    shape, steps = x.shape[:-1], x.shape[-1]
    vth = np.broadcast_to(params.v_th, shape)
    bias = np.broadcast_to(params.bias_scaled, shape)
    sexp = int(params.array("state_exp"))
    state = state or {}
    names = ("sigma", "act", "residue", "error")
    st = {k: np.array(state.get(k, np.zeros(shape)), dtype=np.int64).reshape(shape) for k in names}
    out = {k: np.zeros(shape + (steps,), np.int64) for k in ("s", "sigma", "act", "residue")}
    for t in range(steps):
        if reset is not None and reset[t]:
            for k in names:
                st[k][...] = 0
        if mode == "sigma":
            st["sigma"] = st["sigma"] + x[..., t]
            payload = st["sigma"]
        else:
            if mode == "delta":
                a = x[..., t] * 2**params.shift
            else:
                st["sigma"] = st["sigma"] + x[..., t]
                a = st["sigma"] + bias
                if params.activation == "relu":
                    a = np.maximum(a, 0)
            d = a - st["act"] + st["residue"]
            if params.cum_error:
                st["error"] = st["error"] + d
                s = np.where(np.abs(st["error"]) >= vth, d, 0)
                st["error"] = np.where(s != 0, 0, st["error"])
            else:
                s = np.where(np.abs(d) >= vth, d, 0)
            st["residue"] = d - s
            st["act"] = a
            payload = np.floor_divide(s, 2**sexp)
        out["s"][..., t] = payload
        out["sigma"][..., t] = st["sigma"]
        out["act"][..., t] = st["act"]
        out["residue"][..., t] = st["residue"]
    return out, st


def sign_mode_of(weight: np.ndarray) -> str:
    """lava-nc's sign mode: mixed if both signs occur, else excitatory/inhibitory."""
    w = np.asarray(weight)
    if w.size and w.max() > 0 and w.min() < 0:
        return "mixed"
    if w.size == 0 or w.min() >= 0:
        return "excitatory"
    return "inhibitory"


def quantize_weights(weight: np.ndarray, num_weight_bits: int = 8, sign_mode: str | None = None):
    """lava-nc's bit-accurate Dense weight handling (after range checking).

    Clears the ``8 - num_weight_bits (+1 if mixed)`` lowest bits: a floor for
    mixed/excitatory weights, a truncation of the magnitude for inhibitory ones.
    """
    w = np.asarray(weight).astype(np.int64)
    mode = sign_mode or sign_mode_of(w)
    k = 8 - num_weight_bits + (1 if mode == "mixed" else 0)
    if mode == "inhibitory":
        return -(((-w) // 2**k) * 2**k)
    return (w // 2**k) * 2**k


def dense(
    x: np.ndarray,
    weight: np.ndarray,
    weight_exp: int = 0,
    num_weight_bits: int = 8,
    sign_mode: str | None = None,
    graded: bool = False,
) -> np.ndarray:
    """Integer dense synapse, same step: ``A[..., o, t] = shift(sum_i W[o, i] x[..., i, t], exp)``.

    Binary inputs (``graded=False``) are cast to 0/1 as lava-nc does for
    1-bit messages.
    """
    w = quantize_weights(weight, num_weight_bits, sign_mode)
    xi = np.asarray(x).astype(np.int64)
    if not graded:
        xi = (xi != 0).astype(np.int64)
    acc = np.einsum("oi,...it->...ot", w, xi)
    return scale_by_exp(acc, np.int64(weight_exp))


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    stride=(1, 1),
    padding=(0, 0),
    dilation=(1, 1),
    groups: int = 1,
    weight_exp: int = 0,
    graded: bool = False,
) -> np.ndarray:
    """Integer 2-D cross-correlation on time-last data, same step.

    ``x`` is ``(C, H, W, T)`` or ``(B, C, H, W, T)``; ``weight`` is
    ``(C_out, C_in / groups, kH, kW)`` (PyTorch layout). The sum is shifted by
    ``weight_exp`` and wrapped to signed 24 bit, as lava-nc's fixed-point Conv.
    """
    xi = np.asarray(x).astype(np.int64)
    squeeze = xi.ndim == 4
    if squeeze:
        xi = xi[None]
    if not graded:
        xi = (xi != 0).astype(np.int64)
    w = np.asarray(weight).astype(np.int64)
    b, c_in, h, wd, steps = xi.shape
    c_out, c_per_group, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.zeros((b, c_in, h + 2 * ph, wd + 2 * pw, steps), np.int64)
    xp[:, :, ph : ph + h, pw : pw + wd] = xi
    out = np.zeros((b, c_out, h_out, w_out, steps), np.int64)
    out_per_group = c_out // groups
    for co in range(c_out):
        g = co // out_per_group
        for cl in range(c_per_group):
            ci = g * c_per_group + cl
            for ky in range(kh):
                for kx in range(kw):
                    rows = slice(ky * dh, ky * dh + sh * (h_out - 1) + 1, sh)
                    cols = slice(kx * dw, kx * dw + sw * (w_out - 1) + 1, sw)
                    out[:, co] += w[co, cl, ky, kx] * xp[:, ci, rows, cols]
    out = scale_by_exp(out, np.int64(weight_exp))
    out = (out + TWO23) % TWO24 - TWO23  # lava-nc Conv: wrap to signed 24 bit
    return out[0] if squeeze else out


def conv_transpose2d(
    x: np.ndarray,
    weight: np.ndarray,
    stride=(1, 1),
    padding=(0, 0),
    dilation=(1, 1),
    groups: int = 1,
    weight_exp: int = 0,
    graded: bool = False,
) -> np.ndarray:
    """Integer 2-D transposed convolution (PyTorch ``conv_transpose2d``, output_padding 0).

    ``weight`` is ``(C_in, C_out / groups, kH, kW)``; each input pixel scatters
    ``w * x`` to ``(iy * s - p + ky * d, ix * s - p + kx * d)``. The sum is shifted
    by ``weight_exp`` and wrapped to signed 24 bit.
    """
    xi = np.asarray(x).astype(np.int64)
    squeeze = xi.ndim == 4
    if squeeze:
        xi = xi[None]
    if not graded:
        xi = (xi != 0).astype(np.int64)
    w = np.asarray(weight).astype(np.int64)
    b, c_in, h, wd, steps = xi.shape
    _, out_per_group, kh, kw = w.shape
    in_per_group = c_in // groups
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    full_h = (h - 1) * sh + dh * (kh - 1) + 1
    full_w = (wd - 1) * sw + dw * (kw - 1) + 1
    full = np.zeros((b, out_per_group * groups, full_h, full_w, steps), np.int64)
    for ci in range(c_in):
        g = ci // in_per_group
        for col in range(out_per_group):
            co = g * out_per_group + col
            for ky in range(kh):
                for kx in range(kw):
                    rows = slice(ky * dh, ky * dh + sh * (h - 1) + 1, sh)
                    cols = slice(kx * dw, kx * dw + sw * (wd - 1) + 1, sw)
                    full[:, co, rows, cols] += w[ci, col, ky, kx] * xi[:, ci]
    out = full[:, :, ph : full_h - ph, pw : full_w - pw]
    out = scale_by_exp(out, np.int64(weight_exp))
    out = (out + TWO23) % TWO24 - TWO23
    return out[0] if squeeze else out

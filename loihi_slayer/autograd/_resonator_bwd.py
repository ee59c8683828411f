r"""Surrogate-gradient backward of the resonator neurons: one row function, compiled twice.

:func:`backward_span` (a row's steps over a span of time) is plain scalar Python: the
njit kernel :func:`backward` (``prange`` over rows, each row one span) here and the
``numba.cuda`` kernel in :mod:`._resonator_cuda` (a warp of rows, spans of the
shared-memory tiles of :mod:`._cuda_tiles`) both compile it, so the two cannot drift
apart; :mod:`._resonator_ref` is an independent vectorised NumPy
writing of the same formulas, against which the tests check both. The fused
recurrence's surrogate (:func:`surrogate_steps`: every step alone, a unit spike
gradient) writes the surrogate lines out in one flat loop; a test holds it to this
row kernel bit for bit.

Per row (one neuron of one sample), in float64, with :math:`c = C/4096`,
:math:`s = S/4096` and the spike gradient :math:`g_s[t]`:

.. math::

    G_{re}[t] &= g_s[t]\,\partial s/\partial \mathrm{re}[t] + g_{re}[t],\qquad
    G_{im}[t] = g_s[t]\,\partial s/\partial \mathrm{im}[t] + g_{im}[t]\\
    \bar{\mathrm{re}}[t] &= G_{re}[t] + c\,\bar{\mathrm{re}}[t+1] + s\,\bar{\mathrm{im}}[t+1]\\
    \bar{\mathrm{im}}[t] &= G_{im}[t] - s\,\bar{\mathrm{re}}[t+1] + c\,\bar{\mathrm{im}}[t+1]

(the transposed rotation; resets are ignored, as lava-dl does), and
:math:`\partial L/\partial x_{re}[t] = \bar{\mathrm{re}}[t]`,
:math:`\partial L/\partial x_{im}[t] = \bar{\mathrm{im}}[t]`. The surrogate is
the phase spike of :mod:`loihi_slayer.spike.complex` (``mode`` 0: RF, ADRF) or
lava-dl's real spike on ``im`` (``mode`` 1: RF_IZ, ADRF_IZ). With ``want_p`` the
rotation-parameter gradients (per row, parameters stored ×4096) are

.. math::

    \frac{\partial L}{\partial S} &= \frac{1}{4096}\sum_t\big(
        \bar{\mathrm{im}}[t]\,\mathrm{re}^+[t-1] - \bar{\mathrm{re}}[t]\,\mathrm{im}^+[t-1]\big)\\
    \frac{\partial L}{\partial C} &= \frac{1}{4096}\sum_t\big(
        \bar{\mathrm{re}}[t]\,\mathrm{re}^+[t-1] + \bar{\mathrm{im}}[t]\,\mathrm{im}^+[t-1]\big)

where :math:`\mathrm{re}^+, \mathrm{im}^+` are the states the rotation really
multiplies (after an Izhikevich reset; the initial state at :math:`t = 0`).

Array conventions: ``(rows, T)`` time-last; a ``(rows, 0)`` array means "not
given" (no spike gradient, no external state gradient, no adaptive threshold,
no reset); parameter vectors have length 1 or ``rows`` (indexed ``n % len``).
"""

from __future__ import annotations

import math

from numba import njit, prange


def backward_span(
    n,
    r,
    base,
    t_hi,
    t_lo,
    carry,
    flags,
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
    g_xre,
    g_xim,
):
    """Steps ``t_hi - 1`` down to ``t_lo`` of row ``n``'s backward (see the module
    docstring): the ``(rows, T)`` arrays are read and written at ``[r, t - base]`` (the
    whole arrays: ``r = n``, ``base = 0``; shared tiles of a CUDA block: its row, the tile's
    first column), the parameter vectors at ``n``. ``flags = (has_gs, has_gre, has_gim,
    adaptive, resets, want_p)`` say which arrays are given (tiles always have columns);
    ``carry = (gre[t_hi], gim[t_hi], acc_s, acc_c)`` comes in and the same after ``t_lo``
    goes out."""
    has_gs, has_gre, has_gim, adaptive, resets, want_p = flags
    # a shared value needs no division (one per row: the fused recurrence's surrogate
    # runs rows of one step)
    s = sin_d[0] if sin_d.shape[0] == 1 else sin_d[n % sin_d.shape[0]]
    c = cos_d[0] if cos_d.shape[0] == 1 else cos_d[n % cos_d.shape[0]]
    inv2tau = 0.5 / tau
    gre_n, gim_n, acc_s, acc_c = carry
    for k in range(t_hi - t_lo):
        t = t_hi - 1 - k
        j = t - base
        gr = 0.0
        gi = 0.0
        if has_gs:
            g = g_s[r, j] * 1.0
            if g != 0.0:
                th = thr[r, j] * 1.0 if adaptive else theta
                if mode == 0:
                    d = re[r, j] - th
                    if graded:
                        dr = math.exp(-max(-d, 0.0) / tau)
                    else:
                        dr = inv2tau * math.exp(-abs(d) / tau)
                    x_im = im[r, j] * 1.0
                    di = inv2tau * math.exp(-abs(x_im) / tau)
                    sgn_d = 1.0 if d > 0.0 else (-1.0 if d < 0.0 else 0.0)
                    step = 0.5 * (1.0 + sgn_d * (1.0 - 2.0 * tau * dr))
                    sgn_i = 1.0 if x_im > 0.0 else (-1.0 if x_im < 0.0 else 0.0)
                    gr = g * rho * dr * di
                    gi = -g * rho / tau * sgn_i * di * step
                else:
                    d = im[r, j] - th
                    if graded:
                        gi = g * rho * math.exp(min(d, 0.0) / tau)
                    else:
                        gi = g * rho * inv2tau * math.exp(-abs(d) / tau)
        if has_gre:
            gr += g_re[r, j]
        if has_gim:
            gi += g_im[r, j]
        gre = gr + c * gre_n + s * gim_n
        gim = gi - s * gre_n + c * gim_n
        g_xre[r, j] = gre
        g_xim[r, j] = gim
        if want_p:
            if t == 0:
                rp = re0[n] * 1.0
                ip = im0[n] * 1.0
            elif resets and spk[r, j - 1] != 0:
                rp = 0.0
                ip = im_reset
            else:
                rp = re[r, j - 1] * 1.0
                ip = im[r, j - 1] * 1.0
            acc_s += gim * rp - gre * ip
            acc_c += gre * rp + gim * ip
        gre_n = gre
        gim_n = gim
    return gre_n, gim_n, acc_s, acc_c


def given_flags(g_s, g_re, g_im, thr, spk, g_sin):
    """The ``flags`` of :func:`backward_span` from the whole arrays (``(rows, 0)``: not
    given)."""
    return (
        g_s.shape[1] > 0,
        g_re.shape[1] > 0,
        g_im.shape[1] > 0,
        thr.shape[1] > 0,
        spk.shape[1] > 0,
        g_sin.shape[0] > 0,
    )


def backward_row(
    n,
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
    g_xre,
    g_xim,
    g_sin,
    g_cos,
):
    """Backward of row ``n`` (see the module docstring); writes ``g_x*[n]`` and ``g_sin/cos[n]``."""
    flags = _flags(g_s, g_re, g_im, thr, spk, g_sin)
    _, _, acc_s, acc_c = _span(
        n,
        n,
        0,
        re.shape[1],
        0,
        (0.0, 0.0, 0.0, 0.0),
        flags,
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
        g_xre,
        g_xim,
    )
    if flags[5]:
        g_sin[n] = acc_s / 4096.0
        g_cos[n] = acc_c / 4096.0


_flags = njit(inline="always", cache=True)(given_flags)
_span = njit(inline="always", cache=True)(backward_span)
_row = njit(inline="always", cache=True)(backward_row)


@njit(parallel=True, cache=True)
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
    g_xre,
    g_xim,
    g_sin,
    g_cos,
):
    """All rows of :func:`backward_row` (njit, ``prange`` over rows)."""
    for n in prange(re.shape[0]):
        _row(
            n,
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
            g_xre,
            g_xim,
            g_sin,
            g_cos,
        )


@njit(parallel=True, cache=True)
def surrogate_steps(re, im, thr, theta, tau, rho, graded, mode, d_re, d_im):
    """``d_re[k], d_im[k]``: :func:`backward_span` of a one-step row ``k`` with a unit
    spike gradient and no rotation (``sin = cos = 0``), for every value of the flat
    float traces ``re``, ``im`` (``thr``: the adaptive threshold, or empty): the
    surrogate of each step of a fused resonator recurrence
    (:mod:`.recurrent_complex`), the same float64 operations in the same order, so the
    same bits. One flat loop: :func:`backward` on rows of one step took 3-4x the time
    (per-row set-up around two or three ``exp`` per value)."""
    adaptive = thr.shape[0] > 0
    inv2tau = 0.5 / tau
    for k in prange(re.shape[0]):
        g = 1.0
        gr = 0.0
        gi = 0.0
        th = thr[k] * 1.0 if adaptive else theta
        if mode == 0:
            d = re[k] - th
            if graded:
                dr = math.exp(-max(-d, 0.0) / tau)
            else:
                dr = inv2tau * math.exp(-abs(d) / tau)
            x_im = im[k] * 1.0
            di = inv2tau * math.exp(-abs(x_im) / tau)
            sgn_d = 1.0 if d > 0.0 else (-1.0 if d < 0.0 else 0.0)
            step = 0.5 * (1.0 + sgn_d * (1.0 - 2.0 * tau * dr))
            sgn_i = 1.0 if x_im > 0.0 else (-1.0 if x_im < 0.0 else 0.0)
            gr = g * rho * dr * di
            gi = -g * rho / tau * sgn_i * di * step
        else:
            d = im[k] - th
            if graded:
                gi = g * rho * math.exp(min(d, 0.0) / tau)
            else:
                gi = g * rho * inv2tau * math.exp(-abs(d) / tau)
        # the rotation of the next step's (zero) gradients, as the row kernel adds it
        d_re[k] = (gr + 0.0 * 0.0) + 0.0 * 0.0
        d_im[k] = (gi - 0.0 * 0.0) + 0.0 * 0.0

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
The exponentials are :func:`._fastexp.exp_nonpos` (arithmetic only, so the flat loop
is vectorised: 24 -> 8 ms for RF at 3.3 M values, Zen 4, against libm's ``exp``).

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

from numba import njit, prange

from ._fastexp import exp_nonpos


@njit(inline="always", cache=True)
def surrogate(g, x_re, x_im, th, tau, rho, graded, mode):
    r"""``(gr, gi)``: the spike gradient ``g`` of one step through the surrogate at the
    state ``(x_re, x_im)`` and threshold ``th`` (the module docstring's
    :math:`g_s\,\partial s/\partial \mathrm{re}` and
    :math:`g_s\,\partial s/\partial \mathrm{im}`); exactly 0 where ``g`` is 0.
    Branch-free but for the loop-invariant ``mode`` and ``graded``, and inlined at numba's
    level (``inline="always"``): a loop over it is vectorised only so."""
    inv2tau = 0.5 / tau
    gr = 0.0
    if mode == 0:
        d = x_re - th
        if graded:
            dr = exp_nonpos(-max(-d, 0.0) / tau)
        else:
            dr = inv2tau * exp_nonpos(-abs(d) / tau)
        xi = x_im * 1.0
        di = inv2tau * exp_nonpos(-abs(xi) / tau)
        sgn_d = 1.0 if d > 0.0 else (-1.0 if d < 0.0 else 0.0)
        step = 0.5 * (1.0 + sgn_d * (1.0 - 2.0 * tau * dr))
        sgn_i = 1.0 if xi > 0.0 else (-1.0 if xi < 0.0 else 0.0)
        gr = g * rho * dr * di
        gi = -g * rho / tau * sgn_i * di * step
    else:
        d = x_im - th
        if graded:
            gi = g * rho * exp_nonpos(min(d, 0.0) / tau)
        else:
            gi = g * rho * inv2tau * exp_nonpos(-abs(d) / tau)
    none = g == 0.0
    return (0.0 if none else gr), (0.0 if none else gi)


@njit(inline="always", cache=True)
def step_terms(r, j, flags, g_s, g_re, g_im, re, im, thr, theta, tau, rho, graded, mode):
    """``(G_re, G_im)`` of the module docstring at ``[r, j]``: the surrogate of the spike
    gradient plus the gradients arriving on the state traces (``flags`` as
    :func:`backward_span`'s)."""
    has_gs, has_gre, has_gim, adaptive = flags[0], flags[1], flags[2], flags[3]
    gr = 0.0
    gi = 0.0
    if has_gs:
        th = thr[r, j] * 1.0 if adaptive else theta
        gr, gi = surrogate(g_s[r, j] * 1.0, re[r, j], im[r, j], th, tau, rho, graded, mode)
    if has_gre:
        gr += g_re[r, j]
    if has_gim:
        gi += g_im[r, j]
    return gr, gi


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
    adaptive, resets, want_p, pre)`` say which arrays are given (tiles always have
    columns) and, with ``pre``, that ``g_xre``, ``g_xim`` already hold each step's
    :func:`step_terms` (read, then overwritten); ``carry = (gre[t_hi], gim[t_hi], acc_s,
    acc_c)`` comes in and the same after ``t_lo`` goes out."""
    resets, want_p, pre = flags[4], flags[5], flags[6]
    # a shared value needs no division (one per row: the fused recurrence's surrogate
    # runs rows of one step)
    s = sin_d[0] if sin_d.shape[0] == 1 else sin_d[n % sin_d.shape[0]]
    c = cos_d[0] if cos_d.shape[0] == 1 else cos_d[n % cos_d.shape[0]]
    gre_n, gim_n, acc_s, acc_c = carry
    for k in range(t_hi - t_lo):
        t = t_hi - 1 - k
        j = t - base
        if pre:  # the terms were written into the outputs (the CPU kernel's first pass)
            gr = g_xre[r, j]
            gi = g_xim[r, j]
        else:
            gr, gi = step_terms(
                r, j, flags, g_s, g_re, g_im, re, im, thr, theta, tau, rho, graded, mode
            )
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


def given_flags(g_s, g_re, g_im, thr, spk, g_sin, pre):
    """The ``flags`` of :func:`backward_span` from the whole arrays (``(rows, 0)``: not
    given) and ``pre``."""
    return (
        g_s.shape[1] > 0,
        g_re.shape[1] > 0,
        g_im.shape[1] > 0,
        thr.shape[1] > 0,
        spk.shape[1] > 0,
        g_sin.shape[0] > 0,
        pre,
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
    """Backward of row ``n`` (see the module docstring); writes ``g_x*[n]`` and
    ``g_sin/cos[n]``. Two passes: every step's :func:`step_terms` into ``g_x*[n]`` (a
    flat loop that LLVM vectorises, exponentials included), then the scan, which reads
    them there (the exponentials inside the scan made the row 1.0-1.2x slower than
    libm's there, Zen 4)."""
    flags = _flags(g_s, g_re, g_im, thr, spk, g_sin, True)
    for j in range(re.shape[1]):
        g_xre[n, j], g_xim[n, j] = _terms(
            n, j, flags, g_s, g_re, g_im, re, im, thr, theta, tau, rho, graded, mode
        )
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
_terms = step_terms
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
    (:mod:`.recurrent_complex`), the same float64 operations in the same order
    (:func:`surrogate`), so the same bits. One flat loop: :func:`backward` on rows of one
    step took 3-4x the time (per-row set-up around two or three ``exp`` per value)."""
    adaptive = thr.shape[0] > 0
    for k in prange(re.shape[0]):
        th = thr[k] * 1.0 if adaptive else theta
        gr, gi = surrogate(1.0, re[k], im[k], th, tau, rho, graded, mode)
        # the rotation of the next step's (zero) gradients, as the row kernel adds it
        d_re[k] = (gr + 0.0 * 0.0) + 0.0 * 0.0
        d_im[k] = (gi - 0.0 * 0.0) + 0.0 * 0.0

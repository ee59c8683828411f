r"""ADRF_IZ: resonator with an adaptive threshold on the imaginary part (lava-dl
``neuron.adrf_iz``, ``ADRF_IZHIKEVICH``).

Integer dynamics (spec ``loihi-fixed-point.md`` §6.5): the resonator of
:mod:`loihi_slayer.models.rf` without reset, plus ALIF's threshold and
refractory recursion (§6.1) driven by the imaginary part. With :math:`S` =
``sinDecay``, :math:`C` = ``cosDecay``, :math:`\theta_0 = \mathrm{vThMant}\cdot 2^6`,
:math:`\Delta = \mathrm{vThStep}\cdot 2^6`, :math:`\operatorname{rz}` toward zero
and ``sat`` to :math:`\pm(2^{23}-1)`,

.. math::

    \mathrm{re}[t] &= \operatorname{sat}\big(\operatorname{rz}(C\,\mathrm{re}[t-1]/4096)
        - \operatorname{rz}(S\,\mathrm{im}[t-1]/4096) + 2^6 x_{re}[t]\big)\\
    \mathrm{im}[t] &= \operatorname{sat}\big(\operatorname{rz}(S\,\mathrm{re}[t-1]/4096)
        + \operatorname{rz}(C\,\mathrm{im}[t-1]/4096) + 2^6 x_{im}[t]\big)\\
    r[t] &= \operatorname{rz}(r[t-1](4096-\mathrm{refDecay})/4096)\\
    \theta[t] &= \operatorname{rz}\big((\theta[t-1]-\theta_0)(4096-\mathrm{thDecay})/4096\big)
        + \theta_0\\
    s[t] &= \mathrm{im}[t] \ge \theta[t] + r[t];\qquad
        \text{if } s[t]:\ r[t] \mathrel{+}= 2\theta[t],\ \theta[t] \mathrel{+}= \Delta

``re`` and ``im`` are not reset (the adaptation alone restrains firing); ``th``
starts at :math:`\theta_0`; the traces ``th`` and ``r`` report the values
*before* a spike's update. No refractory delay (lava-dl has none for ADRF_IZ).
Parameter ranges: see :mod:`loihi_slayer.models._resonator`.
"""

from __future__ import annotations

from ..fixed.params import STATE_MAX
from . import _resonator as res
from .base import NeuronModel


def step(
    re, im, th, r, x_re, x_im, sin_decay, cos_decay, th_decay, ref_decay, v_th_mant, v_th_step
):
    """One ADRF_IZ step on int64 scalars; returns ``(re, im, th, r, s, re, im, th_pre, r_pre)``."""
    p = cos_decay * re
    q = sin_decay * im
    new_re = ((p + ((p >> 63) & 4095)) >> 12) - ((q + ((q >> 63) & 4095)) >> 12) + x_re * 64
    p = sin_decay * re
    q = cos_decay * im
    new_im = ((p + ((p >> 63) & 4095)) >> 12) + ((q + ((q >> 63) & 4095)) >> 12) + x_im * 64
    if new_re > STATE_MAX:
        new_re = STATE_MAX
    elif new_re < -STATE_MAX:
        new_re = -STATE_MAX
    if new_im > STATE_MAX:
        new_im = STATE_MAX
    elif new_im < -STATE_MAX:
        new_im = -STATE_MAX
    th0 = v_th_mant * 64
    p = r * (4096 - ref_decay)
    r = (p + ((p >> 63) & 4095)) >> 12
    p = (th - th0) * (4096 - th_decay)
    th = ((p + ((p >> 63) & 4095)) >> 12) + th0
    if new_im >= th + r:
        r_up = r + 2 * th
        th_up = th + v_th_step * 64
        if r_up > STATE_MAX:
            r_up = STATE_MAX
        elif r_up < -STATE_MAX:
            r_up = -STATE_MAX
        if th_up > STATE_MAX:
            th_up = STATE_MAX
        return new_re, new_im, th_up, r_up, 1, new_re, new_im, th, r
    return new_re, new_im, th, r, 0, new_re, new_im, th, r


def reference(inputs, p, state):
    """NumPy int64 reference of §6.5 over ``(N, T)`` inputs, vectorised over neurons."""

    def update(cur, x_re, x_im):
        re, im = res.rotate(cur["re"], cur["im"], x_re, x_im, p)
        th, r = res.adapt_decay(cur["th"], cur["r"], p)
        s = im >= th + r
        th_next, r_next = res.adapt_spike(th, r, s, p)
        after = {"re": re, "im": im, "th": th_next, "r": r_next}
        return after, {"s": s, "re": re, "im": im, "th": th, "r": r}

    return res.run_reference(inputs, p, state, MODEL.traces, update)


MODEL = NeuronModel(
    name="adrf_iz",
    netx_types=("ADRF_IZHIKEVICH",),
    params=res.ADRF_PARAMS,
    states=("re", "im", "th", "r"),
    inputs=("re", "im"),
    traces=("s", "re", "im", "th", "r"),
    step=step,
    reference=reference,
    init_state=res.init_adaptive,
    check=res.check_rotation,
    doc="resonator, adaptive threshold on the imaginary part",
)

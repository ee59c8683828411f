r"""RF_IZ: resonate-and-fire with an Izhikevich reset (lava-dl ``neuron.rf_iz``, ``RF_IZHIKEVICH``).

Integer dynamics (spec ``loihi-fixed-point.md`` §6.3, ``netx-hdf5.md`` §6): the
resonator of :mod:`loihi_slayer.models.rf` (:math:`S` = ``sinDecay``,
:math:`C` = ``cosDecay``, :math:`\theta_0 = \mathrm{vThMant}\cdot 2^6`,
:math:`\operatorname{rz}` toward zero, ``sat`` to :math:`\pm(2^{23}-1)`),

.. math::

    \mathrm{re}[t] &= \operatorname{sat}\big(\operatorname{rz}(C\,\mathrm{re}[t-1]/4096)
        - \operatorname{rz}(S\,\mathrm{im}[t-1]/4096) + 2^6 x_{re}[t]\big)\\
    \mathrm{im}[t] &= \operatorname{sat}\big(\operatorname{rz}(S\,\mathrm{re}[t-1]/4096)
        + \operatorname{rz}(C\,\mathrm{im}[t-1]/4096) + 2^6 x_{im}[t]\big)\\
    s[t] &= \mathrm{im}[t] \ge \theta_0;\qquad
        \text{if } s[t]:\ \mathrm{re}[t] \leftarrow 0,\ \mathrm{im}[t] \leftarrow \theta_0 - 1

The traces ``re`` and ``im`` report the values *before* the reset, as lava-dl does.
Parameter ranges: see :mod:`loihi_slayer.models._resonator`.
"""

from __future__ import annotations

import numpy as np

from ..fixed.params import STATE_MAX
from . import _resonator as res
from .base import NeuronModel


def step(re, im, x_re, x_im, sin_decay, cos_decay, v_th_mant):
    """One RF_IZ step on int64 scalars; returns ``(re, im, s, re_pre, im_pre)``."""
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
    th = v_th_mant * 64
    if new_im >= th:
        return 0, th - 1, 1, new_re, new_im
    return new_re, new_im, 0, new_re, new_im


def reference(inputs, p, state):
    """NumPy int64 reference of §6.3 over ``(N, T)`` inputs, vectorised over neurons."""
    th0 = p["v_th_mant"] * 64

    def update(cur, x_re, x_im):
        re, im = res.rotate(cur["re"], cur["im"], x_re, x_im, p)
        s = im >= th0
        after = {"re": np.where(s, 0, re), "im": np.where(s, th0 - 1, im)}
        return after, {"s": s, "re": re, "im": im}

    return res.run_reference(inputs, p, state, MODEL.traces, update)


MODEL = NeuronModel(
    name="rf_iz",
    netx_types=("RF_IZHIKEVICH",),
    params=res.RF_PARAMS,
    states=("re", "im"),
    inputs=("re", "im"),
    traces=("s", "re", "im"),
    step=step,
    reference=reference,
    check=res.check_rotation,
    doc="resonate-and-fire, Izhikevich reset",
)

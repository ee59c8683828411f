r"""RF: resonate-and-fire neuron with a phase threshold (lava-dl ``neuron.rf``, ``RF_PHASE``).

Integer dynamics (spec ``loihi-fixed-point.md`` §6.2, ``netx-hdf5.md`` §6): with
:math:`S` = ``sinDecay``, :math:`C` = ``cosDecay`` (the integer rotation, taken
as given, §6.6), :math:`\theta_0 = \mathrm{vThMant}\cdot 2^6`, :math:`\operatorname{rz}`
rounding toward zero, ``sat`` saturating to :math:`\pm(2^{23}-1)` and
:math:`x_{re}, x_{im}` the integer synaptic sums of the complex synapse,

.. math::

    \mathrm{re}[t] &= \operatorname{sat}\big(\operatorname{rz}(C\,\mathrm{re}[t-1]/4096)
        - \operatorname{rz}(S\,\mathrm{im}[t-1]/4096) + 2^6 x_{re}[t]\big)\\
    \mathrm{im}[t] &= \operatorname{sat}\big(\operatorname{rz}(S\,\mathrm{re}[t-1]/4096)
        + \operatorname{rz}(C\,\mathrm{im}[t-1]/4096) + 2^6 x_{im}[t]\big)\\
    s[t] &= \mathrm{re}[t] \ge \theta_0 \;\wedge\; \mathrm{im}[t] \ge 0
        \;\wedge\; \mathrm{im}[t-1] < 0

There is no reset: the neuron spikes when the phase crosses zero upward
(``im`` turns non-negative) with a real part at or above threshold.
Parameter ranges: see :mod:`loihi_slayer.models._resonator`.
"""

from __future__ import annotations

from ..fixed.params import STATE_MAX
from . import _resonator as res
from .base import NeuronModel


def step(re, im, x_re, x_im, sin_decay, cos_decay, v_th_mant):
    """One RF step on int64 scalars; returns ``(re, im, s, re, im)``."""
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
    s = 0
    if new_re >= v_th_mant * 64 and new_im >= 0 and im < 0:
        s = 1
    return new_re, new_im, s, new_re, new_im


def reference(inputs, p, state):
    """NumPy int64 reference of §6.2 over ``(N, T)`` inputs, vectorised over neurons."""
    th0 = p["v_th_mant"] * 64

    def update(cur, x_re, x_im):
        re, im = res.rotate(cur["re"], cur["im"], x_re, x_im, p)
        s = (re >= th0) & (im >= 0) & (cur["im"] < 0)
        return {"re": re, "im": im}, {"s": s, "re": re, "im": im}

    return res.run_reference(inputs, p, state, MODEL.traces, update)


MODEL = NeuronModel(
    name="rf",
    netx_types=("RF_PHASE",),
    params=res.RF_PARAMS,
    states=("re", "im"),
    inputs=("re", "im"),
    traces=("s", "re", "im"),
    step=step,
    reference=reference,
    check=res.check_rotation,
    doc="resonate-and-fire, phase threshold",
)

r"""What the four resonator models (RF, RF_IZ, ADRF, ADRF_IZ) share.

Their parameter declarations, the cross-parameter check of the rotation
``(sinDecay, cosDecay)``, and the vectorised NumPy reference pieces: the
complex rotation (spec ``loihi-fixed-point.md`` §6.2, ``netx-hdf5.md`` §6)

.. math::

    \mathrm{re}' &= \operatorname{sat}\big(\operatorname{rz}(C\,\mathrm{re}/4096)
        - \operatorname{rz}(S\,\mathrm{im}/4096) + 2^6 x_{re}\big)\\
    \mathrm{im}' &= \operatorname{sat}\big(\operatorname{rz}(S\,\mathrm{re}/4096)
        + \operatorname{rz}(C\,\mathrm{im}/4096) + 2^6 x_{im}\big)

and the adaptive threshold/refractory decay of ADRF and ADRF_IZ (the same
recursion as ALIF, §6.1). ``rz`` rounds toward zero, ``sat`` saturates to
:math:`\pm(2^{23}-1)`.

The scalar steps do not call these: each model's step inlines its arithmetic,
so that numba compiles it alone for ``njit`` and ``cuda.jit(device=True)``, and
the reference stays an independent second writing of the spec.

Parameter ranges
----------------
``sinDecay`` S and ``cosDecay`` C are the integer rotation
:math:`4096(1-\alpha)(\sin, \cos)(2\pi/P)`, taken as given (§6.6: never
recomputed through float trig). lava-dl keeps ``P >= 4`` (the rotation within
the first quadrant: C >= 0), clamps S >= 1 (S = 0 would be no oscillation, an
infinite period, and a division by zero in netx's conversion to a period) and
the float gain to 4095 before rounding. So S is in [1, 4095], C in [0, 4095],
and :math:`S^2 + C^2 \le 4096^2`: a decay :math:`\alpha \ge 0`, the resonator
does not grow. The rounded integers can exceed gain 4095 by up to
:math:`0.5\sqrt 2`, which is why the joint bound is 4096, not 4095.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import ParameterError
from ..fixed.params import DECAY_MAX, STATE_MAX, VTH_MANT_MAX
from .base import Param

#: Largest allowed :math:`S^2 + C^2`: the rotation gain may not exceed 4096 (decay >= 0).
GAIN_SQ_MAX = 4096 * 4096

SIN = Param("sin_decay", "sinDecay", 1, 4095, doc="4096(1-decay)sin(2pi/period)")
COS = Param("cos_decay", "cosDecay", 0, 4095, doc="4096(1-decay)cos(2pi/period); >= 0: period >= 4")
VTH = Param("v_th_mant", "vThMant", 0, VTH_MANT_MAX, default=1, doc="(base) threshold")
TH_DECAY = Param("th_decay", "thDecay", 0, DECAY_MAX, default=4096, doc="threshold decay (x4096)")
REF_DECAY = Param(
    "ref_decay", "refDecay", 0, DECAY_MAX, default=4096, doc="refractory decay (x4096)"
)
VTH_STEP = Param("v_th_step", "vThStep", 0, VTH_MANT_MAX, default=0, doc="threshold step")

#: Parameters of RF and RF_IZ, and of ADRF and ADRF_IZ, in the order their steps take them.
RF_PARAMS = (SIN, COS, VTH)
ADRF_PARAMS = (SIN, COS, TH_DECAY, REF_DECAY, VTH, VTH_STEP)


def check_rotation(values: Mapping[str, np.ndarray], where: str) -> None:
    """Reject ``(sin_decay, cos_decay)`` pairs whose gain exceeds 4096 (a growing resonator).

    Raises
    ------
    ParameterError
        Naming both parameters, the offending pair and the allowed bound.
    """
    try:
        s, c = np.broadcast_arrays(values["sin_decay"], values["cos_decay"])
    except ValueError:
        raise ParameterError(
            f"{where}sin_decay shape {np.shape(values['sin_decay'])} and cos_decay shape "
            f"{np.shape(values['cos_decay'])} do not broadcast together"
        ) from None
    bad = s * s + c * c > GAIN_SQ_MAX
    if bad.any():
        i = np.flatnonzero(bad.ravel())[0]
        sv, cv = int(s.ravel()[i]), int(c.ravel()[i])
        raise ParameterError(
            f"{where}sin_decay = {sv}, cos_decay = {cv} give a rotation gain "
            f"sqrt(sin_decay^2 + cos_decay^2) = {np.hypot(sv, cv):.1f} outside the allowed "
            "range [0, 4096] (a negative decay: the resonator would grow)"
        )


def rz12(x: np.ndarray) -> np.ndarray:
    """``x / 4096`` rounded toward zero (sign-magnitude shift)."""
    return np.sign(x) * (np.abs(x) >> 12)


def sat(x: np.ndarray) -> np.ndarray:
    """Saturate to the 24-bit state range."""
    return np.clip(x, -STATE_MAX, STATE_MAX)


def rotate(re, im, x_re, x_im, p):
    """One saturated resonator update of ``(N,)`` vectors (reference; see the module)."""
    s, c = p["sin_decay"], p["cos_decay"]
    new_re = rz12(c * re) - rz12(s * im) + x_re * 64
    new_im = rz12(s * re) + rz12(c * im) + x_im * 64
    return sat(new_re), sat(new_im)


def adapt_decay(th, r, p):
    """Decay the adaptive threshold toward ``vThMant * 64`` and the refractory state to 0."""
    th0 = p["v_th_mant"] * 64
    return rz12((th - th0) * (4096 - p["th_decay"])) + th0, rz12(r * (4096 - p["ref_decay"]))


def adapt_spike(th, r, s, p):
    """After a spike: ``r += 2 th``, ``th += vThStep * 64``, both saturated (where ``s``)."""
    return (
        np.where(s, sat(th + p["v_th_step"] * 64), th),
        np.where(s, sat(r + 2 * th), r),
    )


def init_adaptive(p):
    """Resting state of ADRF/ADRF_IZ: zero resonator, threshold at its base value."""
    th0 = np.asarray(p["v_th_mant"], np.int64) * 64
    zero = np.zeros_like(th0)
    return {"re": zero, "im": zero, "th": th0, "r": zero}


def run_reference(inputs, p, state, names, update):
    """Loop ``update(cur, x_re, x_im) -> (cur, traces)`` over time (shared reference driver).

    ``cur`` and ``traces`` are dicts of ``(N,)`` arrays; ``names`` are the trace names.
    """
    x_re, x_im = (np.asarray(a, np.int64) for a in inputs)
    n, steps = x_re.shape
    cur = {k: np.array(v, np.int64) for k, v in state.items()}
    out = {k: np.zeros((n, steps), np.int64) for k in names}
    for t in range(steps):
        cur, tr = update(cur, x_re[:, t], x_im[:, t])
        for k in names:
            out[k][:, t] = tr[k]
    return out, cur

r"""ALIF: CUBA-LIF with an adaptive threshold and a refractory state (lava-dl ``neuron.alif``).

Integer dynamics (spec ``loihi-fixed-point.md`` §6.1, lava-nc's fixed-point
ATRLIF): with :math:`\operatorname{rz}` rounding toward zero,
:math:`\theta_0 = \mathrm{vThMant}\cdot 2^6`, :math:`\Delta = \mathrm{vThStep}\cdot 2^6`
and :math:`a` the integer synaptic sum,

.. math::

    u[t] &= \operatorname{sat}\big(\operatorname{rz}(u[t-1](4096-\mathrm{iDecay})/4096)
            + 2^6 a[t]\big)\\
    v[t] &= \operatorname{sat}\big(\operatorname{rz}(v[t-1](4096-\mathrm{vDecay})/4096)
            + u[t]\big)\\
    r[t] &= \operatorname{rz}(r[t-1](4096-\mathrm{refDecay})/4096)\\
    \theta[t] &= \operatorname{rz}\big((\theta[t-1]-\theta_0)(4096-\mathrm{thDecay})/4096\big)
            + \theta_0\\
    s[t] &= v[t] \ge \theta[t] + r[t];\qquad
            \text{if } s[t]:\ r[t] \mathrel{+}= 2\theta[t],\ \theta[t] \mathrel{+}= \Delta

The voltage is not reset (the refractory state ``r`` raises the effective
threshold instead); ``th`` starts at :math:`\theta_0`. The reported ``th`` and
``r`` are the values *before* a spike's update, as lava-dl reports them.
``sat`` saturates to :math:`\pm(2^{23}-1)`, a 24-bit register: lava-dl computes in
int64 without a bound, so the two agree while the states stay within 24 bits.
``th`` and ``r`` saturate the same way after a spike's update (so a returned
state is always a valid initial state).

``refDelay`` (R, default 1 = none, lava-dl's only value) is ours: after a spike
the neuron holds ``v`` at 0 and cannot spike for R - 1 steps, as Loihi's
compartment refractory does for CUBA (``u``, ``th`` and ``r`` keep evolving).
"""

from __future__ import annotations

import numpy as np

from ..fixed.params import STATE_MAX
from .base import NeuronModel, Param


def step(
    u, v, th, r, rc, a, i_decay, v_decay, th_decay, ref_decay, v_th_mant, v_th_step, ref_delay
):
    """One ALIF step on int64 scalars; returns ``(u, v, th, r, rc, s, v_rep, th_pre, r_pre)``.

    ``v_rep`` is the voltage as reported: the state, except after a spike with
    refDelay > 1, where the state is held at 0 but the spike's voltage is reported.
    """
    th0 = v_th_mant * 64
    du = u * (4096 - i_decay)
    u = min(max(((du + ((du >> 63) & 4095)) >> 12) + a * 64, -STATE_MAX), STATE_MAX)
    dr = r * (4096 - ref_decay)
    r = (dr + ((dr >> 63) & 4095)) >> 12
    dth = (th - th0) * (4096 - th_decay)
    th = ((dth + ((dth >> 63) & 4095)) >> 12) + th0
    # refractory (refDelay > 1 only): v held at 0, no spike
    refractory = rc > 0
    dv = v * (4096 - v_decay)
    v = min(max(((dv + ((dv >> 63) & 4095)) >> 12) + u, -STATE_MAX), STATE_MAX)
    spike = (v >= th + r) & (rc <= 0)
    # a spike raises the refractory state by 2 th (saturated; th < 0 only from a
    # user-given initial state) and the threshold by its step (saturated above)
    r_out = min(max(r + 2 * th, -STATE_MAX), STATE_MAX) if spike else r
    th_out = min(th + v_th_step * 64, STATE_MAX) if spike else th
    hold = spike & (ref_delay > 1)
    v_out = 0 if refractory | hold else v
    rc_out = rc - 1 if refractory else (ref_delay - 1 if hold else 0)
    v_rep = 0 if refractory else v
    # written with selects only (no branch), so that a vectorised lane loop can step it
    return u, v_out, th_out, r_out, rc_out, 1 if spike else 0, v_rep, th, r


def _rz(x: np.ndarray, decay: np.ndarray) -> np.ndarray:
    """``sign(x) * (|x| * (4096 - decay) >> 12)``: a decay rounding toward zero."""
    prod = x * (4096 - decay)
    return np.sign(prod) * (np.abs(prod) >> 12)


def reference(inputs, p, state):
    """NumPy int64 reference of §6.1 over ``(N, T)`` input, vectorised over neurons."""
    (a,) = inputs
    n, steps = a.shape
    u, v, th, r, rc = (np.array(state[k], np.int64) for k in ("u", "v", "th", "r", "rc"))
    th0 = p["v_th_mant"] * 64
    out = {k: np.zeros((n, steps), np.int64) for k in ("s", "u", "v", "th", "r")}
    for t in range(steps):
        u = np.clip(_rz(u, p["i_decay"]) + a[:, t] * 64, -STATE_MAX, STATE_MAX)
        r = _rz(r, p["ref_decay"])
        th = _rz(th - th0, p["th_decay"]) + th0
        refr = rc > 0
        v = np.where(refr, 0, np.clip(_rz(v, p["v_decay"]) + u, -STATE_MAX, STATE_MAX))
        s = ~refr & (v >= th + r)
        out["u"][:, t], out["v"][:, t], out["th"][:, t], out["r"][:, t] = u, v, th, r
        out["s"][:, t] = s
        r = np.where(s, np.clip(r + 2 * th, -STATE_MAX, STATE_MAX), r)
        th = np.where(s, np.minimum(th + p["v_th_step"] * 64, STATE_MAX), th)
        hold = s & (p["ref_delay"] > 1)
        rc = np.where(refr, rc - 1, np.where(hold, p["ref_delay"] - 1, 0))
        v = np.where(hold, 0, v)
    return out, {"u": u, "v": v, "th": th, "r": r, "rc": rc}


def _init(p):
    th0 = np.asarray(p["v_th_mant"], np.int64) * 64
    zero = np.zeros_like(th0)
    return {"u": zero, "v": zero, "th": th0, "r": zero, "rc": zero}


_DECAY = dict(lo=0, hi=4096)

MODEL = NeuronModel(
    name="alif",
    netx_types=("ALIF",),
    params=(
        Param("i_decay", "iDecay", **_DECAY, default=4096, doc="current decay (x4096)"),
        Param("v_decay", "vDecay", **_DECAY, default=4096, doc="voltage decay (x4096)"),
        Param("th_decay", "thDecay", **_DECAY, default=4096, doc="threshold decay (x4096)"),
        Param("ref_decay", "refDecay", **_DECAY, default=4096, doc="refractory decay (x4096)"),
        Param("v_th_mant", "vThMant", 0, (1 << 17) - 1, default=1, doc="base threshold"),
        Param("v_th_step", "vThStep", 0, (1 << 17) - 1, default=0, doc="threshold step"),
        Param(
            "ref_delay",
            "refDelay",
            1,
            63,
            default=1,
            doc="refractory delay (1 = none)",
            optional=True,
        ),
    ),
    states=("u", "v", "th", "r", "rc"),
    inputs=("a",),
    traces=("s", "u", "v", "th", "r"),
    state_traces=("u",),
    step=step,
    reference=reference,
    init_state=_init,
    doc="adaptive-threshold LIF (ATRLIF)",
)

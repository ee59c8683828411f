r"""Adaptive phase threshold as a function (lava-dl ``neuron.dynamics.adaptive_phase_th``).

Given the resonator's response traces ``real``, ``imag`` (already computed, as
lava-dl's ADRF neuron computes them), this runs the ADRF threshold and
refractory recursion (spec §6.4) on the ADRF integer step, with the rotation
switched off (``sinDecay = cosDecay = 0``), so that the kernel's ``re``/``im``
are exactly the given traces :math:`W\,\mathrm{real}[t]`, :math:`W\,\mathrm{imag}[t]`:

.. math::

    r[t] &= \operatorname{rz}(r[t-1]\,(4096 - D_r)/4096) \\
    \vartheta[t] &= \operatorname{rz}((\vartheta[t-1] - \vartheta_0)(4096 - D_\vartheta)/4096)
                    + \vartheta_0 \\
    s[t] &= [\,\mathrm{re}[t] \ge \vartheta[t] + r[t] \;\wedge\; \mathrm{im}[t] \ge 0
            \;\wedge\; \mathrm{im}[t-1] < 0\,], \quad
    r \leftarrow r + 2\vartheta[t], \ \vartheta \leftarrow \vartheta[t] + \vartheta_{step}
    \text{ where } s[t]

with ``im[-1] = im_state``. The returned :math:`\vartheta[t]/W`, :math:`r[t]/W`
are the values before a spike's update, as lava-dl reports them. ``W`` must be a
multiple of 64; ``W real`` and ``W imag`` are rounded to multiples of 64 (the chip
grid), thresholds truncated to it. As lava-dl, no gradient flows.

The rotation-free variant is not a chip neuron (``sinDecay >= 1`` on the chip),
so it is a private declaration over the registered ADRF step, not a registry
entry; its kernels are generated from that same step.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ... import fixed, models
from ...errors import ParameterError
from ...models import _resonator as res
from .adaptive_threshold import persistent_ref_state, persistent_th_state
from .resonator import _per_channel, _scale, _state

__all__ = ["dynamics", "persistent_ref_state", "persistent_th_state"]

_ADRF = models.get("adrf")
#: ADRF's step and reference with the rotation off: sin and cos may be 0
_THRESHOLD_ONLY = dataclasses.replace(
    _ADRF,
    name="adrf_threshold_only",
    netx_types=("ADRF_THRESHOLD_ONLY",),
    params=tuple(
        dataclasses.replace(p, lo=0, hi=0, default=0) if p.name in ("sin_decay", "cos_decay") else p
        for p in _ADRF.params
    ),
    check=None,
)
assert {p.name for p in _THRESHOLD_ONLY.params} >= {res.SIN.name, res.COS.name}


def dynamics(
    real: torch.Tensor,
    imag: torch.Tensor,
    im_state: torch.Tensor,
    ref_state: torch.Tensor,
    ref_decay: torch.Tensor,
    th_state: torch.Tensor,
    th_decay: torch.Tensor,
    th_scale: float,
    th0: float,
    w_scale: int,
    debug: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(threshold, refractory)`` traces of the resonator response ``(real, imag)``.

    Parameters
    ----------
    real, imag
        Resonator response ``(N, C, ..., T)``, time last.
    im_state
        The imaginary response before the first step (scalar or ``real.shape[:-1]``).
    ref_state, th_state
        Initial refractory state and threshold (scalar or ``real.shape[:-1]``).
    ref_decay, th_decay
        Decays :math:`D_r, D_\\vartheta` in ``[0, 4096]`` (integers, one or per channel).
    th_scale
        Threshold step :math:`\\vartheta_{step}` after a spike.
    th0
        Resting threshold :math:`\\vartheta_0`.
    w_scale
        :math:`W`, a positive multiple of 64.
    debug
        Accepted for lava-dl compatibility.
    """
    where = "adaptive_phase_th.dynamics"
    scale = _scale(w_scale, where)
    if real.dim() < 3 or real.shape != imag.shape:
        raise ParameterError(
            f"{where}: expected real and imag of one shape (N, C, ..., T), found "
            f"{tuple(real.shape)} and {tuple(imag.shape)}"
        )
    shape = tuple(real.shape)
    w = 64 * scale
    params = {
        "sin_decay": 0,
        "cos_decay": 0,
        "th_decay": _per_channel(th_decay, shape),
        "ref_decay": _per_channel(ref_decay, shape),
        "v_th_mant": int(float(th0) * scale),
        "v_th_step": int(float(th_scale) * scale),
    }
    lead = shape[:-1]
    state = {
        "re": np.zeros(lead, np.int64),
        "im": _state(im_state, lead, w),
        "th": _state(th_state, lead, w),
        "r": _state(ref_state, lead, w),
    }
    inputs = tuple(
        torch.round(t.detach().double() * scale).to(torch.int64).cpu() for t in (real, imag)
    )
    traces, _ = fixed.run(_THRESHOLD_ONLY, inputs, params, state=state, record=("th", "r"))
    th = torch.as_tensor(traces["th"]).to(device=real.device, dtype=real.dtype) / w
    r = torch.as_tensor(traces["r"]).to(device=real.device, dtype=real.dtype) / w
    return th, r

r"""Adaptive threshold and refractory dynamics as a function (lava-dl
``neuron.dynamics.adaptive_threshold``).

Runs the ALIF integer kernel (:func:`loihi_slayer.fixed.run`, model ``alif``)
with memoryless current and voltage (``iDecay = vDecay = 4096``), so that its
voltage is the given input :math:`v[t] = W x[t]` (``W = w_scale``), and reports
the threshold and refractory traces (spec §6.1):

.. math::

    r[t] &= \operatorname{rz}(r[t-1]\,(4096 - D_r)/4096) \\
    \vartheta[t] &= \operatorname{rz}((\vartheta[t-1] - \vartheta_0)(4096 - D_\vartheta)/4096)
                    + \vartheta_0 \\
    s[t] &= [\,W x[t] \ge \vartheta[t] + r[t]\,], \quad
    r \leftarrow r + 2\vartheta[t], \ \vartheta \leftarrow \vartheta[t] + \vartheta_{step}
    \text{ where } s[t]

with :math:`\vartheta_0 = W\vartheta_0'`, :math:`\vartheta_{step} = W\,`\ ``th_scale``
(both truncated to multiples of 64, the chip's ``vThMant``/``vThStep``), and
the returned :math:`\vartheta[t]/W`, :math:`r[t]/W` before the spike update (as
lava-dl). ``W`` must be a multiple of 64; ``W x`` is rounded to multiples of
64. As lava-dl, no gradient flows (the input is a voltage already computed).
"""

from __future__ import annotations

import numpy as np
import torch

from ... import fixed, models
from ...errors import ParameterError
from .resonator import _per_channel, _scale, _state

__all__ = ["dynamics", "persistent_ref_state", "persistent_th_state"]


def dynamics(
    input: torch.Tensor,
    ref_state: torch.Tensor,
    ref_decay: torch.Tensor,
    th_state: torch.Tensor,
    th_decay: torch.Tensor,
    th_scale: float,
    th0: float,
    w_scale: int,
    debug: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(threshold, refractory)`` traces of the voltage ``input`` ``(N, C, ..., T)``.

    Parameters
    ----------
    input
        Voltage (leaky dynamics already applied), time last.
    ref_state, th_state
        Initial refractory state and threshold (scalar or ``input.shape[:-1]``).
    ref_decay, th_decay
        Decays :math:`D_r, D_\\vartheta` in ``[0, 4096]`` (unscaled integers, one or per channel).
    th_scale
        Threshold step :math:`\\vartheta_{step}` after a spike.
    th0
        Resting threshold :math:`\\vartheta_0`.
    w_scale
        :math:`W`, a positive multiple of 64.
    debug
        Accepted for lava-dl compatibility.
    """
    scale = _scale(w_scale, "adaptive_threshold.dynamics")
    if input.dim() < 3:
        raise ParameterError(
            f"adaptive_threshold.dynamics: expected input (N, C, ..., T), found "
            f"{tuple(input.shape)}"
        )
    shape = tuple(input.shape)
    w = 64 * scale
    params = {
        "i_decay": 4096,
        "v_decay": 4096,
        "th_decay": _per_channel(th_decay, shape),
        "ref_decay": _per_channel(ref_decay, shape),
        "v_th_mant": int(float(th0) * scale),
        "v_th_step": int(float(th_scale) * scale),
    }
    lead = shape[:-1]
    zeros = np.zeros(lead, np.int64)
    state = {
        "u": zeros,
        "v": zeros,
        "th": _state(th_state, lead, w),
        "r": _state(ref_state, lead, w),
        "rc": zeros,
    }
    a = torch.round(input.detach().double() * scale).to(torch.int64).cpu()
    traces, _ = fixed.run(models.get("alif"), a, params, state=state, record=("th", "r"))
    th = torch.as_tensor(traces["th"]).to(device=input.device, dtype=input.dtype) / w
    r = torch.as_tensor(traces["r"]).to(device=input.device, dtype=input.dtype) / w
    return th, r


def persistent_ref_state(
    ref_state: torch.Tensor, spike: torch.Tensor, th_state: torch.Tensor
) -> torch.Tensor:
    """Refractory state after the last bin: ``+ 2 threshold`` where it spiked."""
    return ref_state + 2 * (spike > 0).to(ref_state.dtype) * th_state


def persistent_th_state(th_state: torch.Tensor, spike: torch.Tensor, th_step: float):
    """Threshold after the last bin: ``+ th_step`` where it spiked."""
    return th_state + (spike > 0).to(th_state.dtype) * th_step

r"""Adaptive resonator dynamics as a function (lava-dl ``neuron.dynamics.adaptive_resonator``).

Runs the ADRF_IZ integer kernel (:func:`loihi_slayer.fixed.run`, model
``adrf_iz``; spec §6.5) on the integer states (``W = w_scale``):

.. math::

    r[t] &= \operatorname{rz}(r[t-1]\,(4096 - D_r)/4096), \quad
    \vartheta[t] = \operatorname{rz}((\vartheta[t-1] - \vartheta_0)(4096 - D_\vartheta)/4096)
                   + \vartheta_0 \\
    \Re z[t] &= \operatorname{rz}(C\,\Re z[t-1]/4096) - \operatorname{rz}(S\,\Im z[t-1]/4096)
                + W\Re x[t], \quad
    \Im z[t] = \operatorname{rz}(S\,\Re z[t-1]/4096) + \operatorname{rz}(C\,\Im z[t-1]/4096)
               + W\Im x[t] \\
    s[t] &= [\,\Im z[t] \ge \vartheta[t] + r[t]\,], \quad
    r \leftarrow r + 2\vartheta[t], \ \vartheta \leftarrow \vartheta[t] + \vartheta_{step}
    \text{ where } s[t]

(states saturated to :math:`\pm(2^{23}-1)`; no reset of :math:`z`). Returns
:math:`(\Re\hat z, \Im\hat z, \hat\vartheta, \hat r)`, each state divided by
``W``, the threshold and refractory state before the spike update.
:math:`\vartheta_0 = W` ``th0`` and :math:`\vartheta_{step} = W` ``th_scale`` are
truncated to multiples of 64 (the chip's ``vThMant``/``vThStep``). lava-dl's
float-kernel function rounds :math:`C\Re z - S\Im z` once; the chip rounds each
product (as here), so the two differ by at most one LSB per step.
Gradients: the transposed rotation for the inputs and the rotation parameters;
none for the threshold and refractory dynamics (as lava-dl).
"""

from __future__ import annotations

import math

import torch

from ... import fixed, models
from ...autograd.resonator import IMAG, ResonatorFunction, ResonatorSpec
from ...errors import ParameterError
from .adaptive_threshold import persistent_ref_state, persistent_th_state
from .resonator import _per_channel, _scale, _state

__all__ = ["dynamics", "persistent_ref_state", "persistent_th_state"]


def dynamics(
    real_input: torch.Tensor,
    imag_input: torch.Tensor,
    sin_decay: torch.Tensor,
    cos_decay: torch.Tensor,
    ref_decay: torch.Tensor,
    th_decay: torch.Tensor,
    real_state: torch.Tensor,
    imag_state: torch.Tensor,
    ref_state: torch.Tensor,
    th_state: torch.Tensor,
    th_scale: float,
    th0: float,
    w_scale: int,
    debug: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(real, imag, threshold, refractory)`` of a complex input ``(N, C, ..., T)``.

    Parameters are lava-dl's (see the module docstring): integer rotation
    ``sin_decay``/``cos_decay`` and decays ``ref_decay``/``th_decay`` (one or
    per channel), initial states (scalar or ``input.shape[:-1]``), threshold
    step ``th_scale`` and resting threshold ``th0``, ``w_scale`` a positive
    multiple of 64; ``debug`` is accepted for compatibility.
    """
    scale = _scale(w_scale, "adaptive_resonator.dynamics")
    if real_input.shape != imag_input.shape or real_input.dim() < 3:
        raise ParameterError(
            f"adaptive_resonator.dynamics: expected real and imag inputs of one shape "
            f"(N, C, ..., T), found {tuple(real_input.shape)} and {tuple(imag_input.shape)}"
        )
    model = models.get("adrf_iz")
    shape = tuple(real_input.shape)
    v_th = int(float(th0) * scale)
    params = {
        "sin_decay": _per_channel(sin_decay, shape),
        "cos_decay": _per_channel(cos_decay, shape),
        "th_decay": _per_channel(th_decay, shape),
        "ref_decay": _per_channel(ref_decay, shape),
        "v_th_mant": v_th,
        "v_th_step": int(float(th_scale) * scale),
    }
    lead = shape[:-1]
    w = 64 * scale
    state = {
        "re": _state(real_state, lead, w),
        "im": _state(imag_state, lead, w),
        "th": _state(th_state, lead, w),
        "r": _state(ref_state, lead, w),
    }

    def to_int(x: torch.Tensor) -> torch.Tensor:
        return torch.round(x.detach().double() * scale).to(torch.int64).cpu()

    traces, _ = fixed.run(
        model,
        (to_int(real_input), to_int(imag_input)),
        params,
        state=state,
        record=model.traces,
    )
    traces = {k: torch.as_tensor(v).to(real_input.device) for k, v in traces.items()}
    spec = ResonatorSpec(
        model, scale, v_th, 1.0, 1.0, False, IMAG, False, shape[1], math.prod(shape[2:-1])
    )
    sin_p = torch.as_tensor(sin_decay, dtype=real_input.dtype, device=real_input.device)
    cos_p = torch.as_tensor(cos_decay, dtype=real_input.dtype, device=real_input.device)
    _, re, im, th, r = ResonatorFunction.apply(
        real_input, imag_input, sin_p, cos_p, spec, traces, state
    )
    return re, im, th, r

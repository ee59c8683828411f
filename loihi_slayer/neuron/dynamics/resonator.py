r"""Resonator dynamics as a function (lava-dl ``neuron.dynamics.resonator``).

Runs the RF integer kernel (:func:`loihi_slayer.fixed.run`, model ``rf``; with
a threshold, ``rf_iz``) on the integer state :math:`z = W\hat z` (``W = w_scale``):

.. math::

    \Re z[t] &= \operatorname{rz}(C\,\Re z[t-1]/4096) - \operatorname{rz}(S\,\Im z[t-1]/4096)
                + W \Re x[t] \\
    \Im z[t] &= \operatorname{rz}(S\,\Re z[t-1]/4096) + \operatorname{rz}(C\,\Im z[t-1]/4096)
                + W \Im x[t]

with ``S = sin_decay``, ``C = cos_decay`` (integers, as lava-dl passes them),
saturated to :math:`\pm(2^{23}-1)` (the chip; lava-dl does not saturate). With a
threshold :math:`\vartheta`, the Izhikevich reset: where
:math:`\Im z[t] \ge W\vartheta`, the next step starts from
:math:`\Re z = 0`, :math:`\Im z = W\vartheta - 1`. Returns the pre-reset
:math:`(\Re\hat z, \Im\hat z)`. ``W`` must be a multiple of 64 and ``W x`` is
rounded to multiples of 64 (exact on the weight grid), as for
:mod:`.leaky_integrator`. Backward: the transposed rotation (lava-dl's; the
reset is ignored) and the rotation-parameter gradients of
:mod:`loihi_slayer.autograd.resonator`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ... import fixed, models
from ...autograd.resonator import IMAG, PHASE, ResonatorFunction, ResonatorSpec
from ...errors import ParameterError

__all__ = ["dynamics", "persistent_imag_state", "persistent_real_state"]


def _scale(w_scale: int, where: str) -> int:
    w = int(w_scale)
    if w != w_scale or w < 64 or w % 64:
        raise ParameterError(
            f"{where}: w_scale = {w_scale!r}; the Loihi state needs a positive multiple of 64"
        )
    return w // 64


def _state(value, shape, w: int) -> np.ndarray:
    st = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
    return np.rint(torch.broadcast_to(st, shape).numpy() * w).astype(np.int64)


def _per_channel(p: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray | int:
    v = torch.round(torch.as_tensor(p).detach().double()).to(torch.int64).cpu().numpy()
    v = v.reshape(-1)
    if v.size == 1:
        return int(v[0])
    return v.reshape((-1,) + (1,) * (len(shape) - 3))  # (C, 1, ...) over (N, C, ..., T)


def dynamics(
    real_input: torch.Tensor,
    imag_input: torch.Tensor,
    sin_decay: torch.Tensor,
    cos_decay: torch.Tensor,
    real_state: torch.Tensor,
    imag_state: torch.Tensor,
    w_scale: int,
    threshold: float | None = None,
    debug: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resonator response ``(real, imag)`` of a complex input ``(N, C, ..., T)``.

    Parameters
    ----------
    real_input, imag_input
        Input, time last.
    sin_decay, cos_decay
        Integer rotation ``S, C`` (one, or one per channel); learnable tensors
        receive lava-dl's gradient.
    real_state, imag_state
        Initial state (scalar or ``input.shape[:-1]``).
    w_scale
        :math:`W`, a positive multiple of 64.
    threshold
        Izhikevich reset threshold, or None (or < 0) for none.
    debug
        Accepted for lava-dl compatibility.
    """
    scale = _scale(w_scale, "resonator.dynamics")
    if real_input.shape != imag_input.shape or real_input.dim() < 3:
        raise ParameterError(
            f"resonator.dynamics: expected real and imag inputs of one shape (N, C, ..., T), "
            f"found {tuple(real_input.shape)} and {tuple(imag_input.shape)}"
        )
    reset = threshold is not None and float(threshold) >= 0
    model = models.get("rf_iz" if reset else "rf")
    v_th = int(float(threshold) * scale) if reset else 0
    shape = tuple(real_input.shape)
    params = {
        "sin_decay": _per_channel(sin_decay, shape),
        "cos_decay": _per_channel(cos_decay, shape),
        "v_th_mant": v_th,
    }
    lead = shape[:-1]
    w = 64 * scale
    state = {"re": _state(real_state, lead, w), "im": _state(imag_state, lead, w)}

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
        model,
        scale,
        v_th,
        1.0,
        1.0,
        False,
        IMAG if reset else PHASE,
        reset,
        shape[1],
        math.prod(shape[2:-1]),
    )
    sin_p = torch.as_tensor(sin_decay, dtype=real_input.dtype, device=real_input.device)
    cos_p = torch.as_tensor(cos_decay, dtype=real_input.dtype, device=real_input.device)
    _, re, im, _, _ = ResonatorFunction.apply(
        real_input, imag_input, sin_p, cos_p, spec, traces, state
    )
    return re, im


def persistent_real_state(real_state: torch.Tensor, spike: torch.Tensor) -> torch.Tensor:
    """Real state to keep after the last bin: zero where it spiked (Izhikevich reset)."""
    return real_state * (1 - (spike > 0).to(real_state.dtype))


def persistent_imag_state(
    imag_state: torch.Tensor, spike: torch.Tensor, threshold: float, scale: int
) -> torch.Tensor:
    """Imaginary state to keep after the last bin: ``threshold - 1/scale`` where it spiked."""
    s = (spike > 0).to(imag_state.dtype)
    return s * (threshold - 1 / scale) + (1 - s) * imag_state

r"""Leaky-integrator dynamics as a function (lava-dl ``neuron.dynamics.leaky_integrator``).

Runs on the CUBA integer kernel (the voltage path with a memoryless current,
``iDecay = 4096``), i.e. Loihi's arithmetic on the integer state
:math:`y = W\,\hat y` (``W = w_scale``):

.. math::

    y[t] &= \operatorname{sat}_{24}\!\big(\operatorname{rz}(y[t-1]\,(4096 - D)/4096)
            + W x[t]\big) \\
    s[t] &= [\,y[t] > W\vartheta\,], \qquad y[t] \leftarrow 0 \text{ if } s[t]

and returns the pre-reset :math:`\hat y[t] = y[t] / W`. ``W`` must be a
multiple of 64 (the chip's state has 6 fractional bits below the weight grid:
lava-dl's CUBA neuron passes ``w_scale = s_scale = 64 * scale``) and ``W x``
is rounded to the nearest multiple of 64 (exact for inputs on the weight
grid). Backward: lava-dl's (reset ignored), ``g_x[t] = (1 - D/4096)\,g_x[t+1] + g[t]``
and the decay gradient of the CUBA op.

Differences from lava-dl's float-kernel function, all in the chip's favour:
the reset compares strictly (:math:`>`; lava-dl uses :math:`\ge`, which
resets on ties the chip does not), and the state saturates at :math:`\pm(2^{23}-1)`.
"""

from __future__ import annotations

import math

import torch

from ...autograd.cuba import CubaFunction, CubaSpec, CubaState
from ...errors import ParameterError

__all__ = ["dynamics", "persistent_state"]

#: vThMant whose ``<< 6`` is above the saturated state: the neuron never resets.
_NO_RESET = 1 << 17


def dynamics(
    input: torch.Tensor,
    decay: torch.Tensor,
    state: torch.Tensor,
    w_scale: int,
    threshold: float | None = None,
    debug: bool = False,
) -> torch.Tensor:
    """Leaky-integrator response of ``input`` ``(N, C, ..., T)``.

    Parameters
    ----------
    input
        Input, time last.
    decay
        Decay :math:`D` in ``[0, 4096]`` (unscaled integer value, one or one
        per channel); a learnable tensor receives lava-dl's gradient.
    state
        Initial state :math:`\\hat y[-1]` (scalar or ``input.shape[:-1]``).
    w_scale
        :math:`W`, a positive multiple of 64.
    threshold
        Reset threshold :math:`\\vartheta`, or None (or <= 0) for no reset.
    debug
        Accepted for lava-dl compatibility (there is no second kernel to compare).

    Returns
    -------
    torch.Tensor
        :math:`\\hat y` (pre-reset), same shape as ``input``.
    """
    w = int(w_scale)
    if w != w_scale or w < 64 or w % 64:
        raise ParameterError(
            f"leaky_integrator.dynamics: w_scale = {w_scale!r}; the Loihi state needs a "
            f"positive multiple of 64 (lava-dl's CUBA passes s_scale = 64 * scale)"
        )
    if input.dim() < 3:
        raise ParameterError(
            f"leaky_integrator.dynamics: expected input (N, C, ..., T), found {tuple(input.shape)}"
        )
    scale = w // 64
    if threshold is None or float(threshold) <= 0:
        v_th = _NO_RESET
    else:
        v_th = int(float(threshold) * scale)
    channels = int(input.shape[1])
    per_channel = math.prod(input.shape[2:-1])
    spec = CubaSpec(scale, v_th, 1.0, 1.0, False, channels, per_channel)
    rows = input.numel() // input.shape[-1]
    st = torch.as_tensor(state, dtype=torch.float64, device=input.device)
    v0 = torch.round(torch.broadcast_to(st, input.shape[:-1]) * w).to(torch.int64).reshape(rows)
    state_int = CubaState(torch.zeros(rows, dtype=torch.int64, device=input.device), v0.clone())
    decay = torch.as_tensor(decay, dtype=torch.float32, device=input.device).reshape(-1)
    memoryless = torch.full((1,), 4096.0, device=input.device)
    _, _, voltage = CubaFunction.apply(input, memoryless, decay, spec, state_int, None, True)
    return voltage


def persistent_state(state: torch.Tensor, spike: torch.Tensor) -> torch.Tensor:
    """The state to keep after the last bin: zero where that bin spiked."""
    return state * (1 - (spike > 0).to(state.dtype))

r"""Spike function with lava-dl's surrogate gradient, as the custom op ``loihi_slayer::spike``.

Forward: :math:`s = [\tilde v > \vartheta_c]` (graded: :math:`s\,v`) where
:math:`\tilde v = \operatorname{rint}(v\cdot S)` in float64 when the state
scale :math:`S > 0` (the exact integer compare of a CUBA neuron) and
:math:`\tilde v = v` when :math:`S = 0`. Backward (spec §5.4):

.. math::

    \frac{\partial s}{\partial v} = \frac{\rho}{2\tau} e^{-|v-\vartheta|/\tau}
    \quad\text{(binary)}, \qquad
    \rho\, e^{\min(v-\vartheta, 0)/\tau}\quad\text{(graded)}.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .op import kernel_op


def _spike(
    v: Tensor,
    threshold: float,
    s_scale: int,
    theta: float,
    tau_rho: float,
    scale_rho: float,
    graded: bool,
) -> Tensor:
    vc = torch.round(v.detach().to(torch.float64) * s_scale) if s_scale > 0 else v.detach()
    spk = (vc > threshold).to(v.dtype)
    return spk * v.detach() if graded else spk


def _spike_fake(v, threshold, s_scale, theta, tau_rho, scale_rho, graded):
    return v.new_empty(v.shape)


def _spike_save(inputs, output):
    v, _, _, theta, tau_rho, scale_rho, graded = inputs
    return (v,), (theta, tau_rho, scale_rho, graded)


def surrogate(v: Tensor, theta: float, tau_rho: float, scale_rho: float, graded: bool) -> Tensor:
    """lava-dl's spike derivative ``ds/dv`` (spec §5.4)."""
    if graded:
        return scale_rho * torch.exp(torch.clamp(v - theta, max=0) / tau_rho)
    return scale_rho / (2 * tau_rho) * torch.exp(-torch.abs(v - theta) / tau_rho)


def _spike_backward(
    g: Tensor | None,
    v: Tensor,
    theta: float,
    tau_rho: float,
    scale_rho: float,
    graded: bool,
    needs: list[bool],
) -> tuple[Tensor]:
    if g is None:
        return (torch.zeros_like(v),)
    return (g * surrogate(v, theta, tau_rho, scale_rho, graded),)


def _spike_backward_fake(g, v, theta, tau_rho, scale_rho, graded, needs):
    return (v.new_empty(v.shape),)


spike_op = kernel_op(
    "spike",
    _spike,
    _spike_fake,
    _spike_backward,
    _spike_backward_fake,
    save=_spike_save,
    grad_inputs=("v",),
    differentiable_backward=True,
)
spike_op.__doc__ = (
    "``spike_op(v, threshold, s_scale, theta, tau_rho, scale_rho, graded)``: spikes of ``v`` "
    "with the surrogate gradient (see :mod:`loihi_slayer.autograd.spike`)."
)

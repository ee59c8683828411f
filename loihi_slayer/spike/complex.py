r"""Complex (phase-threshold) spike function (lava-dl ``slayer.spike.complex``).

A resonator with state :math:`z = \mathrm{re} + i\,\mathrm{im}` spikes when its
phase crosses zero upward with a real part at or above threshold (spec
``loihi-fixed-point.md`` §6.2):

.. math::

    s[t] = \big[\mathrm{re}[t] \ge \vartheta\big]\,\big[\mathrm{im}[t] \ge 0\big]\,
           \big[\mathrm{im}[t-1] < 0\big]

(graded: :math:`s[t]\,\mathrm{re}[t]/\mathrm{scale}`). On the state grid
(multiples of :math:`1/4096` below :math:`2^{11}`) these float compares are
exact, so the forward equals the integer compare of the chip.

The surrogate derivative relaxes :math:`f_s = H(\mathrm{re}-\vartheta)\,\delta(\mathrm{im})`
with :math:`\delta(x) \approx e^{-|x|/\tau}/(2\tau)` (spec §5.4):

.. math::

    \delta_r &= \tfrac{1}{2\tau} e^{-|\mathrm{re}-\vartheta|/\tau}
        \quad(\text{graded: } e^{-\max(\vartheta-\mathrm{re}, 0)/\tau}),\qquad
    \delta_i = \tfrac{1}{2\tau} e^{-|\mathrm{im}|/\tau}\\
    h &= \tfrac12\big(1 + \operatorname{sign}(\mathrm{re}-\vartheta)(1 - 2\tau\delta_r)\big)\\
    \frac{\partial s}{\partial \mathrm{re}} &= \rho\,\delta_r\delta_i,\qquad
    \frac{\partial s}{\partial \mathrm{im}} = -\frac{\rho}{\tau}\operatorname{sign}(\mathrm{im})
        \,\delta_i\, h

No gradient reaches ``im[t-1]``, the threshold or ``imag_last`` (as lava-dl).
"""

from __future__ import annotations

import torch

from ..errors import ParameterError

__all__ = ["Spike", "phase_surrogate"]


def phase_surrogate(real, imag, threshold, tau_rho, scale_rho, graded):
    """``(ds/dre, ds/dim)`` of the phase spike (the formulas of the module docstring)."""
    d = real - threshold
    if graded:
        delta_r = torch.exp(-torch.clamp(-d, min=0) / tau_rho)
    else:
        delta_r = torch.exp(-torch.abs(d) / tau_rho) / (2 * tau_rho)
    delta_i = torch.exp(-torch.abs(imag) / tau_rho) / (2 * tau_rho)
    step = 0.5 * (1 + torch.sign(d) * (1 - 2 * tau_rho * delta_r))
    return (
        scale_rho * delta_r * delta_i,
        -scale_rho / tau_rho * torch.sign(imag) * delta_i * step,
    )


class Spike(torch.autograd.Function):
    """Phase-threshold spike with lava-dl's surrogate gradient.

    ``Spike.apply(real, imag, threshold, tau_rho, scale_rho, graded_spike, imag_last, scale)``

    Parameters
    ----------
    real, imag
        Resonator states ``(..., T)`` (float, state units).
    threshold
        Float, or a tensor broadcastable to ``real`` (adaptive thresholds).
    tau_rho, scale_rho
        Surrogate width :math:`\\tau > 0` and scale :math:`\\rho`.
    graded_spike
        Emit ``re / scale`` instead of 1.
    imag_last
        ``im`` before the first step (float or tensor of shape ``real.shape[:-1]``).
    scale
        Divisor of the graded payload.
    """

    @staticmethod
    def forward(ctx, real, imag, threshold, tau_rho, scale_rho, graded_spike, imag_last, scale):
        if not tau_rho > 0:
            raise ParameterError(f"spike.complex: tau_rho must be > 0, got {tau_rho}")
        first = torch.as_tensor(imag_last, dtype=imag.dtype, device=imag.device)
        first = torch.broadcast_to(first, imag.shape[:-1]).unsqueeze(-1)
        imag_prev = torch.cat([first, imag[..., :-1]], dim=-1)
        fire = (real >= threshold) & (imag >= 0) & (imag_prev < 0)
        out = fire.to(real.dtype)
        if graded_spike:
            out = out * real / scale
        th = torch.as_tensor(threshold, dtype=real.dtype, device=real.device)
        ctx.save_for_backward(real, imag, th)
        ctx.cfg = (float(tau_rho), float(scale_rho), bool(graded_spike))
        return out

    @staticmethod
    def backward(ctx, grad):
        real, imag, th = ctx.saved_tensors
        tau, rho, graded = ctx.cfg
        d_re, d_im = phase_surrogate(real, imag, th, tau, rho, graded)
        return grad * d_re, grad * d_im, None, None, None, None, None, None

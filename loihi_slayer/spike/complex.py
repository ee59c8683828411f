r"""Complex (phase-threshold) spike of the resonators (lava-dl ``slayer.spike.complex``).

Forward (spec §6.2, RF_PHASE): a spike when the real part is at or above the
threshold while the imaginary part crosses zero upward,

.. math::

    s[t] = [\,\Re z[t] \ge \vartheta\,]\,[\,\Im z[t] \ge 0\,]\,[\,\Im z[t-1] < 0\,]

(times :math:`\Re z[t] / \mathrm{scale}` for graded spikes), with
:math:`\Im z[-1]` = ``imag_last``. Backward (spec §5.4):

.. math::

    \delta_r &= e^{-\max(\vartheta - \Re z, 0)/\tau} \text{ (graded)}, \quad
               \tfrac{1}{2\tau} e^{-|\Re z - \vartheta|/\tau} \text{ (binary)} \\
    \delta_i &= \tfrac{1}{2\tau} e^{-|\Im z|/\tau}, \quad
    \mathrm{st} = \tfrac12\big(1 + \operatorname{sign}(\Re z - \vartheta)(1 - 2\tau\delta_r)\big) \\
    \partial s/\partial \Re z &= \rho\,\delta_r\,\delta_i, \qquad
    \partial s/\partial \Im z = -\tfrac{\rho}{\tau}\operatorname{sign}(\Im z)\,\delta_i\,\mathrm{st}
"""

from __future__ import annotations

import torch

__all__ = ["Spike"]


class Spike(torch.autograd.Function):
    """Phase-threshold spike with surrogate gradient (see the module docstring).

    ``Spike.apply(real, imag, threshold, tau_rho, scale_rho, graded_spike, imag_last, scale)``.
    """

    @staticmethod
    def forward(ctx, real, imag, threshold, tau_rho, scale_rho, graded_spike, imag_last, scale):
        prev = torch.zeros_like(imag)
        prev[..., 1:] = imag[..., :-1]
        prev[..., 0] = imag_last
        th = torch.as_tensor(threshold, dtype=real.dtype, device=real.device)
        fire = (real >= th) & (imag >= 0) & (prev < 0)
        spikes = (fire * real / scale) if graded_spike else fire
        ctx.save_for_backward(real, imag, th)
        ctx.cfg = (float(tau_rho), float(scale_rho), bool(graded_spike))
        return spikes.to(real.dtype)

    @staticmethod
    def backward(ctx, grad):
        real, imag, th = ctx.saved_tensors
        tau, rho, graded = ctx.cfg
        if graded:
            d_re = torch.exp(-(th - real).clamp(min=0) / tau)
        else:
            d_re = torch.exp(-torch.abs(real - th) / tau) / (2 * tau)
        d_im = torch.exp(-torch.abs(imag) / tau) / (2 * tau)
        step = 0.5 * (1 + torch.sign(real - th) * (1 - 2 * tau * d_re))
        g_re = grad * rho * d_re * d_im
        g_im = -grad * (rho / tau) * torch.sign(imag) * d_im * step
        return g_re, g_im, None, None, None, None, None, None

"""Neuron normalization: mean-only batch norm, which maps to the Loihi bias.

With :class:`MeanOnlyBatchNorm` on a CUBA neuron the normalized current
``u - Q(mean)`` is exactly a bias ``-Q(mean)`` added to the voltage every step,
which is what Loihi implements (``bias_mant << 6``). The CUBA neuron therefore
does not call :meth:`MeanOnlyBatchNorm.forward`; it passes the quantized mean
as an integer bias to its kernel (see :class:`loihi_slayer.neuron.cuba.Neuron`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import ParameterError


class MeanOnlyBatchNorm(torch.nn.Module):
    r"""Mean-only batch normalization (lava-dl semantics).

    .. math::

        y = x - Q(\mu_c), \qquad \mu_c \leftarrow (1-m)\,\mu_c + m\,
        \operatorname{mean}_{n, h, w, t}(x)

    where ``Q`` is ``pre_hook_fx`` (the neuron's ``quantize_8bit``). In training
    mode the batch mean is used (and the running mean updated); in eval mode
    the running mean.

    Parameters
    ----------
    num_features
        Number of channels; may be set later with :meth:`init_features`.
    momentum
        Running-mean momentum ``m``.
    pre_hook_fx
        Quantizer applied to the mean (``fx(mean)`` and ``fx(mean, descale=True)``).
    """

    def __init__(
        self,
        num_features: int | None = None,
        momentum: float = 0.1,
        pre_hook_fx: Callable | None = None,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.momentum = float(momentum)
        self.pre_hook_fx = pre_hook_fx if pre_hook_fx is not None else (lambda x, **_: x)
        self.register_buffer("running_mean", torch.zeros(num_features or 1))
        self.update = True

    def init_features(self, num_features: int) -> None:
        """Size the running mean for ``num_features`` channels (before training)."""
        if self.num_features not in (None, num_features):
            raise ParameterError(
                f"MeanOnlyBatchNorm: num_features is {self.num_features}, got {num_features}"
            )
        if self.running_mean.numel() != num_features:
            self.running_mean = self.running_mean.new_zeros(num_features) + self.running_mean
        self.num_features = num_features

    def reset_parameters(self) -> None:
        """Zero the running mean."""
        self.running_mean.zero_()

    @property
    def bias(self) -> torch.Tensor:
        """Equivalent neuron bias mantissa ``-Q(running_mean) * scale``."""
        return -self.pre_hook_fx(self.running_mean, descale=True)

    def update_running_mean(self, mean: torch.Tensor) -> None:
        """Apply one momentum update with a per-channel batch mean."""
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x - Q(mean)`` with the mean over all but the channel axis."""
        if self.num_features is None:
            self.init_features(x.shape[1])
        if self.training and self.update:
            mean = x.reshape(x.shape[0], x.shape[1], -1).mean(dim=(0, 2))
            self.update_running_mean(mean)
        else:
            mean = self.running_mean
        view = (1, -1) + (1,) * (x.dim() - 2)
        return x - self.pre_hook_fx(mean.reshape(view))

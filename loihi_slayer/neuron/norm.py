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


class WgtScaleBatchNorm(MeanOnlyBatchNorm):
    r"""Batch norm whose variance scale is a power of two (lava-dl semantics).

    .. math::

        y = \frac{x - Q(\mu_c)}{2^{k}}, \qquad
        k = \operatorname{clamp}\!\big(\lceil \log_2 \sqrt{v + \epsilon}\,\rceil,
        -B, B\big)

    with :math:`\mu_c` and the layer-wide variance :math:`v` tracked with
    momentum ``m`` (the batch variance is weighted by ``n / (n + 1)``, ``n``
    the number of values per channel, as lava-dl does). The shift by ``k``
    would be a weight exponent on the chip; the sigma-delta neuron trains with
    it but refuses to export it (see :mod:`loihi_slayer.neuron.sigma_delta`).
    lava-dl builds ``2^k`` with ``torch.ones(1) << k`` on float tensors, which
    PyTorch rejects; here it is ``2.0 ** k``.

    Parameters
    ----------
    num_features
        Number of channels; may be set later with :meth:`init_features`.
    momentum
        Running-statistics momentum ``m``.
    weight_exp_bits
        Bound ``B`` of the exponent.
    eps
        :math:`\epsilon`.
    pre_hook_fx
        Quantizer applied to the mean.
    """

    def __init__(
        self,
        num_features: int | None = None,
        momentum: float = 0.1,
        weight_exp_bits: int = 3,
        eps: float = 1e-5,
        pre_hook_fx: Callable | None = None,
    ) -> None:
        super().__init__(num_features, momentum, pre_hook_fx)
        if int(weight_exp_bits) < 0:
            raise ParameterError(f"WgtScaleBatchNorm: weight_exp_bits = {weight_exp_bits} < 0")
        self.weight_exp_bits = int(weight_exp_bits)
        self.eps = float(eps)
        self.register_buffer("running_var", torch.zeros(1))

    def reset_parameters(self) -> None:
        """Zero the running statistics."""
        super().reset_parameters()
        if hasattr(self, "running_var"):
            self.running_var.zero_()

    def std(self, var: torch.Tensor) -> torch.Tensor:
        """The power-of-two scale :math:`2^k` of a variance."""
        k = torch.ceil(torch.log2(torch.sqrt(var + self.eps)))
        return 2.0 ** k.clamp(-self.weight_exp_bits, self.weight_exp_bits)

    @property
    def weight_exp(self) -> torch.Tensor:
        """Equivalent weight exponent :math:`\\lceil\\log_2\\sqrt{v+\\epsilon}\\rceil`."""
        return torch.ceil(torch.log2(torch.sqrt(self.running_var + self.eps)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - Q(mean)) / 2^k``."""
        if self.num_features is None:
            self.init_features(x.shape[1])
        if self.training and self.update:
            mean = x.reshape(x.shape[0], x.shape[1], -1).mean(dim=(0, 2))
            var = torch.var(x, unbiased=False)
            n = x.numel() / x.shape[1]
            self.update_running_mean(mean)
            with torch.no_grad():
                self.running_var.mul_(1 - self.momentum).add_(
                    self.momentum * var.detach() * n / (n + 1)
                )
        else:
            mean, var = self.running_mean, self.running_var
        view = (1, -1) + (1,) * (x.dim() - 2)
        return (x - self.pre_hook_fx(mean.reshape(view))) / self.std(var)


def maps_to_bias(norm: torch.nn.Module | None) -> bool:
    """Whether ``norm`` is exactly a neuron bias on the chip (mean-only, no scale)."""
    return isinstance(norm, MeanOnlyBatchNorm) and not isinstance(norm, WgtScaleBatchNorm)

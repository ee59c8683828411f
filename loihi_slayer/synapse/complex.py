r"""Complex synapses (lava-dl ``slayer.synapse.complex`` API): real and imaginary weights.

A complex synapse holds two real synapses of :mod:`loihi_slayer.synapse.layer`
with the same geometry and applies both to the same (real) input spikes:

.. math::

    z[t] = \big(W_{re}\, x[t],\; W_{im}\, x[t]\big)

The pair feeds a resonator neuron (``neuron.rf``, ``rf_iz``, ``adrf``,
``adrf_iz``) as its ``(real, imag)`` input. Weight normalization, the
``pre_hook_fx`` quantizer and a connectivity ``mask`` act on both parts alike
(lava-dl applies one quantizer to both; a mask selects the same synapses in
both). Each part is exported on its own grid (``weight/real``, ``weight/imag``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from . import layer


class ComplexLayer(torch.nn.Module):
    """Base of the complex synapses: ``forward(x) -> (real(x), imag(x))``.

    Attributes
    ----------
    real, imag
        The two real synapses (same class and geometry).
    complex
        Always True: marks the synapse as complex for blocks and neurons.
    """

    complex = True
    real: torch.nn.Module
    imag: torch.nn.Module

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(real(x), imag(x))`` for a time-last input."""
        return self.real(x), self.imag(x)

    @property
    def time_major_output(self) -> bool:
        """Whether both parts make their output a view of time-major memory (see
        :class:`~.layer.Dense`; parts without that option never do)."""
        return all(getattr(p, "time_major_output", False) for p in (self.real, self.imag))

    @time_major_output.setter
    def time_major_output(self, value: bool) -> None:
        for part in (self.real, self.imag):
            if hasattr(part, "time_major_output"):
                part.time_major_output = bool(value)

    def enable_weight_norm(self) -> None:
        """Enable weight normalization on both parts."""
        self.real.enable_weight_norm()
        self.imag.enable_weight_norm()

    def disable_weight_norm(self) -> None:
        """Fold the weight normalization of both parts back into plain weights."""
        self.real.disable_weight_norm()
        self.imag.disable_weight_norm()

    @property
    def weight_norm_enabled(self) -> bool:
        """True while the weights are normalized."""
        return bool(getattr(self.real, "_weight_norm", False))

    @property
    def grad_norm(self) -> float:
        r""":math:`\sqrt{\|\nabla W_{re}\|^2 + \|\nabla W_{im}\|^2}` (0 before any backward)."""
        total = 0.0
        for part in (self.real, self.imag):
            for p in part.parameters():
                if p.grad is not None:
                    total += float(torch.sum(p.grad.detach().double() ** 2))
        return math.sqrt(total)

    @property
    def pre_hook_fx(self) -> Callable | None:
        """The weight quantizer shared by both parts."""
        return self.real.pre_hook_fx

    @pre_hook_fx.setter
    def pre_hook_fx(self, fx: Callable | None) -> None:
        self.real.pre_hook_fx = fx
        self.imag.pre_hook_fx = fx

    @property
    def shape(self) -> torch.Size:
        """Weight shape of one part."""
        return self.real.weight.shape

    # geometry of the real part (both parts share it), as block code reads it
    def __getattr__(self, name: str):
        if name in _GEOMETRY:
            return getattr(self._modules["real"], name)
        return super().__getattr__(name)


_GEOMETRY = frozenset(
    {
        "in_channels",
        "out_channels",
        "in_neurons",
        "out_neurons",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
        "weight_scale",
        "exact",
        "mask",
    }
)


class Dense(ComplexLayer):
    """Dense complex synapse.

    Parameters
    ----------
    in_neurons
        Input neurons (int, or a shape that is flattened).
    out_neurons
        Output neurons.
    weight_scale
        Initial weight scale factor. Defaults to 1.
    weight_norm
        Weight normalization on both parts. Defaults to False.
    pre_hook_fx
        Weight quantizer applied to both parts before the synaptic operation.
    mask
        Optional 0/1 connectivity mask ``(out, in)``, the same for both parts.
    exact
        Keyword only: float64 accumulation.
    """

    def __init__(
        self,
        in_neurons: int | Sequence[int],
        out_neurons: int,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        mask: torch.Tensor | None = None,
        *,
        exact: bool = False,
    ) -> None:
        super().__init__()
        args = (in_neurons, out_neurons, weight_scale, weight_norm, pre_hook_fx, mask)
        self.real = layer.Dense(*args, exact=exact)
        self.imag = layer.Dense(*args, exact=exact)


class Conv(ComplexLayer):
    """2-D convolution complex synapse (lava-dl arguments; see :class:`~.layer.Conv`)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        mask: torch.Tensor | None = None,
        *,
        exact: bool = False,
    ) -> None:
        super().__init__()
        args = (
            in_features,
            out_features,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            weight_scale,
            weight_norm,
            pre_hook_fx,
            mask,
        )
        self.real = layer.Conv(*args, exact=exact)
        self.imag = layer.Conv(*args, exact=exact)


class ConvTranspose(ComplexLayer):
    """Transposed 2-D convolution complex synapse (see :class:`~.layer.ConvTranspose`)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        mask: torch.Tensor | None = None,
        *,
        exact: bool = False,
    ) -> None:
        super().__init__()
        args = (
            in_features,
            out_features,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            weight_scale,
            weight_norm,
            pre_hook_fx,
            mask,
        )
        self.real = layer.ConvTranspose(*args, exact=exact)
        self.imag = layer.ConvTranspose(*args, exact=exact)


class Pool(ComplexLayer):
    """Sum-pooling complex synapse (fixed kernel ``weight_scale`` in both parts)."""

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        *,
        exact: bool = False,
    ) -> None:
        super().__init__()
        args = (kernel_size, stride, padding, dilation, weight_scale, weight_norm, pre_hook_fx)
        self.real = layer.Pool(*args, exact=exact)
        self.imag = layer.Pool(*args, exact=exact)


class Unpool(ComplexLayer):
    """Sum-unpooling complex synapse (fixed kernel ``weight_scale`` in both parts)."""

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        *,
        exact: bool = False,
    ) -> None:
        super().__init__()
        args = (kernel_size, stride, padding, dilation, weight_scale, weight_norm, pre_hook_fx)
        self.real = layer.Unpool(*args, exact=exact)
        self.imag = layer.Unpool(*args, exact=exact)


__all__ = ["ComplexLayer", "Conv", "ConvTranspose", "Dense", "Pool", "Unpool"]

"""slayerPytorch's SRM ``spikeLayer`` (``snn.layer``) and its synapse/neuron blocks.

Tensors are ``NCHWT``: (batch, channels, height, width, time). The blocks are
:class:`torch.nn.Module` objects working on CPU and CUDA tensors. Behaviour
follows slayerPytorch's documentation; the implementation is independent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ParameterError, ParameterTypeError
from ..params import check_descriptors
from ._core import alpha_kernel, causal_conv, shift, srm_spikes

__all__ = ["spikeLayer", "layer"]

logger = logging.getLogger(__name__)

PreHook = Callable[[torch.Tensor], torch.Tensor] | None


def _get(desc: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """Descriptor value with a default (works for dicts and :class:`Params`)."""
    try:
        return desc[key]
    except (KeyError, TypeError):
        if default is None:
            raise ParameterError(f"neuron/simulation descriptor needs the key {key!r}") from None
        return default


def _pair3(value: Any, name: str, last: int) -> tuple[int, int, int]:
    """``int`` or 2-tuple (height, width) -> 3-D tuple with ``last`` on the time axis."""
    if isinstance(value, int | np.integer):
        return (int(value), int(value), last)
    try:
        items = tuple(int(v) for v in value)
    except TypeError:
        raise ParameterTypeError(
            f"{name} must be an int or a tuple of two ints, got {value!r}"
        ) from None
    if len(items) != 2:
        raise ParameterError(f"{name} must be an int or a tuple of two ints, got {value!r}")
    return (items[0], items[1], last)


def _weight(module: nn.Module, pre_hook: PreHook) -> torch.Tensor:
    return module.weight if pre_hook is None else pre_hook(module.weight)


class _SpikeFunction(torch.autograd.Function):
    """SRM spike generation with slayerPytorch's exponential surrogate gradient."""

    @staticmethod
    def forward(ctx, u, ref_kernel, theta, tau_rho, scale_rho, ts):
        spikes = srm_spikes(u, ref_kernel, theta, ts)
        ctx.theta = float(theta)
        ctx.tau = float(tau_rho) * float(theta)
        ctx.scale = float(scale_rho)
        ctx.save_for_backward(u)
        return spikes

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        pdf = ctx.scale / ctx.tau * torch.exp(-torch.abs(u - ctx.theta) / ctx.tau)
        return grad * pdf, None, None, None, None, None


class _DelayFunction(torch.autograd.Function):
    """Per-neuron learnable delay (slayerPytorch ``delay`` layer)."""

    @staticmethod
    def forward(ctx, x, delay, ts):
        out = shift(x, delay.detach(), ts)
        ctx.ts = ts
        ctx.save_for_backward(out, delay.detach())
        return out

    @staticmethod
    def backward(ctx, grad):
        out, delay = ctx.saved_tensors
        ts = ctx.ts
        # d out[t] / d delay = -(out[t] - out[t-1]) / Ts
        prev = F.pad(out[..., :-1], (1, 0))
        diff = (prev - out) / ts
        grad_delay = torch.sum(grad * diff, dim=(0, -1)).reshape(delay.shape) * ts
        return shift(grad, -delay, ts), grad_delay, None


class _DelayShiftFunction(torch.autograd.Function):
    """Fixed delay with the gradient shifted back (slayerPytorch ``delayShift``)."""

    @staticmethod
    def forward(ctx, x, delay, ts):
        ctx.delay = delay.detach() if torch.is_tensor(delay) else delay
        ctx.ts = ts
        return shift(x, ctx.delay, ts)

    @staticmethod
    def backward(ctx, grad):
        return shift(grad, -ctx.delay, ctx.ts), None, None


class _denseLayer(nn.Conv3d):
    """Fully connected synapses applied at every time step (``NCHWT`` in and out).

    Parameters
    ----------
    inFeatures
        ``int`` (neurons along channels) or ``(W, H)`` / ``(W, H, C)``.
    outFeatures
        number of output neurons (output ``(N, outFeatures, 1, 1, T)``).
    weightScale
        factor applied to PyTorch's default initial weights.
    preHookFx
        function applied to the weights before use (e.g. quantization).
    """

    def __init__(
        self, inFeatures: Any, outFeatures: int, weightScale: float = 1, preHookFx: PreHook = None
    ) -> None:
        if isinstance(inFeatures, int | np.integer):
            kernel, in_channels = (1, 1, 1), int(inFeatures)
        else:
            dims = tuple(int(v) for v in inFeatures)
            if len(dims) == 2:
                kernel, in_channels = (dims[1], dims[0], 1), 1
            elif len(dims) == 3:
                kernel, in_channels = (dims[1], dims[0], 1), dims[2]
            else:
                raise ParameterError(
                    f"inFeatures must be an int or (W, H) / (W, H, C), got {inFeatures!r}"
                )
        if not isinstance(outFeatures, int | np.integer):
            raise ParameterTypeError(f"outFeatures must be an int, got {outFeatures!r}")
        super().__init__(in_channels, int(outFeatures), kernel, bias=False)
        if weightScale != 1:
            self.weight = nn.Parameter(weightScale * self.weight.detach())
        self.preHookFx = preHookFx

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        weight = _weight(self, self.preHookFx)
        if input.dim() == 5 and tuple(input.shape[2:4]) == tuple(weight.shape[2:4]):
            # the kernel covers the whole spatial extent: a matrix product per time step
            out = torch.einsum("oihw,nihwt->not", weight[..., 0], input)
            return out.reshape(out.shape[0], out.shape[1], 1, 1, out.shape[2])
        return F.conv3d(input, weight, None, self.stride, self.padding, self.dilation, self.groups)


class _convLayer(nn.Conv3d):
    """2-D convolution applied at every time step (``torch.nn.Conv2d`` semantics)."""

    def __init__(
        self,
        inFeatures: int,
        outFeatures: int,
        kernelSize: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        weightScale: float = 1,
        preHookFx: PreHook = None,
    ) -> None:
        super().__init__(
            int(inFeatures),
            int(outFeatures),
            _pair3(kernelSize, "kernelSize", 1),
            _pair3(stride, "stride", 1),
            _pair3(padding, "padding", 0),
            _pair3(dilation, "dilation", 1),
            int(groups),
            bias=False,
        )
        if weightScale != 1:
            self.weight = nn.Parameter(weightScale * self.weight.detach())
        self.preHookFx = preHookFx

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.conv3d(
            input,
            _weight(self, self.preHookFx),
            None,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )


class _convTransposeLayer(nn.ConvTranspose3d):
    """2-D transposed convolution applied at every time step."""

    def __init__(
        self,
        inFeatures: int,
        outFeatures: int,
        kernelSize: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        weightScale: float = 1,
        preHookFx: PreHook = None,
    ) -> None:
        super().__init__(
            int(inFeatures),
            int(outFeatures),
            _pair3(kernelSize, "kernelSize", 1),
            _pair3(stride, "stride", 1),
            _pair3(padding, "padding", 0),
            groups=int(groups),
            bias=False,
            dilation=_pair3(dilation, "dilation", 1),
        )
        if weightScale != 1:
            self.weight = nn.Parameter(weightScale * self.weight.detach())
        self.preHookFx = preHookFx

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose3d(
            input,
            _weight(self, self.preHookFx),
            None,
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
        )


class _poolLayer(nn.Conv3d):
    """Sum pooling per channel with the fixed weight ``1.1 * theta``.

    Height and width are zero padded up to a multiple of the kernel size
    (slayerPytorch behaviour); every channel is pooled on its own.
    """

    def __init__(
        self,
        theta: float,
        kernelSize: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        preHookFx: PreHook = None,
    ) -> None:
        kernel = _pair3(kernelSize, "kernelSize", 1)
        stride3 = kernel if stride is None else _pair3(stride, "stride", 1)
        super().__init__(
            1,
            1,
            kernel,
            stride3,
            _pair3(padding, "padding", 0),
            _pair3(dilation, "dilation", 1),
            bias=False,
        )
        self.weight = nn.Parameter(
            torch.full(self.weight.shape, 1.1 * float(theta)), requires_grad=False
        )
        self.preHookFx = preHookFx

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        n, c, h, w, t = input.shape
        kh, kw = self.weight.shape[2], self.weight.shape[3]
        pad_h, pad_w = (-h) % kh, (-w) % kw
        if pad_h or pad_w:
            input = F.pad(input, (0, 0, 0, pad_w, 0, pad_h))
        h, w = input.shape[2], input.shape[3]
        out = F.conv3d(
            input.reshape(n * c, 1, h, w, t),
            _weight(self, self.preHookFx),
            None,
            self.stride,
            self.padding,
            self.dilation,
        )
        return out.reshape(n, c, out.shape[2], out.shape[3], t)


class _unpoolLayer(nn.ConvTranspose3d):
    """Per-channel un-pooling (transposed sum pooling) with weight ``1.1 * theta``."""

    def __init__(
        self,
        theta: float,
        kernelSize: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        preHookFx: PreHook = None,
    ) -> None:
        kernel = _pair3(kernelSize, "kernelSize", 1)
        stride3 = kernel if stride is None else _pair3(stride, "stride", 1)
        super().__init__(
            1,
            1,
            kernel,
            stride3,
            _pair3(padding, "padding", 0),
            bias=False,
            dilation=_pair3(dilation, "dilation", 1),
        )
        self.weight = nn.Parameter(
            torch.full(self.weight.shape, 1.1 * float(theta)), requires_grad=False
        )
        self.preHookFx = preHookFx

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        n, c, h, w, t = input.shape
        out = F.conv_transpose3d(
            input.reshape(n * c, 1, h, w, t),
            _weight(self, self.preHookFx),
            None,
            self.stride,
            self.padding,
            self.output_padding,
            1,
            self.dilation,
        )
        return out.reshape(n, c, out.shape[2], out.shape[3], t)


class _dropoutLayer(nn.Dropout3d):
    """Dropout of whole neurons: a dropped neuron stays silent for all time steps."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        shape = input.shape
        flat = input.reshape(shape[0], -1, 1, 1, shape[-1])
        return F.dropout3d(flat, self.p, self.training, self.inplace).reshape(shape)


class _pspLayer(nn.Conv3d):
    """Learnable PSP filter shared by all neurons (initialised with the SRM kernel).

    The stored ``weight`` is the flipped filter (PyTorch correlates).
    """

    def __init__(self, filter: torch.Tensor, Ts: float) -> None:
        length = int(filter.numel())
        super().__init__(1, 1, (1, 1, length), bias=False)
        self.Ts = Ts
        flipped = torch.flip(filter.detach().float().flatten(), dims=[0])
        self.weight = nn.Parameter(flipped.reshape(self.weight.shape).clone())
        self.pad = nn.ConstantPad3d((length - 1, 0, 0, 0, 0, 0), 0)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        shape = input.shape
        padded = self.pad(input.reshape(shape[0], 1, 1, -1, shape[-1]))
        return (F.conv3d(padded, self.weight) * self.Ts).reshape(shape)


class _pspFilter(nn.Conv3d):
    """``nFilter`` learnable causal filters applied to every input neuron.

    Output ``(N, nFilter * C, H, W, T)`` for input ``(N, C, H, W, T)``.
    """

    def __init__(self, nFilter: int, filterLength: int, Ts: float, filterScale: float = 1) -> None:
        super().__init__(1, int(nFilter), (1, 1, int(filterLength)), bias=False)
        self.Ts = Ts
        self.pad = nn.ConstantPad3d((int(filterLength) - 1, 0, 0, 0, 0, 0), 0)
        if filterScale != 1:
            self.weight = nn.Parameter(filterScale * self.weight.detach())

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        n, _, h, w, t = input.shape
        padded = self.pad(input.reshape(n, 1, 1, -1, t))
        out = F.conv3d(padded, self.weight) * self.Ts
        return out.reshape(n, -1, h, w, t)


class _delayLayer(nn.Module):
    """Learnable per-neuron axonal delay, ``delay`` initialised uniformly in [0, 1) ms.

    The delay is applied as ``trunc(delay / Ts)`` bins. It is not clamped: clamp
    it after each optimizer step (``delay.delay.data.clamp_(0)``).
    """

    def __init__(self, inputSize: Any, Ts: float) -> None:
        super().__init__()
        if isinstance(inputSize, int | np.integer):
            size = (int(inputSize), 1, 1)
        else:
            size = tuple(int(v) for v in inputSize)
            if len(size) != 3:
                raise ParameterError(f"inputSize must be an int or (C, H, W), got {inputSize!r}")
        self.delay = nn.Parameter(torch.rand(size))
        self.Ts = Ts

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _DelayFunction.apply(input, self.delay, self.Ts)


class spikeLayer(nn.Module):
    """SLAYER's SRM spiking layer engine (``snn.layer``).

    Provides the synapse blocks (:meth:`dense`, :meth:`conv`, :meth:`pool`, ...),
    the SRM-alpha PSP (:meth:`psp`) and spike generation (:meth:`spike`) for
    ``NCHWT`` tensors.

    Parameters
    ----------
    neuronDesc
        neuron descriptor: ``theta``, ``tauSr``, ``tauRef``, ``scaleRef``
        (default 2), ``tauRho`` (relative to theta), ``scaleRho``.
    simulationDesc
        simulation descriptor: ``Ts`` and ``tSample`` (ms).
    fullRefKernel
        use the high resolution refractory kernel (epsilon 1e-4).

    Notes
    -----
    The spike surrogate gradient is
    ``scaleRho / (tauRho * theta) * exp(-|u - theta| / (tauRho * theta))``,
    evaluated on the membrane potential after the refractory responses.
    """

    def __init__(self, neuronDesc: Any, simulationDesc: Any, fullRefKernel: bool = False) -> None:
        super().__init__()
        check_descriptors(neuronDesc, simulationDesc)  # refuse bad yaml values at the door
        self.neuron = neuronDesc
        self.simulation = simulationDesc
        self.fullRefKernel = fullRefKernel
        self.register_buffer("srmKernel", self.calculateSrmKernel())
        self.register_buffer("refKernel", self.calculateRefKernel())

    # -- descriptor helpers
    @property
    def Ts(self) -> float:
        """Sampling time (ms)."""
        return float(_get(self.simulation, "Ts"))

    @property
    def Ns(self) -> int:
        """Number of time bins ``tSample / Ts``."""
        return int(_get(self.simulation, "tSample") / self.Ts)

    def calculateSrmKernel(self) -> torch.Tensor:
        """SRM alpha PSP kernel ``t/tauSr * exp(1 - t/tauSr)``."""
        kernel = alpha_kernel(
            float(_get(self.neuron, "tauSr")), float(_get(self.simulation, "tSample")), self.Ts
        )
        return torch.tensor(kernel, dtype=torch.float32)

    def calculateRefKernel(self) -> torch.Tensor:
        """Refractory kernel ``-scaleRef * theta * t/tauRef * exp(1 - t/tauRef)``."""
        mult = -float(_get(self.neuron, "scaleRef", 2)) * float(_get(self.neuron, "theta"))
        kernel = alpha_kernel(
            float(_get(self.neuron, "tauRef")),
            float(_get(self.simulation, "tSample")),
            self.Ts,
            mult=mult,
            epsilon=0.0001 if self.fullRefKernel else 0.01,
        )
        return torch.tensor(kernel, dtype=torch.float32)

    # -- neuron
    def psp(self, spike: torch.Tensor) -> torch.Tensor:
        """PSP filtering: ``Ts * (srmKernel * spike)`` causally along time (same shape)."""
        return causal_conv(spike, self.srmKernel, self.Ts)

    def pspLayer(self) -> _pspLayer:
        """Learnable PSP filter module initialised with the SRM kernel."""
        return _pspLayer(self.srmKernel, self.Ts)

    def pspFilter(self, nFilter: int, filterLength: int, filterScale: float = 1) -> _pspFilter:
        """Bank of ``nFilter`` learnable causal filters of ``filterLength`` taps."""
        return _pspFilter(nFilter, filterLength, self.Ts, filterScale)

    def replicateInTime(self, input: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
        """Repeat an ``(N, C, H, W)`` tensor over the ``Ns`` time bins."""
        if mode != "nearest":
            raise ParameterError(f"mode = {mode!r} is not supported; allowed: 'nearest'")
        n, c, h, w = input.shape
        return input.reshape(n, c, h, w, 1).expand(n, c, h, w, self.Ns).contiguous()

    def spike(self, membranePotential: torch.Tensor) -> torch.Tensor:
        """SRM spikes (amplitude ``1/Ts``) where ``u >= theta``, with refractory response.

        ``membranePotential`` is updated in place with the refractory responses.
        """
        return _SpikeFunction.apply(
            membranePotential,
            self.refKernel,
            float(_get(self.neuron, "theta")),
            float(_get(self.neuron, "tauRho")),
            float(_get(self.neuron, "scaleRho")),
            self.Ts,
        )

    # -- synapses
    def dense(
        self,
        inFeatures: Any,
        outFeatures: int,
        weightScale: float = 10,
        preHookFx: PreHook = None,
    ) -> _denseLayer:
        """Fully connected layer; input ``(N, C, H, W, T)``, output ``(N, out, 1, 1, T)``."""
        return _denseLayer(inFeatures, outFeatures, weightScale, preHookFx)

    def conv(
        self,
        inChannels: int,
        outChannels: int,
        kernelSize: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        weightScale: float = 100,
        preHookFx: PreHook = None,
    ) -> _convLayer:
        """2-D convolution per time step (``torch.nn.Conv2d`` arguments)."""
        return _convLayer(
            inChannels,
            outChannels,
            kernelSize,
            stride,
            padding,
            dilation,
            groups,
            weightScale,
            preHookFx,
        )

    def convTranspose(
        self,
        inChannels: int,
        outChannels: int,
        kernelSize: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        weightScale: float = 100,
        preHookFx: PreHook = None,
    ) -> _convTransposeLayer:
        """2-D transposed convolution per time step."""
        return _convTransposeLayer(
            inChannels,
            outChannels,
            kernelSize,
            stride,
            padding,
            dilation,
            groups,
            weightScale,
            preHookFx,
        )

    def pool(
        self,
        kernelSize: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        preHookFx: PreHook = None,
    ) -> _poolLayer:
        """Sum pooling per channel with weight ``1.1 * theta``."""
        return _poolLayer(
            float(_get(self.neuron, "theta")), kernelSize, stride, padding, dilation, preHookFx
        )

    def unpool(
        self,
        kernelSize: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        preHookFx: PreHook = None,
    ) -> _unpoolLayer:
        """Per-channel un-pooling with weight ``1.1 * theta``."""
        return _unpoolLayer(
            float(_get(self.neuron, "theta")), kernelSize, stride, padding, dilation, preHookFx
        )

    def dropout(self, p: float = 0.5, inplace: bool = False) -> _dropoutLayer:
        """Neuron dropout (a dropped neuron is silent for the whole sample)."""
        return _dropoutLayer(p, inplace)

    def delayShift(self, input: torch.Tensor, delay: Any, Ts: float = 1) -> torch.Tensor:
        """Shift ``input`` by ``trunc(delay / Ts)`` bins (zero fill); gradient shifted back.

        Note that ``Ts`` defaults to 1 and not to the simulation's ``Ts``
        (slayerPytorch behaviour).
        """
        return _DelayShiftFunction.apply(input, delay, Ts)

    def delay(self, inputSize: Any) -> _delayLayer:
        """Learnable per-neuron delay for inputs of size ``C`` or ``(C, H, W)``."""
        return _delayLayer(inputSize, self.Ts)


#: ``snn.layer`` alias.
layer = spikeLayer

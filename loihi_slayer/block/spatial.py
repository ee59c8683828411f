"""Spatial blocks: Conv, ConvT, Pool, Unpool."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .. import hdf5
from ..autograd.op import plain_eager
from ..errors import ParameterError
from ..fixed.api import conv_output_size, conv_transpose_output_size
from ..synapse import Conv as _ConvSyn
from ..synapse import ConvTranspose as _ConvTSyn
from ..synapse import Pool as _PoolSyn
from ..synapse import Unpool as _UnpoolSyn
from .core import no_global_hooks
from .dense import _SynapseBlock

# ============================================================================ spatial


def _plain_call(x: torch.Tensor) -> bool:
    """Whether a block may run its fused pool kernel on ``x``: a plain eager call (no
    tracing, dispatch mode or functorch transform: the kernel is not a custom op) with no
    global module hooks, which the fused path would skip."""
    return not torch.jit.is_tracing() and plain_eager((x,)) and no_global_hooks()


class _SpatialBlock(_SynapseBlock):
    """Conv / ConvT / Pool / Unpool: spatial shapes from ``input_shape`` or :meth:`init_shapes`."""

    in_channels: int | None  # None: any (pool/unpool)
    out_channels: int | None
    input_shape: tuple[int, int, int] | None

    def _setup_spatial(self, input_shape) -> None:
        self.input_shape = None
        if input_shape is not None:
            self.init_shapes(input_shape)

    #: output length along one axis: ``(size, kernel, stride, padding, dilation) -> int``
    _out_size = staticmethod(conv_output_size)

    def _out_hw(self, h: int, w: int) -> tuple[int, int]:
        """Output (H, W) of the synapse for an (h, w) input."""
        s = self.synapse
        kh, kw = s.kernel_size[:2]
        return (
            self._out_size(h, kh, s.stride[0], s.padding[0], s.dilation[0]),
            self._out_size(w, kw, s.stride[1], s.padding[1], s.dilation[1]),
        )

    def init_shapes(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        shp = tuple(int(s) for s in input_shape)
        if len(shp) == 2:
            if self.in_channels is None:
                raise ParameterError(
                    f"{self.block_name}: input_shape must be (C, H, W) for this block, got {shp}"
                )
            shp = (self.in_channels,) + shp
        if len(shp) != 3 or min(shp) < 1:
            raise ParameterError(
                f"{self.block_name}: input_shape must be (H, W) or (C, H, W), got "
                f"{tuple(input_shape)}"
            )
        if self.in_channels is not None and shp[0] != self.in_channels:
            raise ParameterError(
                f"{self.block_name}: expected {self.in_channels} input channels, found input "
                f"shape {shp}"
            )
        h, w = self._out_hw(shp[1], shp[2])
        if h < 1 or w < 1:
            raise ParameterError(
                f"{self.block_name}: input shape {shp} gives an empty output ({h}, {w})"
            )
        c = self.out_channels if self.out_channels is not None else shp[0]
        if self.input_shape is not None and self.input_shape != shp:
            raise ParameterError(
                f"{self.block_name}: input shape already set to {self.input_shape}, got {shp}"
            )
        self.input_shape = shp
        if self.neuron.shape is None:
            self.neuron.init_shape((c, h, w))
        if self._want_delay and self.delay is None:
            self._make_delay(c)
        return (c, h, w)

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        self._check_tensor(x)
        c = "C" if self.in_channels is None else str(self.in_channels)
        if x.dim() != 5 or (self.in_channels is not None and x.shape[1] != self.in_channels):
            raise self._shape_error(f"(N, {c}, H, W, T)", x)
        if self.input_shape is None:
            if not getattr(self.neuron, "shared_param", True):
                raise ParameterError(
                    f"{self.block_name}: the input shape is unknown; with shared_param=False pass "
                    f"input_shape=(H, W) or call init_shapes((C, H, W)) before the first forward"
                )
            self.init_shapes(x.shape[1:4])
        elif tuple(x.shape[1:4]) != self.input_shape:
            raise self._shape_error(f"(N, {', '.join(map(str, self.input_shape))}, T)", x)
        return x

    def _layer_weights(self) -> dict[str, np.ndarray]:
        """The record's weight fields: the kernel mantissas as the forward sees them (a block
        with a complex synapse adds ``weight_imag``)."""
        return {"weight": self._mantissa(self.synapse, "weight")[..., 0]}

    def _syn_geometry(self) -> dict:
        s = self.synapse
        return {
            "stride": tuple(s.stride[:2]),
            "padding": tuple(s.padding[:2]),
            "dilation": tuple(s.dilation[:2]),
        }


class AbstractConv(_SpatialBlock):
    """Convolution block (2-D, time kernel 1); lava-dl arguments plus ``input_shape``.

    Parameters
    ----------
    neuron_params, in_features, out_features, kernel_size, stride, padding, dilation,
    groups, weight_scale, weight_norm, pre_hook_fx, delay, delay_shift, count_log
        As lava-dl (delay: one learnable delay per output channel).
    input_shape
        Keyword only: ``(H, W)`` or ``(C, H, W)`` of the input (else :meth:`init_shapes`).
    """

    _synapse_class = _ConvSyn

    def __init__(
        self,
        neuron_params: dict,
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
        delay: bool = False,
        delay_shift: bool | None = None,
        count_log: bool = False,
        *,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self._init_common(neuron_params, delay, delay_shift, count_log)
        self.synapse = self._synapse_class(
            in_features,
            out_features,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            weight_scale,
            weight_norm,
            self._hook(pre_hook_fx),
            exact=self._exact(),
        )
        self.in_channels, self.out_channels = int(in_features), int(out_features)
        self._make_delay(self.out_channels)
        norm = getattr(self.neuron, "norm", None)
        if norm is not None:
            norm.init_features(self.out_channels)
        self._setup_spatial(input_shape)

    _layer_class = hdf5.ConvLayer

    def to_layer(self) -> hdf5.ConvLayer:
        return self._layer_class(
            self._need_shape(),
            groups=self.synapse.groups,
            neuron=self._neuron_record(),
            bias=self._bias_record(),
            delay=self._delay_record(),
            **self._layer_weights(),
            **self._syn_geometry(),
        )


class AbstractConvT(AbstractConv):
    """Transposed convolution block (PyTorch ``conv_transpose2d`` semantics, output_padding 0).

    Exported as ``convT`` with weight ``(in, out/groups, kH, kW)``.
    """

    _synapse_class = _ConvTSyn

    _out_size = staticmethod(conv_transpose_output_size)

    _layer_class = hdf5.ConvTransposeLayer


class AbstractPool(_SpatialBlock):
    """Sum-pooling block: per-channel cross-correlation with a fixed ``(1, 1, kH, kW)`` kernel.

    The kernel value is ``weight_scale`` quantized by ``pre_hook_fx``; a
    ``norm`` in ``neuron_params`` is dropped (pool blocks have no bias).

    Parameters
    ----------
    neuron_params, kernel_size, stride, padding, dilation, weight_scale, weight_norm,
    pre_hook_fx, delay, delay_shift, count_log
        As lava-dl (``stride`` defaults to ``kernel_size``).
    input_shape
        Keyword only: ``(C, H, W)`` of the input (else :meth:`init_shapes`).
    """

    _synapse_class = _PoolSyn
    _type = "pool"

    def __init__(
        self,
        neuron_params: dict,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        delay: bool = False,
        delay_shift: bool | None = None,
        count_log: bool = False,
        *,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self._init_common(neuron_params, delay, delay_shift, count_log, drop_norm=True)
        self.synapse = self._synapse_class(
            kernel_size,
            stride,
            padding,
            dilation,
            weight_scale,
            weight_norm,
            self._hook(pre_hook_fx),
            exact=self._exact(),
        )
        self.in_channels = self.out_channels = None
        if delay and input_shape is None:
            raise ParameterError(
                f"{self.block_name}: delay=True needs the channel count at construction; pass "
                f"input_shape=(C, H, W)"
            )
        self._setup_spatial(input_shape)

    _layer_class = hdf5.PoolLayer

    def forward(self, x: torch.Tensor):
        """synapse -> neuron -> shift -> delay; the first three in one kernel pass where the
        neuron family has one (``neuron.pooled_forward``) and the synapse allows it
        (:meth:`~loihi_slayer.synapse.Pool.tiled_sum`): a pool with no gradient to compute,
        such as a network's first block on input data, or any pool in evaluation."""
        fused = getattr(self.neuron, "pooled_forward", None)
        if fused is not None and x.device.type == "cpu" and _plain_call(x):
            tiled = self.synapse.tiled_sum(self._check_input(x))
            s = None if tiled is None else fused(x, *tiled, self.delay_shift)
            if s is not None:
                return self._log(s if self.delay is None else self.delay(s))
        return super().forward(x)

    def to_layer(self) -> hdf5.Layer:
        return self._layer_class(
            self._need_shape(),
            kernel_size=tuple(self.synapse.kernel_size[:2]),
            neuron=self._neuron_record(),
            delay=self._delay_record(),
            **self._layer_weights(),
            **self._syn_geometry(),
        )


class AbstractUnpool(AbstractPool):
    """Sum-unpooling block: per-channel transposed convolution with a fixed kernel."""

    forward = _SpatialBlock.forward

    _synapse_class = _UnpoolSyn

    _out_size = staticmethod(conv_transpose_output_size)

    _layer_class = hdf5.UnpoolLayer

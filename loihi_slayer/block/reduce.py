"""Blocks without a synapse: flatten, average, time decimation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .. import hdf5
from ..errors import ParameterError
from .core import (
    Block,
)

# ========================================================================= stateless


class AbstractFlatten(Block):
    """Flatten ``(N, C, H, W, T)`` to ``(N, C·H·W, T)``; exported as ``flatten [C·H·W, 1, 1]``."""

    def __init__(self, count_log: bool = False, *, input_shape: Sequence[int] | None = None):
        super().__init__()
        self.count_log = bool(count_log)
        self.input_shape: tuple[int, ...] | None = None
        if input_shape is not None:
            self.init_shapes(input_shape)

    @property
    def shape(self) -> tuple[int, ...] | None:
        return None if self.input_shape is None else (math.prod(self.input_shape), 1, 1)

    def init_shapes(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        self.input_shape = tuple(int(s) for s in input_shape)
        return (math.prod(self.input_shape),)

    def forward(self, x: torch.Tensor):
        """Reshape to ``(N, -1, T)``."""
        self._check_tensor(x)
        if x.dim() < 3:
            raise self._shape_error("(N, C, ..., T)", x)
        if self.input_shape is None:
            self.init_shapes(x.shape[1:-1])
        elif tuple(x.shape[1:-1]) != self.input_shape:
            raise self._shape_error(f"(N, {', '.join(map(str, self.input_shape))}, T)", x)
        y = x.reshape(x.shape[0], -1, x.shape[-1])
        return (y, None) if self.count_log else y

    def to_layer(self) -> hdf5.FlattenLayer:
        return hdf5.FlattenLayer(self._need_shape())


class AbstractAverage(Block):
    """Population average: mean over ``num_outputs`` contiguous groups of the flattened input.

    Output ``(N, num_outputs, T)``. Exported as ``average`` with ``shape =
    (num_outputs, 1, 1)``; the chip sums (training mean = sum / group size).
    """

    def __init__(self, num_outputs: int, count_log: bool = False) -> None:
        super().__init__()
        if isinstance(num_outputs, bool) or int(num_outputs) < 1:
            raise ParameterError(f"{self.block_name}: num_outputs must be >= 1, got {num_outputs}")
        self.num_outputs = int(num_outputs)
        self.count_log = bool(count_log)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.num_outputs, 1, 1)

    def init_shapes(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        n = math.prod(int(s) for s in input_shape)
        if n % self.num_outputs:
            raise ParameterError(
                f"{self.block_name}: {n} inputs cannot be split into {self.num_outputs} groups"
            )
        return (self.num_outputs,)

    def forward(self, x: torch.Tensor):
        """Group mean."""
        self._check_tensor(x)
        if x.dim() < 3 or (x[0, ..., 0].numel() % self.num_outputs):
            raise self._shape_error(
                f"(N, C, ..., T) with C·H·W a multiple of {self.num_outputs}", x
            )
        y = torch.mean(x.reshape(x.shape[0], self.num_outputs, -1, x.shape[-1]), dim=2)
        return (y, None) if self.count_log else y

    def to_layer(self) -> hdf5.AverageLayer:
        return hdf5.AverageLayer(self.shape)


class AbstractTimeDecimation(Block):
    """Time decimation: mean over ``factor`` consecutive steps (zero padded at the end).

    ``y[..., k] = mean(x[..., k·f : (k+1)·f])``, as lava-dl. Exported as
    ``decimate`` with ``factor``; the chip sums (training mean = sum / factor).
    """

    def __init__(self, factor: int, count_log: bool = False) -> None:
        super().__init__()
        f = int(factor)
        if f < 1 or f & (f - 1):
            raise ParameterError(
                f"{self.block_name}: factor must be a power of 2 >= 1, got {factor}"
            )
        self.factor = f
        self.count_log = bool(count_log)
        self.input_shape: tuple[int, ...] | None = None

    @property
    def shape(self) -> tuple[int, ...] | None:
        return self.input_shape

    def init_shapes(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        self.input_shape = tuple(int(s) for s in input_shape)
        return self.input_shape

    def forward(self, x: torch.Tensor):
        """Decimate the time axis."""
        self._check_tensor(x)
        if x.dim() < 3:
            raise self._shape_error("(N, C, ..., T)", x)
        if self.input_shape is None:
            self.init_shapes(x.shape[1:-1])
        pad = -x.shape[-1] % self.factor
        xp = F.pad(x, (0, pad))
        y = xp.reshape(*xp.shape[:-1], xp.shape[-1] // self.factor, self.factor).mean(-1)
        return (y, None) if self.count_log else y

    def to_layer(self) -> hdf5.TimeDecimationLayer:
        return hdf5.TimeDecimationLayer(self._need_shape(), self.factor)

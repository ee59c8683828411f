"""The input block."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import hdf5
from ..errors import ParameterError
from .core import (
    Block,
)

# ============================================================================= input


class AbstractInput(Block):
    """Input block: optional neuron on the (affine-transformed) input, then the shift.

    Parameters
    ----------
    neuron_params
        Neuron parameters, or None for a pass-through input (only the shift).
    weight, bias
        Learnable scalar affine transform ``z = Q(x)·Q(w) + Q(b)`` (None: off).
    delay_shift
        Shift the output by one step (CUBA default True; sigma-delta default False).
    count_log
        Also return the mean event rate.
    shape
        Keyword only: neuron shape ``(C,)`` or ``(C, H, W)`` (else learnt from
        the first input or :meth:`init_shapes`; input blocks create no
        shape-dependent parameters).
    """

    def __init__(
        self,
        neuron_params: dict | None = None,
        weight: float | None = None,
        bias: float | None = None,
        delay_shift: bool | None = None,
        count_log: bool = False,
        *,
        shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.count_log = bool(count_log)
        self.delay_shift = self._resolve_delay_shift(delay_shift)
        self.delay = None
        self.neuron = None if neuron_params is None else self._make_neuron(neuron_params)
        self.weight = None if weight is None else torch.nn.Parameter(torch.tensor([float(weight)]))
        self.bias = None if bias is None else torch.nn.Parameter(torch.tensor([float(bias)]))
        self.input_shape: tuple[int, ...] | None = None
        if shape is not None:
            self.init_shapes(shape)

    def pre_hook_fx(self, x: torch.Tensor, descale: bool = False) -> torch.Tensor:
        """The input quantizer: the neuron's ``quantize_8bit`` (identity without a neuron)."""
        if self.neuron is None:
            return x
        return self.neuron.quantize_8bit(x, descale=descale)

    @property
    def shape(self) -> tuple[int, ...] | None:
        if self.neuron is not None and self.neuron.shape is not None:
            return tuple(self.neuron.shape)
        return self.input_shape

    def init_shapes(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        shp = tuple(int(s) for s in input_shape)
        if self.input_shape is not None and self.input_shape != shp:
            raise ParameterError(
                f"{self.block_name}: shape already set to {self.input_shape}, got {shp}"
            )
        self.input_shape = shp
        if self.neuron is not None and self.neuron.shape is None:
            self.neuron.init_shape(shp)
        return shp

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        z = self.pre_hook_fx(x)
        if self.weight is not None:
            z = z * self.pre_hook_fx(self.weight)
        if self.bias is not None:
            z = z + self.pre_hook_fx(self.bias)
        return z

    def _check_input(self, x: torch.Tensor) -> None:
        self._check_tensor(x)
        if x.dim() not in (3, 5):
            raise self._shape_error("(N, C, T) or (N, C, H, W, T)", x)
        if self.shape is None:
            self.init_shapes(x.shape[1:-1])
        elif tuple(x.shape[1:-1]) != self.shape:
            raise self._shape_error(f"(N, {', '.join(map(str, self.shape))}, T)", x)

    def forward(self, x: torch.Tensor):
        """Quantize/transform, run the neuron (if any), shift."""
        self._check_input(x)
        if self.neuron is not None:
            x = self._run_neuron(self._transform(x))
        return self._log(self._post(x))

    def _run_neuron(self, z: torch.Tensor) -> torch.Tensor:
        return self.neuron(z)

    def to_layer(self) -> hdf5.InputLayer:
        shape = self._need_shape()
        if self.neuron is None:
            return hdf5.InputLayer(shape)
        if getattr(self.neuron, "norm", None) is not None:
            # a netx input layer has no neuron bias (its weight/bias are never applied)
            raise ParameterError(
                f"{self.block_name}: the input neuron's norm has no chip equivalent (a netx "
                f"input layer carries no neuron bias); build the Input block without 'norm'"
            )

        def scalar(p: torch.nn.Parameter | None, field: str) -> int | None:
            if p is None:
                return None
            with torch.no_grad():
                m = (
                    self.pre_hook_fx(p.detach().to(torch.float64)).cpu().numpy()
                    * self.neuron.w_scale
                )
            return int(self._grid(m, field)[0])

        return hdf5.InputLayer(
            shape,
            neuron=self._neuron_record(),
            weight=scalar(self.weight, "weight"),
            bias=scalar(self.bias, "bias"),
        )

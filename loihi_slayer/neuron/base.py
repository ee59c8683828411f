"""Shared machinery of the training neurons: scales, shapes, input checks."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch

from ..errors import ParameterError, ParameterTypeError
from ..fixed.params import VTH_MANT_MAX
from ..quantize import REFUSE_NON_FINITE, quantize_8bit

logger = logging.getLogger(__name__)


def check_finite_float(name: str, value: float) -> float:
    """A finite real scalar, or a :class:`ParameterError` naming ``name``."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ParameterTypeError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(f):
        raise ParameterError(f"{name} must be finite, got {value!r}")
    return f


class Neuron(torch.nn.Module):
    """Base class: lava-dl scales (``w_scale = scale``, ``s_scale = 64 * scale``,
    ``p_scale = 4096``), the quantized threshold, shape handling and input checks.

    The neuron shape (``(C,)`` or ``(C, H, W)``) is set at construction
    (``shape=``) or with :meth:`init_shape` before the model is wrapped in
    DistributedDataParallel. A neuron whose parameters are all shared may
    also learn its shape from the first input (this creates no parameters);
    per-channel neurons (``shared_param=False``) require an explicit shape.
    """

    def __init__(
        self,
        threshold: float,
        tau_grad: float = 1.0,
        scale_grad: float = 1.0,
        scale: int = 1 << 6,
        persistent_state: bool = False,
        shared_param: bool = True,
        requires_grad: bool = False,
        shape: Sequence[int] | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ParameterError(f"scale must be a positive integer, got {scale!r}")
        self.p_scale = 1 << 12
        self.w_scale = int(scale)
        self.s_scale = int(scale) * (1 << 6)
        thr = check_finite_float("threshold", threshold)
        if thr < 0:
            raise ParameterError(f"threshold must be >= 0, got {thr}")
        if int(thr * self.w_scale) > VTH_MANT_MAX:  # refuse at construction, not at export
            raise ParameterError(
                f"{type(self).__module__.replace('loihi_slayer.', '')}.{type(self).__name__}: "
                f"threshold = {thr!r} gives vThMant = {int(thr * self.w_scale)} "
                f"(trunc(threshold * scale)), outside the 17-bit range [0, {VTH_MANT_MAX}] "
                f"(largest threshold at scale {self.w_scale}: {VTH_MANT_MAX / self.w_scale:g})"
            )
        self._threshold = int(thr * self.w_scale) / self.w_scale
        self.tau_grad = check_finite_float("tau_grad", tau_grad)
        self.scale_grad = check_finite_float("scale_grad", scale_grad)
        self.persistent_state = bool(persistent_state)
        self.shared_param = bool(shared_param)
        self.requires_grad = bool(requires_grad)
        self.backend = backend
        self.shape: tuple[int, ...] | None = None
        if shape is not None:
            self._set_shape(shape)

    # ------------------------------------------------------------------ shape
    def _set_shape(self, shape: Sequence[int]) -> None:
        shp = tuple(int(s) for s in shape)
        if len(shp) == 0 or any(s < 1 for s in shp):
            raise ParameterError(
                f"{type(self).__module__}.{type(self).__name__}: neuron shape must be (C,) or "
                f"(C, H, W) with positive sizes, got {tuple(shape)}"
            )
        self.shape = shp

    def init_shape(self, shape: Sequence[int]) -> None:
        """Fix the neuron shape (without batch and time) and size per-channel parameters."""
        if self.shape is not None and tuple(shape) != self.shape:
            raise ParameterError(
                f"{type(self).__name__}: shape already set to {self.shape}, got {tuple(shape)}"
            )
        self._set_shape(shape)

    @property
    def num_neurons(self) -> int | None:
        """Number of neurons (``prod(shape)``) or None before the shape is known."""
        return None if self.shape is None else math.prod(self.shape)

    def _check_input(self, x: torch.Tensor) -> None:
        if (
            isinstance(x, torch.Tensor)
            and x.is_floating_point()
            and self.shape is not None
            and x.dim() >= 3
            and x.shape[1:-1] == self.shape
        ):
            return  # the common case, in a few attribute reads
        name = f"{type(self).__module__}.{type(self).__name__}"
        if not isinstance(x, torch.Tensor):
            raise ParameterTypeError(f"{name}: input must be a torch.Tensor, got {type(x)}")
        if not x.is_floating_point():
            raise ParameterTypeError(f"{name}: input must be a float tensor, got {x.dtype}")
        if x.dim() < 3:
            raise ParameterError(
                f"{name}: expected input (N, C, T) or (N, C, H, W, T), found shape {tuple(x.shape)}"
            )
        if self.shape is None:
            if not self.shared_param:
                raise ParameterError(
                    f"{name}: shared_param=False needs the neuron shape before the first "
                    f"forward; pass shape=... or call init_shape(shape)"
                )
            self.init_shape(x.shape[1:-1])
        elif tuple(x.shape[1:-1]) != self.shape:
            raise ParameterError(
                f"{name}: expected input shape (N, {', '.join(map(str, self.shape))}, T), "
                f"found {tuple(x.shape)}"
            )

    # ------------------------------------------------------------ properties
    @property
    def threshold(self) -> float:
        """Threshold quantized to the mantissa grid: ``trunc(θ * scale) / scale``."""
        return self._threshold

    @property
    def v_th_mant(self) -> int:
        """Threshold mantissa ``vThMant = trunc(θ * scale)``."""
        return int(self._threshold * self.w_scale)

    @property
    def scale(self) -> int:
        """Weight scale (lava-dl ``w_scale``)."""
        return self.w_scale

    @property
    def weight_exponent(self) -> int:
        """``log2(s_scale / w_scale) - 6`` (0 for every lava-dl neuron)."""
        return int(math.log2(self.s_scale // self.w_scale) - 6)

    def quantize_8bit(self, weight: torch.Tensor, descale: bool = False) -> torch.Tensor:
        """lava-dl's weight quantizer for this neuron (use as a synapse ``pre_hook_fx``)."""
        return quantize_8bit(weight, self.w_scale, descale)

    @staticmethod
    def _channels(shape: tuple[int, ...]) -> tuple[int, int]:
        return shape[0], math.prod(shape[1:])


# the quantizer refuses NaN/inf weights itself (no second pass in the synapse)
REFUSE_NON_FINITE.add(Neuron.quantize_8bit)

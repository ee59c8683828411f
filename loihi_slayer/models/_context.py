"""What a model's ``from_record`` hook learns about the layer it runs in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LayerContext", "per_channel"]


def per_channel(value: Any, shape: tuple[int, ...]) -> Any:
    """A scalar as is; a per-channel ``(C,)`` vector broadcast over ``(C, H, W)`` neurons."""
    arr = np.asarray(value)
    if arr.ndim == 0 or arr.size == 1:
        return arr.reshape(()).item() if arr.size == 1 else arr
    if len(shape) > 1 and arr.size == shape[0]:
        return arr.reshape((shape[0],) + (1,) * (len(shape) - 1))
    return arr.reshape(shape) if arr.size == int(np.prod(shape)) else arr


@dataclass(frozen=True)
class LayerContext:
    """The layer a neuron record belongs to, as the emulator sees it.

    Attributes
    ----------
    index
        Layer index (for error messages: ``layer <i> (<type>)``).
    type_name
        The layer's file type (``'dense'``, ``'conv'``, ...).
    shape
        Neuron shape.
    bias
        The layer's bias mantissas (or an injected per-neuron input), or None.
    is_input
        True for an ``input`` layer.
    spike_exp
        Sigma-delta ``spike_exp`` (netx's network argument).
    """

    index: int
    type_name: str
    shape: tuple[int, ...]
    bias: Any = None
    is_input: bool = False
    spike_exp: int = 6

    @property
    def where(self) -> str:
        return f"layer {self.index} ({self.type_name})"

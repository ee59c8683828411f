"""Residual block (lava-dl ``slayer.block.base.AbstractResidual``) and ``step_delay``."""

from __future__ import annotations

import torch

from ..errors import ParameterError
from ..spike import shift


def step_delay(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One-step delay of ``x`` (the chip's layer-to-layer latency), lava-dl ``step_delay``.

    With a persistent neuron state (``module.neuron.persistent_state``) the last
    bin of the previous call fills index 0 (kept in ``module.delay_buffer``,
    reset when the batch size changes); otherwise index 0 is zero.
    """
    neuron = getattr(module, "neuron", None)
    persistent = bool(getattr(neuron, "persistent_state", False))
    last = getattr(module, "delay_buffer", None)
    if last is not None and last.shape != x[..., -1].shape:
        last = None
    y = shift(x, last if persistent else None)
    if persistent:
        module.delay_buffer = x[..., -1].detach().clone()
    return y


class AbstractResidual(torch.nn.Module):
    r"""Residual connection around a block or sequence of blocks: :math:`y = f(x) + g(x)`.

    ``g`` is ``shortcut`` (identity when None). Training only: a residual sum
    has no netx layer, so :meth:`export_hdf5` raises.

    Parameters
    ----------
    *args
        The modules of ``f``, applied in order (or one ``torch.nn.Sequential``).
    shortcut
        Keyword only: module ``g`` (None: identity).
    """

    def __init__(self, *args: torch.nn.Module, shortcut: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(args)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x) + g(x)`` (a ``(y, count)`` pair from a block keeps only ``y``)."""
        y = x
        for b in self.blocks:
            y = b(y)
            if isinstance(y, tuple):
                y = y[0]
        skip = x if self.shortcut is None else self.shortcut(x)
        if skip.shape != y.shape:
            raise ParameterError(
                f"block.base.AbstractResidual: branch output {tuple(y.shape)} and shortcut "
                f"{tuple(skip.shape)} differ"
            )
        return y + skip

    def export_hdf5(self, handle) -> None:
        """Refused: netx has no residual layer."""
        raise ParameterError("block.base.AbstractResidual: netx has no residual layer to export")

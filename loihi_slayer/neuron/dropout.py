"""Neuron dropout (lava-dl semantics: one Bernoulli draw per neuron for the whole window)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ParameterError


class Dropout(torch.nn.Module):
    r"""Drop whole neurons for all time steps and scale survivors by :math:`1/(1-p)`.

    Input ``(N, C, ..., T)``. Identity in eval mode. Not part of the deployed
    network: a model trained with dropout matches hardware only in eval mode.

    Parameters
    ----------
    p
        Drop probability in ``[0, 1)``.
    inplace
        Operate in place.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ParameterError(f"Dropout: p = {p!r} is outside [0, 1)")
        self.p = float(p)
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply neuron dropout."""
        if not self.training or self.p == 0.0:
            return x
        shape = x.shape
        y = F.dropout3d(x.reshape(shape[0], -1, 1, 1, shape[-1]), self.p, True, self.inplace)
        return y.reshape(shape)

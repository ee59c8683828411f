r"""Dendrite: the sigma accumulator :math:`\sigma[t] = \sigma[t-1] + x[t]` (lava-dl ``Sigma``).

The cumulative sum is computed in float64 (exact for inputs on a
:math:`2^{-18}` grid up to :math:`2^{35}`), and returned in the input dtype;
float32 outputs are exact only while the sums fit 24 significant bits, so
feed float64 (``synapse(..., exact=True)``) when the sums must be exact.
"""

from __future__ import annotations

import torch

from ..autograd.op import check_finite
from ..errors import ParameterError


class Sigma(torch.nn.Module):
    """Sigma (integrating) dendrite, time-last, with optional persistent state."""

    def __init__(self, persistent_state: bool = False) -> None:
        super().__init__()
        self.persistent_state = persistent_state
        self.pre_state: torch.Tensor | None = None

    @property
    def device_params(self) -> dict:
        """lava-dl export (``sigma_output``)."""
        return {"type": "SDNN", "sigma_output": True}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``cumsum(x, -1)`` plus the persisted last sum."""
        if x.dim() < 3:
            raise ParameterError(
                f"dendrite.Sigma: expected input (N, C, ..., T), found {tuple(x.shape)}"
            )
        check_finite(x, "dendrite.Sigma: input contains NaN/inf")
        y = torch.cumsum(x.to(torch.float64), dim=-1)
        if self.persistent_state:
            if self.pre_state is not None and self.pre_state.shape == x.shape[:-1]:
                y = y + self.pre_state.unsqueeze(-1)
            self.pre_state = y[..., -1].detach().clone()
        return y.to(x.dtype)


__all__ = ["Sigma"]

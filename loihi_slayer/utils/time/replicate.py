"""Replicate a tensor in time (lava-dl ``slayer.utils.time.replicate``)."""

from __future__ import annotations

import torch

from ...errors import ParameterError

__all__ = ["replicate"]


def replicate(input: torch.Tensor, num_steps: int) -> torch.Tensor:
    """``input`` repeated ``num_steps`` times along a new last (time) axis.

    Examples
    --------
    >>> replicate(torch.rand(2, 3, 4), 10).shape
    torch.Size([2, 3, 4, 10])
    """
    if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
        raise ParameterError(f"replicate: num_steps = {num_steps!r} must be an integer >= 1")
    return input.unsqueeze(-1).expand(*input.shape, int(num_steps)).contiguous()

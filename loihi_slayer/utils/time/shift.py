"""Shift a tensor in time (lava-dl ``slayer.utils.time.shift``, slayerPytorch ``shift``)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["shift"]


def shift(input: torch.Tensor, shift_val: Any, sampling_time: float = 1) -> torch.Tensor:
    """Delay ``input`` along time by ``trunc(shift_val / sampling_time)`` bins, zero fill.

    Parameters
    ----------
    input
        tensor, time last.
    shift_val
        scalar, or tensor broadcastable to ``input.shape[1:-1]`` (per neuron,
        shared over the batch) or ``input.shape[:-1]``. Negative values shift
        earlier.
    sampling_time
        sampling time of ``shift_val``.

    Returns
    -------
    torch.Tensor
        shifted tensor (same shape); the gradient is the inverse shift.
    """
    x = input
    steps = x.shape[-1]
    if not torch.is_tensor(shift_val) or shift_val.numel() == 1:
        d = float(shift_val.item() if torch.is_tensor(shift_val) else shift_val)
        n = int(d / sampling_time)
        if n == 0:
            return x.clone()
        out = torch.zeros_like(x)
        if abs(n) >= steps:
            return out
        if n > 0:
            out[..., n:] = x[..., : steps - n]
        else:
            out[..., : steps + n] = x[..., -n:]
        return out
    d = shift_val.detach().to(x.device)
    n = torch.trunc(d / sampling_time).to(torch.long)
    if n.dim() == x.dim() - 2:
        n = n.unsqueeze(0)
    n = n.expand(x.shape[:-1])
    idx = torch.arange(steps, device=x.device) - n[..., None]
    valid = (idx >= 0) & (idx < steps)
    out = torch.gather(x, -1, idx.clamp(0, steps - 1))
    return out * valid.to(x.dtype)

"""Miscellaneous helpers (lava-dl ``slayer.utils.utils``)."""

from __future__ import annotations

import torch

from ..errors import ParameterError

__all__ = ["diagonal_mask", "dotdict", "event_rate", "staticproperty"]


class dotdict(dict):
    """A dict whose keys are also attributes (``d.key`` is ``d.get('key')``)."""

    __getattr__ = dict.get
    __setattr__ = dict.__setitem__
    __delattr__ = dict.__delitem__


class staticproperty(property):
    """A property of the class, computed by a function without arguments."""

    def __get__(self, instance, owner=None):
        return self.fget()


def diagonal_mask(dim: int, num_diagonals: int) -> torch.Tensor:
    """``(dim, dim)`` mask of ones on the main diagonal and ``num_diagonals // 2`` on each side.

    Parameters
    ----------
    dim
        size of the square mask.
    num_diagonals
        number of diagonals (1 gives the identity; even numbers act as the next
        lower odd number, as lava-dl).
    """
    if int(num_diagonals) < 1:
        raise ParameterError(f"diagonal_mask: num_diagonals = {num_diagonals!r} must be >= 1")
    i = torch.arange(int(dim))
    return ((i[:, None] - i[None, :]).abs() <= int(num_diagonals) // 2).to(torch.float32)


def event_rate(x: torch.Tensor) -> float:
    """Fraction of non-zero entries, ignoring the first time step when there are several."""
    y = x if x.shape[-1] == 1 else x[..., 1:]
    return float(torch.mean((y != 0).to(torch.float32)))

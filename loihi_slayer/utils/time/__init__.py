"""Time-axis helpers (lava-dl ``slayer.utils.time``): replicate, shift."""

from .replicate import replicate
from .shift import shift

__all__ = ["replicate", "shift"]

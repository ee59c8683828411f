"""Synapse layers (lava-dl API): Dense, Conv, Pool, ConvTranspose, Unpool."""

from .._numba_cache import guard_cache_writes
from . import complex as complex
from .layer import Conv, ConvTranspose, Dense, Pool, Unpool

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = ["Conv", "ConvTranspose", "Dense", "Pool", "Unpool"]

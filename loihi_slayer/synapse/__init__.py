"""Synapse layers (lava-dl API): Dense, Conv, Pool, ConvTranspose, Unpool."""

from . import complex as complex
from .layer import Conv, ConvTranspose, Dense, Pool, Unpool

__all__ = ["Conv", "ConvTranspose", "Dense", "Pool", "Unpool"]

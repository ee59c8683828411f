"""Synapse layers (lava-dl API): Dense, Conv, Pool, ConvTranspose, Unpool."""

from .layer import Conv, ConvTranspose, Dense, Pool, Unpool

__all__ = ["Conv", "ConvTranspose", "Dense", "Pool", "Unpool"]

"""loihi_slayer: bit-accurate Loihi fixed-point kernels, emulator and SNN training."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

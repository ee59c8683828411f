"""loihi_slayer: bit-accurate Loihi fixed-point kernels, emulator and SNN training."""

from __future__ import annotations

from ._version import __version__

__all__ = ["__version__"]

"""Time-axis filtering (lava-dl ``slayer.utils.filter``): conv, corr, FIR, FIRBank."""

from .conv import conv, corr
from .fir import FIR, FIRBank

__all__ = ["FIR", "FIRBank", "conv", "corr"]

"""Emulate netx HDF5 networks on the integer kernels and record per-layer traces."""

from .emulator import SUPPORTED_TYPES, Emulator, LayerTraces, Traces, netx_reset_masks

__all__ = ["SUPPORTED_TYPES", "Emulator", "LayerTraces", "Traces", "netx_reset_masks"]

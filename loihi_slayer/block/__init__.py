"""SLAYER blocks (lava-dl ``slayer.block`` API) whose forward is the deployed chip.

:mod:`.cuba` and :mod:`.sigma_delta` hold the blocks; :func:`init_shapes`
fixes the shapes of a whole sequence of blocks before training;
:func:`export_network` writes a netx ``.net`` file atomically (through the
:mod:`loihi_slayer.hdf5` schema); :func:`network_record` returns the schema
record without writing.
"""

from . import base, cuba, sigma_delta
from .base import (
    Block,
    GapReport,
    compare_with_emulator,
    export_network,
    init_shapes,
    network_record,
)

__all__ = [
    "Block",
    "GapReport",
    "compare_with_emulator",
    "base",
    "cuba",
    "export_network",
    "init_shapes",
    "network_record",
    "sigma_delta",
]

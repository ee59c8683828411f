"""SLAYER blocks (lava-dl ``slayer.block`` API) whose forward is the deployed chip.

:mod:`.cuba`, :mod:`.alif`, :mod:`.rf`, :mod:`.rf_iz`, :mod:`.adrf`, :mod:`.adrf_iz` and
:mod:`.sigma_delta` hold the blocks; :func:`init_shapes`
fixes the shapes of a whole sequence of blocks before training;
:func:`export_network` writes a netx ``.net`` file atomically (through the
:mod:`loihi_slayer.hdf5` schema); :func:`network_record` returns the schema
record without writing. :func:`compare_with_emulator` (from
:mod:`loihi_slayer.gap`) is loaded on first use, so importing the blocks does
not import the emulator.
"""

from typing import Any

from . import adrf, adrf_iz, alif, base, cuba, rf, rf_iz, sigma_delta
from .core import Block
from .network import export_network, init_shapes, network_record

__all__ = [
    "Block",
    "adrf",
    "adrf_iz",
    "alif",
    "base",
    "cuba",
    "export_network",
    "init_shapes",
    "network_record",
    "rf",
    "rf_iz",
    "sigma_delta",
]


def __getattr__(name: str) -> Any:
    if name in ("GapReport", "compare_with_emulator"):
        from .. import gap

        return getattr(gap, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

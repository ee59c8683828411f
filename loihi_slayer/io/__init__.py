"""Spike event input/output: the :class:`Event` container, binary spike files
(``.bs1``, ``.bs2``, ``.bs3``, ``.bsn``), numpy and tonic event arrays
(:mod:`loihi_slayer.io.tonic`) and plotting.

Plotting (:mod:`loihi_slayer.io.plot`) needs the optional ``matplotlib``
(``pip install loihi_slayer[plot]``) and is imported lazily.
"""

from __future__ import annotations

from .binary import (
    SpikeCountRegions,
    encode_1d_num_spikes,
    encode_1d_spikes,
    encode_2d_spikes,
    encode_3d_spikes,
    encode_nd_spikes,
    encode_np_spikes,
    encode_spikes,
    read_1d_num_spikes,
    read_1d_spikes,
    read_2d_spikes,
    read_3d_spikes,
    read_nd_spikes,
    read_np_spikes,
    read_spikes,
)
from .events import TIME_UNITS, Event, tensor_to_event
from .tonic import TONIC_DTYPE, from_tonic, to_tonic

__all__ = [
    "Event",
    "tensor_to_event",
    "TIME_UNITS",
    "TONIC_DTYPE",
    "from_tonic",
    "to_tonic",
    "SpikeCountRegions",
    "read_1d_spikes",
    "encode_1d_spikes",
    "read_2d_spikes",
    "encode_2d_spikes",
    "read_3d_spikes",
    "encode_3d_spikes",
    "read_nd_spikes",
    "encode_nd_spikes",
    "read_1d_num_spikes",
    "encode_1d_num_spikes",
    "read_np_spikes",
    "encode_np_spikes",
    "read_spikes",
    "encode_spikes",
    "data_path",
]


def data_path(name: str = "") -> str:
    """Path of a file shipped in ``loihi_slayer/data`` (e.g. ``'input.bs1'``)."""
    import os

    return os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", name)


def __getattr__(name: str):  # lazy access to the plotting submodule
    if name == "plot":
        import importlib

        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

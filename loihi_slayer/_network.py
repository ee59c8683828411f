"""The one coercion of "a network" for tools that accept blocks, a record or a file."""

from __future__ import annotations

import os
from typing import Any

from . import hdf5


def as_network(net: Any) -> hdf5.Network:
    """A :class:`~loihi_slayer.hdf5.Network` from a record, a ``.net`` path or blocks.

    Blocks (anything :func:`loihi_slayer.block.network_record` accepts) are
    converted without being modified.
    """
    if isinstance(net, hdf5.Network):
        return net
    if isinstance(net, (str, os.PathLike)):
        return hdf5.load_network(net)
    from .block import network_record

    return network_record(net)

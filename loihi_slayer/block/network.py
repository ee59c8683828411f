"""Whole-network helpers: shapes of a sequence of blocks, its schema record, atomic export."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence

import torch

from .. import hdf5
from ..errors import LoihiSlayerError, ParameterTypeError
from .core import (
    Block,
    log,
)
from .reduce import AbstractAverage, AbstractFlatten, AbstractTimeDecimation

# ============================================================================ network


def _blocks(blocks: torch.nn.Module | Iterable[torch.nn.Module]) -> list[Block]:
    if isinstance(blocks, Block):
        items = [blocks]
    elif isinstance(blocks, torch.nn.Module) and hasattr(blocks, "blocks"):
        items = list(blocks.blocks)
    elif isinstance(blocks, (torch.nn.Sequential, torch.nn.ModuleList)):
        items = list(blocks)
    else:
        items = list(blocks)
    for i, b in enumerate(items):
        if not isinstance(b, Block):
            raise ParameterTypeError(
                f"block {i} is a {type(b).__name__}, not a loihi_slayer block; only "
                f"loihi_slayer.block.cuba / sigma_delta blocks can be exported"
            )
    return items


def init_shapes(blocks, input_shape: Sequence[int]) -> tuple[int, ...]:
    """Propagate ``input_shape`` (no batch, no time) through a sequence of blocks.

    The one explicit shape call to make before training (and before wrapping the
    model in DistributedDataParallel). Returns the output shape.
    """
    shp = tuple(int(s) for s in input_shape)
    for b in _blocks(blocks):
        shp = tuple(b.init_shapes(shp))
    return shp


def network_record(blocks, simulation: hdf5.Simulation | None = None) -> hdf5.Network:
    """The :class:`~loihi_slayer.hdf5.Network` record of a sequence of blocks (blocks unchanged).

    Parameters
    ----------
    blocks
        ``torch.nn.Sequential``, ``ModuleList``, a module with a ``blocks``
        attribute (lava-dl's network convention) or any iterable of blocks.
    simulation
        Optional legacy ``simulation`` group.
    """
    layers = []
    items = _blocks(blocks)
    for i, b in enumerate(items):
        try:
            layer = b.to_layer()
        except LoihiSlayerError as exc:
            raise type(exc)(f"layer {i}: {exc}") from None
        if isinstance(layer, hdf5.TimeDecimationLayer):
            layer.latency = _decimation_latency(items[:i])
        layers.append(layer)
    return hdf5.Network(layers, simulation)


def _decimation_latency(before: list[Block]) -> int:
    """1 if the nearest block with a neuron before a decimation shifts its output by
    one step (``delay_shift``): its index n is then chip step n, one step earlier
    than an unshifted state, so the chip groups must start one step earlier."""
    for b in reversed(before):
        if isinstance(b, (AbstractFlatten, AbstractAverage, AbstractTimeDecimation)):
            continue
        return 1 if getattr(b, "delay_shift", False) else 0
    return 0


def export_network(
    blocks, path: str | os.PathLike[str], simulation: hdf5.Simulation | None = None
) -> hdf5.Network:
    """Export a whole sequence of blocks to a netx ``.net`` file, atomically.

    The records are built and validated first; the file is written to a
    temporary file beside ``path`` and renamed into place, so an error leaves
    no partial file (and an existing file untouched). The model is not changed.

    Returns
    -------
    Network
        The exported record.

    Raises
    ------
    ParameterError
        A parameter is outside the hardware range (message names the layer,
        block and field).
    OSError
        The destination cannot be written (message names the path).
    """
    net = network_record(blocks, simulation)
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            2, f"cannot export network: directory {directory!r} does not exist", target
        )
    if os.path.isdir(target):
        raise IsADirectoryError(21, "cannot export network: the path is a directory", target)
    try:
        hdf5.save_network(net, target)
    except PermissionError as exc:
        raise PermissionError(
            exc.errno, f"cannot export network: {directory!r} is not writable", target
        ) from None
    log.info("exported %d layers to %s", len(net.layers), target)
    if log.isEnabledFor(logging.INFO):  # the chip resource report, only when someone listens
        from ..resources import resource_report

        log.info("chip resources:\n%s", resource_report(net).table())
    return net

"""Write or read ONE netx layer record into/from an h5py group.

Blocks export themselves with ``block.export_hdf5(handle)`` where ``handle`` is
the ``layer/<i>`` group of a file being written (slayer's convention). This
module lets them do that through the schema records, with exactly the layout
:func:`loihi_slayer.hdf5.save_network` writes: it reuses the private planner of
:mod:`loihi_slayer.hdf5.netx`, so the two can never disagree.
"""

from __future__ import annotations

import h5py

from loihi_slayer.errors import ParameterError, ParameterTypeError
from loihi_slayer.hdf5 import netx as _netx
from loihi_slayer.hdf5.schema import LAYER_TYPES, Layer

__all__ = ["read_layer", "write_layer"]


def write_layer(group: h5py.Group, layer: Layer, index: int = 0) -> None:
    """Write one layer record into an (empty) h5py group.

    Parameters
    ----------
    group
        Destination group, e.g. ``file.create_group('layer/3')``.
    layer
        A schema layer record (:class:`~loihi_slayer.hdf5.schema.DenseLayer`, ...).
    index
        Layer index used in error messages only.

    Raises
    ------
    ParameterError, ParameterTypeError
        The record has out-of-range or mistyped fields (nothing is written), or
        the group already holds one of the datasets.
    """
    if not isinstance(group, h5py.Group):
        raise ParameterTypeError(f"write_layer: expected an h5py.Group, got {type(group)!r}")
    if type(layer) not in LAYER_TYPES.values():
        raise ParameterTypeError(f"write_layer: not a layer record: {type(layer)!r}")
    plan = _netx._Plan()
    _netx._plan_layer(plan, int(index), layer)
    prefix = f"layer/{int(index)}"
    for path in plan.items:
        rel = path[len(prefix) + 1 :]
        if rel in group:
            raise ParameterError(f"write_layer: {group.name}/{rel} already exists")
    sub = _netx._Plan()
    for path in sorted(plan.groups, key=lambda p: p.count("/")):
        if path.startswith(prefix + "/"):
            sub.group(path[len(prefix) + 1 :])
    for path, value in plan.items.items():
        sub.items[path[len(prefix) + 1 :]] = value
    sub.groups.discard("")
    _write_relative(group, sub)


def _write_relative(group: h5py.Group, plan: _netx._Plan) -> None:
    for path in sorted(plan.groups, key=lambda p: p.count("/")):
        if path and path not in group:
            group.create_group(path)
    str_dtype = h5py.string_dtype("utf-8")
    for path, value in plan.items.items():
        if isinstance(value, str) or getattr(getattr(value, "dtype", None), "kind", "") == "O":
            group.create_dataset(path, data=value, dtype=str_dtype)
        else:
            group.create_dataset(path, data=value)


def read_layer(group: h5py.Group) -> Layer:
    """Read one ``layer/<i>`` group back into a schema record.

    Parameters
    ----------
    group
        An h5py group written by :func:`write_layer` or slayer's ``export_hdf5``.

    Returns
    -------
    Layer
        The record.

    Raises
    ------
    FormatError
        The group is malformed or of an unknown type.
    """
    file = group.file.filename if group.file else "<memory>"
    g = _netx._Group(file, group, group.name)
    kind = g.string("type")
    if kind not in LAYER_TYPES:
        raise g.error(f"unknown layer type {kind!r}; known types: {sorted(LAYER_TYPES)}", "type")
    try:
        return _netx._read_layer(g, kind)
    except (ParameterError, ParameterTypeError) as exc:
        raise g.error(str(exc)) from exc

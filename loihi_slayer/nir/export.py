"""loihi_slayer -> NIR: layer records to nodes with the float view and exact metadata."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import hdf5
from .._network import as_network
from ..errors import ParameterError, UnsupportedLayerError
from ._common import (
    _SPIKE_LIMIT,
    DEFAULT_DT,
    META,
    W_SCALE,
    _full,
    _int_or_array,
    _nir,
    _pack_extra,
    _tau,
)


def _neuron_shape(layer: hdf5.Layer) -> tuple[int, ...]:
    """The NIR node shape: dense layers are 1-D even when the record says (N, 1, 1)."""
    shape = tuple(layer.shape)
    if isinstance(layer, (hdf5.DenseLayer, hdf5.InputLayer)) and len(shape) == 3:
        if shape[1:] == (1, 1):
            return (shape[0],)
    return shape


def _export_cuba(neuron: hdf5.CubaNeuron, layer: hdf5.Layer, dt: float, gain: Any = 1.0):
    """CubaLIF (or CubaLI for a never-spiking threshold) with the integer view as metadata."""
    nir = _nir()
    shape = _neuron_shape(layer)
    i_dec, v_dec = _full(neuron.i_decay, shape), _full(neuron.v_decay, shape)
    tau_syn, tau_mem = _tau(i_dec, dt), _tau(v_dec, dt)
    bias = getattr(layer, "bias", None)
    b = np.zeros(shape) if bias is None else _full(bias, shape) / W_SCALE
    v_leak = b * tau_mem / dt
    meta = {
        "iDecay": _int_or_array(neuron.i_decay),
        "vDecay": _int_or_array(neuron.v_decay),
        "vThMant": _int_or_array(neuron.v_th_mant),
        "refDelay": int(neuron.ref_delay),
        "gradedSpike": int(neuron.graded_spike),
        "wgtExp": int(neuron.wgt_exp),
        "neuronType": neuron.type,
    }
    if neuron.extra:
        meta["neuronExtra"] = _pack_extra(neuron.extra)
    if bias is not None:
        meta["bias"] = _int_or_array(bias)
    common = dict(
        tau_syn=tau_syn,
        tau_mem=tau_mem,
        r=tau_mem / dt,
        v_leak=v_leak,
        w_in=tau_syn / dt * np.asarray(gain, np.float64),
    )
    if np.all(np.asarray(neuron.v_th_mant) >= _SPIKE_LIMIT):
        return nir.CubaLI(**common, metadata={META: meta})
    v_th = _full(neuron.v_th_mant, shape) / W_SCALE
    return nir.CubaLIF(**common, v_threshold=v_th, v_reset=np.zeros(shape), metadata={META: meta})


#: neuron record type -> converter ``(neuron, layer, dt, gain) -> NIR node``
NEURON_EXPORTERS: dict[type, Callable[..., Any]] = {hdf5.CubaNeuron: _export_cuba}


def _neuron_node(i: int, layer: hdf5.Layer, dt: float, gain: Any = 1.0):
    neuron = layer.neuron
    if neuron is None:
        raise UnsupportedLayerError(
            f"NIR export: layer {i} ({layer.type_name}) has no neuron (netx's default "
            f"integrator), which NIR cannot describe"
        )
    conv = NEURON_EXPORTERS.get(type(neuron))
    if conv is None:
        kind = getattr(neuron, "type", type(neuron).__name__)
        raise UnsupportedLayerError(
            f"NIR export: layer {i} ({layer.type_name}) has neuron type {kind!r}, which has no "
            f"NIR converter (supported: {', '.join(t.__name__ for t in NEURON_EXPORTERS)})"
        )
    return conv(neuron, layer, dt, gain)


def _weight_float(w: np.ndarray, layer: hdf5.Layer) -> np.ndarray:
    exp = int(getattr(layer.neuron, "wgt_exp", 0) or 0)
    return np.asarray(w, np.float64) * 2.0**exp / W_SCALE


def _delay_node(layer: hdf5.Layer, dt: float, shape: tuple[int, ...]):
    delay = getattr(layer, "delay", None)
    if delay is None:
        return None
    d = np.asarray(delay, np.int64)
    return _nir().Delay(delay=_full(d, shape) * dt, metadata={META: {"delay": d}})


def _layer_meta(layer: hdf5.Layer) -> dict:
    meta = {"layerType": layer.type_name, "shape": np.asarray(layer.shape, np.int64)}
    if layer.extra:
        meta["layerExtra"] = _pack_extra(layer.extra)
    return meta


def _export_input(i: int, layer: hdf5.InputLayer, dt: float, in_shape) -> list:
    if layer.neuron is None:
        return []  # the graph's Input node carries the shape
    node = _neuron_node(i, layer, dt)
    node.metadata[META].update(_layer_meta(layer))
    if layer.weight is not None:  # the input transform's scale (its bias is the neuron's)
        node.metadata[META]["inputWeight"] = int(layer.weight)
    return [("neuron", node)]


def _export_dense(i: int, layer: hdf5.DenseLayer, dt: float, in_shape) -> list:
    nir = _nir()
    w = np.asarray(layer.weight, np.int64)
    syn = nir.Linear(weight=_weight_float(w, layer), metadata={META: {"weight": w}})
    neuron = _neuron_node(i, layer, dt)
    neuron.metadata[META].update(_layer_meta(layer))
    out = [("linear", syn), ("neuron", neuron)]
    delay = _delay_node(layer, dt, _neuron_shape(layer))
    return out + ([("delay", delay)] if delay is not None else [])


def _export_conv(i: int, layer: hdf5.ConvLayer, dt: float, in_shape) -> list:
    nir = _nir()
    w = np.asarray(layer.weight, np.int64)
    syn = nir.Conv2d(
        input_shape=tuple(int(s) for s in in_shape[-2:]),
        weight=_weight_float(w, layer),
        stride=tuple(layer.stride),
        padding=tuple(layer.padding),
        dilation=tuple(layer.dilation),
        groups=int(layer.groups),
        bias=np.zeros(w.shape[0]),
        metadata={META: {"weight": w}},
    )
    neuron = _neuron_node(i, layer, dt)
    neuron.metadata[META].update(_layer_meta(layer))
    out = [("conv", syn), ("neuron", neuron)]
    delay = _delay_node(layer, dt, _neuron_shape(layer))
    return out + ([("delay", delay)] if delay is not None else [])


def _export_pool(i: int, layer: hdf5.PoolLayer, dt: float, in_shape) -> list:
    nir = _nir()
    w = np.asarray(layer.weight, np.int64)
    if tuple(layer.dilation) != (1, 1) or np.unique(w).size != 1:
        raise UnsupportedLayerError(
            f"NIR export: layer {i} (pool) has dilation {tuple(layer.dilation)} or a non-uniform "
            f"kernel; NIR's SumPool2d has neither"
        )
    syn = nir.SumPool2d(
        kernel_size=np.asarray(layer.kernel_size),
        stride=np.asarray(layer.stride),
        padding=np.asarray(layer.padding),
        metadata={META: {"weight": w}},
    )
    # the fixed pooling weight is the neuron's input gain w_in
    neuron = _neuron_node(i, layer, dt, gain=_weight_float(w.reshape(-1)[0], layer))
    neuron.metadata[META].update(_layer_meta(layer))
    out = [("sumpool", syn), ("neuron", neuron)]
    delay = _delay_node(layer, dt, _neuron_shape(layer))
    return out + ([("delay", delay)] if delay is not None else [])


def _export_flatten(i: int, layer: hdf5.FlattenLayer, dt: float, in_shape) -> list:
    node = _nir().Flatten(
        input_type={"input": np.asarray(in_shape)},
        start_dim=0,
        end_dim=-1,
        metadata={META: _layer_meta(layer)},
    )
    return [("flatten", node)]


#: layer record type (exact type) -> converter ``(index, layer, dt, input shape) -> [(name, node)]``
LAYER_EXPORTERS: dict[type, Callable[..., list]] = {
    hdf5.InputLayer: _export_input,
    hdf5.DenseLayer: _export_dense,
    hdf5.ConvLayer: _export_conv,
    hdf5.PoolLayer: _export_pool,
    hdf5.FlattenLayer: _export_flatten,
}


def _input_shape(net: hdf5.Network, input_shape: Any) -> tuple[int, ...]:
    first = net.layers[0]
    if isinstance(first, hdf5.InputLayer):
        return _neuron_shape(first)
    if input_shape is not None:
        return tuple(int(s) for s in input_shape)
    if isinstance(first, hdf5.DenseLayer):
        return (int(first.weight.shape[1]),)
    raise ParameterError(
        f"NIR export: the first layer is {first.type_name!r} without an input layer; pass "
        f"input_shape=(C, H, W)"
    )


def _output_shape(layer: hdf5.Layer) -> tuple[int, ...]:
    if isinstance(layer, hdf5.FlattenLayer):
        return (math.prod(layer.shape),)
    return _neuron_shape(layer)


def export(net: Any, *, dt: float = DEFAULT_DT, input_shape: Any = None):
    """Convert a network to a :class:`nir.NIRGraph` (float view + exact integer metadata).

    Parameters
    ----------
    net
        Blocks (as for :func:`loihi_slayer.block.export_network`), a
        :class:`~loihi_slayer.hdf5.Network` record or a ``.net`` path. Blocks
        and records are not modified.
    dt
        Seconds per Loihi step in the float view (:data:`DEFAULT_DT`).
    input_shape
        ``(C, H, W)`` when the first layer is spatial and there is no input
        layer (as the emulator's ``input_shape``).

    Returns
    -------
    nir.NIRGraph
        A chain ``input -> layer nodes -> output``; node names start with the
        layer index (``"2_conv"``, ``"2_neuron"``, ``"2_delay"``).

    Raises
    ------
    UnsupportedLayerError
        A layer or neuron type has no NIR converter (the message names it).
    """
    nir = _nir()
    if not dt > 0:
        raise ParameterError(f"NIR export: dt must be > 0 seconds, got {dt!r}")
    network = as_network(net)
    if not network.layers:
        raise ParameterError("NIR export: the network has no layers")
    shape = _input_shape(network, input_shape)
    has_input_layer = isinstance(network.layers[0], hdf5.InputLayer)
    nodes: dict[str, Any] = {
        "input": nir.Input(
            input_type={"input": np.asarray(shape)},
            metadata={META: {"inputLayer": int(has_input_layer), "dt": float(dt)}},
        )
    }
    for i, layer in enumerate(network.layers):
        conv = LAYER_EXPORTERS.get(type(layer))
        if conv is None:
            raise UnsupportedLayerError(
                f"NIR export: layer {i} ({layer.type_name}) has no NIR converter (supported: "
                f"{', '.join(sorted(t.type_name for t in LAYER_EXPORTERS))})"
            )
        for name, node in conv(i, layer, dt, shape):
            nodes[f"{i}_{name}"] = node
        shape = _output_shape(layer)
    nodes["output"] = nir.Output(output_type={"output": np.asarray(shape)})
    names = list(nodes)
    edges = list(zip(names[:-1], names[1:], strict=True))
    gmeta: dict[str, Any] = {"dt": float(dt)}
    if network.simulation is not None:
        sim = network.simulation
        gmeta["simulation"] = {"ts": sim.ts} | (
            {} if sim.t_sample is None else {"tSample": sim.t_sample}
        )
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={META: gmeta})


def write(path: str | os.PathLike, net: Any, **kwargs: Any) -> Any:
    """:func:`export` ``net`` and write it with :func:`nir.write`; returns the graph."""
    graph = export(net, **kwargs)
    _nir().write(os.fspath(path), graph)
    return graph

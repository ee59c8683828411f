r"""Exchange networks with other SNN libraries through NIR.

NIR, the Neuromorphic Intermediate Representation, is the graph format snnTorch,
Norse, Sinabs, SpikingJelly, Rockpool and others read and write. This module needs
the optional ``nir`` package (``pip install loihi_slayer[nir]``), imported lazily.

:func:`export` turns a network (blocks, a :class:`~loihi_slayer.hdf5.Network`
record or a ``.net`` file) into a :class:`nir.NIRGraph`; :func:`import_` turns a
NIR graph back into a :class:`~loihi_slayer.hdf5.Network` that the emulator runs
and :func:`~loihi_slayer.hdf5.save_network` writes.

**Two views in one graph.** Every node carries the float parameters other
libraries read (``tau``, ``r``, ``v_threshold``, weights) *and*, under
``metadata["loihi_slayer"]``, the exact integer view (weight mantissas,
``iDecay``, ``vDecay``, ``vThMant``, ``refDelay``, bias mantissas, delays). A
graph written by :func:`export` therefore imports bit-exactly; a graph from
another library is quantized as below and :func:`import_` reports the error.

**Float view** (one Loihi step = ``dt`` seconds; forward-Euler NIR dynamics
with ``r = tau_mem/dt`` and ``w_in = tau_syn/dt``, the convention snnTorch uses):

.. math::

    \tau_{syn} = \frac{4096\,dt}{\mathrm{iDecay}},\quad
    \tau_{mem} = \frac{4096\,dt}{\mathrm{vDecay}},\quad
    v_{th} = \frac{\mathrm{vThMant}}{64},\quad
    W = \frac{m\,2^{\mathrm{wgtExp}}}{64},\quad
    v_{leak} = \frac{b_{mant}/64}{\mathrm{vDecay}/4096}

(a decay of 0 is written as ``tau = 65536 dt``, which rounds back to 0). One
float unit of voltage is 4096 chip units, lava-dl's float convention.

**Quantization of foreign graphs** (no metadata). Decays are
``iDecay = rint(4096 dt / tau_syn)``, ``vDecay = rint(4096 dt / tau_mem)``
(LIF/LI: ``iDecay = 4096``, IF: ``vDecay = 0``). The per-neuron input gain
``g = (dt/tau_mem) r (dt/tau_syn) w_in`` (LIF/LI: ``(dt/tau) r``; IF: ``dt r``) is
folded into the weight rows, ``W' = diag(g) W``. With the chip scale ``K`` (chip
units per float voltage unit) and weight exponent ``e``:

.. math::

    m = \operatorname{rint}\!\Big(\frac{K\,W'}{64\cdot 2^{e}}\Big),\qquad
    \mathrm{vThMant} = \operatorname{rint}\!\Big(\frac{K\,v_{th}}{64}\Big),\qquad
    b_{mant} = \operatorname{rint}\Big(\frac{K\,(dt/\tau_{mem})\,(v_{leak} + r\,w_{in}\,b)}{64}\Big)

:math:`K = 255\cdot 64\cdot 2^{e} / \max|W'|` puts the largest weight on the
8-bit limit, and ``e`` is the largest exponent in [-8, 7] that keeps
``vThMant`` at most :data:`V_TH_MANT_TARGET` (4096), so that the 24-bit
current and voltage keep 32 times the threshold as headroom before they wrap
or saturate. ``b`` is an Affine node's bias: it enters the
synaptic current, which Loihi cannot bias, so it becomes the voltage bias of
its steady-state current (exact when ``tau_syn = dt``). The per-layer
relative errors are returned in :class:`QuantizationReport`.

**Timing.** The chip delivers a spike to the next layer one step after it was
sent (one step of latency per synaptic hop); NIR's graphs have no such latency,
so chip layer ``k`` lags the float model by ``k`` steps.

Supported: CUBA-LIF (``CubaLIF``; ``LIF``, ``IF`` on import), never-spiking
CUBA (``CubaLI``; ``LI`` on import), ``Affine``/``Linear``, ``Conv2d``,
``SumPool2d``/``AvgPool2d``, ``Flatten`` and ``Delay``, in a chain. Other
layers and neuron families are refused with :class:`~loihi_slayer.errors.UnsupportedLayerError`
naming the layer; new ones are added as entries of :data:`LAYER_EXPORTERS`,
:data:`NEURON_EXPORTERS` and :data:`NEURON_IMPORTERS`.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import hdf5
from ._network import as_network
from .block.base import AFFINE_V_TH_MANT
from .errors import LoihiSlayerError, ParameterError, UnsupportedLayerError
from .fixed.params import CUBA_RANGES, DECAY_MAX, VTH_MANT_MAX

__all__ = [
    "DEFAULT_DT",
    "LAYER_EXPORTERS",
    "NEURON_EXPORTERS",
    "NEURON_IMPORTERS",
    "ImportResult",
    "LayerQuantization",
    "QuantizationReport",
    "export",
    "import_",
    "read",
    "write",
]

#: Seconds per Loihi step in the float view (snnTorch's NIR default).
DEFAULT_DT = 1e-4
#: Metadata key holding the exact integer view.
META = "loihi_slayer"
#: Float <-> chip scale: weights and thresholds are mantissas / 64 (lava-dl's w_scale).
W_SCALE = 64
#: Steps written as the time constant of a zero decay (rounds back to 0).
ZERO_DECAY_TAU_STEPS = 1 << 16
#: Threshold written for a never-spiking (LI) neuron: lava-dl's Affine value.
NEVER_SPIKE_V_TH_MANT = AFFINE_V_TH_MANT
#: vThMant at or above this never fires: v saturates at 2**23 - 1 < vThMant << 6.
_SPIKE_LIMIT = VTH_MANT_MAX + 1
#: Largest vThMant import aims for: the 24-bit current and voltage keep 32x the
#: threshold as headroom before they wrap or saturate.
V_TH_MANT_TARGET = 1 << 12
_WEIGHT_MAX = hdf5.WEIGHT_RANGE[1]


def _nir():
    try:
        return importlib.import_module("nir")
    except ImportError:
        raise ImportError(
            "NIR support needs the optional 'nir' package: pip install loihi_slayer[nir]"
        ) from None


# ============================================================================ export


def _tau(decay: np.ndarray, dt: float) -> np.ndarray:
    d = np.asarray(decay, np.float64)
    return np.where(d > 0, DECAY_MAX * dt / np.maximum(d, 1), ZERO_DECAY_TAU_STEPS * dt)


def _full(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A scalar, per-channel (C,) or full array broadcast to the neuron shape."""
    a = np.asarray(value, np.float64)
    if a.ndim == 1 and len(shape) > 1 and a.size == shape[0]:
        a = a.reshape((-1,) + (1,) * (len(shape) - 1))
    return np.broadcast_to(a, shape).astype(np.float64)


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
        tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, v_leak=v_leak,
        w_in=tau_syn / dt * np.asarray(gain, np.float64),
    )  # fmt: skip
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


def _pack_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """A record's ``extra`` datasets as NIR metadata: keys joined by newlines (they may hold
    '/'), values as ``v<i>`` (at least 1-D: NIR's writer compresses every array), ndims."""
    keys = sorted(extra)
    out: dict[str, Any] = {"keys": "\n".join(keys)}
    ndim = []
    for i, k in enumerate(keys):
        v = extra[k]
        if isinstance(v, str):
            out[f"v{i}"], n = v, -1
        else:
            out[f"v{i}"], n = np.atleast_1d(np.asarray(v)), np.ndim(v)
        ndim.append(n)
    out["ndim"] = np.asarray(ndim, np.int64)
    return out


def _unpack_extra(packed: dict[str, Any] | None) -> dict[str, Any]:
    if not packed:
        return {}
    keys = str(packed["keys"]).split("\n")
    out = {}
    for i, (k, n) in enumerate(zip(keys, np.asarray(packed["ndim"]).reshape(-1), strict=True)):
        v = packed[f"v{i}"]
        out[k] = str(v) if n < 0 else np.asarray(v).reshape(np.shape(v) if n else ())
    return out


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
        input_shape=tuple(int(s) for s in in_shape[-2:]), weight=_weight_float(w, layer),
        stride=tuple(layer.stride), padding=tuple(layer.padding),
        dilation=tuple(layer.dilation), groups=int(layer.groups),
        bias=np.zeros(w.shape[0]), metadata={META: {"weight": w}},
    )  # fmt: skip
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
        kernel_size=np.asarray(layer.kernel_size), stride=np.asarray(layer.stride),
        padding=np.asarray(layer.padding), metadata={META: {"weight": w}},
    )  # fmt: skip
    # the fixed pooling weight is the neuron's input gain w_in
    neuron = _neuron_node(i, layer, dt, gain=_weight_float(w.reshape(-1)[0], layer))
    neuron.metadata[META].update(_layer_meta(layer))
    out = [("sumpool", syn), ("neuron", neuron)]
    delay = _delay_node(layer, dt, _neuron_shape(layer))
    return out + ([("delay", delay)] if delay is not None else [])


def _export_flatten(i: int, layer: hdf5.FlattenLayer, dt: float, in_shape) -> list:
    node = _nir().Flatten(
        input_type={"input": np.asarray(in_shape)}, start_dim=0, end_dim=-1,
        metadata={META: _layer_meta(layer)},
    )  # fmt: skip
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
        gmeta["simulation"] = {"ts": sim.ts} | ({} if sim.t_sample is None else
                                                {"tSample": sim.t_sample})  # fmt: skip
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={META: gmeta})


def write(path: str | os.PathLike, net: Any, **kwargs: Any) -> Any:
    """:func:`export` ``net`` and write it with :func:`nir.write`; returns the graph."""
    graph = export(net, **kwargs)
    _nir().write(os.fspath(path), graph)
    return graph


def read(path: str | os.PathLike, **kwargs: Any) -> ImportResult:
    """Read a NIR file with :func:`nir.read` and :func:`import_` it."""
    return import_(_nir().read(os.fspath(path)), **kwargs)


# ============================================================================ import


@dataclass
class LayerQuantization:
    """Quantization error of one imported layer (all zero for exact metadata).

    Attributes
    ----------
    layer
        Index in the imported network.
    nodes
        The NIR node names of the layer.
    exact
        True when the integer view came from loihi_slayer metadata.
    weight_error
        ``max|W_chip - W| / max|W|`` over the layer's (gain-folded) weights.
    threshold_error
        max relative error of the threshold.
    decay_error
        ``max|decay_chip/4096 - dt/tau|`` over both decays.
    bias_error
        ``max|b_chip - b| / max(|b|, threshold)`` of the per-step voltage bias.
    notes
        Approximations made (e.g. an Affine bias folded into the voltage bias).
    """

    layer: int
    nodes: tuple[str, ...]
    exact: bool
    weight_error: float = 0.0
    threshold_error: float = 0.0
    decay_error: float = 0.0
    bias_error: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class QuantizationReport:
    """Per-layer quantization errors of :func:`import_`."""

    layers: list[LayerQuantization] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        """True when every layer came from exact loihi_slayer metadata."""
        return all(q.exact for q in self.layers)

    def summary(self) -> str:
        """One line per layer with a neuron."""
        lines = []
        for q in self.layers:
            if q.exact:
                lines.append(f"layer {q.layer} ({', '.join(q.nodes)}): exact (integer metadata)")
                continue
            lines.append(
                f"layer {q.layer} ({', '.join(q.nodes)}): weight {q.weight_error:.2e}, "
                f"threshold {q.threshold_error:.2e}, decay {q.decay_error:.2e}, "
                f"bias {q.bias_error:.2e}" + "".join(f"; {n}" for n in q.notes)
            )
        return "\n".join(lines)


@dataclass
class ImportResult:
    """Result of :func:`import_`.

    Attributes
    ----------
    network
        The integer network record (run it with :class:`loihi_slayer.emulate.Emulator`,
        save it with :func:`loihi_slayer.hdf5.save_network`).
    report
        Per-layer quantization errors.
    input_shape
        Shape of the graph's input (the emulator's ``input_shape`` when the
        network has no input layer).
    """

    network: hdf5.Network
    report: QuantizationReport
    input_shape: tuple[int, ...]

    def emulator(self, **kwargs: Any):
        """A :class:`~loihi_slayer.emulate.Emulator` of :attr:`network` (keyword arguments
        passed on), given :attr:`input_shape` when the network has no input layer."""
        from .emulate import Emulator

        first = self.network.layers[0] if self.network.layers else None
        if not isinstance(first, hdf5.InputLayer):
            kwargs.setdefault("input_shape", self.input_shape)
        return Emulator(self.network, **kwargs)


@dataclass
class _FloatNeuron:
    """Float parameters of an imported neuron node, on the neuron shape."""

    i_decay: np.ndarray  # dt / tau_syn
    v_decay: np.ndarray  # dt / tau_mem
    gain: np.ndarray  # input -> per-step voltage increment
    v_th: np.ndarray | None  # None: never spikes
    v_bias: np.ndarray  # per-step voltage increment from v_leak
    bias_gain: np.ndarray  # Affine bias -> per-step voltage increment (steady state)
    v_reset: np.ndarray | None = None


def _f(node: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    a = np.asarray(getattr(node, name), np.float64)
    return a if shape is None else np.broadcast_to(a, shape)


def _import_cubalif(node: Any, dt: float) -> _FloatNeuron:
    shape = np.shape(node.tau_mem)
    ds, dm = dt / _f(node, "tau_syn", shape), dt / _f(node, "tau_mem", shape)
    r, w_in = _f(node, "r", shape), _f(node, "w_in", shape)
    v_th = _f(node, "v_threshold", shape) if hasattr(node, "v_threshold") else None
    return _FloatNeuron(ds, dm, dm * r * ds * w_in, v_th, dm * _f(node, "v_leak", shape),
                        dm * r * w_in, getattr(node, "v_reset", None))  # fmt: skip


def _import_lif(node: Any, dt: float) -> _FloatNeuron:
    shape = np.shape(node.tau)
    dm, r = dt / _f(node, "tau", shape), _f(node, "r", shape)
    v_th = _f(node, "v_threshold", shape) if hasattr(node, "v_threshold") else None
    return _FloatNeuron(np.ones(shape), dm, dm * r, v_th, dm * _f(node, "v_leak", shape),
                        dm * r, getattr(node, "v_reset", None))  # fmt: skip


def _import_if(node: Any, dt: float) -> _FloatNeuron:
    shape = np.shape(node.r)
    r = _f(node, "r", shape)
    return _FloatNeuron(np.ones(shape), np.zeros(shape), dt * r, _f(node, "v_threshold", shape),
                        np.zeros(shape), dt * r, node.v_reset)  # fmt: skip


#: NIR neuron class name -> float parameter reader ``(node, dt) -> _FloatNeuron``
NEURON_IMPORTERS: dict[str, Callable[[Any, float], _FloatNeuron]] = {
    "CubaLIF": _import_cubalif,
    "CubaLI": _import_cubalif,
    "LIF": _import_lif,
    "LI": _import_lif,
    "IF": _import_if,
}
_SYNAPSES = ("Affine", "Linear", "Conv2d", "SumPool2d", "AvgPool2d")


def _meta(node: Any) -> dict | None:
    m = getattr(node, "metadata", None) or {}
    return m.get(META) if isinstance(m.get(META), dict) else None


def _int_or_array(v: Any) -> int | np.ndarray:
    a = np.asarray(v, np.int64)
    return int(a) if a.ndim == 0 else a


def _chain(graph: Any) -> list[str]:
    """Node names from the single Input to the end, refusing branches."""
    nir = _nir()
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise UnsupportedLayerError(f"NIR import: need exactly one Input node, found {inputs}")
    succ: dict[str, list[str]] = {}
    pred: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    chain, name = [], inputs[0]
    while True:
        if len(pred.get(name, [])) > 1 or len(succ.get(name, [])) > 1 or name in chain:
            raise UnsupportedLayerError(
                f"NIR import: node {name!r} branches or merges; only chains are supported"
            )
        chain.append(name)
        nxt = succ.get(name, [])
        if not nxt:
            return chain
        name = nxt[0]


def _float_view_matches(snode: Any, nnode: Any, smeta: dict, nmeta: dict) -> bool:
    """Whether a node pair's float weights and threshold still equal their integer metadata
    (another tool may have changed the floats and kept the metadata)."""
    scale = 2.0 ** int(nmeta.get("wgtExp", 0)) / W_SCALE
    if hasattr(snode, "weight") and not np.allclose(
        np.asarray(snode.weight, np.float64), np.asarray(smeta["weight"]) * scale
    ):
        return False
    if hasattr(nnode, "v_threshold"):
        v_th = _full(nmeta["vThMant"], np.shape(nnode.v_threshold)) / W_SCALE
        return bool(np.allclose(nnode.v_threshold, v_th))
    return True


def _spatial_out(size: tuple[int, int], k, s, p, d=(1, 1)) -> tuple[int, int]:
    from .fixed.api import conv_output_size

    return tuple(conv_output_size(size[j], int(k[j]), int(s[j]), int(p[j]), int(d[j]))
                 for j in range(2))  # fmt: skip


def _pair2(v: Any) -> tuple[int, int]:
    a = np.asarray(v).reshape(-1)
    return (int(a[0]), int(a[-1])) if a.size else (0, 0)


class _Importer:
    """Walks a NIR chain and builds layer records (one synapse + neuron + delay each)."""

    def __init__(self, graph: Any, dt: float | None) -> None:
        self.graph = graph
        gmeta = _meta(graph) or {}
        self.dt = float(dt if dt is not None else gmeta.get("dt", DEFAULT_DT))
        if not self.dt > 0:
            raise ParameterError(f"NIR import: dt must be > 0 seconds, got {self.dt!r}")
        self.layers: list[hdf5.Layer] = []
        self.report = QuantizationReport()

    def run(self) -> ImportResult:
        nir = _nir()
        chain = _chain(self.graph)
        nodes = self.graph.nodes
        first = nodes[chain[0]]
        shape = tuple(int(s) for s in np.asarray(first.input_type["input"]).reshape(-1))
        in_shape = shape
        imeta = _meta(first) or {}
        k = 1
        pending_input_layer = bool(imeta.get("inputLayer", 0)) if imeta else None
        while k < len(chain):
            name, node = chain[k], nodes[chain[k]]
            kind = type(node).__name__
            if isinstance(node, nir.Output):
                k += 1
                continue
            if isinstance(node, nir.Flatten):
                shape = (math.prod(shape),)
                self.layers.append(hdf5.FlattenLayer(self._flat_shape(node, shape),
                                                     extra=self._flat_extra(node)))  # fmt: skip
                k += 1
                continue
            if kind in NEURON_IMPORTERS and not self.layers and pending_input_layer is not False:
                # a neuron right after the Input: an input layer with a neuron
                self._input_layer(name, node, shape)
                pending_input_layer = False
                k += 1
                continue
            if pending_input_layer and not self.layers:
                self.layers.append(hdf5.InputLayer(shape))
            pending_input_layer = False
            if kind not in _SYNAPSES:
                raise UnsupportedLayerError(
                    f"NIR import: node {name!r} ({kind}) has no converter here (supported: "
                    f"{', '.join(_SYNAPSES + tuple(NEURON_IMPORTERS))}, Flatten, Delay, in the "
                    f"order synapse -> neuron -> optional Delay)"
                )
            if not self.layers and len(shape) == 3:
                self.layers.append(hdf5.InputLayer(shape))  # netx needs it for spatial input
            if k + 1 >= len(chain) or type(nodes[chain[k + 1]]).__name__ not in NEURON_IMPORTERS:
                raise UnsupportedLayerError(
                    f"NIR import: synapse node {name!r} ({kind}) must be followed by a neuron "
                    f"node ({', '.join(NEURON_IMPORTERS)})"
                )
            nname = chain[k + 1]
            delay = None
            if k + 2 < len(chain) and isinstance(nodes[chain[k + 2]], nir.Delay):
                delay = chain[k + 2]
            shape = self._synapse_layer(name, node, nname, nodes[nname], delay, shape)
            k += 3 if delay else 2
        sim = (_meta(self.graph) or {}).get("simulation")
        if sim is not None:
            t_sample = sim.get("tSample")
            sim = hdf5.Simulation(int(sim["ts"]), None if t_sample is None else int(t_sample))
        return ImportResult(hdf5.Network(self.layers, sim), self.report, in_shape)

    # ------------------------------------------------------------------ pieces
    @staticmethod
    def _flat_shape(node: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
        m = _meta(node)
        if m and "shape" in m:
            return tuple(int(s) for s in np.asarray(m["shape"]).reshape(-1))
        return (shape[0], 1, 1)

    @staticmethod
    def _flat_extra(node: Any) -> dict[str, Any]:
        return _unpack_extra((_meta(node) or {}).get("layerExtra"))

    def _input_layer(self, name: str, node: Any, shape: tuple[int, ...]) -> None:
        m = _meta(node)
        idx = len(self.layers)
        if m is not None:
            neuron = self._exact_neuron(m)
            layer = hdf5.InputLayer(
                tuple(int(s) for s in np.asarray(m["shape"]).reshape(-1)), neuron=neuron,
                weight=m.get("inputWeight"), bias=m.get("bias"),
                extra=_unpack_extra(m.get("layerExtra")),
            )  # fmt: skip
            self.layers.append(layer)
            self.report.layers.append(LayerQuantization(idx, (name,), True))
            return
        fn = NEURON_IMPORTERS[type(node).__name__](node, self.dt)
        # injected input x adds x << 6 to the current: the scale is fixed by the input gain
        g = float(np.mean(fn.gain))
        q = LayerQuantization(idx, (name,), False)
        if not np.allclose(fn.gain, g):
            q.notes.append("per-neuron gain of an input neuron varies: mean used")
        neuron, bias = self._neuron(fn, None, W_SCALE / g, 0, shape, q)
        if bias is not None:  # an input layer has one scalar bias
            if not np.all(bias == bias[0]):
                q.notes.append("per-neuron bias of an input neuron varies: mean used")
            bias = int(np.rint(bias.mean()))
        self.layers.append(hdf5.InputLayer(shape, neuron=neuron, bias=bias))
        self.report.layers.append(q)

    def _exact_neuron(self, m: dict) -> hdf5.CubaNeuron:
        return hdf5.CubaNeuron(
            i_decay=_int_or_array(m["iDecay"]), v_decay=_int_or_array(m["vDecay"]),
            v_th_mant=_int_or_array(m["vThMant"]), ref_delay=int(m["refDelay"]),
            graded_spike=bool(m["gradedSpike"]), wgt_exp=int(m["wgtExp"]),
            type=str(m["neuronType"]), extra=_unpack_extra(m.get("neuronExtra")),
        )  # fmt: skip

    def _synapse_layer(self, sname, snode, nname, nnode, dname, shape) -> tuple[int, ...]:
        kind = type(snode).__name__
        idx = len(self.layers)
        names = (sname, nname) + ((dname,) if dname else ())
        smeta, nmeta = _meta(snode), _meta(nnode)
        dnode = self.graph.nodes[dname] if dname else None
        exact = smeta is not None and nmeta is not None and (dnode is None or _meta(dnode))
        geom, out_shape, w = self._geometry(kind, snode, shape, sname)
        stale = exact and not _float_view_matches(snode, nnode, smeta, nmeta)
        extra: dict[str, Any] = {}  # the record's other datasets, kept only when exact
        if exact and not stale:
            neuron = self._exact_neuron(nmeta)
            w_int = np.asarray(smeta["weight"], np.int64)
            bias = _int_or_array(nmeta["bias"]) if "bias" in nmeta else None
            delay = np.asarray(_meta(dnode)["delay"], np.int64) if dnode is not None else None
            rec_shape = tuple(int(s) for s in np.asarray(nmeta["shape"]).reshape(-1))
            extra = _unpack_extra(nmeta.get("layerExtra"))
            q = LayerQuantization(idx, names, True)
        else:
            fn = NEURON_IMPORTERS[type(nnode).__name__](nnode, self.dt)
            if np.shape(fn.gain) != tuple(out_shape):
                raise ParameterError(
                    f"NIR import: neuron node {nname!r} has shape {np.shape(fn.gain)} but its "
                    f"synapse {sname!r} gives {tuple(out_shape)}"
                )
            aff_b = np.asarray(getattr(snode, "bias", 0.0), np.float64)
            if kind == "Conv2d" and aff_b.ndim == 1 and len(out_shape) == 3:
                aff_b = aff_b.reshape(-1, 1, 1)
            neuron, w_int, bias, q = self._quantize_layer(fn, w, aff_b, idx, names, out_shape,
                                                          kind)  # fmt: skip
            delay = None
            if dnode is not None:
                d = np.asarray(dnode.delay, np.float64) / self.dt
                delay = np.rint(d).astype(np.int64).reshape(-1)
                if len(out_shape) == 3:  # one delay per channel on the chip
                    delay = np.rint(d.reshape(out_shape[0], -1).mean(1)).astype(np.int64)
                if np.any(np.abs(np.rint(d) - d) > 1e-6):
                    q.notes.append("delays rounded to whole steps")
            rec_shape = tuple(out_shape)
            if stale:
                q.notes.append("loihi_slayer metadata no longer matches the float view (edited "
                               "elsewhere?): quantized from the floats")  # fmt: skip
        layer = self._record(kind, rec_shape, w_int, geom, neuron, bias, delay)
        layer.extra = extra
        self.layers.append(layer)
        self.report.layers.append(q)
        return tuple(out_shape)

    def _geometry(self, kind: str, node: Any, shape: tuple[int, ...], name: str):
        """(record geometry kwargs, output shape, float weight as (out, ...)) of a synapse node."""
        if kind in ("Affine", "Linear"):
            w = np.asarray(node.weight, np.float64)
            if w.ndim != 2 or w.shape[1] != math.prod(shape):
                raise ParameterError(
                    f"NIR import: node {name!r} weight {w.shape} does not take input {shape}"
                )
            return {}, (w.shape[0],), w
        if len(shape) != 3:
            raise ParameterError(f"NIR import: node {name!r} ({kind}) needs (C, H, W) input, "
                                 f"got {shape}")  # fmt: skip
        if kind == "Conv2d":
            w = np.asarray(node.weight, np.float64)
            if isinstance(node.padding, str):
                raise UnsupportedLayerError(
                    f"NIR import: node {name!r} has padding {node.padding!r}; give integers"
                )
            geom = {
                "stride": _pair2(node.stride), "padding": _pair2(node.padding),
                "dilation": _pair2(node.dilation), "groups": int(node.groups),
            }  # fmt: skip
            hw = _spatial_out(shape[1:], w.shape[2:], geom["stride"], geom["padding"],
                              geom["dilation"])  # fmt: skip
            return geom, (w.shape[0], *hw), w
        k, s, p = _pair2(node.kernel_size), _pair2(node.stride), _pair2(node.padding)
        hw = _spatial_out(shape[1:], k, s, p)
        value = 1.0 / (k[0] * k[1]) if kind == "AvgPool2d" else 1.0
        geom = {"kernel_size": k, "stride": s, "padding": p, "dilation": (1, 1)}
        return geom, (shape[0], *hw), np.full((1, 1, *k), value)

    def _record(self, kind, shape, w, geom, neuron, bias, delay) -> hdf5.Layer:
        if kind in ("Affine", "Linear"):
            return hdf5.DenseLayer(shape, w, neuron=neuron, bias=bias, delay=delay)
        if kind == "Conv2d":
            return hdf5.ConvLayer(shape, w, neuron=neuron, bias=bias, delay=delay, **geom)
        return hdf5.PoolLayer(shape, w, neuron=neuron, delay=delay, **geom)

    # -------------------------------------------------------------- quantization
    def _quantize_layer(self, fn: _FloatNeuron, w, aff_b, idx, names, out_shape, kind):
        c = out_shape[0]
        # fold the per-neuron gain into the weight rows; the chip has one gain per channel
        gain = fn.gain.reshape(c, -1)
        notes = []
        if not np.allclose(gain, gain[:, :1]):
            notes.append("per-neuron gain varies within a channel: channel mean used")
        g = gain.mean(1)
        pool = kind in ("SumPool2d", "AvgPool2d")
        if pool:  # one kernel shared by every channel
            if not np.allclose(g, g[0]):
                notes.append("pool gain varies across channels: mean used")
            w_eff = w * g.mean()
        else:
            w_eff = w * g.reshape((c,) + (1,) * (w.ndim - 1))
        w_max = float(np.max(np.abs(w_eff))) if np.size(w_eff) else 0.0
        if w_max == 0:
            raise ParameterError(f"NIR import: node {names[0]!r} has all-zero weights")
        exp = self._weight_exp(fn, w_max, out_shape)
        scale = _WEIGHT_MAX * W_SCALE * 2.0**exp / w_max  # chip units per float voltage unit
        q = LayerQuantization(idx, names, False, notes=notes)
        w_int = np.rint(scale * w_eff / (W_SCALE * 2.0**exp)).astype(np.int64)
        q.weight_error = float(np.max(np.abs(w_int * W_SCALE * 2.0**exp / scale - w_eff)) / w_max)
        neuron, bias = self._neuron(fn, aff_b, scale, exp, out_shape, q)
        if pool and bias is not None:
            raise UnsupportedLayerError(
                f"NIR import: {names[1]!r} after a pool node has a bias (v_leak); a Loihi pool "
                f"layer has none"
            )
        return neuron, w_int, bias, q

    @staticmethod
    def _weight_exp(fn: _FloatNeuron, w_max: float, shape) -> int:
        """Largest weight exponent keeping vThMant <= V_TH_MANT_TARGET (0 without threshold)."""
        if fn.v_th is None:
            return 0
        ratio = float(np.max(fn.v_th)) / w_max
        lo, hi = CUBA_RANGES["wgt_exp"]
        for e in range(hi, lo - 1, -1):
            if _WEIGHT_MAX * 2.0**e * ratio <= V_TH_MANT_TARGET:
                return e
        return lo

    def _neuron(self, fn: _FloatNeuron, aff_b, scale: float, exp: int, shape, q):
        """The CUBA record and bias mantissas at ``scale`` chip units per float unit."""
        name = q.nodes[1] if len(q.nodes) > 1 else q.nodes[0]
        if fn.v_reset is not None and np.any(np.asarray(fn.v_reset) != 0):
            raise UnsupportedLayerError(
                f"NIR import: neuron node {name!r} resets to v_reset = "
                f"{np.asarray(fn.v_reset).reshape(-1)[0]!r}; Loihi resets to 0"
            )
        c = shape[0]

        def per_channel(a: np.ndarray, what: str) -> np.ndarray:
            a = np.asarray(a, np.float64).reshape(c, -1)
            if not np.allclose(a, a[:, :1]):
                q.notes.append(f"{what} varies within a channel: channel mean used")
            return a.mean(1)

        def compact(a: np.ndarray) -> int | np.ndarray:
            return int(a[0]) if np.all(a == a[0]) else a

        vth_f = None
        vth_out: int | np.ndarray = NEVER_SPIKE_V_TH_MANT
        if fn.v_th is not None:
            v_th = per_channel(fn.v_th, "threshold")
            if np.any(v_th <= 0):
                raise ParameterError(f"NIR import: {name!r} has a threshold <= 0")
            vth_f = scale * v_th / W_SCALE
            vth_int = np.rint(vth_f).astype(np.int64)
            if vth_int.max() > VTH_MANT_MAX or vth_int.min() < 1:
                raise ParameterError(
                    f"NIR import: {name!r}: vThMant {vth_int.min()}..{vth_int.max()} outside "
                    f"[1, {VTH_MANT_MAX}] (threshold/weight ratio out of the chip's range)"
                )
            q.threshold_error = float(np.max(np.abs(vth_int - vth_f) / vth_f))
            vth_out = compact(vth_int)
        decays = []
        for d, what in ((fn.i_decay, "current decay"), (fn.v_decay, "voltage decay")):
            d = np.clip(per_channel(d, what), 0, 1)
            di = np.rint(d * DECAY_MAX).astype(np.int64)
            q.decay_error = max(q.decay_error, float(np.max(np.abs(di / DECAY_MAX - d))))
            decays.append(compact(di))
        # per-step voltage bias: v_leak drive plus an Affine bias's steady-state current
        vb = np.asarray(fn.v_bias, np.float64)
        if aff_b is not None and np.any(aff_b):
            vb = vb + fn.bias_gain * np.broadcast_to(aff_b, fn.bias_gain.shape)
            if np.any(fn.i_decay < 1):
                q.notes.append("Affine bias mapped to the voltage bias of its steady-state current")
        bias = None
        if np.any(vb):
            b_f = scale * per_channel(vb, "bias") / W_SCALE
            b_int = np.rint(b_f).astype(np.int64)
            lo, hi = CUBA_RANGES["bias_mant"]
            if b_int.min() < lo or b_int.max() > hi:
                raise ParameterError(
                    f"NIR import: {name!r}: bias mantissa {b_int.min()}..{b_int.max()} outside "
                    f"[{lo}, {hi}]"
                )
            ref = max(float(np.max(np.abs(b_f))), 0.0 if vth_f is None else float(vth_f.max()))
            q.bias_error = float(np.max(np.abs(b_int - b_f)) / ref)
            bias = b_int
        neuron = hdf5.CubaNeuron(
            i_decay=decays[0], v_decay=decays[1], v_th_mant=vth_out, ref_delay=1, wgt_exp=exp
        )
        return neuron, bias


def import_(graph: Any, *, dt: float | None = None) -> ImportResult:
    """Convert a :class:`nir.NIRGraph` to an integer :class:`~loihi_slayer.hdf5.Network`.

    Parameters
    ----------
    graph
        A NIR graph (a chain from one ``Input``), e.g. from :func:`nir.read`.
    dt
        Seconds per Loihi step; default: the graph's ``loihi_slayer`` metadata,
        else :data:`DEFAULT_DT`.

    Returns
    -------
    ImportResult
        The network, the per-layer :class:`QuantizationReport` and the input shape.

    Raises
    ------
    UnsupportedLayerError
        A node type or topology has no converter (the message names the node).
    ParameterError
        A value cannot be represented on the chip (names the node and value).
    """
    if not hasattr(graph, "nodes") or not hasattr(graph, "edges"):
        raise ParameterError(f"NIR import: expected a nir.NIRGraph, got {type(graph).__name__}")
    try:
        return _Importer(graph, dt).run()
    except LoihiSlayerError:
        raise
    except (KeyError, AttributeError) as exc:
        raise ParameterError(f"NIR import: malformed node or metadata: {exc!r}") from None

"""NIR -> loihi_slayer: exact layers from metadata, quantized layers from float nodes."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import hdf5
from ..errors import LoihiSlayerError, ParameterError, UnsupportedLayerError
from ..fixed.api import conv_output_size
from ..fixed.params import CUBA_RANGES, DECAY_MAX, VTH_MANT_MAX
from ._common import (
    _WEIGHT_MAX,
    DEFAULT_DT,
    NEVER_SPIKE_V_TH_MANT,
    V_TH_MANT_TARGET,
    W_SCALE,
    _full,
    _int_or_array,
    _meta,
    _nir,
    _unpack_extra,
)


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
        from ..emulate import Emulator

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
    return _FloatNeuron(
        ds,
        dm,
        dm * r * ds * w_in,
        v_th,
        dm * _f(node, "v_leak", shape),
        dm * r * w_in,
        getattr(node, "v_reset", None),
    )


def _import_lif(node: Any, dt: float) -> _FloatNeuron:
    shape = np.shape(node.tau)
    dm, r = dt / _f(node, "tau", shape), _f(node, "r", shape)
    v_th = _f(node, "v_threshold", shape) if hasattr(node, "v_threshold") else None
    return _FloatNeuron(
        np.ones(shape),
        dm,
        dm * r,
        v_th,
        dm * _f(node, "v_leak", shape),
        dm * r,
        getattr(node, "v_reset", None),
    )


def _import_if(node: Any, dt: float) -> _FloatNeuron:
    shape = np.shape(node.r)
    r = _f(node, "r", shape)
    return _FloatNeuron(
        np.ones(shape),
        np.zeros(shape),
        dt * r,
        _f(node, "v_threshold", shape),
        np.zeros(shape),
        dt * r,
        node.v_reset,
    )


#: NIR neuron class name -> float parameter reader ``(node, dt) -> _FloatNeuron``
NEURON_IMPORTERS: dict[str, Callable[[Any, float], _FloatNeuron]] = {
    "CubaLIF": _import_cubalif,
    "CubaLI": _import_cubalif,
    "LIF": _import_lif,
    "LI": _import_lif,
    "IF": _import_if,
}
_SYNAPSES = ("Affine", "Linear", "Conv2d", "SumPool2d", "AvgPool2d")


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
    return tuple(
        conv_output_size(size[j], int(k[j]), int(s[j]), int(p[j]), int(d[j])) for j in range(2)
    )


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
                self.layers.append(
                    hdf5.FlattenLayer(self._flat_shape(node, shape), extra=self._flat_extra(node))
                )
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
                tuple(int(s) for s in np.asarray(m["shape"]).reshape(-1)),
                neuron=neuron,
                weight=m.get("inputWeight"),
                bias=m.get("bias"),
                extra=_unpack_extra(m.get("layerExtra")),
            )
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
            i_decay=_int_or_array(m["iDecay"]),
            v_decay=_int_or_array(m["vDecay"]),
            v_th_mant=_int_or_array(m["vThMant"]),
            ref_delay=int(m["refDelay"]),
            graded_spike=bool(m["gradedSpike"]),
            wgt_exp=int(m["wgtExp"]),
            type=str(m["neuronType"]),
            extra=_unpack_extra(m.get("neuronExtra")),
        )

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
            neuron, w_int, bias, q = self._quantize_layer(fn, w, aff_b, idx, names, out_shape, kind)
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
                q.notes.append(
                    "loihi_slayer metadata no longer matches the float view (edited "
                    "elsewhere?): quantized from the floats"
                )
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
            raise ParameterError(
                f"NIR import: node {name!r} ({kind}) needs (C, H, W) input, got {shape}"
            )
        if kind == "Conv2d":
            w = np.asarray(node.weight, np.float64)
            if isinstance(node.padding, str):
                raise UnsupportedLayerError(
                    f"NIR import: node {name!r} has padding {node.padding!r}; give integers"
                )
            geom = {
                "stride": _pair2(node.stride),
                "padding": _pair2(node.padding),
                "dilation": _pair2(node.dilation),
                "groups": int(node.groups),
            }
            hw = _spatial_out(
                shape[1:], w.shape[2:], geom["stride"], geom["padding"], geom["dilation"]
            )
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


def read(path: str | os.PathLike, **kwargs: Any) -> ImportResult:
    """Read a NIR file with :func:`nir.read` and :func:`import_` it."""
    return import_(_nir().read(os.fspath(path)), **kwargs)

r"""Chip resource report: does a network fit Loihi 1 / Loihi 2, and on how many cores?

:func:`resource_report` counts, per layer of a network (blocks, a
:class:`~loihi_slayer.hdf5.Network` record or a ``.net`` file):

* **neurons** (compartments): the layer's neuron count (0 for ``flatten``);
* **synapses**: stored connections (nonzero dense weights; for conv-like
  layers output neurons times kernel taps, an upper bound at padded edges);
* **fan-in**: most inputs of one neuron; **fan-out**: most targets of one input;
* **weight bits**: two's-complement bits of the weight mantissas;
* **delay range**: axonal delays (min, max);
* **cores** per chip: the largest of ``ceil(neurons / neurons_per_core)``,
  ``ceil(synapses x weight bits / synaptic memory per core)`` and
  ``ceil(neurons x min(next layer's fan-out, its cores) / output axons per core)``
  (a neuron needs one output axon per core it reaches). This is a *lower bound*:
  real synapse encodings add index and format bits, and a compiler may split
  layers further.

A layer that cannot map at all (a neuron with more inputs than a core has input
axons, weights wider than the synapse, a delay beyond the axon's range) is
refused with a :class:`ResourceRefusal` naming the layer, quantity, value and
limit; a network needing more cores than one chip has is refused as a whole.

The limits live in one table, :data:`CHIP_LIMITS`; their public sources (and which
figures are approximations) are in ``docs/resources.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import hdf5
from ._network import as_network
from .errors import LoihiSlayerError, UnsupportedLayerError

__all__ = [
    "CHIP_LIMITS",
    "ChipLimits",
    "LayerResources",
    "ResourceError",
    "ResourceRefusal",
    "ResourceReport",
    "resource_report",
]


class ResourceError(LoihiSlayerError, ValueError):
    """A network does not fit the chip (the message lists layer, quantity, value, limit)."""


@dataclass(frozen=True)
class ChipLimits:
    """Per-chip limits (see ``docs/resources.md`` for sources and approximations).

    Attributes
    ----------
    name
        Chip name.
    cores
        Neuro cores per chip.
    neurons_per_core
        Neurons (compartments) per core.
    fan_in_axons
        Input axons per core: the most inputs one neuron can have.
    fan_out_axons
        Output axons per core.
    synaptic_memory_bits
        Synaptic memory per core, in bits.
    weight_bits
        Widest synaptic weight, signed bits.
    max_delay
        Largest axonal delay in steps.
    """

    name: str
    cores: int
    neurons_per_core: int
    fan_in_axons: int
    fan_out_axons: int
    synaptic_memory_bits: int
    weight_bits: int
    max_delay: int


#: The one table of chip limits (public figures; sources in docs/resources.md).
CHIP_LIMITS: dict[str, ChipLimits] = {
    "loihi1": ChipLimits(
        "Loihi 1",
        cores=128,
        neurons_per_core=1024,
        fan_in_axons=4096,
        fan_out_axons=4096,
        synaptic_memory_bits=128 * 1024 * 8,
        weight_bits=9,
        max_delay=62,
    ),
    "loihi2": ChipLimits(
        "Loihi 2",
        cores=128,
        neurons_per_core=8192,
        fan_in_axons=4096,
        fan_out_axons=4096,
        synaptic_memory_bits=128 * 1024 * 8,
        weight_bits=9,
        max_delay=62,
    ),
}


@dataclass(frozen=True)
class ResourceRefusal:
    """Why a layer (or the network, ``layer = None``) cannot map onto a chip."""

    chip: str
    layer: int | None
    quantity: str
    value: int
    limit: int

    def __str__(self) -> str:
        where = "network" if self.layer is None else f"layer {self.layer}"
        return (
            f"{CHIP_LIMITS[self.chip].name}: {where}: {self.quantity} = {self.value} exceeds the "
            f"limit {self.limit}"
        )


@dataclass
class LayerResources:
    """Counts of one layer; ``cores`` maps chip key -> cores needed (lower bound)."""

    index: int
    type_name: str
    neurons: int
    synapses: int
    fan_in: int
    fan_out: int
    weight_bits: int
    delay_range: tuple[int, int]
    cores: dict[str, int] = field(default_factory=dict)


@dataclass
class ResourceReport:
    """Result of :func:`resource_report`."""

    layers: list[LayerResources]
    refusals: list[ResourceRefusal]

    def total_cores(self, chip: str) -> int:
        """Cores the whole network needs on ``chip`` (sum over layers; lower bound)."""
        return sum(layer.cores.get(chip, 0) for layer in self.layers)

    def fits(self, chip: str) -> bool:
        """True when nothing is refused on ``chip``."""
        return not any(r.chip == chip for r in self.refusals)

    def check(self, chip: str = "loihi2") -> None:
        """Raise :class:`ResourceError` listing every refusal on ``chip``."""
        _chip(chip)
        bad = [str(r) for r in self.refusals if r.chip == chip]
        if bad:
            raise ResourceError("the network does not fit: " + "; ".join(bad))

    def table(self) -> str:
        """A text table, one row per layer, then per-chip totals and refusals."""
        chips = list(CHIP_LIMITS)
        header = ["#", "type", "neurons", "synapses", "fan-in", "fan-out", "w bits", "delay"]
        header += [f"cores {c}" for c in chips]
        rows = [
            [
                str(r.index),
                r.type_name,
                str(r.neurons),
                str(r.synapses),
                str(r.fan_in),
                str(r.fan_out),
                str(r.weight_bits),
                f"{r.delay_range[0]}..{r.delay_range[1]}",
            ]
            + [str(r.cores.get(c, 0)) for c in chips]
            for r in self.layers
        ]
        widths = [max(len(x[k]) for x in rows + [header]) for k in range(len(header))]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        for c in chips:
            lim = CHIP_LIMITS[c]
            state = "fits" if self.fits(c) else "DOES NOT FIT"
            lines.append(
                f"{lim.name}: {self.total_cores(c)} of {lim.cores} cores (lower bound): {state}"
            )
        lines += [f"refused: {r}" for r in self.refusals]
        return "\n".join(lines)


def _chip(chip: str) -> ChipLimits:
    if chip not in CHIP_LIMITS:
        raise ValueError(f"chip must be one of {sorted(CHIP_LIMITS)}, got {chip!r}")
    return CHIP_LIMITS[chip]


# ------------------------------------------------------------------- per-layer counting


@dataclass
class _Counts:
    neurons: int
    synapses: int
    fan_in: int
    fan_out: int
    weights: np.ndarray | None


def _weight_bits(w: np.ndarray | None) -> int:
    """Two's-complement bits of the largest mantissa (0 without weights)."""
    if w is None or w.size == 0 or not np.any(w):
        return 0
    lo, hi = int(w.min()), int(w.max())
    bits = 1
    if hi > 0:  # hi <= 2**(b-1) - 1
        bits = max(bits, hi.bit_length() + 1)
    if lo < 0:  # lo >= -2**(b-1)
        bits = max(bits, (-lo - 1).bit_length() + 1)
    return bits


def _dense(layer: hdf5.DenseLayer, in_shape) -> _Counts:
    w = np.asarray(layer.weight)
    nz = w != 0
    fan_in, fan_out = int(nz.sum(1).max(initial=0)), int(nz.sum(0).max(initial=0))
    syn = int(nz.sum())
    rec = getattr(layer, "weight_rec", None)
    if rec is not None:
        rz = np.asarray(rec) != 0
        syn += int(rz.sum())
        fan_in += int(rz.sum(1).max(initial=0))
        fan_out += int(rz.sum(0).max(initial=0))
        w = np.concatenate([w.reshape(-1), np.asarray(rec).reshape(-1)])
    return _Counts(math.prod(layer.shape), syn, fan_in, fan_out, w)


def _reach(kernel: tuple[int, int], stride: tuple[int, int]) -> int:
    """Output positions one input pixel reaches (or input positions one output sees
    through a transposed kernel): ``ceil(k/s)`` per axis."""
    return math.ceil(kernel[0] / stride[0]) * math.ceil(kernel[1] / stride[1])


def _conv(layer: hdf5.ConvLayer, in_shape) -> _Counts:
    w = np.asarray(layer.weight)
    n = math.prod(layer.shape)
    reach = _reach(w.shape[2:], layer.stride)
    # nonzero taps per leading-axis channel: output channel (conv) or input channel (convT)
    taps = max((int(np.count_nonzero(w[o])) for o in range(w.shape[0])), default=0)
    if isinstance(layer, hdf5.ConvTransposeLayer):  # weight (in, out/g, kH, kW)
        fan_in = (w.shape[0] // layer.groups) * reach
        return _Counts(n, math.prod(in_shape) * taps, fan_in, taps, w)
    fan_out = (w.shape[0] // layer.groups) * reach if taps else 0
    return _Counts(n, n * taps, taps, fan_out, w)


def _pool(layer: hdf5.PoolLayer, in_shape) -> _Counts:
    k = layer.kernel_size[0] * layer.kernel_size[1]
    n = math.prod(layer.shape)
    reach = _reach(layer.kernel_size, layer.stride)
    w = np.asarray(layer.weight)
    if isinstance(layer, hdf5.UnpoolLayer):
        return _Counts(n, math.prod(in_shape) * k, reach, k, w)
    return _Counts(n, n * k, k, reach, w)


def _input(layer: hdf5.InputLayer, in_shape) -> _Counts:
    n = math.prod(layer.shape) if layer.neuron is not None else 0
    return _Counts(n, 0, 1 if n else 0, 1 if n else 0, None)


def _routing(layer: hdf5.Layer, in_shape) -> _Counts:
    return _Counts(0, 0, 0, 0, None)


def _reducing(layer: hdf5.Layer, in_shape) -> _Counts:
    """average / decimate: summing neurons, one synapse per input."""
    n = math.prod(layer.shape)
    group = max(1, math.prod(in_shape) // max(1, n))
    return _Counts(n, math.prod(in_shape), group, 1, None)


#: layer record type -> counter ``(layer, input shape) -> _Counts`` (most specific first by MRO)
LAYER_COUNTERS: dict[type, Callable[[Any, tuple[int, ...]], _Counts]] = {
    hdf5.InputLayer: _input,
    hdf5.DenseLayer: _dense,
    hdf5.ConvLayer: _conv,
    hdf5.PoolLayer: _pool,
    hdf5.FlattenLayer: _routing,
    hdf5.AverageLayer: _reducing,
    hdf5.TimeDecimationLayer: _reducing,
}


def _counter(i: int, layer: hdf5.Layer):
    for cls in type(layer).__mro__:
        if cls in LAYER_COUNTERS:
            return LAYER_COUNTERS[cls]
    raise UnsupportedLayerError(
        f"resource report: layer {i} ({type(layer).__name__}) has no resource counter"
    )


def _first_input_shape(net: hdf5.Network) -> tuple[int, ...]:
    first = net.layers[0] if net.layers else None
    if isinstance(first, hdf5.InputLayer):
        return tuple(first.shape)
    if isinstance(first, hdf5.DenseLayer):
        return (int(first.weight.shape[1]),)
    if isinstance(first, hdf5.ConvLayer) and not isinstance(first, hdf5.ConvTransposeLayer):
        return (int(first.weight.shape[1]) * first.groups,)  # channels only: counts need no H, W
    return (0,)


def resource_report(net: Any) -> ResourceReport:
    """Count the chip resources of a network and check them against :data:`CHIP_LIMITS`.

    Parameters
    ----------
    net
        Blocks, a :class:`~loihi_slayer.hdf5.Network` record or a ``.net`` path.

    Returns
    -------
    ResourceReport
        Per-layer counts, cores per chip, and every refusal (empty when it fits).
    """
    network = as_network(net)
    layers: list[LayerResources] = []
    refusals: list[ResourceRefusal] = []
    shape = _first_input_shape(network)
    for i, layer in enumerate(network.layers):
        c = _counter(i, layer)(layer, shape)
        d = getattr(layer, "delay", None)
        d = np.asarray(d) if d is not None and np.size(d) else np.zeros(1, np.int64)
        rec = LayerResources(
            i,
            layer.type_name,
            c.neurons,
            c.synapses,
            c.fan_in,
            c.fan_out,
            _weight_bits(c.weights),
            (int(d.min()), int(d.max())),
        )
        for key, lim in CHIP_LIMITS.items():
            checks = (
                ("fan-in (inputs of one neuron)", rec.fan_in, lim.fan_in_axons),
                ("weight bits", rec.weight_bits, lim.weight_bits),
                ("axonal delay", rec.delay_range[1], lim.max_delay),
            )
            refusals += [ResourceRefusal(key, i, q, v, m) for q, v, m in checks if v > m]
            by_neurons = math.ceil(rec.neurons / lim.neurons_per_core)
            by_memory = math.ceil(rec.synapses * rec.weight_bits / lim.synaptic_memory_bits)
            rec.cores[key] = max(by_neurons, by_memory)
        layers.append(rec)
        if not isinstance(layer, hdf5.TimeDecimationLayer):
            shape = tuple(layer.shape)
    for key, lim in CHIP_LIMITS.items():
        # output axons: a neuron needs one per core of the next layer it reaches, at most
        # min(fan-out, cores); a core has fan_out_axons of them
        src = None
        for rec in layers:
            if src is not None and rec.fan_out:
                axons = src.neurons * min(rec.fan_out, rec.cores[key])
                src.cores[key] = max(src.cores[key], math.ceil(axons / lim.fan_out_axons))
            if rec.neurons:
                src = rec
        total = sum(r.cores[key] for r in layers)
        if total > lim.cores:
            refusals.append(ResourceRefusal(key, None, "cores", total, lim.cores))
    return ResourceReport(layers, refusals)

"""Run a netx/lava-dl network on the integer kernels and record per-layer traces.

Timing follows lava-nc's fixed-point runtime (``shared/spec/netx-hdf5.md`` §6):

- Trace column ``k`` holds the state after Lava step ``k + 1`` (steps are 1-based).
- Every synaptic hop (dense, conv, recurrent) adds one step of latency: the sum a
  layer receives at step ``t`` was computed from its input at step ``t - 1``.
- Input is either *injected* into the first layer at the step it is given
  (``input[..., k]`` reaches the first neuron's ``a_in`` at step ``k + 1`` if the
  network starts with an input neuron; otherwise it enters the first synapse and
  so reaches the first neuron one step later), or given as a constant
  per-neuron *bias* of the input neuron (netx's ``bias_mant`` injection).
- A reset mask ``(T,)`` per layer zeroes that layer's state at the start of the
  marked steps (netx ``LIFReset``: step ``t`` with ``t % interval == offset``).

Layers beyond netx (lava-dl blocks that netx cannot load; same timing rules):
``pool`` (every channel cross-correlated with one shared kernel), ``unpool``
(per-channel transposed convolution), ``convT`` (PyTorch ``conv_transpose2d``),
``kwta`` (dense + recurrent synapse + constant synaptic input), ``average``
(integer sum over ``num_outputs`` contiguous groups; lava-dl's mean is this sum
divided by the group size) and ``decimate`` (integer sum over ``factor``
consecutive steps, after delaying the input by the layer's ``latency``; later
layers run on the shorter time axis). ``average`` and
``decimate`` have no neuron and no latency; their output is recorded as ``s`` and
travels to a following synapse as graded integer sums (lava-dl's mean, the sum
divided by the group size or factor, has no exact integer form on the chip).

Axonal delays (``delay`` datasets) are applied as lava-dl trains them: a layer's
output spikes are delayed per neuron, after the neuron (spec §7.3). netx instead
moves them onto the next layer's synapses, which differs for neurons with bias,
resets or a non-resting start.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import fixed, models
from .._recycle import recycled_for
from ..errors import FormatError, ParameterError, UnsupportedLayerError
from ..fixed import synapse_fast, workers
from ..fixed._arrays import host_view
from ..fixed._widen import as_int64
from ..fixed.api import _depthwise, _kernel_input, _pair, _weights
from ..fixed.params import int_param
from ..hdf5 import (
    AverageLayer,
    ConvLayer,
    ConvTransposeLayer,
    DenseLayer,
    DenseRecurrentLayer,
    FlattenLayer,
    InputLayer,
    KWTALayer,
    Network,
    PoolLayer,
    TimeDecimationLayer,
    UnpoolLayer,
    load_network,
)
from ..models import NeuronModel
from ..models._context import LayerContext, per_channel
from ..safety.memory import check_run_memory
from ._snapshot import snapshot

log = logging.getLogger(__name__)

SUPPORTED_TYPES = (
    "input",
    "dense",
    "dense_rec",
    "conv",
    "flatten",
    "pool",
    "convT",
    "unpool",
    "average",
    "kwta",
    "decimate",
)
#: layers without a neuron whose output (an integer sum) can still be recorded as 's'
_SUM_LAYERS = (AverageLayer, TimeDecimationLayer)
INPUT_MODES = ("inject", "bias")
#: input dtypes the kernels take as they are (others are converted to int64)
_STREAM_DTYPES = tuple(
    np.dtype(t) for t in (np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64)
)
#: the memory (bytes) an emulator keeps between CPU runs for the arrays of the next run (the
#: layers' synapse buffers and sums, unrecorded layers' output streams: :meth:`Emulator._kept`);
#: arrays beyond it are allocated per run
KEPT_BYTES = 1 << 28
#: guards every emulator's kept-memory accounting (runs of one emulator on two threads)
_KEPT_LOCK = threading.Lock()
#: NumPy dtype -> torch dtype of the kept arrays
_TORCH_DTYPES: dict[np.dtype, torch.dtype] = {}
#: netx defaults for sigma-delta neurons
SPIKE_EXP = 6
STATE_EXP = 6


@dataclass
class LayerTraces:
    """Recorded traces of one layer: variable -> ``(neurons, T)`` int64 array.

    ``neurons`` holds the flat (PyTorch C-order) indices that were recorded.
    """

    index: int
    type_name: str
    shape: tuple[int, ...]
    neuron_type: str | None
    neurons: np.ndarray
    data: dict[str, np.ndarray] = field(default_factory=dict)
    #: steps of this layer's traces (fewer than the run's after a ``decimate`` layer)
    num_steps: int = 0


@dataclass
class Traces:
    """Result of :meth:`Emulator.run`: per-layer traces, column ``k`` = Lava step ``k+1``."""

    num_steps: int
    layers: dict[int, LayerTraces]

    def __getitem__(self, key: tuple[int, str]) -> np.ndarray:
        layer, var = key
        try:
            return self.layers[layer].data[var]
        except KeyError:
            raise KeyError(f"no trace {var!r} recorded for layer {layer}") from None

    def shaped(self, layer: int, var: str) -> np.ndarray:
        """Trace in the layer's neuron shape ``(*shape, T)`` (all neurons recorded)."""
        lt = self.layers[layer]
        if len(lt.neurons) != math.prod(lt.shape):
            raise ParameterError(f"layer {layer} was recorded for a neuron subset only")
        return lt.data[var].reshape(lt.shape + (lt.num_steps,))


def netx_reset_masks(
    network: Network, num_steps: int, interval: int, offset: int = 0
) -> dict[int, np.ndarray]:
    """Reset masks of netx's ``reset_interval``: the k-th neuron block resets at the
    start of step ``t`` when ``t % interval == (offset + 1 + k) % interval``."""
    if interval < 1:
        raise ParameterError(f"reset_interval = {interval} must be >= 1")
    steps = np.arange(1, num_steps + 1)
    masks, k = {}, 0
    for i, layer in enumerate(network.layers):
        if _has_neuron(layer):
            masks[i] = steps % interval == (offset + 1 + k) % interval
            k += 1
    return masks


def _has_neuron(layer: Any) -> bool:
    if isinstance(layer, InputLayer):
        return layer.neuron is not None
    return isinstance(layer, (DenseLayer, ConvLayer, PoolLayer))


class Emulator:
    """Bit-accurate emulator of a netx HDF5 network on the fixed-point kernels.

    Parameters
    ----------
    network
        A :class:`~loihi_slayer.hdf5.Network` or a path to a ``.net`` file.
    num_layers
        Use only the first ``num_layers`` layer entries (netx's argument).
    backend
        Kernel backend: ``'cpu'`` (default), ``'cuda'`` or ``'reference'``.
    spike_exp
        ``spike_exp`` of sigma-delta neurons (netx default 6).
    input_shape
        Input shape ``(C, H, W)`` or ``(N,)`` for networks without an ``input``
        layer (netx's ``input_shape`` argument); required when the first layer
        is spatial.
    fast_synapse
        With the ``'cpu'`` backend, compute synaptic sums by a floating-point
        GEMM wherever a per-layer bound proves it bit-exact
        (:mod:`loihi_slayer.fixed.synapse_fast`), the integer kernels elsewhere.
        False runs the integer kernels throughout (same results, slower). During
        :meth:`run` the GEMMs use ``synapse_fast.GEMM_THREADS`` torch threads
        (``torch.set_num_threads`` is restored afterwards). Each layer's weights are
        prepared for the GEMMs on the first run and kept (a copy of the weights to
        detect edits, their int64 checked form and the GEMM's int8 or float copy:
        about three times the weights' own memory), so later runs skip that work.
        Likewise, on the CPU each layer's synapse buffers and sums, its output
        stream and its returned spike trace go into the memory of the last run's
        (kept by the emulator, at most :data:`KEPT_BYTES` in all), so repeated runs
        touch no fresh pages; the memory of a returned trace is used again only once
        nothing references it any more (the caller has let go of the last run's
        traces), otherwise the run allocates anew.

    Examples
    --------
    >>> emu = Emulator("network.net")                      # doctest: +SKIP
    >>> traces = emu.run(spikes, num_steps=2000, record=("s", "v"))  # doctest: +SKIP
    >>> traces[1, "s"]                                      # doctest: +SKIP
    """

    def __init__(
        self,
        network: Network | str | Path,
        num_layers: int | None = None,
        backend: str = "cpu",
        spike_exp: int = SPIKE_EXP,
        input_shape: tuple[int, ...] | None = None,
        fast_synapse: bool = True,
    ) -> None:
        if isinstance(network, (str, Path)):
            network = load_network(network, num_layers=num_layers)
        elif num_layers is not None:
            network = Network(list(network.layers[:num_layers]), network.simulation)
        if backend not in fixed.BACKENDS:
            raise ParameterError(f"backend = {backend!r} is not one of {fixed.BACKENDS}")
        self.network = network
        self.backend = backend
        self.spike_exp = int(spike_exp)
        self.fast_synapse = bool(fast_synapse) and backend == "cpu"
        #: (layer, weight part) -> the weight prepared for the fast synapses (see
        #: :meth:`_prepared_weight`)
        self._prepared: dict[tuple[int, str], tuple] = {}
        #: key -> bytes of the arrays kept between runs (see :meth:`_kept`)
        self._kept_sizes: dict[str, int] = {}
        #: layer -> (what its neuron parameters were made from, the parameters)
        self._params: dict[int, tuple[Any, Any]] = {}
        self._given_input_shape = (
            None if input_shape is None else tuple(int(v) for v in input_shape)
        )
        self.shapes = self._check_layers()
        self.input_shape = self._first_input_shape()

    # ------------------------------------------------------------------ structure
    def _check_layers(self) -> list[tuple[int, ...]]:
        """Validate layer types and connectivity; return each layer's output shape."""
        shapes: list[tuple[int, ...]] = []
        prev: tuple[int, ...] | None = self._given_input_shape
        for i, layer in enumerate(self.network.layers):
            kind = layer.type_name
            if kind not in SUPPORTED_TYPES:
                raise UnsupportedLayerError(f"not supported yet: {kind} in layer {i}")
            if isinstance(layer, InputLayer):
                if i != 0:
                    raise FormatError(f"input layer at position {i}; it must be layer 0")
                shape = tuple(layer.shape)
            elif isinstance(layer, FlattenLayer):
                if prev is None:
                    raise FormatError("flatten cannot be the first layer", group=f"layer/{i}")
                shape = (math.prod(prev),)
            elif isinstance(layer, DenseLayer):
                n_out, n_in = layer.weight.shape
                if prev is not None and math.prod(prev) != n_in:
                    raise FormatError(
                        f"dense weight expects {n_in} inputs but the previous layer has "
                        f"shape {prev}",
                        group=f"layer/{i}",
                        field="weight",
                    )
                if math.prod(layer.shape) != n_out:
                    raise FormatError(
                        f"shape {layer.shape} does not match weight rows {n_out}",
                        group=f"layer/{i}",
                        field="shape",
                    )
                if isinstance(layer, DenseRecurrentLayer) and layer.weight_rec.shape != (
                    n_out,
                    n_out,
                ):
                    raise FormatError(
                        f"weight_rec shape {layer.weight_rec.shape} must be ({n_out}, {n_out})",
                        group=f"layer/{i}",
                        field="weight_rec",
                    )
                shape = (n_out,)
            elif isinstance(layer, AverageLayer):
                if prev is None:
                    raise FormatError("average cannot be the first layer", group=f"layer/{i}")
                n_out = math.prod(layer.shape)
                if n_out < 1 or math.prod(prev) % n_out:
                    raise FormatError(
                        f"{math.prod(prev)} inputs cannot be split into {n_out} equal groups",
                        group=f"layer/{i}",
                        field="shape",
                    )
                shape = tuple(layer.shape)
            elif isinstance(layer, TimeDecimationLayer):
                if prev is None:
                    raise FormatError("decimate cannot be the first layer", group=f"layer/{i}")
                if math.prod(layer.shape) != math.prod(prev):
                    raise FormatError(
                        f"shape {tuple(layer.shape)} differs from its input {prev}",
                        group=f"layer/{i}",
                        field="shape",
                    )
                shape = prev
            else:  # conv, convT, pool, unpool
                shape = self._spatial_shape(i, layer, prev)
            model = self._neuron_model(i, layer)
            self._check_synapse_kind(i, layer, model)
            shapes.append(shape)
            if model is not None:
                # refuse missing fields and out-of-range values now, not at run time
                self._neuron_params(i, layer, model, None, shape)
            prev = shape
        if not shapes:
            raise FormatError("network has no layers")
        return shapes

    def _spatial_shape(self, i: int, layer: Any, prev: tuple[int, ...] | None) -> tuple:
        """Output shape of a conv/convT/pool/unpool layer, checked against the file."""
        kind = layer.type_name
        if prev is None and i == 0:
            raise FormatError(
                f"a {kind} first layer needs an 'input' layer or Emulator(input_shape=...) "
                "giving its input shape",
                group="layer/0",
            )
        if len(prev) != 3:
            raise FormatError(
                f"{kind} needs a (C, H, W) input shape, previous layer gives {prev}",
                group=f"layer/{i}",
            )
        kh, kw = layer.weight.shape[2:]
        if isinstance(layer, PoolLayer):
            c_out = prev[0]
        elif isinstance(layer, ConvTransposeLayer):
            c_out = layer.weight.shape[1] * layer.groups
            if layer.weight.shape[0] != prev[0]:
                raise FormatError(
                    f"convT weight expects {layer.weight.shape[0]} input channels, previous "
                    f"layer has {prev[0]}",
                    group=f"layer/{i}",
                    field="weight",
                )
        else:
            c_out = layer.weight.shape[0]
        size = (
            fixed.conv_transpose_output_size
            if isinstance(layer, (ConvTransposeLayer, UnpoolLayer))
            else fixed.conv_output_size
        )
        h = size(prev[1], kh, layer.stride[0], layer.padding[0], layer.dilation[0])
        w = size(prev[2], kw, layer.stride[1], layer.padding[1], layer.dilation[1])
        if (c_out, h, w) != tuple(layer.shape):
            raise FormatError(
                f"shape {tuple(layer.shape)} differs from the {kind} output {(c_out, h, w)} "
                f"computed from input {prev}",
                group=f"layer/{i}",
                field="shape",
            )
        return tuple(layer.shape)

    def layer_steps(self, num_steps: int) -> list[int]:
        """Number of steps each layer runs for (``decimate`` layers shorten time)."""
        out, steps = [], num_steps
        for layer in self.network.layers:
            if isinstance(layer, TimeDecimationLayer):
                steps = -(-steps // layer.factor)
            out.append(steps)
        return out

    def _first_input_shape(self) -> tuple[int, ...]:
        """Shape of the input stream: the input layer's, else the first synapse's input."""
        first = self.network.layers[0]
        if isinstance(first, InputLayer):
            return self.shapes[0]
        if self._given_input_shape is not None:
            return self._given_input_shape
        if isinstance(first, DenseLayer):
            return (int(first.weight.shape[1]),)
        raise FormatError(
            f"the first layer is {first.type_name!r} without an input layer, so its input "
            "shape is unknown; add an 'input' layer",
            group="layer/0",
        )

    def _neuron_model(self, i: int, layer: Any) -> NeuronModel | None:
        """The registered model of the layer's neuron, or None (no neuron)."""
        if isinstance(layer, (FlattenLayer, AverageLayer, TimeDecimationLayer)):
            return None
        neuron = layer.neuron
        if neuron is None:
            # a synapse layer without a neuron group runs netx's default integrator
            return None if isinstance(layer, InputLayer) else models.get("cuba")
        model = models.by_netx_type(neuron.type)
        if model is None:
            raise UnsupportedLayerError(
                f"not supported: neuron type {neuron.type!r} in layer {i}; known types: "
                f"{sorted(t for m in models.all_models() for t in m.netx_types)}"
            )
        return model

    @staticmethod
    def _check_synapse_kind(i: int, layer: Any, model: NeuronModel | None) -> None:
        """A complex synapse (weight/real, weight/imag) feeds exactly the two-input models."""
        if model is None or isinstance(layer, InputLayer):
            return
        has_imag = getattr(layer, "weight_imag", None) is not None
        if has_imag != (len(model.inputs) == 2):
            what = "a real synapse" if not has_imag else "a complex synapse (weight/real, imag)"
            raise FormatError(
                f"{model.netx_type} neurons take {model.inputs} input(s) but the layer has {what}",
                group=f"layer/{i}",
                field="weight",
            )
        # a complex recurrent or KWTA layer would need complex feedback, which no model runs
        complex_ok = not isinstance(layer, DenseRecurrentLayer)
        if has_imag and not complex_ok:
            raise UnsupportedLayerError(
                f"not supported: complex {layer.type_name} synapse in layer {i}"
            )

    def _neuron_params(
        self, i: int, layer: Any, model: NeuronModel, bias: Any, shape: tuple | None = None
    ) -> Any:
        """The model's parameters of layer ``i``'s neuron record in its layer, made again
        only when the record, the bias or the layer's context differ from the last
        call's (compared by value: records are mutable and may be edited in place);
        checking every value against the hardware ranges took 1 ms of a PilotNet run."""
        ctx = LayerContext(
            index=i,
            type_name=layer.type_name,
            shape=self.shapes[i] if shape is None else shape,
            bias=getattr(layer, "bias", None) if bias is None else bias,
            is_input=isinstance(layer, InputLayer),
            spike_exp=self.spike_exp,
        )
        key = (model.name, snapshot(layer.neuron), snapshot(ctx))
        kept = self._params.get(i)
        if kept is not None and kept[0] == key:
            return kept[1]
        params = model.params_from_record(layer.neuron, ctx)
        self._params[i] = (key, params)
        return params

    def _inputs(self, i: int, layer: Any, model: NeuronModel, a_in: Any, bias: Any) -> Any:
        """The model's synaptic inputs: a tuple ``(re, im)`` for complex models.

        A generated-kernel model takes a layer bias on its (real) input, where
        lava-dl's norm adds it (before the current integrator).
        """
        if model.runner is not None:
            return a_in
        if len(model.inputs) == 1:
            if bias is None:
                bias = getattr(layer, "bias", None)
            if bias is not None:
                b = np.asarray(per_channel(bias, self.shapes[i]), np.int64)
                a_in = np.asarray(a_in).reshape(self.shapes[i] + (-1,)) + b[..., None]
            return a_in
        if getattr(layer, "bias", None) is not None:
            raise FormatError(
                f"{model.netx_type} neurons take no bias", group=f"layer/{i}", field="bias"
            )
        return a_in

        # ------------------------------------------------------------------ running

    def run(
        self,
        input: Any = None,
        num_steps: int | None = None,
        *,
        input_mode: str = "inject",
        graded_input: bool = False,
        cyclic: bool = True,
        resets: Mapping[int, Any] | None = None,
        reset_interval: int | None = None,
        reset_offset: int = 0,
        record: Iterable[str] | Mapping[int, Iterable[str]] | str = ("s",),
        neurons: Mapping[int, Any] | None = None,
        timings: dict[int, dict[str, float]] | None = None,
    ) -> Traces:
        """Run the network for ``num_steps`` Lava steps.

        Parameters
        ----------
        input
            Integer array. ``input_mode='inject'``: ``(*first_layer_shape, T_in)``
            spikes or graded values (column ``k`` is sent at step ``k + 1``);
            ``input_mode='bias'``: per-neuron ``bias_mant`` of the input neuron,
            shape ``input_shape`` (constant over time).
        num_steps
            Steps to run; default: the input length.
        input_mode
            ``'inject'`` or ``'bias'``.
        graded_input
            Send graded values through the first synapse (else they are cast to
            binary spikes, as lava-nc does for 0-bit messages).
        cyclic
            Replay the input from its start when ``num_steps`` exceeds its length
            (lava RingBuffer); when False, missing steps get zero input.
        resets
            ``{layer index: (T,) bool}`` masks; zero the layer's state at the start
            of marked steps.
        reset_interval, reset_offset
            netx-style periodic resets (see :func:`netx_reset_masks`), merged with
            ``resets``.
        record
            Variables to record for every neuron layer (CUBA: ``s, u, v, v_pre``;
            sigma-delta: ``s, sigma, act, residue``), or ``{layer: variables}``.
        neurons
            ``{layer: flat neuron indices}`` to record a subset.
        timings
            Optional dict filled with ``{layer: {'synapse': s, 'neuron': s}}``,
            the wall-clock seconds spent in each layer's synapse and neuron kernels.

        Returns
        -------
        Traces
        """
        layers = self.network.layers
        first_neuron = isinstance(layers[0], InputLayer) and layers[0].neuron is not None
        if input_mode not in INPUT_MODES:
            raise ParameterError(f"input_mode = {input_mode!r} is not one of {INPUT_MODES}")
        data = None if input is None else np.asarray(input)
        if data is not None and data.dtype.kind not in "iub":
            if (
                data.dtype.kind == "f"
                and np.all(np.isfinite(data))
                and np.all(data == np.rint(data))
            ):
                data = data.astype(np.int64)
            else:
                raise ParameterError(
                    f"input must hold integers, got dtype {data.dtype} with non-integer or "
                    "non-finite values"
                )
        if input_mode == "bias":
            if not first_neuron:
                raise ParameterError("input_mode='bias' needs an input layer with a neuron")
            if data is None or tuple(data.shape) != self.shapes[0]:
                raise ParameterError(
                    f"bias input must have the input layer shape {self.shapes[0]}, got "
                    f"{None if data is None else data.shape}"
                )
            if num_steps is None:
                raise ParameterError("num_steps is required with input_mode='bias'")
        steps = int(num_steps if num_steps is not None else (0 if data is None else data.shape[-1]))
        if steps < 1:
            raise ParameterError(f"num_steps = {steps} must be >= 1")
        check_run_memory(self, steps)  # before any (num_steps,)-sized allocation
        masks = self.reset_masks(steps, resets, reset_interval, reset_offset)
        wanted = self._record_map(record)
        subsets = dict(neurons or {})

        # input stream in the shape of the first consumer
        if input_mode == "inject":
            x = self._input_stream(data, self.input_shape, steps, cyclic)
        out: dict[int, LayerTraces] = {}
        stream: np.ndarray | None = None  # output of the previous layer, (*shape, T)
        graded = graded_input
        layer_steps = self.layer_steps(steps)
        # one GEMM thread setting for the whole run (see synapse_fast.GEMM_THREADS), and
        # every kernel's shares on the worker pool, where the synapses' are (no OpenMP
        # region whose spinning threads would hold the cores they need: fixed.workers)
        threads = synapse_fast.gemm_threads() if self.fast_synapse else nullcontext()
        with threads, workers.on_pool():
            for i, layer in enumerate(layers):
                shape = self.shapes[i]
                model = self._neuron_model(i, layer)
                steps = layer_steps[i]
                if isinstance(layer, _SUM_LAYERS):
                    stream = self._sum_layer(layer, stream, shape)
                    graded = True  # integer sums travel on as graded values
                    rec = tuple(wanted.get(i, ()))
                    if any(v != "s" for v in rec):
                        raise ParameterError(
                            f"record: layer {i} ({layer.type_name}) has only the variable 's'"
                        )
                    if rec:
                        sel = self._subset(i, subsets.get(i), math.prod(shape))
                        lt = LayerTraces(i, layer.type_name, shape, None, sel, num_steps=steps)
                        lt.data["s"] = stream.reshape(-1, steps)[sel]
                        out[i] = lt
                    continue
                if isinstance(layer, InputLayer):
                    if model is None:
                        stream = x if input_mode == "inject" else None
                        continue
                    if input_mode == "bias":
                        a_in = np.zeros(shape + (steps,), np.int64)
                        bias = data
                    else:
                        # netx stores the input layer's affine weight/bias but never applies them
                        a_in, bias = x, 0
                    if len(model.inputs) == 2:
                        a_in = (a_in, np.zeros_like(a_in))  # real input into a resonator
                elif isinstance(layer, FlattenLayer):
                    stream = stream.reshape(shape + (steps,))
                    continue
                else:
                    if stream is None:
                        stream = x if i == 0 else None
                    if stream is None:
                        raise ParameterError(f"layer {i} has no input: pass input=...")
                    t0 = time.perf_counter()
                    a_in = self._synapse(i, layer, stream, graded, complex_=len(model.inputs) == 2)
                    if timings is not None:
                        timings.setdefault(i, {})["synapse"] = time.perf_counter() - t0
                    bias = None
                params = self._neuron_params(i, layer, model, bias)
                a_in = self._inputs(i, layer, model, a_in, bias)
                rec = tuple(wanted.get(i, ()))
                for v in rec:
                    if v not in model.traces:
                        raise ParameterError(
                            f"record: layer {i} ({model.name}) has no variable {v!r}; "
                            f"allowed {model.traces}"
                        )
                need = tuple(dict.fromkeys(("s",) + rec))
                t0 = time.perf_counter()
                if isinstance(layer, DenseRecurrentLayer):
                    traces = self._run_recurrent(i, layer, a_in, params, model, masks.get(i), need)
                else:
                    kept = self._kept_spikes(i, model, a_in, "s" in rec and i not in subsets)
                    traces, _ = model.run(
                        a_in,
                        params,
                        reset=masks.get(i),
                        record=need,
                        backend=self.backend,
                        **({} if kept is None else {"out": {"s": kept}}),
                    )
                if timings is not None:
                    timings.setdefault(i, {})["neuron"] = time.perf_counter() - t0
                # the stream keeps the kernel's dtype (int8 spikes); recorded traces are int64,
                # the kernel's own int64 arrays handed over as they are (nothing writes them
                # after this: the stream is only read), int8 spikes widened (on torch's
                # threads when large)
                stream = self._output_delay(i, layer, np.asarray(traces["s"]))
                graded = model.graded
                sel = self._subset(i, subsets.get(i), math.prod(shape))
                neuron_type = layer.neuron.type if layer.neuron is not None else "CUBA"
                lt = LayerTraces(i, layer.type_name, shape, neuron_type, sel, num_steps=steps)
                for v in rec:
                    flat = np.asarray(traces[v]).reshape(-1, steps)
                    if i in subsets:
                        lt.data[v] = as_int64(flat[sel])
                    elif flat.dtype == np.int64:
                        lt.data[v] = flat
                    else:  # int8 spikes: widened into the memory of the last run's trace
                        lt.data[v] = as_int64(
                            flat, self._kept(f"trace {i} {v}", flat.shape, np.int64)
                        )
                if rec:
                    out[i] = lt
        return Traces(layer_steps[0] if layer_steps else steps, out)

    def _kept(self, key: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
        """An uninitialised array for the run's array ``key``: the memory it had at the
        last run once nothing references it any more (:mod:`loihi_slayer._recycle`), so
        repeated runs write no fresh pages (each faults on first touch); None for other
        backends and where keeping it would take the kept arrays over
        :data:`KEPT_BYTES` (a kept array of that key is then let go; the total is
        checked when a key first comes or changes size, not at every run of a layer:
        summing ~80 keys' sizes per call took ~4 us of each call's ~15)."""
        dtype = np.dtype(dtype)
        if self.backend != "cpu":
            return None
        nbytes = math.prod(shape) * dtype.itemsize
        sizes = self._kept_sizes
        with _KEPT_LOCK:
            # a key asked for at its kept size leaves the total as it is (summed otherwise)
            if sizes.get(key) != nbytes:
                if sum(sizes.values()) - sizes.get(key, 0) + nbytes > KEPT_BYTES:
                    if sizes.pop(key, None) is not None:
                        recycled_for(self, key).release()
                    return None
                sizes[key] = nbytes
        torch_dtype = _TORCH_DTYPES.get(dtype)
        if torch_dtype is None:
            torch_dtype = _TORCH_DTYPES[dtype] = torch.from_numpy(np.empty(0, dtype)).dtype
        return recycled_for(self, key).empty(tuple(shape), torch_dtype).numpy()

    def _kept_spikes(
        self, i: int, model: NeuronModel, a_in: Any, returned: bool
    ) -> np.ndarray | None:
        """Memory for layer ``i``'s output stream (:meth:`_kept`): the stream's own where
        no trace of it is returned, or int8 spikes that are returned widened; the
        returned trace's where the stream is it (graded payloads are int64 already). The
        memory of a returned trace is used again only once the caller has let go of it
        (see :mod:`loihi_slayer._recycle`)."""
        first = a_in[0] if isinstance(a_in, tuple) else a_in
        dtype = model.spike_dtype
        key = f"trace {i} s" if returned and dtype == np.int64 else f"stream {i}"
        return self._kept(key, tuple(first.shape), dtype)

    def _scratch(self, i: int, part: str) -> synapse_fast.Scratch:
        """Layer ``i``'s synapse arrays (weight ``part``) in kept memory (:meth:`_kept`)."""

        def scratch(role: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
            kept = self._kept(f"synapse {i} {part} {role}", shape, dtype)
            return synapse_fast.new_array(role, shape, dtype) if kept is None else kept

        return scratch

    @staticmethod
    def _sum_layer(layer: Any, stream: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Integer output of an ``average`` or ``decimate`` layer."""
        steps = stream.shape[-1]
        if isinstance(layer, AverageLayer):
            groups = math.prod(shape)
            return stream.reshape(groups, -1, steps).sum(axis=1).reshape(shape + (steps,))
        f, lat = layer.factor, layer.latency
        padded = -(-steps // f) * f
        flat = np.zeros((math.prod(stream.shape[:-1]), padded), np.int64)
        flat[:, lat:steps] = stream.reshape(-1, steps)[:, : steps - lat]
        return flat.reshape(-1, padded // f, f).sum(axis=2).reshape(shape + (padded // f,))

    def reset_masks(
        self,
        num_steps: int,
        resets: Mapping[int, Any] | None = None,
        interval: int | None = None,
        offset: int = 0,
    ) -> dict[int, np.ndarray]:
        """Per-layer reset masks (start of step) from explicit masks and/or netx's
        ``reset_interval``/``reset_offset``; each has the layer's number of steps."""
        steps = num_steps
        masks: dict[int, np.ndarray] = {}
        per_layer = self.layer_steps(steps)
        if interval is not None:
            masks.update(netx_reset_masks(self.network, steps, int(interval), int(offset)))
            masks = {i: m[: per_layer[i]] for i, m in masks.items()}
        for i, m in (resets or {}).items():
            arr = np.asarray(m, dtype=bool)
            if not 0 <= int(i) < len(self.network.layers):
                raise ParameterError(f"resets: layer {i} does not exist")
            n = per_layer[int(i)]
            if arr.shape != (n,):
                raise ParameterError(
                    f"resets[{i}] must have shape ({n},) (one flag per step), got {arr.shape}"
                )
            masks[int(i)] = masks[int(i)] | arr if int(i) in masks else arr
        return masks

    def _record_map(self, record) -> dict[int, tuple[str, ...]]:
        if isinstance(record, str):
            record = (record,)
        if isinstance(record, Mapping):
            return {int(k): tuple(v) for k, v in record.items()}
        names = tuple(record)
        result = {}
        for i, layer in enumerate(self.network.layers):
            model = self._neuron_model(i, layer)
            if isinstance(layer, _SUM_LAYERS):
                result[i] = tuple(n for n in names if n == "s")
                continue
            if model is None:
                continue
            result[i] = tuple(n for n in names if n in model.traces)
        known = {t for m in models.all_models() for t in m.traces}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ParameterError(f"record: unknown variables {unknown}; known: {sorted(known)}")
        return result

    @staticmethod
    def _subset(i: int, sel: Any, n: int) -> np.ndarray:
        if sel is None:
            return np.arange(n)
        idx = np.asarray(sel, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ParameterError(f"neurons[{i}]: indices must lie in [0, {n - 1}]")
        return idx

    @staticmethod
    def _input_stream(data, shape, steps, cyclic) -> np.ndarray:
        if data is None:
            return np.zeros(shape + (steps,), np.int64)
        if tuple(data.shape[:-1]) != tuple(shape):
            if data.ndim >= 2 and math.prod(data.shape[:-1]) == math.prod(shape):
                data = data.reshape(tuple(shape) + (data.shape[-1],))
            else:
                raise ParameterError(f"input has shape {data.shape}; expected (*{tuple(shape)}, T)")
        length = data.shape[-1]
        if length == 0:
            raise ParameterError("input has no time steps")
        if cyclic and length >= steps and data.dtype in _STREAM_DTYPES:
            return np.ascontiguousarray(data[..., :steps])  # no replay: no copy if contiguous
        if cyclic:
            idx = np.arange(steps) % length
            return np.ascontiguousarray(data[..., idx]).astype(np.int64)
        out = np.zeros(tuple(shape) + (steps,), np.int64)
        n = min(length, steps)
        out[..., :n] = data[..., :n]
        return out

    def _synapse(
        self, i: int, layer: Any, x: np.ndarray, graded: bool, complex_: bool = False
    ) -> Any:
        r"""The layer's integer synaptic sums; ``(re, im)`` for a complex synapse.

        A complex synapse is the same real synapse run with each weight part:

        .. math::

            (a_{re}, a_{im}) = (W_{re} * x,\; W_{im} * x)
        """
        imag = getattr(layer, "weight_imag", None) if complex_ else None
        if not self.fast_synapse:
            weights = (layer.weight,) if imag is None else (layer.weight, imag)
            sums = tuple(self._real_synapse(layer, w, x, graded, i) for w in weights)
        else:
            parts = ("weight",) if imag is None else ("weight", "weight_imag")
            sums = tuple(self._fast_synapse(layer, part, x, graded, i) for part in parts)
        return sums if imag is not None else sums[0]

    def _fast_synapse(
        self, layer: Any, part: str, x: np.ndarray, graded: bool, i: int
    ) -> np.ndarray:
        """As :meth:`_real_synapse` through :mod:`~loihi_slayer.fixed.synapse_fast` with the
        layer's weight ``part`` (checked as the integer kernels check it); int32 sums where
        they fit."""
        steps = x.shape[-1]
        dense = isinstance(layer, DenseLayer)
        transpose = isinstance(layer, (ConvTransposeLayer, UnpoolLayer))
        depthwise = isinstance(layer, (PoolLayer, UnpoolLayer))
        groups = 1 if dense else x.shape[0] if depthwise else int(layer.groups)
        w, weights = self._prepared_weight(i, layer, part, x.shape, groups, transpose)
        if dense:
            xin = _kernel_input(x, (math.prod(x.shape[:-1]), steps))
            return synapse_fast.dense(xin, w, 0, graded, 1, weights, self._scratch(i, part))
        _, h_out, w_out = self.shapes[i]
        geometry = (
            _pair("stride", layer.stride, 1),
            _pair("padding", layer.padding, 0),
            _pair("dilation", layer.dilation, 1),
            groups,
        )
        return synapse_fast.conv2d(
            _kernel_input(x, x.shape),
            w,
            *geometry,
            0,
            graded,
            1,
            (h_out, w_out),
            transpose=transpose,
            weights=weights,
            scratch=self._scratch(i, part),
        )

    def _prepared_weight(
        self,
        i: int,
        layer: Any,
        part: str,
        x_shape: tuple[int, ...],
        groups: int,
        transpose: bool,
    ) -> tuple[np.ndarray, synapse_fast.Weights]:
        """Layer ``i``'s checked weight ``part`` and its :class:`~.synapse_fast.Weights`,
        prepared on first use and kept for later runs while the layer holds the same
        array with the same values (compared with a private copy: a weight edited in
        place or replaced is prepared again)."""
        weight = getattr(layer, part)
        view = host_view(weight, part)
        key = (i, part)
        kept = self._prepared.get(key)
        if (
            kept is not None
            and kept[0] is weight
            and kept[1] == (groups, transpose)
            and np.array_equal(kept[2], view)
        ):
            return kept[3], kept[4]
        w = self._checked_weight(layer, weight, x_shape)
        if isinstance(layer, DenseLayer):
            weights = synapse_fast.dense_weights(w)
        else:
            weights = synapse_fast.conv_weights(w, groups, transpose)
        self._prepared[key] = (weight, (groups, transpose), view.copy(), w, weights)
        return w, weights

    @staticmethod
    def _checked_weight(layer: Any, weight: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
        """The weight as the integer kernels use it (range-checked, quantized for dense)."""
        if isinstance(layer, DenseLayer):
            return np.ascontiguousarray(_weights(weight, None, 8), np.int64)
        if isinstance(layer, (PoolLayer, UnpoolLayer)):
            return _depthwise(weight, x_shape[0], "weight").astype(np.int64)
        w = int_param("weight (8-bit mantissa)", host_view(weight, "weight"), -256, 255)
        return np.ascontiguousarray(w, np.int64)

    def _real_synapse(
        self, layer: Any, weight: np.ndarray, x: np.ndarray, graded: bool, i: int | None = None
    ) -> Any:
        """Integer sums of ``layer``'s synapse (type and geometry) with the kernel ``weight``."""
        if isinstance(layer, DenseLayer):
            xin = x.reshape(-1, x.shape[-1])
            return np.asarray(
                fixed.dense(xin, weight, graded=graded, latency=1, backend=self.backend)
            )
        geometry = dict(
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            graded=graded,
            latency=1,
            backend=self.backend,
        )
        if isinstance(layer, UnpoolLayer):
            return np.asarray(fixed.unpool2d(x, weight, **geometry))
        if isinstance(layer, PoolLayer):
            return np.asarray(fixed.pool2d(x, weight, **geometry))
        if isinstance(layer, ConvTransposeLayer):
            return np.asarray(fixed.conv_transpose2d(x, weight, groups=layer.groups, **geometry))
        return np.asarray(fixed.conv2d(x, weight, groups=layer.groups, **geometry))

    def _run_recurrent(self, i, layer, a_ff, params, model, mask, need) -> dict:
        """Step-by-step run of a dense_rec layer: its own output returns one step later."""
        if len(model.inputs) != 1:
            raise UnsupportedLayerError(
                f"layer {i}: a recurrent {model.netx_type} layer (complex recurrent weights) "
                "is not supported"
            )
        w_rec = _weights(layer.weight_rec, None, 8, name=f"layer {i} weight_rec")
        a_ff = np.asarray(a_ff).reshape(w_rec.shape[0], -1)
        n, steps = a_ff.shape
        const = np.zeros(n, np.int64)
        if isinstance(layer, KWTALayer) and layer.input_bias is not None:
            ib = np.asarray(layer.input_bias, np.int64).reshape(-1)
            if ib.size not in (1, n):
                raise FormatError(
                    f"input_bias has {ib.size} entries, expected 1 or {n}",
                    group=f"layer/{i}",
                    field="input_bias",
                )
            const = np.broadcast_to(ib, (n,))
        outs = {k: np.zeros((n, steps), np.int64) for k in need}
        state = None
        prev = np.zeros(n, np.int64)
        for t in range(steps):
            # binary spikes reach the synapse as 0/1, graded payloads as they are
            fb = prev if model.graded else (prev != 0).astype(np.int64)
            a_t = (a_ff[:, t] + w_rec @ fb + const)[:, None]
            reset = None if mask is None else mask[t : t + 1]
            tr, state = model.run(
                a_t, params, state=state, reset=reset, record=need, backend=self.backend
            )
            for k in need:
                outs[k][:, t] = np.asarray(tr[k])[:, 0]
            prev = outs["s"][:, t]
        return outs

    def _output_delay(self, i: int, layer: Any, s: np.ndarray) -> np.ndarray:
        delay = getattr(layer, "delay", None)
        if delay is None:
            return s
        d = np.asarray(delay, dtype=np.int64).reshape(-1)
        shape, steps = s.shape[:-1], s.shape[-1]
        chan = shape[0]
        if d.size not in (1, chan):
            raise FormatError(
                f"delay has {d.size} entries, expected 1 or {chan} (one per output channel)",
                group=f"layer/{i}",
                field="delay",
            )
        if d.size and (d.min() < 0 or d.max() > 62):
            raise ParameterError(f"layer {i}: delay values must lie in [0, 62], got {d.tolist()}")
        d = np.broadcast_to(d, (chan,))
        out = np.zeros_like(s)
        for c in range(chan):
            if d[c] < steps:
                out[c, ..., d[c] :] = s[c, ..., : steps - d[c]]
        return out

"""In-memory description of a lava-dl / netx HDF5 network (``*.net``).

These are plain dataclasses with no HDF5 dependency: :mod:`loihi_slayer.hdf5.netx`
converts between them and files. Everything is kept exactly as the file stores it:

* shapes and weights are in **PyTorch order** (no Lava reordering);
* integer-valued quantities (weights, bias, delay, decays, thresholds) are int64
  numpy arrays or Python ints;
* datasets that have no dedicated field are kept in an ``extra`` dict (name ->
  numpy value or ``str``), so a load/save round trip loses nothing.

Equality (``==``) compares every field, arrays by shape, dtype and value.
The constructors normalise and check their arguments and raise
:class:`~loihi_slayer.errors.ParameterTypeError` for wrong types/shapes and
:class:`~loihi_slayer.errors.ParameterError` for invalid values.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from loihi_slayer.errors import ParameterError, ParameterTypeError, describe

__all__ = [
    "NEURON_TYPES",
    "LAYER_TYPES",
    "AverageLayer",
    "ConvLayer",
    "ConvTransposeLayer",
    "CubaNeuron",
    "DenseLayer",
    "DenseRecurrentLayer",
    "FlattenLayer",
    "GenericNeuron",
    "InputLayer",
    "Layer",
    "Network",
    "Neuron",
    "PoolLayer",
    "SigmaDeltaNeuron",
    "Simulation",
    "UnpoolLayer",
    "default_dense_neuron",
    "values_equal",
]

_INT64_MAX = np.iinfo(np.int64).max


# --------------------------------------------------------------------------- helpers


def values_equal(a: Any, b: Any) -> bool:
    """Structural equality used by every schema class.

    Parameters
    ----------
    a, b
        Values to compare: numpy arrays/scalars (equal shape, dtype and values;
        NaNs compare equal), dicts, lists/tuples, dataclasses or plain values.

    Returns
    -------
    bool
        True when ``a`` and ``b`` are equal.
    """
    if isinstance(a, (np.ndarray, np.generic)) or isinstance(b, (np.ndarray, np.generic)):
        if not isinstance(a, (np.ndarray, np.generic)) or not isinstance(
            b, (np.ndarray, np.generic)
        ):
            return False
        aa, bb = np.asarray(a), np.asarray(b)
        if aa.shape != bb.shape or aa.dtype != bb.dtype:
            return False
        if aa.dtype.kind in "fc":
            return bool(np.array_equal(aa, bb, equal_nan=True))
        return bool(np.array_equal(aa, bb))
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)) or set(a) != set(b):
            return False
        return all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        if type(a) is not type(b) or len(a) != len(b):
            return False
        return all(values_equal(x, y) for x, y in zip(a, b, strict=True))
    if dataclasses.is_dataclass(a) or dataclasses.is_dataclass(b):
        if type(a) is not type(b):
            return False
        return all(
            values_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    if type(a) is not type(b) and not (
        isinstance(a, numbers.Number) and isinstance(b, numbers.Number)
    ):
        return False
    return bool(a == b)


class _Record:
    """Mixin giving dataclasses array-aware structural equality."""

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return values_equal(self, other)

    __hash__ = None  # type: ignore[assignment]  # mutable records are unhashable


def _int_array(value: Any, name: str, *, ndim: int | None = None) -> np.ndarray:
    """Return ``value`` as a fresh int64 array; reject non-integer values."""
    try:
        arr = np.array(value, copy=True)
    except Exception as exc:  # any conversion failure is a type error
        raise ParameterTypeError(f"{name} must be an integer array, got {type(value)!r}") from exc
    kind = arr.dtype.kind
    if kind in "iu":
        if kind == "u" and arr.size and int(arr.max()) > _INT64_MAX:
            raise ParameterError(f"{name} does not fit int64: {describe(arr)}")
        arr = arr.astype(np.int64)
    elif kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ParameterError(f"{name} holds NaN or infinite values: {describe(arr)}")
        if not np.array_equal(np.trunc(arr), arr):
            raise ParameterError(f"{name} must hold integer values, got {describe(arr)}")
        if arr.size and float(np.max(np.abs(arr))) >= 2.0**63:
            raise ParameterError(f"{name} does not fit int64: {describe(arr)}")
        arr = arr.astype(np.int64)
    else:
        raise ParameterTypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ParameterTypeError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return arr


def _opt_int_array(value: Any, name: str) -> np.ndarray | None:
    return None if value is None else _int_array(value, name)


def _int(value: Any, name: str) -> int:
    """Return ``value`` as a Python int (accepts integer-valued numbers, 0-d arrays)."""
    if isinstance(value, (bool, np.bool_)):
        raise ParameterTypeError(f"{name} must be an integer, got {value!r}")
    arr = _int_array(value, name)
    if arr.ndim != 0:
        raise ParameterTypeError(f"{name} must be a scalar integer, got shape {arr.shape}")
    return int(arr)


def _opt_int(value: Any, name: str) -> int | None:
    return None if value is None else _int(value, name)


def _int_or_array(value: Any, name: str) -> int | np.ndarray:
    """Scalar -> Python int, array (ndim >= 1) -> int64 array."""
    if isinstance(value, (bool, np.bool_)):
        raise ParameterTypeError(f"{name} must be an integer, got {value!r}")
    arr = _int_array(value, name)
    return int(arr) if arr.ndim == 0 else arr


def _shape(value: Any, name: str = "shape") -> tuple[int, ...]:
    arr = _int_array(value, name)
    if arr.ndim > 1:
        raise ParameterTypeError(f"{name} must be a 1-D sequence of ints, got {describe(arr)}")
    arr = arr.reshape(-1)
    if np.any(arr < 0):
        raise ParameterError(f"{name} must be non-negative, got {describe(arr)}")
    return tuple(int(v) for v in arr)


def _pair(value: Any, name: str, *, minimum: int) -> tuple[int, int]:
    """Scalar or 1/2-element sequence -> (H, W) pair of ints >= minimum."""
    arr = _int_array(value, name)
    if arr.ndim > 1 or arr.size not in (1, 2):
        raise ParameterTypeError(f"{name} must be an int or an (H, W) pair, got {describe(arr)}")
    flat = arr.reshape(-1)
    pair = (int(flat[0]), int(flat[0])) if flat.size == 1 else (int(flat[0]), int(flat[1]))
    if min(pair) < minimum:
        raise ParameterError(f"{name} must be >= {minimum}, got {pair}")
    return pair


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (numbers.Integral, np.integer)) and int(value) in (0, 1):
        return bool(value)
    raise ParameterTypeError(f"{name} must be a bool, got {value!r}")


def _extra(value: Any, name: str = "extra") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ParameterTypeError(f"{name} must be a dict name -> value, got {type(value)!r}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or any(not p for p in key.split("/")):
            raise ParameterTypeError(f"{name} keys must be non-empty dataset names, got {key!r}")
        out[key] = item
    return out


# --------------------------------------------------------------------------- neurons


@dataclass(eq=False)
class CubaNeuron(_Record):
    """Current-based LIF neuron (file neuron type ``'CUBA'`` or legacy ``'LOIHI'``).

    Parameters
    ----------
    i_decay, v_decay
        Current / voltage decay, ×4096 (0..4096; 4096 = full decay). An int, or an
        int64 array of shape (C,) for per-channel parameters.
    v_th_mant
        Threshold mantissa (spike when ``v > v_th_mant << 6``); int or array.
    ref_delay
        Refractory delay (``refDelay``; 1 = none, as lava-dl always writes; a
        ``neuron.cuba.Neuron(ref_delay=R)`` writes R).
    graded_spike
        ``gradedSpike`` flag (ignored by netx).
    wgt_exp
        Legacy ``wgtExp`` (always 0 in files seen; ignored by netx).
    type
        ``'CUBA'`` or ``'LOIHI'``, kept for a faithful round trip.
    extra
        Any other neuron datasets (legacy ``theta``, ``tauRho``, ``scaleRho``,
        ``weight_exp``, ...), name -> numpy value or str.
    """

    i_decay: int | np.ndarray
    v_decay: int | np.ndarray
    v_th_mant: int | np.ndarray
    ref_delay: int = 1
    graded_spike: bool = False
    wgt_exp: int = 0
    type: str = "CUBA"
    extra: dict[str, Any] = field(default_factory=dict)

    TYPES: ClassVar[tuple[str, ...]] = ("CUBA", "LOIHI")

    def __post_init__(self) -> None:
        self.i_decay = _int_or_array(self.i_decay, "i_decay")
        self.v_decay = _int_or_array(self.v_decay, "v_decay")
        self.v_th_mant = _int_or_array(self.v_th_mant, "v_th_mant")
        self.ref_delay = _int(self.ref_delay, "ref_delay")
        self.graded_spike = _bool(self.graded_spike, "graded_spike")
        self.wgt_exp = _int(self.wgt_exp, "wgt_exp")
        if self.type not in self.TYPES:
            raise ParameterError(f"CubaNeuron type must be one of {self.TYPES}, got {self.type!r}")
        self.extra = _extra(self.extra)


@dataclass(eq=False)
class SigmaDeltaNeuron(_Record):
    """Sigma-delta neuron (file neuron type ``'SDNN'``).

    Parameters
    ----------
    v_th_mant
        Delta threshold mantissa ``int(threshold*64)``; int, int64 array or None
        (a pure ``sigma_output`` neuron written by ``dendrite.Sigma`` has none).
    activation
        Activation name (``'relu'``; ignored by netx). None when the file has no
        ``activation`` dataset.
    sigma_output
        True for a sigma (accumulator-only) output neuron. netx tests only the
        presence of ``sigma_output``, so the reader sets True whenever it exists.
    extra
        Any other neuron datasets.
    """

    v_th_mant: int | np.ndarray | None = None
    activation: str | None = "relu"
    sigma_output: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    type: ClassVar[str] = "SDNN"

    def __post_init__(self) -> None:
        if self.v_th_mant is not None:
            self.v_th_mant = _int_or_array(self.v_th_mant, "v_th_mant")
        if self.activation is not None and not isinstance(self.activation, str):
            raise ParameterTypeError(f"activation must be a str, got {self.activation!r}")
        self.sigma_output = _bool(self.sigma_output, "sigma_output")
        if self.v_th_mant is None and not self.sigma_output:
            raise ParameterError("SigmaDeltaNeuron needs v_th_mant unless sigma_output is True")
        self.extra = _extra(self.extra)


@dataclass(eq=False)
class GenericNeuron(_Record):
    """Neuron of any other type (RF_PHASE, RF_IZHIKEVICH, ADRF_*, ALIF, ...).

    The reader keeps such neurons verbatim so that the emulator, not the reader,
    decides whether it can run them.

    Parameters
    ----------
    type
        The file's ``neuron/type`` string.
    params
        Every other neuron dataset, name -> numpy value or str.
    """

    type: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type:
            raise ParameterTypeError(f"neuron type must be a non-empty str, got {self.type!r}")
        if self.type in CubaNeuron.TYPES or self.type == SigmaDeltaNeuron.type:
            raise ParameterError(
                f"neuron type {self.type!r} has a dedicated class; use CubaNeuron/SigmaDeltaNeuron"
            )
        self.params = _extra(self.params, "params")


Neuron = CubaNeuron | SigmaDeltaNeuron | GenericNeuron

NEURON_TYPES: dict[str, type] = {
    "CUBA": CubaNeuron,
    "LOIHI": CubaNeuron,
    "SDNN": SigmaDeltaNeuron,
}


def default_dense_neuron() -> CubaNeuron:
    """netx's default neuron for a dense layer that has no ``neuron`` group.

    Returns
    -------
    CubaNeuron
        A non-leaking current integrator: iDecay 0, vDecay 4096, refDelay 1 and
        vThMant 131072 (netx writes ``1 << 18 - 1``, which Python parses as
        ``1 << 17``).
    """
    return CubaNeuron(i_decay=0, v_decay=4096, v_th_mant=1 << 17, ref_delay=1, type="CUBA")


def _spatial_weight(value: Any, name: str, layout: str) -> np.ndarray:
    """4-D int64 kernel of a conv-like record (a legacy trailing singleton 5th axis dropped)."""
    weight = _int_array(value, name)
    if weight.ndim == 5 and weight.shape[4] == 1:
        weight = weight[..., 0]
    if weight.ndim != 4:
        raise ParameterTypeError(f"{name} must be 4-D {layout}, got {weight.shape}")
    return weight


def _normalize_imag(layer: Any, normalize: Callable[[Any, str], np.ndarray]) -> None:
    """``weight_imag`` (None: a real synapse) normalised as ``weight`` is, same shape."""
    if layer.weight_imag is None:
        return
    imag = normalize(layer.weight_imag, "weight_imag")
    if imag.shape != layer.weight.shape:
        raise ParameterTypeError(
            f"weight_imag shape {imag.shape} differs from weight shape {layer.weight.shape}"
        )
    layer.weight_imag = imag


def _normalize_spatial(layer: Any, layout: str) -> None:
    """Shape, 4-D weight and ``weight_imag`` (:func:`_spatial_weight`) and the
    stride/padding/dilation pairs of a conv-like record."""
    layer.shape = _shape(layer.shape)
    layer.weight = _spatial_weight(layer.weight, "weight", layout)
    _normalize_imag(layer, lambda v, name: _spatial_weight(v, name, layout))
    layer.stride = _pair(layer.stride, "stride", minimum=1)
    layer.padding = _pair(layer.padding, "padding", minimum=0)
    layer.dilation = _pair(layer.dilation, "dilation", minimum=1)


def _check_neuron(value: Any) -> None:
    if value is not None and not isinstance(value, (CubaNeuron, SigmaDeltaNeuron, GenericNeuron)):
        raise ParameterTypeError(f"neuron must be a neuron record or None, got {type(value)!r}")


# --------------------------------------------------------------------------- layers


@dataclass(eq=False)
class Layer(_Record):
    """Base class of all layer records; ``type_name`` is the file's type string."""

    type_name: ClassVar[str] = ""


@dataclass(eq=False)
class InputLayer(Layer):
    """``input`` layer.

    Parameters
    ----------
    shape
        Neuron shape (C, H, W) or (C,).
    neuron
        Input neuron, or None (then the layer only sets the input shape).
    weight, bias
        Affine input transform scalars (slayer value × 64) as ints, or None.
        netx stores but never applies them.
    extra
        Other datasets of the layer group (keyword only).
    """

    shape: tuple[int, ...]
    neuron: Neuron | None = None
    weight: int | None = None
    bias: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)

    type_name: ClassVar[str] = "input"

    def __post_init__(self) -> None:
        self.shape = _shape(self.shape)
        _check_neuron(self.neuron)
        self.weight = _opt_int(self.weight, "weight")
        self.bias = _opt_int(self.bias, "bias")
        self.extra = _extra(self.extra)


@dataclass(eq=False)
class DenseLayer(Layer):
    """``dense`` layer (slayer Dense, Affine and sigma-delta Output blocks).

    Parameters
    ----------
    shape
        Neuron shape, (N,) or legacy (N, 1, 1).
    weight
        int64 (out, in) weight mantissas (8-bit grid integers). For a complex
        synapse this is the real part.
    neuron
        Neuron record, or None: netx then uses :func:`default_dense_neuron`.
    bias
        int64 (out,) bias mantissas, or None.
    delay
        int64 (out,) axonal delays, or None.
    weight_imag
        Keyword only: int64 (out, in) imaginary part of a complex synapse (file
        group ``weight/{real,imag}``), or None for an ordinary real synapse.
    extra
        Other datasets of the layer group (keyword only).
    """

    shape: tuple[int, ...]
    weight: np.ndarray
    neuron: Neuron | None = None
    bias: np.ndarray | None = None
    delay: np.ndarray | None = None
    weight_imag: np.ndarray | None = field(default=None, kw_only=True)
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)

    type_name: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        self.shape = _shape(self.shape)
        self.weight = _int_array(self.weight, "weight", ndim=2)
        _check_neuron(self.neuron)
        self.bias = _opt_int_array(self.bias, "bias")
        self.delay = _opt_int_array(self.delay, "delay")
        _normalize_imag(self, lambda v, name: _int_array(v, name, ndim=2))
        self.extra = _extra(self.extra)


@dataclass(eq=False)
class DenseRecurrentLayer(DenseLayer):
    """``dense_rec`` layer: a dense layer plus a recurrent (out, out) weight.

    Parameters
    ----------
    shape, weight, neuron, bias, delay
        As :class:`DenseLayer`.
    weight_rec
        int64 (out, out) recurrent weight mantissas (required).
    """

    weight_rec: np.ndarray | None = None

    type_name: ClassVar[str] = "dense_rec"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.weight_rec is None:
            raise ParameterTypeError("DenseRecurrentLayer needs weight_rec")
        self.weight_rec = _int_array(self.weight_rec, "weight_rec", ndim=2)


@dataclass(eq=False)
class ConvLayer(Layer):
    """``conv`` layer.

    Parameters
    ----------
    shape
        Output neuron shape (C_out, H_out, W_out).
    weight
        int64 (out, in/groups, kH, kW) kernel mantissas (PyTorch
        cross-correlation layout; a legacy trailing singleton 5th axis is
        dropped).
    stride, padding, dilation
        (H, W) pairs; a scalar expands to (v, v).
    groups
        Number of groups.
    neuron, bias, delay
        As :class:`DenseLayer` (netx ignores a conv delay).
    weight_imag
        Keyword only: int64 imaginary part of a complex synapse, laid out as
        ``weight`` (file group ``weight/{real,imag}``), or None.
    extra
        Other datasets of the layer group (keyword only).
    """

    shape: tuple[int, ...]
    weight: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    neuron: Neuron | None = None
    bias: np.ndarray | None = None
    delay: np.ndarray | None = None
    weight_imag: np.ndarray | None = field(default=None, kw_only=True)
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)

    type_name: ClassVar[str] = "conv"

    def __post_init__(self) -> None:
        _normalize_spatial(self, "(out, in/g, kH, kW)")
        self.groups = _int(self.groups, "groups")
        if self.groups < 1:
            raise ParameterError(f"groups must be >= 1, got {self.groups}")
        _check_neuron(self.neuron)
        self.bias = _opt_int_array(self.bias, "bias")
        self.delay = _opt_int_array(self.delay, "delay")
        self.extra = _extra(self.extra)


@dataclass(eq=False)
class ConvTransposeLayer(ConvLayer):
    """``convT`` layer: as :class:`ConvLayer`, weight laid out (in, out/groups, kH, kW)."""

    type_name: ClassVar[str] = "convT"


@dataclass(eq=False)
class FlattenLayer(Layer):
    """``flatten`` layer; ``shape`` is [C*H*W, 1, 1] (legacy [1, 1, C*H*W])."""

    shape: tuple[int, ...]
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)

    type_name: ClassVar[str] = "flatten"

    def __post_init__(self) -> None:
        self.shape = _shape(self.shape)
        self.extra = _extra(self.extra)


@dataclass(eq=False)
class PoolLayer(Layer):
    """``pool`` layer (netx refuses it; readable for the emulator).

    Parameters
    ----------
    shape
        Output neuron shape.
    weight
        int64 (1, 1, kH, kW) fixed pooling scale.
    kernel_size, stride, padding, dilation
        (H, W) pairs; a scalar expands to (v, v).
    neuron, delay
        Neuron record and (out,) delay, or None.
    weight_imag
        Keyword only: int64 (1, 1, kH, kW) imaginary part of a complex synapse
        (file group ``weight/{real,imag}``), or None.
    extra
        Other datasets of the layer group (keyword only).
    """

    shape: tuple[int, ...]
    weight: np.ndarray
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    neuron: Neuron | None = None
    delay: np.ndarray | None = None
    weight_imag: np.ndarray | None = field(default=None, kw_only=True)
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)

    type_name: ClassVar[str] = "pool"

    def __post_init__(self) -> None:
        _normalize_spatial(self, "(1, 1, kH, kW)")
        self.kernel_size = _pair(self.kernel_size, "kernel_size", minimum=1)
        _check_neuron(self.neuron)
        self.delay = _opt_int_array(self.delay, "delay")
        self.extra = _extra(self.extra)


@dataclass(eq=False)
class UnpoolLayer(PoolLayer):
    """``unpool`` layer: fields as :class:`PoolLayer`."""

    type_name: ClassVar[str] = "unpool"


@dataclass(eq=False)
class AverageLayer(Layer):
    """``average`` layer (only ``shape``)."""

    shape: tuple[int, ...]
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)

    type_name: ClassVar[str] = "average"

    def __post_init__(self) -> None:
        self.shape = _shape(self.shape)
        self.extra = _extra(self.extra)


@dataclass(eq=False)
class KWTALayer(DenseRecurrentLayer):
    """``kwta`` layer: k-winners-take-all (loihi_slayer's layout; netx cannot run it).

    A dense layer whose neurons also receive their own spikes of the previous
    step through ``weight_rec`` (self excitation on the diagonal, inhibition
    elsewhere) and a constant ``input_bias`` added to the synaptic sum every
    step (lava-dl's ``alpha (N - 2K)`` recurrent bias).

    Parameters
    ----------
    shape, weight, neuron, bias, delay, weight_rec
        As :class:`DenseRecurrentLayer`.
    input_bias
        int64 (out,) or (1,) constant synaptic input in weight-mantissa units, or None.
    """

    input_bias: np.ndarray | None = None

    type_name: ClassVar[str] = "kwta"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.input_bias = _opt_int_array(self.input_bias, "input_bias")


@dataclass(eq=False)
class TimeDecimationLayer(Layer):
    """``decimate`` layer: sums ``factor`` consecutive steps into one (loihi_slayer's
    layout for lava-dl's ``TimeDecimation`` block, which netx cannot run).

    Parameters
    ----------
    shape
        Neuron shape (unchanged by the layer).
    factor
        Steps per output step (a power of two, as lava-dl requires).
    latency
        Steps by which the input is delayed before grouping (0 or 1): output
        ``k`` sums input steps ``k*factor - latency`` .. ``(k+1)*factor - 1 - latency``.
        lava-dl blocks with ``delay_shift`` deliver their output one step early
        relative to the chip, so a decimation after such a block uses 1.
    """

    shape: tuple[int, ...]
    factor: int = 1
    latency: int = 0
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)

    type_name: ClassVar[str] = "decimate"

    def __post_init__(self) -> None:
        self.shape = _shape(self.shape)
        self.factor = _int(self.factor, "factor")
        self.latency = _int(self.latency, "latency")
        if self.latency not in (0, 1):
            raise ParameterError(f"latency = {self.latency} must be 0 or 1")
        if self.factor < 1 or self.factor & (self.factor - 1):
            raise ParameterError(f"factor = {self.factor} must be a power of two >= 1")
        self.extra = _extra(self.extra)


LAYER_TYPES: dict[str, type[Layer]] = {
    cls.type_name: cls
    for cls in (
        InputLayer,
        DenseLayer,
        DenseRecurrentLayer,
        ConvLayer,
        FlattenLayer,
        PoolLayer,
        ConvTransposeLayer,
        UnpoolLayer,
        AverageLayer,
        KWTALayer,
        TimeDecimationLayer,
    )
}


# --------------------------------------------------------------------------- network


@dataclass(eq=False)
class Simulation(_Record):
    """Legacy ``simulation`` group.

    Parameters
    ----------
    ts
        ``Ts``, the sampling time (usually 1).
    t_sample
        ``tSample``, steps per sample, or None.
    """

    ts: int = 1
    t_sample: int | None = None

    def __post_init__(self) -> None:
        self.ts = _int(self.ts, "ts")
        self.t_sample = _opt_int(self.t_sample, "t_sample")


@dataclass(eq=False)
class Network(_Record):
    """A whole netx network: layers in file order (input to output).

    Parameters
    ----------
    layers
        Layer records, connected sequentially.
    simulation
        The optional legacy ``simulation`` group.
    """

    layers: list[Layer] = field(default_factory=list)
    simulation: Simulation | None = None

    def __post_init__(self) -> None:
        self.layers = list(self.layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer) or type(layer) not in LAYER_TYPES.values():
                raise ParameterTypeError(f"layers[{i}] is not a layer record: {type(layer)!r}")
        if self.simulation is not None and not isinstance(self.simulation, Simulation):
            raise ParameterTypeError(
                f"simulation must be a Simulation or None, got {type(self.simulation)!r}"
            )

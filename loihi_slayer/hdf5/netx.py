"""Read and write lava-dl / netx HDF5 network files (``*.net``).

This is the only module that knows the file layout (see the spec
``netx-hdf5.md``). :func:`load_network` turns a file into the records of
:mod:`loihi_slayer.hdf5.schema`; :func:`save_network` writes them back with
exactly the conventions slayer's ``export_hdf5`` uses, so that netx can load
the result.

Format decisions taken here (the spec leaves them open):

* Layer info datasets (``inFeatures``/``outFeatures``, ``inChannels``/
  ``outChannels``, and ``kernelSize`` of conv/convT) are derived from the weight
  on save. On load they are checked against the weight (a mismatch is logged as a
  warning) and dropped.
* ``neuron/sigma_output`` counts by presence, as in netx.
* CUBA neurons write ``gradedSpike`` always and ``wgtExp`` only when non-zero;
  LOIHI neurons write ``wgtExp`` always and ``gradedSpike`` only when true (this
  reproduces both kinds of real files).
* Neuron types other than CUBA/LOIHI/SDNN are kept verbatim as
  :class:`~loihi_slayer.hdf5.schema.GenericNeuron`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np

from loihi_slayer.errors import FormatError, ParameterError, ParameterTypeError, describe
from loihi_slayer.hdf5.schema import (
    LAYER_TYPES,
    AverageLayer,
    ConvLayer,
    ConvTransposeLayer,
    CubaNeuron,
    DenseLayer,
    DenseRecurrentLayer,
    FlattenLayer,
    GenericNeuron,
    InputLayer,
    KWTALayer,
    Layer,
    Network,
    PoolLayer,
    SigmaDeltaNeuron,
    Simulation,
    TimeDecimationLayer,
    UnpoolLayer,
)
from loihi_slayer.safety.atomic import atomic_write_bytes, h5py_bytes
from loihi_slayer.safety.hdf5_guard import check_hdf5_file
from loihi_slayer.safety.memory import check_allocation

__all__ = ["load_network", "save_network", "WEIGHT_RANGE"]

_LOG = logging.getLogger(__name__)

#: Allowed range of weight mantissas for dense, dense_rec, conv and convT layers.
WEIGHT_RANGE: tuple[int, int] = (-256, 255)
#: Largest magnitude an integer stored in a float32 dataset keeps exactly.
_FLOAT32_EXACT = 1 << 24
_INT64_MAX = np.iinfo(np.int64).max
#: Datasets larger than this are refused (a corrupt header must not exhaust memory).
_MAX_DATASET_BYTES = 1 << 31


# =========================================================================== reading


class _Group:
    """One HDF5 group being parsed: typed field access, error context, leftovers."""

    def __init__(self, file: str, group: h5py.Group, path: str) -> None:
        self.file = file
        self.group = group
        self.path = path
        self.used: set[str] = set()
        #: leftovers of sub-groups read by a field parser, kept as layer extras
        self.extra_prefixed: dict[str, Any] = {}

    def error(self, message: str, field: str | None = None) -> FormatError:
        return FormatError(message, file=self.file, group=self.path, field=field)

    def has(self, name: str) -> bool:
        return name in self.group

    def child(self, name: str) -> _Group:
        """Open sub-group ``name`` (marks it used)."""
        self.used.add(name)
        obj = self.group[name]
        if not isinstance(obj, h5py.Group):
            raise self.error("expected a group, found a dataset", name)
        return _Group(self.file, obj, self._sub(name))

    def _sub(self, name: str) -> str:
        return name if self.path == "/" else f"{self.path}/{name}"

    def raw(self, name: str, required: bool = True) -> Any:
        """Value of dataset ``name``, or None when it is absent and optional."""
        self.used.add(name)
        if name not in self.group:
            if required:
                raise self.error("required field is missing", name)
            return None
        obj = self.group[name]
        if not isinstance(obj, h5py.Dataset):
            raise self.error("expected a dataset, found a group", name)
        self._check_size(obj, name)
        try:
            return obj[()]
        except Exception as exc:  # any h5py read failure is a format error
            raise self.error(f"cannot read dataset: {exc}", name) from exc

    def ints(self, name: str, required: bool = True) -> np.ndarray | None:
        """Dataset as int64, truncating floats toward zero like netx's ``astype(int)``."""
        value = self.raw(name, required)
        if value is None:
            return None
        arr = np.asarray(value)
        kind = arr.dtype.kind
        if kind == "b":
            return arr.astype(np.int64)
        if kind in "iu":
            if kind == "u" and arr.size and int(arr.max()) > _INT64_MAX:
                raise self.error(f"value does not fit int64: {describe(arr)}", name)
            return arr.astype(np.int64)
        if kind == "f":
            if not np.all(np.isfinite(arr)):
                raise self.error(f"holds NaN or infinite values: {describe(arr)}", name)
            if arr.size and float(np.max(np.abs(arr))) >= 2.0**63:
                raise self.error(f"value does not fit int64: {describe(arr)}", name)
            trunc = np.trunc(arr)
            bad = trunc != arr
            if np.any(bad):
                _LOG.warning(
                    "%s (file %r): field %r holds %d non-integer value(s), e.g. %r; "
                    "truncated toward zero as netx does",
                    self.path,
                    self.file,
                    name,
                    int(np.count_nonzero(bad)),
                    float(np.asarray(arr)[bad].reshape(-1)[0]),
                )
            return arr.astype(np.int64)
        raise self.error(f"expected a numeric dataset, found dtype {arr.dtype}", name)

    def int_scalar(self, name: str, required: bool = True) -> int | None:
        arr = self.ints(name, required)
        if arr is None:
            return None
        if arr.size != 1:
            raise self.error(f"expected a scalar, found shape {arr.shape}", name)
        return int(arr.reshape(-1)[0])

    def int_or_array(self, name: str, required: bool = True) -> int | np.ndarray | None:
        arr = self.ints(name, required)
        if arr is None:
            return None
        return int(arr) if arr.ndim == 0 else arr

    def boolean(self, name: str, required: bool = True) -> bool | None:
        value = self.raw(name, required)
        if value is None:
            return None
        arr = np.asarray(value)
        if arr.size != 1 or arr.dtype.kind not in "biuf":
            raise self.error(f"expected a boolean scalar, found {describe(arr)}", name)
        return bool(arr.reshape(-1)[0])

    def string(self, name: str, required: bool = True) -> str | None:
        value = self.raw(name, required)
        if value is None:
            return None
        if isinstance(value, np.ndarray):
            if value.size != 1:
                raise self.error(f"expected a single string, found shape {value.shape}", name)
            value = value.reshape(-1)[0]
        if isinstance(value, (bytes, np.bytes_)):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise self.error(f"string is not valid UTF-8: {value!r}", name) from exc
        if not isinstance(value, str):
            raise self.error(f"expected a string, found {type(value).__name__}", name)
        return str(value)

    def shape(self, name: str = "shape") -> tuple[int, ...]:
        arr = self.ints(name)
        assert arr is not None
        if arr.ndim > 1:
            raise self.error(f"expected a 1-D shape, found {describe(arr)}", name)
        arr = arr.reshape(-1)
        if np.any(arr < 0):
            raise self.error(f"shape has negative entries: {describe(arr)}", name)
        return tuple(int(v) for v in arr)

    def pair(self, name: str, required: bool = True) -> tuple[int, int] | None:
        arr = self.ints(name, required)
        if arr is None:
            return None
        if arr.ndim > 1 or arr.size not in (1, 2):
            raise self.error(f"expected a scalar or an (H, W) pair, found {describe(arr)}", name)
        flat = arr.reshape(-1)
        return (int(flat[0]), int(flat[-1]))

    def rest(self, prefix: str = "") -> dict[str, Any]:
        """Every dataset not yet used (sub-groups flattened as ``a/b``)."""
        out: dict[str, Any] = {}
        for key in self.group:
            if key in self.used:
                continue
            obj = self.group.get(key)
            if obj is None:
                raise self.error("dangling link", key)
            if isinstance(obj, h5py.Group):
                sub = _Group(self.file, obj, self._sub(key))
                out.update(sub.rest(prefix=f"{prefix}{key}/"))
            elif isinstance(obj, h5py.Dataset):
                out[prefix + key] = self._extra_value(obj, key)
        return out

    def _check_size(self, ds: h5py.Dataset, name: str) -> None:
        try:
            nbytes = int(np.prod(ds.shape or (), dtype=np.float64)) * ds.dtype.itemsize
        except Exception as exc:  # unreadable header
            raise self.error(f"cannot read dataset header: {exc}", name) from exc
        if nbytes > _MAX_DATASET_BYTES:
            raise self.error(
                f"dataset of shape {ds.shape} ({nbytes} bytes) exceeds the "
                f"{_MAX_DATASET_BYTES}-byte limit",
                name,
            )
        try:  # read, then converted to int64: the memory budget must hold both
            check_allocation(f"dataset of shape {ds.shape}", [ds.shape] * 2, 8)
        except ParameterError as exc:
            raise self.error(str(exc), name) from None

    def _extra_value(self, ds: h5py.Dataset, key: str) -> Any:
        self._check_size(ds, key)
        try:
            if ds.dtype.kind == "O" and h5py.check_string_dtype(ds.dtype) is not None:
                value = ds.asstr()[()]
                return value if isinstance(value, str) else np.asarray(value, dtype=object)
            return np.asarray(ds[()])
        except Exception as exc:  # any h5py read failure is a format error
            raise self.error(f"cannot read dataset: {exc}", key) from exc


def _read_neuron(g: _Group, required: bool) -> CubaNeuron | SigmaDeltaNeuron | GenericNeuron | None:
    if not g.has("neuron"):
        g.used.add("neuron")
        if required:
            raise g.error("required neuron group is missing", "neuron")
        return None
    ng = g.child("neuron")
    kind = ng.string("type")
    assert kind is not None
    try:
        if kind in CubaNeuron.TYPES:
            i_decay = ng.int_or_array("iDecay")
            v_decay = ng.int_or_array("vDecay")
            v_th = ng.int_or_array("vThMant")
            ref_delay = ng.int_scalar("refDelay", required=False)
            graded = ng.boolean("gradedSpike", required=False)
            wgt_exp = ng.int_scalar("wgtExp", required=False)
            return CubaNeuron(
                i_decay=i_decay,
                v_decay=v_decay,
                v_th_mant=v_th,
                ref_delay=1 if ref_delay is None else ref_delay,
                graded_spike=bool(graded),
                wgt_exp=0 if wgt_exp is None else wgt_exp,
                type=kind,
                extra=ng.rest(),
            )
        if kind == SigmaDeltaNeuron.type:
            sigma_output = ng.has("sigma_output")
            if sigma_output and not ng.boolean("sigma_output"):
                _LOG.warning(
                    "%s (file %r): 'sigma_output' is false, but netx treats its presence as a "
                    "sigma output neuron; reading it as True",
                    ng.path,
                    ng.file,
                )
            ng.used.add("sigma_output")
            v_th = ng.int_or_array("vThMant", required=not sigma_output)
            activation = ng.string("activation", required=False)
            return SigmaDeltaNeuron(
                v_th_mant=v_th,
                activation=activation,
                sigma_output=sigma_output,
                extra=ng.rest(),
            )
        return GenericNeuron(type=kind, params=ng.rest())
    except (ParameterError, ParameterTypeError) as exc:
        raise ng.error(str(exc)) from exc


def _check_info(g: _Group, name: str, expected: tuple[int, ...] | int) -> None:
    """Consume an info dataset and warn when it disagrees with the weight."""
    if not g.has(name):
        g.used.add(name)
        return
    try:
        arr = g.ints(name)
    except FormatError as exc:
        _LOG.warning("%s: ignoring unreadable info field: %s", g.path, exc)
        return
    assert arr is not None
    found = tuple(int(v) for v in arr.reshape(-1))
    want = expected if isinstance(expected, tuple) else (expected,)
    if found != want:
        _LOG.warning(
            "%s (file %r): info field %r is %s but the weight gives %s; the weight wins",
            g.path,
            g.file,
            name,
            found,
            want,
        )


def _read_weights(
    g: _Group, fix: Callable[[np.ndarray, str], np.ndarray]
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(weight, None)`` from a plain ``weight`` dataset, ``(real, imag)`` from a complex
    synapse's ``weight/real`` and ``weight/imag``; ``fix(w, field)`` checks and reshapes each."""
    if g.has("weight") and isinstance(g.group["weight"], h5py.Group):
        wg = g.child("weight")
        real = wg.ints("real")
        imag = wg.ints("imag")
        assert real is not None and imag is not None
        real, imag = fix(real, "weight/real"), fix(imag, "weight/imag")
        if real.shape != imag.shape:
            raise g.error(f"weight/real {real.shape} and weight/imag {imag.shape} differ", "weight")
        g.extra_prefixed.update({f"weight/{k}": v for k, v in wg.rest().items()})
        return real, imag
    weight = g.ints("weight")
    assert weight is not None
    return fix(weight, "weight"), None


def _dense_weight(g: _Group, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray | None]:
    def fix(w: np.ndarray, field: str) -> np.ndarray:
        if w.ndim == 1:
            n = int(np.prod(shape)) if shape else 0
            if n <= 0 or w.size % n:
                raise g.error(f"1-D weight of size {w.size} cannot be reshaped to ({n}, -1)", field)
            return w.reshape(n, -1)
        if w.ndim != 2:
            raise g.error(f"expected a 2-D (out, in) weight, found shape {w.shape}", field)
        return w

    return _read_weights(g, fix)


def _conv_weight(g: _Group, layout: str) -> tuple[np.ndarray, np.ndarray | None]:
    def fix(w: np.ndarray, field: str) -> np.ndarray:
        if w.ndim == 5 and w.shape[4] == 1:
            w = w[..., 0]
        if w.ndim != 4:
            raise g.error(f"expected a 4-D {layout} weight, found shape {w.shape}", field)
        return w

    return _read_weights(g, fix)


def _read_layer(g: _Group, kind: str) -> Layer:
    shape = g.shape()
    layer: Layer
    if kind == "input":
        affine = {}
        for name in ("weight", "bias"):
            arr = g.ints(name, required=False)
            if arr is not None and arr.size != 1:
                raise g.error(f"expected a scalar, found shape {arr.shape}", name)
            affine[name] = None if arr is None else int(arr.reshape(-1)[0])
        neuron = _read_neuron(g, required=False)
        layer = InputLayer(shape, neuron=neuron, **affine, extra={})
    elif kind in ("dense", "dense_rec", "kwta"):
        weight, weight_imag = _dense_weight(g, shape)
        _check_info(g, "inFeatures", weight.shape[1])
        _check_info(g, "outFeatures", weight.shape[0])
        bias = g.ints("bias", required=False)
        delay = g.ints("delay", required=False)
        if kind == "dense":
            neuron = _read_neuron(g, required=False)
            layer = DenseLayer(shape, weight, neuron, bias, delay, weight_imag=weight_imag)
        elif kind == "dense_rec":
            weight_rec = g.ints("weight_rec")
            neuron = _read_neuron(g, required=True)
            layer = DenseRecurrentLayer(
                shape, weight, neuron, bias, delay, weight_rec, weight_imag=weight_imag
            )
        else:
            weight_rec = g.ints("weight_rec")
            input_bias = g.ints("input_bias", required=False)
            neuron = _read_neuron(g, required=True)
            layer = KWTALayer(
                shape,
                weight,
                neuron,
                bias,
                delay,
                weight_rec,
                input_bias,
                weight_imag=weight_imag,
            )
    elif kind in ("conv", "convT"):
        cls = ConvLayer if kind == "conv" else ConvTransposeLayer
        layout = "(out, in/groups, kH, kW)" if kind == "conv" else "(in, out/groups, kH, kW)"
        weight, weight_imag = _conv_weight(g, layout)
        stride, padding, dilation = (g.pair(n) for n in ("stride", "padding", "dilation"))
        groups = g.int_scalar("groups")
        assert groups is not None
        if kind == "conv":
            _check_info(g, "inChannels", weight.shape[1] * groups)
            _check_info(g, "outChannels", weight.shape[0])
        else:
            _check_info(g, "inChannels", weight.shape[0])
            _check_info(g, "outChannels", weight.shape[1] * groups)
        _check_info(g, "kernelSize", tuple(weight.shape[2:]))
        bias = g.ints("bias", required=False)
        delay = g.ints("delay", required=False)
        neuron = _read_neuron(g, required=kind == "conv")
        layer = cls(
            shape,
            weight,
            stride,
            padding,
            dilation,
            groups,
            neuron,
            bias,
            delay,
            weight_imag=weight_imag,
        )
    elif kind in ("pool", "unpool"):
        pcls = PoolLayer if kind == "pool" else UnpoolLayer
        weight, weight_imag = _conv_weight(g, "(1, 1, kH, kW)")
        kernel = g.pair("kernelSize", required=False) or tuple(weight.shape[2:])
        stride = g.pair("stride", required=False) or kernel
        padding = g.pair("padding", required=False) or (0, 0)
        dilation = g.pair("dilation", required=False) or (1, 1)
        delay = g.ints("delay", required=False)
        neuron = _read_neuron(g, required=False)
        layer = pcls(
            shape,
            weight,
            kernel,
            stride,
            padding,
            dilation,
            neuron,
            delay,
            weight_imag=weight_imag,
        )
    elif kind == "flatten":
        layer = FlattenLayer(shape)
    elif kind == "average":
        layer = AverageLayer(shape)
    elif kind == "decimate":
        factor = g.int_scalar("factor")
        assert factor is not None
        latency = g.int_scalar("latency", required=False)
        layer = TimeDecimationLayer(shape, factor, 0 if latency is None else latency)
    else:  # pragma: no cover - dispatch guarantees a known type
        raise g.error(f"unknown layer type {kind!r}", "type")
    extra = g.rest()
    extra.update(g.extra_prefixed)
    layer.extra = extra
    return layer


def _read_simulation(g: _Group) -> Simulation:
    ts = g.int_scalar("Ts", required=False)
    t_sample = g.int_scalar("tSample", required=False)
    return Simulation(ts=1 if ts is None else ts, t_sample=t_sample)


def _load(file: h5py.File, name: str, num_layers: int | None) -> Network:
    root = _Group(name, file, "/")
    if not root.has("layer"):
        raise root.error("required group 'layer' is missing", "layer")
    layers_group = root.child("layer")
    count = len(layers_group.group)
    if num_layers is not None:
        count = min(count, num_layers)
    layers: list[Layer] = []
    for i in range(count):
        key = str(i)
        if not layers_group.has(key):
            raise FormatError(
                f"layer group is missing; the {len(layers_group.group)} layer groups must be "
                f"named 0..{len(layers_group.group) - 1}",
                file=name,
                group=f"layer/{i}",
            )
        g = layers_group.child(key)
        kind = g.string("type")
        assert kind is not None
        if kind not in LAYER_TYPES:
            raise g.error(
                f"unknown layer type {kind!r}; known types: {sorted(LAYER_TYPES)}", "type"
            )
        try:
            layers.append(_read_layer(g, kind))
        except (ParameterError, ParameterTypeError) as exc:
            raise g.error(str(exc)) from exc
    simulation = None
    if root.has("simulation"):
        sg = root.child("simulation")
        try:
            simulation = _read_simulation(sg)
        except (ParameterError, ParameterTypeError) as exc:
            raise sg.error(str(exc)) from exc
    return Network(layers=layers, simulation=simulation)


def load_network(path: str | os.PathLike[str], num_layers: int | None = None) -> Network:
    """Load a netx HDF5 network file.

    Parameters
    ----------
    path
        The ``*.net`` file.
    num_layers
        Load only the first ``num_layers`` layer groups (netx's argument); None
        loads all of them.

    Returns
    -------
    Network
        Layers in file order, shapes and weights in PyTorch order as stored.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    FormatError
        The file is not HDF5 or is malformed; the message names the file, the
        group and the field.
    ParameterError
        ``num_layers`` is negative.

    Notes
    -----
    Layer groups are indexed by integer (``layer/0`` .. ``layer/{n-1}``), never
    by iterating the keys. Weights, bias and delay are truncated toward zero
    like netx's ``astype(int)``; a non-integer value is logged as a warning and
    NaN/inf raise :class:`FormatError`. A dense layer without a ``neuron`` group
    gets ``neuron=None`` (netx then uses
    :func:`~loihi_slayer.hdf5.schema.default_dense_neuron`).
    """
    if num_layers is not None:
        if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)):
            raise ParameterTypeError(f"num_layers must be an int or None, got {num_layers!r}")
        if num_layers < 0:
            raise ParameterError(f"num_layers must be >= 0, got {num_layers}")
        num_layers = int(num_layers)
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(2, "No such netx network file", name)
    if os.path.isdir(name):
        raise FormatError("is a directory, not an HDF5 file", file=name, group="/")
    try:
        is_hdf5 = h5py.is_hdf5(name)
    except Exception:  # unreadable file: report as a format problem
        is_hdf5 = False
    if not is_hdf5:
        raise FormatError("not an HDF5 file", file=name, group="/")
    check_hdf5_file(name)  # corrupt structures must not hang h5py below
    try:
        with h5py.File(name, "r") as file:
            return _load(file, name, num_layers)
    except FormatError:
        raise
    except Exception as exc:  # corrupt files raise anything from h5py
        raise FormatError(f"cannot read HDF5 file: {exc}", file=name, group="/") from exc


# =========================================================================== writing


class _Plan:
    """Datasets to write, computed and validated before the file is touched."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}
        self.groups: set[str] = {""}

    def add(self, path: str, value: Any) -> None:
        parts = path.split("/")
        for k in range(1, len(parts)):
            prefix = "/".join(parts[:k])
            if prefix in self.items:
                raise ParameterError(f"dataset {path!r} would be inside dataset {prefix!r}")
        if path in self.items or path in self.groups:
            raise ParameterError(f"dataset {path!r} is written twice (extra collides with a field)")
        for k in range(1, len(parts)):
            self.groups.add("/".join(parts[:k]))
        self.items[path] = value

    def group(self, path: str) -> None:
        """Record an (otherwise possibly empty) group."""
        if path in self.items:
            raise ParameterError(f"group {path!r} collides with a dataset")
        parts = path.split("/")
        for k in range(1, len(parts) + 1):
            self.groups.add("/".join(parts[:k]))


def _i64(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.int64)


def _f32(value: np.ndarray | int, where: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.int64)
    # min/max, not abs: abs(-2**63) overflows int64 and would pass the check
    if arr.size and (int(arr.min()) < -_FLOAT32_EXACT or int(arr.max()) > _FLOAT32_EXACT):
        raise ParameterError(
            f"{where} = {describe(arr)} is outside [-{_FLOAT32_EXACT}, {_FLOAT32_EXACT}], "
            "the range a float32 dataset stores exactly"
        )
    return arr.astype(np.float32)


def _extra_value(value: Any, where: str) -> Any:
    if isinstance(value, str):
        return value
    arr = np.asarray(value)
    if arr.dtype.kind == "O":
        if not all(isinstance(v, str) for v in arr.reshape(-1)):
            raise ParameterTypeError(f"{where}: object arrays must hold str only")
        return arr
    if arr.dtype.kind not in "biufcS":
        raise ParameterTypeError(f"{where}: cannot store dtype {arr.dtype} in HDF5")
    return arr.copy()


def _plan_extra(plan: _Plan, base: str, extra: Any, where: str) -> None:
    if not isinstance(extra, dict):
        raise ParameterTypeError(f"{where}: extra must be a dict, got {type(extra)!r}")
    for key, value in extra.items():
        if not isinstance(key, str) or not key or any(not p for p in key.split("/")):
            raise ParameterTypeError(f"{where}: invalid extra dataset name {key!r}")
        plan.add(f"{base}/{key}", _extra_value(value, f"{where} extra {key!r}"))


def _check_weight(arr: Any, where: str, ndim: int) -> np.ndarray:
    w = _int_field(arr, where)
    if w.ndim != ndim:
        raise ParameterTypeError(f"{where} must be {ndim}-D, got shape {w.shape}")
    lo, hi = WEIGHT_RANGE
    if w.size and (int(w.min()) < lo or int(w.max()) > hi):
        bad = w[(w < lo) | (w > hi)]
        raise ParameterError(
            f"{where} holds value {int(bad.reshape(-1)[0])} outside the allowed 8-bit mantissa "
            f"range [{lo}, {hi}] ({bad.size} value(s) out of range)"
        )
    return w


def _int_field(value: Any, where: str) -> np.ndarray:
    """Integer (array) field -> int64 array, rejecting anything non-integer."""
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise ParameterTypeError(f"{where} must be integer-valued: {exc}") from exc
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.array_equal(np.trunc(arr), arr):
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ParameterTypeError(f"{where} must be integer-valued, got {describe(arr)}")
    return arr.astype(np.int64)


def _pair_field(value: Any, where: str) -> np.ndarray:
    arr = _int_field(value, where).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2:
        raise ParameterTypeError(f"{where} must be an (H, W) pair, got {describe(value)}")
    return arr


def _plan_neuron(plan: _Plan, base: str, neuron: Any, where: str) -> None:
    if neuron is None:
        return
    plan.group(base)
    if isinstance(neuron, CubaNeuron):
        if neuron.type not in CubaNeuron.TYPES:
            raise ParameterError(f"{where}: neuron type must be CUBA or LOIHI, got {neuron.type!r}")
        plan.add(f"{base}/type", str(neuron.type))
        plan.add(f"{base}/iDecay", _int_field(neuron.i_decay, f"{where} i_decay"))
        plan.add(f"{base}/vDecay", _int_field(neuron.v_decay, f"{where} v_decay"))
        plan.add(f"{base}/vThMant", _int_field(neuron.v_th_mant, f"{where} v_th_mant"))
        plan.add(f"{base}/refDelay", _int_field(neuron.ref_delay, f"{where} ref_delay"))
        graded = bool(neuron.graded_spike)
        wgt_exp = _int_field(neuron.wgt_exp, f"{where} wgt_exp")
        if neuron.type == "CUBA":
            plan.add(f"{base}/gradedSpike", np.bool_(graded))
            if int(wgt_exp) != 0:
                plan.add(f"{base}/wgtExp", wgt_exp)
        else:
            plan.add(f"{base}/wgtExp", wgt_exp)
            if graded:
                plan.add(f"{base}/gradedSpike", np.bool_(True))
        _plan_extra(plan, base, neuron.extra, where)
    elif isinstance(neuron, SigmaDeltaNeuron):
        plan.add(f"{base}/type", SigmaDeltaNeuron.type)
        if neuron.activation is not None:
            plan.add(f"{base}/activation", str(neuron.activation))
        if neuron.v_th_mant is not None:
            plan.add(f"{base}/vThMant", _int_field(neuron.v_th_mant, f"{where} v_th_mant"))
        elif not neuron.sigma_output:
            raise ParameterError(f"{where}: an SDNN neuron needs v_th_mant unless sigma_output")
        if neuron.sigma_output:
            plan.add(f"{base}/sigma_output", np.bool_(True))
        _plan_extra(plan, base, neuron.extra, where)
    elif isinstance(neuron, GenericNeuron):
        plan.add(f"{base}/type", str(neuron.type))
        _plan_extra(plan, base, neuron.params, where)
    else:
        raise ParameterTypeError(f"{where}: not a neuron record: {type(neuron)!r}")


def _plan_weights(
    plan: _Plan, base: str, where: str, layer: Any, check: Callable[[Any, str], np.ndarray]
) -> None:
    """A plain ``weight`` dataset, or ``weight/real`` and ``weight/imag`` for a complex
    synapse (``layer.weight_imag`` set); ``check(value, label)`` validates each part."""
    weight = check(layer.weight, f"{where} weight")
    if layer.weight_imag is None:
        plan.add(f"{base}/weight", _f32(weight, f"{where} weight"))
        return
    imag = check(layer.weight_imag, f"{where} weight_imag")
    if imag.shape != weight.shape:
        raise ParameterTypeError(
            f"{where}: weight_imag shape {imag.shape} differs from weight shape {weight.shape}"
        )
    plan.add(f"{base}/weight/real", _f32(weight, f"{where} weight"))
    plan.add(f"{base}/weight/imag", _f32(imag, f"{where} weight_imag"))


def _plan_layer(plan: _Plan, index: int, layer: Layer) -> None:
    base = f"layer/{index}"
    where = f"layer {index} ({layer.type_name})"
    plan.group(base)
    plan.add(f"{base}/type", np.array([layer.type_name.encode("ascii")], dtype="S10"))
    plan.add(f"{base}/shape", _int_field(layer.shape, f"{where} shape").reshape(-1))

    def opt_f32(name: str, value: Any) -> None:
        if value is not None:
            label = f"{where} {name}"
            plan.add(f"{base}/{name}", _f32(_int_field(value, label), label))

    if isinstance(layer, InputLayer):
        for name in ("weight", "bias"):
            value = getattr(layer, name)
            if value is not None:
                arr = _int_field(value, f"{where} {name}").reshape(-1)
                if arr.size != 1:
                    raise ParameterTypeError(f"{where} {name} must be a scalar int")
                plan.add(f"{base}/{name}", _f32(arr, f"{where} {name}"))
        _plan_neuron(plan, f"{base}/neuron", layer.neuron, where)
    elif isinstance(layer, DenseLayer):
        weight = _check_weight(layer.weight, f"{where} weight", 2)
        plan.add(f"{base}/inFeatures", _i64(weight.shape[1]))
        plan.add(f"{base}/outFeatures", _i64(weight.shape[0]))
        _plan_weights(plan, base, where, layer, lambda v, label: _check_weight(v, label, 2))
        if isinstance(layer, DenseRecurrentLayer):
            if layer.neuron is None:
                raise ParameterError(f"{where}: a dense_rec layer needs a neuron")
            rec = _check_weight(layer.weight_rec, f"{where} weight_rec", 2)
            plan.add(f"{base}/weight_rec", rec.astype(np.float32))
        if isinstance(layer, KWTALayer):
            opt_f32("input_bias", layer.input_bias)
        opt_f32("bias", layer.bias)
        opt_f32("delay", layer.delay)
        _plan_neuron(plan, f"{base}/neuron", layer.neuron, where)
    elif isinstance(layer, ConvLayer):
        weight = _check_weight(layer.weight, f"{where} weight", 4)
        groups = _int_field(layer.groups, f"{where} groups").reshape(())
        if isinstance(layer, ConvTransposeLayer):
            in_ch, out_ch = weight.shape[0], weight.shape[1] * int(groups)
        else:
            if layer.neuron is None:
                raise ParameterError(f"{where}: a conv layer needs a neuron")
            in_ch, out_ch = weight.shape[1] * int(groups), weight.shape[0]
        plan.add(f"{base}/inChannels", _i64(in_ch))
        plan.add(f"{base}/outChannels", _i64(out_ch))
        plan.add(f"{base}/kernelSize", _i64(weight.shape[2:]))
        for name in ("stride", "padding", "dilation"):
            plan.add(f"{base}/{name}", _pair_field(getattr(layer, name), f"{where} {name}"))
        plan.add(f"{base}/groups", groups)
        _plan_weights(plan, base, where, layer, lambda v, label: _check_weight(v, label, 4))
        opt_f32("bias", layer.bias)
        opt_f32("delay", layer.delay)
        _plan_neuron(plan, f"{base}/neuron", layer.neuron, where)
    elif isinstance(layer, PoolLayer):

        def pool_weight(value: Any, label: str) -> np.ndarray:
            w = _int_field(value, label)
            if w.ndim != 4:
                raise ParameterTypeError(f"{label} must be 4-D (1, 1, kH, kW)")
            return w

        for name, attr in (
            ("kernelSize", "kernel_size"),
            ("stride", "stride"),
            ("padding", "padding"),
            ("dilation", "dilation"),
        ):
            plan.add(f"{base}/{name}", _pair_field(getattr(layer, attr), f"{where} {attr}"))
        _plan_weights(plan, base, where, layer, pool_weight)
        opt_f32("delay", layer.delay)
        _plan_neuron(plan, f"{base}/neuron", layer.neuron, where)
    elif isinstance(layer, (FlattenLayer, AverageLayer)):
        pass
    elif isinstance(layer, TimeDecimationLayer):
        plan.add(f"{base}/factor", _i64(layer.factor))
        plan.add(f"{base}/latency", _i64(layer.latency))
    else:
        raise ParameterTypeError(f"{where}: not a layer record: {type(layer)!r}")
    _plan_extra(plan, base, layer.extra, where)


def _plan_network(network: Network) -> _Plan:
    if not isinstance(network, Network):
        raise ParameterTypeError(f"expected a Network, got {type(network)!r}")
    plan = _Plan()
    plan.group("layer")
    for i, layer in enumerate(network.layers):
        if type(layer) not in LAYER_TYPES.values():
            raise ParameterTypeError(f"layer {i} is not a layer record: {type(layer)!r}")
        _plan_layer(plan, i, layer)
    sim = network.simulation
    if sim is not None:
        if not isinstance(sim, Simulation):
            raise ParameterTypeError(f"simulation must be a Simulation, got {type(sim)!r}")
        plan.add("simulation/Ts", _int_field(sim.ts, "simulation ts").reshape(()))
        if sim.t_sample is not None:
            t_sample = _int_field(sim.t_sample, "simulation t_sample").reshape(())
            plan.add("simulation/tSample", t_sample)
    return plan


def _write_plan(file: h5py.File, plan: _Plan) -> None:
    for path in sorted(plan.groups, key=lambda p: p.count("/")):
        if path and path not in file:
            file.create_group(path)
    str_dtype = h5py.string_dtype("utf-8")
    for path, value in plan.items.items():
        if isinstance(value, str):
            file.create_dataset(path, data=value, dtype=str_dtype)
        elif isinstance(value, np.ndarray) and value.dtype.kind == "O":
            file.create_dataset(path, data=value, dtype=str_dtype)
        else:
            file.create_dataset(path, data=value)


def save_network(network: Network, path: str | os.PathLike[str]) -> None:
    """Write a network as a netx HDF5 file, atomically.

    Parameters
    ----------
    network
        The network to write; it is not modified.
    path
        Destination file. It is replaced only once the new file is complete.

    Raises
    ------
    ParameterError
        A value is out of range, e.g. a dense/conv/convT weight outside the
        8-bit mantissa range [-256, 255] (the message names the layer index, the
        field, the value and the range). Nothing is written.
    ParameterTypeError
        A field has the wrong type or shape. Nothing is written.

    Notes
    -----
    Follows slayer's ``export_hdf5`` conventions: no attributes; ``type`` as an
    ``S10`` array of shape (1,); ``neuron/type`` as a variable-length str scalar;
    int64 scalars; float32 weight/bias/delay arrays holding integers; info
    fields (``inFeatures`` ...) derived from the weights; ``simulation/Ts`` and
    ``tSample`` when ``network.simulation`` is set. The file is built in memory
    and written with :func:`loihi_slayer.safety.atomic_write_bytes` (temporary
    file, then :func:`os.replace`); a failed write raises
    :class:`~loihi_slayer.safety.WriteError` and leaves no temporary file and
    the old file unchanged.
    """
    plan = _plan_network(network)
    # built in memory, then written atomically: a failing disk never reaches HDF5
    atomic_write_bytes(path, h5py_bytes(lambda file: _write_plan(file, plan)))
    _LOG.debug("wrote %d layers to %s", len(network.layers), os.fspath(path))

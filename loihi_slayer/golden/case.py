"""Golden cases: a network, its input, how to run it, and the traces it must give.

The on-disk layout (HDF5, versioned) is documented in ``docs/golden-format.md``;
this module is the only code that reads or writes it.
"""

from __future__ import annotations

import logging
import os
import posixpath
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import FormatError, ParameterError
from ..fixed.api import CUBA_TRACES, SDNN_TRACES
from ..fixed.params import SDNN_RANGES
from ..hdf5 import Network, load_network
from ..safety.atomic import atomic_write_bytes, h5py_bytes
from ..safety.hdf5_guard import check_hdf5_file
from ..safety.memory import check_allocation

log = logging.getLogger(__name__)

FORMAT_NAME = "loihi_slayer.golden"
FORMAT_VERSION = 1
INPUT_MODES = ("inject", "bias", "none")


@dataclass
class Expectation:
    """Expected trace of one layer variable.

    Attributes
    ----------
    layer
        Layer index in the network.
    variable
        ``'s'``, ``'u'``, ``'v'``, ``'v_pre'`` (CUBA) or ``'s'``, ``'sigma'``,
        ``'act'``, ``'residue'`` (sigma-delta).
    data
        int64 ``(neurons, steps)``; row ``j`` is flat neuron ``neurons[j]`` (PyTorch
        C-order over the layer shape), column ``k`` is Lava step ``first_step + k``.
    first_step
        1-based Lava step of column 0.
    neurons
        Flat neuron indices of the rows, or None for all neurons in order.
    mask
        Boolean like ``data``: compare only where True (e.g. to skip marker values
        that a source records at spike steps), or None to compare everything.
    name
        Label used in reports.
    """

    layer: int
    variable: str
    data: np.ndarray
    first_step: int = 1
    neurons: np.ndarray | None = None
    mask: np.ndarray | None = None
    name: str = ""

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data)
        if self.data.ndim != 2:
            raise ParameterError(
                f"expectation {self.label}: data must be 2-D (neurons, steps), got "
                f"shape {self.data.shape}"
            )
        if self.data.dtype.kind == "f":
            if not np.all(np.isfinite(self.data)) or not np.all(self.data == np.rint(self.data)):
                raise ParameterError(f"expectation {self.label}: data must hold integers")
        self.data = self.data.astype(np.int64)
        if self.first_step < 1:
            raise ParameterError(f"expectation {self.label}: first_step must be >= 1")
        if self.neurons is not None:
            self.neurons = np.asarray(self.neurons, dtype=np.int64).reshape(-1)
            if len(self.neurons) != self.data.shape[0]:
                raise ParameterError(
                    f"expectation {self.label}: {len(self.neurons)} neuron indices for "
                    f"{self.data.shape[0]} data rows"
                )
        if self.mask is not None:
            self.mask = np.asarray(self.mask, dtype=bool)
            if self.mask.shape != self.data.shape:
                raise ParameterError(
                    f"expectation {self.label}: mask shape {self.mask.shape} differs from "
                    f"data shape {self.data.shape}"
                )

    @property
    def label(self) -> str:
        return self.name or f"layer {self.layer} {self.variable}"

    @property
    def last_step(self) -> int:
        return self.first_step + self.data.shape[1] - 1


@dataclass
class GoldenCase:
    """Everything needed to re-run a network and check its traces.

    Attributes
    ----------
    network_bytes
        The netx ``.net`` file, embedded byte for byte (or None).
    network_path
        Path of a referenced ``.net`` file, relative to the case file (or None).
    num_layers
        Use only the first ``num_layers`` layers (netx's argument), or None.
    input_shape
        Input shape for a network without an ``input`` layer whose first layer is
        spatial (netx's ``input_shape`` argument), or None.
    num_steps
        Lava steps to run.
    input_mode
        ``'inject'`` (values into the first layer, column k at step k+1),
        ``'bias'`` (per-neuron ``bias_mant`` of the input neuron) or ``'none'``.
    input
        int64 input array, or None.
    graded_input
        Send graded values through the first synapse (else binary spikes).
    cyclic
        Replay the input from its start when it is shorter than ``num_steps``.
    resets
        ``{layer: (num_steps,) bool}``: zero the layer's state at the start of
        marked steps.
    spike_exp
        ``spike_exp`` of sigma-delta neurons.
    expectations
        Expected traces.
    checks
        Expected values of network file datasets, ``{'layer/0/weight': value}``,
        checked against the (truncated) network before running.
    description, source
        Free text: what the case checks and where it comes from.
    """

    num_steps: int
    network_bytes: bytes | None = None
    network_path: str | None = None
    num_layers: int | None = None
    input_shape: tuple[int, ...] | None = None
    input_mode: str = "inject"
    input: np.ndarray | None = None
    graded_input: bool = False
    cyclic: bool = True
    resets: dict[int, np.ndarray] = field(default_factory=dict)
    spike_exp: int = 6
    expectations: list[Expectation] = field(default_factory=list)
    checks: dict[str, np.ndarray] = field(default_factory=dict)
    description: str = ""
    source: str = ""
    #: where the case was loaded from (to resolve ``network_path``)
    origin: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if (self.network_bytes is None) == (self.network_path is None):
            raise ParameterError("a golden case needs exactly one of network_bytes, network_path")
        if self.input_mode not in INPUT_MODES:
            raise ParameterError(f"input_mode = {self.input_mode!r} is not one of {INPUT_MODES}")
        if int(self.num_steps) < 1:
            raise ParameterError(f"num_steps = {self.num_steps} must be >= 1")
        self.num_steps = int(self.num_steps)
        if self.input_shape is not None:
            shape = tuple(int(v) for v in self.input_shape)
            if len(shape) not in (1, 3) or min(shape) < 1:
                raise ParameterError(
                    f"input_shape = {self.input_shape} must be (C,) or (C, H, W) with sizes >= 1"
                )
            self.input_shape = shape
        for layer, mask in list(self.resets.items()):
            m = np.asarray(mask, dtype=bool)
            if m.shape != (self.num_steps,):
                raise ParameterError(
                    f"resets[{layer}] must have shape ({self.num_steps},), got {m.shape}"
                )
            self.resets[layer] = m
        if self.input is not None:
            self.input = np.asarray(self.input).astype(np.int64)
        for e in self.expectations:
            if e.last_step > self.num_steps:
                raise ParameterError(
                    f"expectation {e.label} reaches step {e.last_step} beyond num_steps "
                    f"{self.num_steps}"
                )

    def network(self) -> Network:
        """Load the embedded or referenced network."""
        if self.network_bytes is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "network.net"
                path.write_bytes(self.network_bytes)
                try:
                    return load_network(path, num_layers=self.num_layers)
                except FormatError as exc:
                    raise FormatError(
                        f"embedded network is invalid: {exc}", file=self.origin, group="network"
                    ) from None
        base = self.origin.parent if self.origin is not None else Path.cwd()
        return load_network(base / self.network_path, num_layers=self.num_layers)


# ---------------------------------------------------------------------------- writing


def _put(g: h5py.Group, name: str, value: Any) -> None:
    if isinstance(value, str):
        g.create_dataset(name, data=value, dtype=h5py.string_dtype())
    else:
        g.create_dataset(name, data=value)


def save_case(case: GoldenCase, path: str | os.PathLike[str]) -> Path:
    """Write a golden case atomically (built in memory, temporary file, rename).

    A failed write raises :class:`~loihi_slayer.safety.WriteError` and leaves
    neither a temporary file nor a damaged old file.

    Returns
    -------
    Path
        The written path.
    """
    path = Path(path)
    atomic_write_bytes(path, h5py_bytes(lambda f: _write(f, case)))
    return path


def _write(f: h5py.File, case: GoldenCase) -> None:
    _put(f, "format", FORMAT_NAME)
    f.create_dataset("version", data=np.int64(FORMAT_VERSION))
    _put(f, "description", case.description)
    _put(f, "source", case.source)
    net = f.create_group("network")
    if case.network_bytes is not None:
        net.create_dataset("file", data=np.frombuffer(case.network_bytes, np.uint8))
    else:
        _put(net, "path", str(case.network_path))
    if case.num_layers is not None:
        net.create_dataset("num_layers", data=np.int64(case.num_layers))
    if case.input_shape is not None:
        net.create_dataset("input_shape", data=np.asarray(case.input_shape, np.int64))
    for key, value in case.checks.items():
        net.create_dataset(f"checks/{key}", data=np.asarray(value))
    inp = f.create_group("input")
    _put(inp, "mode", case.input_mode)
    if case.input is not None:
        inp.create_dataset("data", data=case.input.astype(np.int64), compression="gzip")
    inp.create_dataset("graded", data=bool(case.graded_input))
    inp.create_dataset("cyclic", data=bool(case.cyclic))
    run = f.create_group("run")
    run.create_dataset("num_steps", data=np.int64(case.num_steps))
    run.create_dataset("spike_exp", data=np.int64(case.spike_exp))
    if case.resets:
        layers = sorted(case.resets)
        run.create_dataset("reset_layers", data=np.asarray(layers, np.int64))
        run.create_dataset("reset_masks", data=np.stack([case.resets[k] for k in layers]))
    exp = f.create_group("expect")
    for k, e in enumerate(case.expectations):
        g = exp.create_group(str(k))
        _put(g, "name", e.name)
        g.create_dataset("layer", data=np.int64(e.layer))
        _put(g, "variable", e.variable)
        g.create_dataset("first_step", data=np.int64(e.first_step))
        g.create_dataset("data", data=e.data, compression="gzip")
        if e.neurons is not None:
            g.create_dataset("neurons", data=e.neurons)
        if e.mask is not None:
            g.create_dataset("mask", data=e.mask, compression="gzip")


# ---------------------------------------------------------------------------- reading


#: Groups and fields a golden case may hold (``expect/*``: every expectation);
#: anything else is refused, so that no field is silently ignored.
LAYOUT: dict[str, frozenset[str]] = {
    "/": frozenset(
        {"format", "version", "description", "source", "network", "input", "run", "expect"}
    ),
    "network": frozenset({"file", "path", "num_layers", "input_shape", "checks"}),
    "input": frozenset({"mode", "data", "graded", "cyclic"}),
    "run": frozenset({"num_steps", "spike_exp", "reset_layers", "reset_masks"}),
    "expect/*": frozenset({"name", "layer", "variable", "first_step", "data", "neurons", "mask"}),
}
#: Variables an expectation may name (CUBA and sigma-delta traces).
VARIABLES = tuple(dict.fromkeys(CUBA_TRACES + SDNN_TRACES))


class _Reader:
    def __init__(self, f: h5py.File, path: str):
        self.f, self.path = f, path

    def err(self, msg: str, group: str, fld: str | None = None) -> FormatError:
        return FormatError(msg, file=self.path, group=group, field=fld)

    def get(self, group: str, name: str, required: bool = True) -> Any:
        g = self.f.get(group) if group != "/" else self.f
        if g is None or not isinstance(g, h5py.Group):
            if required:
                raise self.err("missing group", group)
            return None
        if name not in g:
            if required:
                raise self.err("missing field", group, name)
            return None
        node = g[name]
        if not isinstance(node, h5py.Dataset):
            raise self.err("expected a dataset, found a group", group, name)
        try:
            check_allocation(f"dataset of shape {node.shape}", [node.shape], node.dtype.itemsize)
        except ParameterError as exc:
            raise self.err(str(exc), group, name) from None
        try:
            value = node[()]
        except Exception as exc:
            raise self.err(f"cannot read: {exc}", group, name) from None
        return value

    def text(self, group: str, name: str, required: bool = True) -> str | None:
        v = self.get(group, name, required)
        if v is None:
            return None
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        if isinstance(v, str):
            return v
        raise self.err(f"expected a string, got {type(v).__name__}", group, name)

    def integer(self, group: str, name: str, required: bool = True) -> int | None:
        v = self.get(group, name, required)
        if v is None:
            return None
        arr = np.asarray(v)
        if arr.shape != () or arr.dtype.kind not in "iu":
            raise self.err(f"expected an integer scalar, got {arr.dtype} {arr.shape}", group, name)
        return int(arr)

    def flag(self, group: str, name: str, default: bool) -> bool:
        v = self.get(group, name, required=False)
        if v is None:
            return default
        arr = np.asarray(v)
        if arr.shape != () or arr.dtype.kind not in "biu":
            raise self.err("expected a boolean scalar", group, name)
        return bool(arr)

    def int_array(self, group: str, name: str, required: bool = True) -> np.ndarray | None:
        v = self.get(group, name, required)
        if v is None:
            return None
        arr = np.asarray(v)
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.rint(arr)):
                raise self.err("expected integer values", group, name)
        elif arr.dtype.kind not in "biu":
            raise self.err(f"expected an integer array, got dtype {arr.dtype}", group, name)
        return arr.astype(np.int64)


def load_case(path: str | os.PathLike[str]) -> GoldenCase:
    """Read a golden case file.

    Every field is checked (type, shape, range), also fields the case does not
    use; unknown groups and fields are refused. The file's HDF5 structure is
    checked first (:func:`~loihi_slayer.safety.check_hdf5_file`) so that a
    corrupt file cannot hang the reader.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    FormatError
        The file is not a readable golden case; the message names the file,
        group and field.
    """
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(2, "No such golden case file", name)
    try:
        ok = h5py.is_hdf5(name)
    except Exception:
        ok = False
    if not ok:
        raise FormatError("not an HDF5 file", file=name, group="/")
    check_hdf5_file(name)
    try:
        with h5py.File(name, "r") as f:
            case = _load(_Reader(f, name))
    except (FormatError, FileNotFoundError):
        raise
    except ParameterError as exc:
        raise FormatError(f"inconsistent golden case: {exc}", file=name, group="/") from None
    except Exception as exc:  # corrupt HDF5 raises anything
        raise FormatError(f"cannot read HDF5 file: {exc}", file=name, group="/") from exc
    case.origin = Path(name)
    return case


def _check_layout(r: _Reader) -> None:
    """Refuse groups and fields that are not part of the format."""
    eg = r.f.get("expect")
    groups = dict.fromkeys(k for k in LAYOUT if k != "expect/*")
    if isinstance(eg, h5py.Group):
        groups.update(dict.fromkeys(f"expect/{k}" for k in eg))
    for gname in groups:
        g = r.f if gname == "/" else r.f.get(gname)
        if not isinstance(g, h5py.Group):
            continue
        allowed = LAYOUT.get(gname, LAYOUT["expect/*"] if gname.startswith("expect/") else None)
        if gname == "expect":
            allowed = None  # numbered groups, checked by _load
        for key in g:
            if allowed is not None and key not in allowed:
                raise r.err(f"unexpected field; allowed: {', '.join(sorted(allowed))}", gname, key)


def _load(r: _Reader) -> GoldenCase:
    _check_layout(r)
    fmt = r.text("/", "format")
    if fmt != FORMAT_NAME:
        raise r.err(
            f"not a golden case (format is {fmt!r}, expected {FORMAT_NAME!r})", "/", "format"
        )
    version = r.integer("/", "version")
    if version != FORMAT_VERSION:
        raise r.err(
            f"unsupported version {version} (this library reads version {FORMAT_VERSION})",
            "/",
            "version",
        )
    blob = r.get("network", "file", required=False)
    net_path = r.text("network", "path", required=False)
    if blob is None and net_path is None:
        raise r.err("needs a 'file' (embedded) or 'path' (referenced) field", "network", "file")
    net_bytes = None
    if blob is not None:
        arr = np.asarray(blob)
        if arr.dtype != np.uint8 or arr.ndim != 1:
            raise r.err("embedded network must be a 1-D uint8 array", "network", "file")
        net_bytes = arr.tobytes()
    checks = {}
    cg = r.f.get("network/checks")
    if isinstance(cg, h5py.Group):

        def visit(key, node):
            if isinstance(node, h5py.Dataset):
                checks[key] = np.asarray(
                    r.get(
                        f"network/checks/{posixpath.dirname(key)}".rstrip("/"),
                        posixpath.basename(key),
                    )
                )

        cg.visititems(visit)
    mode = r.text("input", "mode")
    if mode not in INPUT_MODES:
        raise r.err(f"unknown input mode {mode!r}; allowed {INPUT_MODES}", "input", "mode")
    data = r.int_array("input", "data", required=False)
    if mode != "none" and data is None:
        raise r.err(f"input mode {mode!r} needs data", "input", "data")
    num_steps = r.integer("run", "num_steps")
    if num_steps < 1:
        raise r.err(f"num_steps = {num_steps} must be >= 1", "run", "num_steps")
    spike_exp = r.integer("run", "spike_exp", required=False)
    lo, hi = SDNN_RANGES["spike_exp"]
    if spike_exp is not None and not lo <= spike_exp <= hi:
        raise r.err(f"spike_exp = {spike_exp} is outside [{lo}, {hi}]", "run", "spike_exp")
    num_layers = r.integer("network", "num_layers", required=False)
    if num_layers is not None and num_layers < 1:
        raise r.err(f"num_layers = {num_layers} must be >= 1", "network", "num_layers")
    input_shape = _input_shape(r)
    resets = {}
    layers = r.int_array("run", "reset_layers", required=False)
    if layers is not None:
        if layers.ndim != 1 or (layers.size and layers.min() < 0):
            raise r.err(
                "reset_layers must be a 1-D array of layer indices >= 0", "run", "reset_layers"
            )
        if len(set(layers.tolist())) != layers.size:
            raise r.err(f"reset_layers has duplicates: {layers.tolist()}", "run", "reset_layers")
        masks = r.get("run", "reset_masks")
        masks = np.asarray(masks)
        if (
            masks.dtype.kind not in "biu"
            or masks.shape != (len(layers), num_steps)
            or (masks.size and (masks.min() < 0 or masks.max() > 1))
        ):
            raise r.err(
                f"reset_masks must be boolean ({len(layers)}, {num_steps}), got "
                f"{masks.dtype} {masks.shape}",
                "run",
                "reset_masks",
            )
        resets = {int(k): masks[j].astype(bool) for j, k in enumerate(layers)}
    expectations = []
    eg = r.f.get("expect")
    if not isinstance(eg, h5py.Group):
        raise r.err("missing group", "expect")
    for k in range(len(eg)):
        gname = f"expect/{k}"
        if str(k) not in eg:
            raise r.err(f"expectations must be numbered 0..{len(eg) - 1}", gname)
        if not isinstance(eg[str(k)], h5py.Group):
            raise r.err("expected a group, found a dataset", gname)
        layer = r.integer(gname, "layer")
        if layer < 0:
            raise r.err(f"layer = {layer} must be >= 0", gname, "layer")
        variable = r.text(gname, "variable")
        if variable not in VARIABLES:
            raise r.err(f"unknown variable {variable!r}; allowed {VARIABLES}", gname, "variable")
        neurons = r.int_array(gname, "neurons", required=False)
        if neurons is not None and (neurons.ndim != 1 or (neurons.size and neurons.min() < 0)):
            raise r.err("neurons must be a 1-D array of indices >= 0", gname, "neurons")
        mask = r.int_array(gname, "mask", required=False)
        if mask is not None and mask.size and (mask.min() < 0 or mask.max() > 1):
            raise r.err("mask must hold booleans (0/1)", gname, "mask")
        try:
            expectations.append(
                Expectation(
                    layer=layer,
                    variable=variable,
                    data=r.int_array(gname, "data"),
                    first_step=r.integer(gname, "first_step"),
                    neurons=neurons,
                    mask=mask,
                    name=r.text(gname, "name", required=False) or "",
                )
            )
        except ParameterError as exc:
            raise r.err(str(exc), gname) from None
    return GoldenCase(
        num_steps=num_steps,
        network_bytes=net_bytes,
        network_path=net_path,
        num_layers=num_layers,
        input_shape=input_shape,
        input_mode=mode,
        input=data,
        graded_input=r.flag("input", "graded", False),
        cyclic=r.flag("input", "cyclic", True),
        resets=resets,
        spike_exp=6 if spike_exp is None else spike_exp,
        expectations=expectations,
        checks=checks,
        description=r.text("/", "description", required=False) or "",
        source=r.text("/", "source", required=False) or "",
    )


def _input_shape(r: _Reader) -> tuple[int, ...] | None:
    """``network/input_shape``: 1 to 3 positive sizes (C,) or (C, H, W), or absent."""
    arr = r.int_array("network", "input_shape", required=False)
    if arr is None:
        return None
    if arr.ndim != 1 or arr.size not in (1, 3) or arr.min() < 1:
        raise r.err(
            f"input_shape must be (C,) or (C, H, W) with sizes >= 1, got {arr.tolist()}",
            "network",
            "input_shape",
        )
    return tuple(int(v) for v in arr)


def read_network_bytes(path: str | os.PathLike[str]) -> bytes:
    """Bytes of a ``.net`` file for embedding (checked to be loadable)."""
    data = Path(path).read_bytes()
    load_network(path)
    return data

"""Malformed files raise FormatError with context; failed saves leave nothing behind."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from loihi_slayer.errors import FormatError, ParameterError, ParameterTypeError
from loihi_slayer.hdf5 import (
    ConvLayer,
    CubaNeuron,
    DenseLayer,
    InputLayer,
    Network,
    load_network,
    save_network,
)
from loihi_slayer.hdf5 import netx as netx_module

DATA = Path(__file__).parent / "data"
TINY = DATA / "tiny.net"
OXFORD = DATA / "network.net"


def _dense_file(path: Path, edit: Callable[[h5py.Group], None] | None = None) -> Path:
    """A minimal valid one-layer dense file, then ``edit(layer/0)``."""
    with h5py.File(path, "w") as f:
        g = f.create_group("layer/0")
        g.create_dataset("type", data=np.array([b"dense"], dtype="S10"))
        g.create_dataset("shape", data=np.array([2], dtype=np.int64))
        g.create_dataset("weight", data=np.array([[2, -4, 6], [0, 8, -10]], dtype=np.float32))
        n = g.create_group("neuron")
        n.create_dataset("type", data="CUBA")
        for name, value in (("iDecay", 4096), ("vDecay", 100), ("vThMant", 6)):
            n.create_dataset(name, data=np.int64(value))
        if edit is not None:
            edit(g)
    return path


def _raises(path: Path, group: str | None, field: str | None) -> FormatError:
    with pytest.raises(FormatError) as info:
        load_network(path)
    err = info.value
    msg = str(err)
    assert str(path) in msg and err.file == str(path)
    if group is not None:
        assert repr(group) in msg and err.group == group
    if field is not None:
        assert repr(field) in msg and err.field == field
    return err


def test_valid_minimal_file(tmp_path: Path) -> None:
    net = load_network(_dense_file(tmp_path / "ok.net"))
    assert net.layers[0].weight.tolist() == [[2, -4, 6], [0, 8, -10]]


def test_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "text.net"
    path.write_text("this is not an HDF5 file\n")
    _raises(path, "/", None)
    empty = tmp_path / "empty.net"
    empty.write_bytes(b"")
    _raises(empty, "/", None)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_network(tmp_path / "absent.net")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(FormatError):
        load_network(tmp_path)


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.95])
def test_truncated_hdf5(tmp_path: Path, fraction: float) -> None:
    data = TINY.read_bytes()
    path = tmp_path / "cut.net"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(FormatError) as info:
        load_network(path)
    assert str(path) in str(info.value)


def test_corrupted_bytes(tmp_path: Path) -> None:
    data = bytearray(OXFORD.read_bytes())
    rng = np.random.default_rng(0)
    for pos in rng.integers(512, 4096, size=40):
        data[pos] ^= 0xFF
    path = tmp_path / "corrupt.net"
    path.write_bytes(bytes(data))
    try:
        load_network(path)
    except FormatError as err:
        assert str(path) in str(err)


def test_no_layer_group(tmp_path: Path) -> None:
    path = tmp_path / "nolayer.net"
    with h5py.File(path, "w") as f:
        f.create_group("simulation")
    _raises(path, "/", "layer")


def test_dense_missing_weight(tmp_path: Path) -> None:
    path = _dense_file(tmp_path / "nw.net", lambda g: g.__delitem__("weight"))
    _raises(path, "layer/0", "weight")


def test_unknown_type(tmp_path: Path) -> None:
    def edit(g: h5py.Group) -> None:
        del g["type"]
        g.create_dataset("type", data=np.array([b"concat"], dtype="S10"))

    _raises(_dense_file(tmp_path / "unk.net", edit), "layer/0", "type")


def test_empty_layer_group(tmp_path: Path) -> None:
    path = tmp_path / "empty_layer.net"
    with h5py.File(path, "w") as f:
        f.create_group("layer/0")
    _raises(path, "layer/0", "type")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weight(tmp_path: Path, bad: float) -> None:
    def edit(g: h5py.Group) -> None:
        g["weight"][0, 1] = bad

    _raises(_dense_file(tmp_path / "nan.net", edit), "layer/0", "weight")


def test_nan_bias(tmp_path: Path) -> None:
    def edit(g: h5py.Group) -> None:
        g.create_dataset("bias", data=np.array([1.0, np.nan], dtype=np.float32))

    _raises(_dense_file(tmp_path / "nanb.net", edit), "layer/0", "bias")


def test_missing_neuron_field(tmp_path: Path) -> None:
    path = _dense_file(tmp_path / "nv.net", lambda g: g["neuron"].__delitem__("vThMant"))
    _raises(path, "layer/0/neuron", "vThMant")


def test_conv_missing_neuron_and_stride(tmp_path: Path) -> None:
    def conv(g: h5py.Group, drop: str) -> None:
        del g["type"], g["weight"], g["shape"]
        g.create_dataset("type", data=np.array([b"conv"], dtype="S10"))
        g.create_dataset("shape", data=np.array([2, 3, 3], dtype=np.int64))
        g.create_dataset("weight", data=np.zeros((2, 1, 3, 3), dtype=np.float32))
        for name, value in (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)):
            g.create_dataset(name, data=np.int64(value))
        del g[drop]

    _raises(_dense_file(tmp_path / "c1.net", lambda g: conv(g, "neuron")), "layer/0", "neuron")
    _raises(_dense_file(tmp_path / "c2.net", lambda g: conv(g, "stride")), "layer/0", "stride")
    _raises(_dense_file(tmp_path / "c3.net", lambda g: conv(g, "groups")), "layer/0", "groups")


def test_conv_scalar_stride_expands(tmp_path: Path) -> None:
    def conv(g: h5py.Group) -> None:
        del g["type"], g["weight"], g["shape"]
        g.create_dataset("type", data=np.array([b"conv"], dtype="S10"))
        g.create_dataset("shape", data=np.array([2, 3, 3], dtype=np.int64))
        g.create_dataset("weight", data=np.zeros((2, 1, 3, 3), dtype=np.float32))
        for name, value in (("stride", 2), ("padding", 1), ("dilation", 1), ("groups", 1)):
            g.create_dataset(name, data=np.int64(value))

    layer = load_network(_dense_file(tmp_path / "c.net", conv)).layers[0]
    assert isinstance(layer, ConvLayer)
    assert layer.stride == (2, 2) and layer.padding == (1, 1) and layer.dilation == (1, 1)


def test_layer_gap(tmp_path: Path) -> None:
    path = _dense_file(tmp_path / "gap.net")
    with h5py.File(path, "a") as f:
        f.copy("layer/0", "layer/2")
    _raises(path, "layer/1", None)


def test_non_integer_weight_truncates_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def edit(g: h5py.Group) -> None:
        g["weight"][0, 0] = 2.7
        g["weight"][0, 1] = -3.9

    with caplog.at_level(logging.WARNING, logger="loihi_slayer.hdf5.netx"):
        net = load_network(_dense_file(tmp_path / "frac.net", edit))
    assert net.layers[0].weight[0, :2].tolist() == [2, -3]  # C-style truncation
    text = caplog.text
    assert "layer/0" in text and "'weight'" in text


def test_dense_missing_neuron_and_1d_weight(tmp_path: Path) -> None:
    def edit(g: h5py.Group) -> None:
        del g["neuron"], g["weight"]
        g.create_dataset("weight", data=np.arange(6, dtype=np.float32) * 2)

    layer = load_network(_dense_file(tmp_path / "legacy.net", edit)).layers[0]
    assert layer.neuron is None
    assert layer.weight.shape == (2, 3)
    assert layer.weight.tolist() == [[0, 2, 4], [6, 8, 10]]


def test_legacy_scalar_input_transform(tmp_path: Path) -> None:
    path = tmp_path / "inp.net"
    with h5py.File(path, "w") as f:
        g = f.create_group("layer/0")
        g.create_dataset("type", data=np.array([b"input"], dtype="S10"))
        g.create_dataset("shape", data=np.array([3, 4, 4], dtype=np.int64))
        g.create_dataset("weight", data=np.float32(76))
        g.create_dataset("bias", data=np.float32(64))
    layer = load_network(path).layers[0]
    assert isinstance(layer, InputLayer)
    assert (layer.weight, layer.bias, layer.neuron) == (76, 64, None)


# --------------------------------------------------------------------------- saving


def _net(weight: np.ndarray) -> Network:
    neuron = CubaNeuron(i_decay=4096, v_decay=415, v_th_mant=6)
    return Network([DenseLayer((weight.shape[0],), weight, neuron)])


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("value", [256, -257, 1000])
def test_save_rejects_out_of_range_weight(tmp_path: Path, value: int) -> None:
    weight = np.zeros((2, 3), dtype=np.int64)
    weight[1, 2] = value
    net = _net(weight)
    before = copy.deepcopy(net)
    path = tmp_path / "bad.net"
    with pytest.raises(ParameterError) as info:
        save_network(net, path)
    msg = str(info.value)
    assert "layer 0" in msg and "weight" in msg and str(value) in msg and "[-256, 255]" in msg
    assert _leftovers(tmp_path) == []
    assert net == before


def test_failed_save_keeps_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "keep.net"
    save_network(_net(np.ones((2, 2), dtype=np.int64)), path)
    original = path.read_bytes()
    bad = Network([ConvLayer((1, 1, 1), np.full((1, 1, 1, 1), 300), 1, 0, 1, 1, None)])
    with pytest.raises(ParameterError):
        save_network(bad, path)
    assert path.read_bytes() == original
    assert _leftovers(tmp_path) == ["keep.net"]


def test_error_while_writing_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keep.net"
    save_network(_net(np.ones((2, 2), dtype=np.int64)), path)
    original = path.read_bytes()

    def boom(file: h5py.File, plan: object) -> None:
        file.create_group("partial")
        raise OSError("disk full")

    monkeypatch.setattr(netx_module, "_write_plan", boom)
    with pytest.raises(OSError, match="disk full"):
        save_network(_net(np.zeros((2, 2), dtype=np.int64)), path)
    assert path.read_bytes() == original
    assert _leftovers(tmp_path) == ["keep.net"]


def test_save_rejects_bad_records(tmp_path: Path) -> None:
    layer = DenseLayer((2,), np.zeros((2, 2), dtype=np.int64))
    layer.weight = np.full((2, 2), 0.5)  # mutated after construction
    with pytest.raises(ParameterTypeError):
        save_network(Network([layer]), tmp_path / "x.net")
    clash = DenseLayer((2,), np.zeros((2, 2), dtype=np.int64), extra={"weight": np.zeros(1)})
    with pytest.raises(ParameterError):
        save_network(Network([clash]), tmp_path / "x.net")
    conv = ConvLayer((1, 1, 1), np.zeros((1, 1, 1, 1)), 1, 0, 1, 1, neuron=None)
    with pytest.raises(ParameterError, match="needs a neuron"):
        save_network(Network([conv]), tmp_path / "x.net")
    with pytest.raises(ParameterTypeError):
        save_network("not a network", tmp_path / "x.net")  # type: ignore[arg-type]
    assert _leftovers(tmp_path) == []


def test_constructor_validation() -> None:
    with pytest.raises(ParameterError):
        DenseLayer((2,), np.array([[0.5, 1.0]]))
    with pytest.raises(ParameterTypeError):
        DenseLayer((2,), np.zeros(3))
    with pytest.raises(ParameterError):
        CubaNeuron(1, 2, 3, type="ALIF")
    with pytest.raises(ParameterError):
        ConvLayer((1,), np.zeros((1, 1, 1, 1)), 0, 0, 1, 1)


def test_saved_file_permissions_follow_umask(tmp_path: Path) -> None:
    path = tmp_path / "perm.net"
    save_network(_net(np.ones((1, 1), dtype=np.int64)), path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_oversized_dataset_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netx_module, "_MAX_DATASET_BYTES", 1000)
    with pytest.raises(FormatError) as info:
        load_network(OXFORD)
    assert info.value.field == "weight" and info.value.group == "layer/0"

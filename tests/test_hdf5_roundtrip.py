"""Save/load round trips: every layer class by reflection, and the real files."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from loihi_slayer.errors import FormatError, ParameterTypeError
from loihi_slayer.hdf5 import (
    LAYER_TYPES,
    ConvLayer,
    ConvTransposeLayer,
    CubaNeuron,
    DenseLayer,
    DenseRecurrentLayer,
    GenericNeuron,
    InputLayer,
    Network,
    PoolLayer,
    SigmaDeltaNeuron,
    Simulation,
    UnpoolLayer,
    load_network,
    save_network,
    values_equal,
)

DATA = Path(__file__).parent / "data"
TINY = DATA / "tiny.net"
OXFORD = DATA / "network.net"


# --------------------------------------------------------------------------- random records


def _ints(rng: np.random.Generator, lo: int, hi: int, shape: Any = None) -> Any:
    value = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    return int(value) if shape is None else value


def _per_channel(rng: np.random.Generator, lo: int, hi: int, channels: int) -> Any:
    return _ints(rng, lo, hi) if rng.random() < 0.5 else _ints(rng, lo, hi, (channels,))


def _extra(rng: np.random.Generator) -> dict[str, Any]:
    pool = {
        "someFloat": rng.standard_normal(3).astype(np.float32),
        "someInt": np.asarray(_ints(rng, -5, 5), dtype=np.int64),
        "someFlag": np.asarray(bool(rng.integers(2))),
        "someText": "hello",
        "nested/deep": rng.standard_normal((2, 2)),
        "someBytes": np.array([b"ab", b"c"], dtype="S4"),
    }
    keys = [k for k in pool if rng.random() < 0.5]
    return {k: pool[k] for k in keys}


def _neuron(rng: np.random.Generator, channels: int, required: bool) -> Any:
    choice = int(rng.integers(0 if required else -1, 4))
    if choice == -1:
        return None
    if choice in (0, 1):
        return CubaNeuron(
            i_decay=_per_channel(rng, 0, 4096, channels),
            v_decay=_per_channel(rng, 0, 4096, channels),
            v_th_mant=_per_channel(rng, 0, 131071, channels),
            ref_delay=_ints(rng, 1, 3),
            graded_spike=bool(rng.integers(2)),
            wgt_exp=_ints(rng, -3, 3),
            type=("CUBA", "LOIHI")[choice],
            extra=_extra(rng),
        )
    if choice == 2:
        sigma = bool(rng.integers(2))
        return SigmaDeltaNeuron(
            v_th_mant=None if sigma and rng.random() < 0.5 else _per_channel(rng, 0, 999, channels),
            activation=("relu", None)[int(rng.integers(2))],
            sigma_output=sigma,
            extra=_extra(rng),
        )
    return GenericNeuron(
        type="RF_PHASE",
        params={"sinDecay": np.asarray(_ints(rng, 0, 4096)), "vThMant": np.asarray(7)},
    )


def _random_layer(cls: type, rng: np.random.Generator) -> Any:
    """Build ``cls`` by reflecting over its dataclass fields; every field must be known."""
    out_ch, in_ch = _ints(rng, 1, 6), _ints(rng, 1, 6)
    groups = int(rng.choice([g for g in (1, 2, 3) if out_ch % g == 0 and in_ch % g == 0]))
    k = (_ints(rng, 1, 4), _ints(rng, 1, 4))
    needs_neuron = cls is ConvLayer or issubclass(cls, DenseRecurrentLayer)
    if issubclass(cls, DenseLayer):
        weight = _ints(rng, -256, 255, (out_ch, in_ch))
    elif cls is ConvTransposeLayer:
        weight = _ints(rng, -256, 255, (in_ch, out_ch // groups, *k))
    elif issubclass(cls, ConvLayer):
        weight = _ints(rng, -256, 255, (out_ch, in_ch // groups, *k))
    elif issubclass(cls, PoolLayer):
        weight = _ints(rng, -256, 255, (1, 1, *k))
    else:
        weight = _ints(rng, -256, 255)

    def pair(lo: int) -> tuple[int, int]:
        return (_ints(rng, lo, 4), _ints(rng, lo, 4))

    factories = {
        "shape": lambda: tuple(int(v) for v in rng.integers(1, 9, size=int(rng.integers(1, 4)))),
        "weight": lambda: weight,
        "weight_rec": lambda: _ints(rng, -256, 255, (out_ch, out_ch)),
        "weight_imag": lambda: None if rng.random() < 0.5 else _ints(rng, -256, 255, weight.shape),
        "neuron": lambda: _neuron(rng, out_ch, needs_neuron),
        "bias": lambda: (
            (None if rng.random() < 0.3 else _ints(rng, -(1 << 20), 1 << 20))
            if cls is InputLayer
            else (None if rng.random() < 0.3 else _ints(rng, -(1 << 24), 1 << 24, (out_ch,)))
        ),
        "delay": lambda: None if rng.random() < 0.3 else _ints(rng, 0, 62, (out_ch,)),
        "stride": lambda: pair(1),
        "padding": lambda: pair(0),
        "dilation": lambda: pair(1),
        "kernel_size": lambda: k,
        "groups": lambda: groups,
        "input_bias": lambda: None if rng.random() < 0.3 else _ints(rng, -512, 512, (out_ch,)),
        "factor": lambda: int(rng.choice([1, 2, 4, 8])),
        "latency": lambda: int(rng.integers(0, 2)),
        "extra": lambda: _extra(rng),
    }
    if cls is InputLayer:
        factories["weight"] = lambda: None if rng.random() < 0.3 else weight
    kwargs = {}
    for f in dataclasses.fields(cls):
        assert f.name in factories, f"no random value for {cls.__name__}.{f.name}"
        kwargs[f.name] = factories[f.name]()
    return cls(**kwargs)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("type_name", sorted(LAYER_TYPES))
def test_layer_round_trip_by_reflection(tmp_path: Path, type_name: str, seed: int) -> None:
    cls = LAYER_TYPES[type_name]
    assert cls.type_name == type_name
    rng = np.random.default_rng([seed, sorted(LAYER_TYPES).index(type_name)])
    layer = _random_layer(cls, rng)
    sim = None if seed % 2 else Simulation(ts=_ints(rng, 1, 3), t_sample=_ints(rng, 1, 100))
    net = Network(layers=[layer], simulation=sim)
    before = copy.deepcopy(net)
    path = tmp_path / "net.net"
    save_network(net, path)
    assert net == before  # saving does not mutate
    loaded = load_network(path)
    assert len(loaded.layers) == 1
    back = loaded.layers[0]
    assert type(back) is cls
    for f in dataclasses.fields(cls):
        assert values_equal(getattr(back, f.name), getattr(layer, f.name)), f.name
    assert loaded == net


def test_many_layers_keep_integer_order(tmp_path: Path) -> None:
    # h5py lists 0, 1, 10, 11, 2, ...; the reader must use integer order
    from loihi_slayer.hdf5 import AverageLayer, FlattenLayer

    layers = [FlattenLayer((i + 1, 1, 1)) if i % 2 else AverageLayer((i + 1,)) for i in range(13)]
    net = Network(layers)
    save_network(net, tmp_path / "n.net")
    back = load_network(tmp_path / "n.net")
    assert [layer.shape[0] for layer in back.layers] == list(range(1, 14))
    assert back == net


@pytest.mark.parametrize("source", [TINY, OXFORD], ids=["tiny", "oxford"])
def test_real_file_round_trip(tmp_path: Path, source: Path) -> None:
    first = load_network(source)
    save_network(first, tmp_path / "copy.net")
    second = load_network(tmp_path / "copy.net")
    assert second == first
    save_network(second, tmp_path / "copy2.net")
    assert load_network(tmp_path / "copy2.net") == first


def _walk(path: Path) -> dict[str, Any]:
    items: dict[str, Any] = {}

    def visit(name: str, obj: Any) -> None:
        assert dict(obj.attrs) == {}, f"{path}:{name} has attributes"
        if isinstance(obj, h5py.Dataset):
            items[name] = (obj.dtype, h5py.check_string_dtype(obj.dtype), obj.shape, obj[()])
        else:
            items[name] = "group"

    with h5py.File(path, "r") as f:
        assert dict(f.attrs) == {}
        f.visititems(visit)
    return items


def _assert_same_datasets(a: dict[str, Any], b: dict[str, Any], skip: set[str]) -> None:
    assert set(a) == set(b)
    for name in a:
        if name in skip:
            continue
        if a[name] == "group" or b[name] == "group":
            assert a[name] == b[name], name
            continue
        (dt_a, str_a, shape_a, val_a), (dt_b, str_b, shape_b, val_b) = a[name], b[name]
        assert dt_a == dt_b, name
        assert str_a == str_b, name
        assert shape_a == shape_b, name
        assert np.array_equal(np.asarray(val_a), np.asarray(val_b)), name


def test_save_reproduces_oxford_datasets(tmp_path: Path) -> None:
    out = tmp_path / "oxford.net"
    save_network(load_network(OXFORD), out)
    _assert_same_datasets(_walk(OXFORD), _walk(out), skip=set())


def test_save_reproduces_tiny_datasets_except_5d_weight(tmp_path: Path) -> None:
    out = tmp_path / "tiny.net"
    save_network(load_network(TINY), out)
    orig, new = _walk(TINY), _walk(out)
    weights = {"layer/1/weight", "layer/2/weight"}
    _assert_same_datasets(orig, new, skip=weights)
    for name in weights:
        dtype, _, shape, value = new[name]
        assert dtype == np.float32 and shape == orig[name][2][:4]
        assert np.array_equal(value, orig[name][3][..., 0])


def test_written_conventions(tmp_path: Path) -> None:
    net = load_network(OXFORD)
    net.simulation = Simulation(ts=1, t_sample=2000)
    save_network(net, tmp_path / "o.net")
    with h5py.File(tmp_path / "o.net", "r") as f:
        t = f["layer/0/type"]
        assert t.dtype == np.dtype("S10") and t.shape == (1,) and t[0] == b"dense"
        nt = f["layer/0/neuron/type"]
        assert nt.shape == () and h5py.check_string_dtype(nt.dtype).length is None
        assert nt.asstr()[()] == "CUBA"
        assert f["layer/0/neuron/vThMant"].dtype == np.int64
        assert f["layer/0/inFeatures"][()] == 200 and f["layer/0/outFeatures"][()] == 256
        assert f["simulation/Ts"].dtype == np.int64 and f["simulation/tSample"][()] == 2000


def test_dense_without_neuron_round_trip(tmp_path: Path) -> None:
    net = Network([DenseLayer((3,), np.arange(6).reshape(3, 2) * 2)])
    save_network(net, tmp_path / "d.net")
    with h5py.File(tmp_path / "d.net", "r") as f:
        assert "neuron" not in f["layer/0"]
    back = load_network(tmp_path / "d.net")
    assert back.layers[0].neuron is None
    assert back == net


@pytest.mark.parametrize("cls", [ConvLayer, ConvTransposeLayer, PoolLayer, UnpoolLayer])
def test_complex_spatial_weight_real_imag(tmp_path: Path, cls: type) -> None:
    # lava-dl's complex conv layout (spec netx-hdf5.md): a group weight/{real, imag}
    rng = np.random.default_rng(0)
    shape = (1, 1, 2, 3) if issubclass(cls, PoolLayer) else (4, 2, 2, 3)
    real, imag = (_ints(rng, -128, 127, shape) * 2 for _ in range(2))
    geometry = {"stride": 1, "padding": 0, "dilation": 1}
    neuron = GenericNeuron(type="RF_PHASE", params={"vThMant": np.asarray(7)})

    def make(re: np.ndarray, im: np.ndarray) -> Any:
        if issubclass(cls, PoolLayer):
            return cls((2, 3, 3), re, (2, 3), **geometry, neuron=neuron, weight_imag=im)
        return cls((4, 3, 3), re, **geometry, groups=1, neuron=neuron, weight_imag=im)

    layer = make(real, imag[..., None])  # legacy trailing 5th axis, as for weight
    assert np.array_equal(layer.weight_imag, imag) and layer.weight_imag.dtype == np.int64
    with pytest.raises(ParameterTypeError, match=r"weight_imag shape \(4, 1, 1, 1\) differs"):
        make(real, imag.reshape(-1)[:4].reshape(4, 1, 1, 1))
    save_network(Network([layer]), tmp_path / "c.net")
    with h5py.File(tmp_path / "c.net", "r") as f:
        group = f["layer/0/weight"]
        assert isinstance(group, h5py.Group) and set(group) == {"real", "imag"}
        assert group["real"].dtype == np.float32 and group["imag"].dtype == np.float32
        assert np.array_equal(group["real"][()], real) and np.array_equal(group["imag"][()], imag)
    back = load_network(tmp_path / "c.net").layers[0]
    assert type(back) is cls and back == layer
    with h5py.File(tmp_path / "c.net", "r+") as f:
        del f["layer/0/weight/imag"]
        f["layer/0/weight/imag"] = np.zeros((2, 3), np.float32)
    with pytest.raises(FormatError, match=r"layer/0.*weight/imag|weight/imag.*layer/0"):
        load_network(tmp_path / "c.net")

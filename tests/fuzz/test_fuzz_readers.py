"""Fuzz every reader with mutated real files (see fuzzlib for the outcome classes).

Targets: netx HDF5 networks, golden cases, ``.bs1``/``.bs2``/``.bs3``/``.bsn``
spike files, ``.npy`` event arrays, tonic structured arrays and YAML parameter
files. An accepted input must give a correct result: spike files are compared
with an independent bit-by-bit decoder, networks must round-trip through
``save_network``, golden cases must run, YAML values must lie in the
documented ranges.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from fuzzlib import CheckFailed, Refused, fuzz_settings, record, run_isolated
from hypothesis import given
from hypothesis import strategies as st
from mutations import (
    apply_array,
    apply_bytes,
    apply_hdf5,
    array_mutation,
    byte_mutation,
    hdf5_mutation,
)

ROOT = Path(__file__).resolve().parents[2]
NETWORKS = [ROOT / "tests" / "data" / "tiny.net", ROOT / "tests" / "data" / "network.net"]
CASES = [
    ROOT / "golden" / n
    for n in (
        "tinynet_sdnn_input.h5",
        "tinynet_sdnn_conv.h5",
        "tinynet_conv_block.h5",
        "tinynet_num_layers.h5",
    )
]
YAMLS = [ROOT / "examples" / "slayer_pytorch" / n for n in ("oxford.yaml", "nmnist.yaml")]


def _mutated_copy(tmp_path_factory, src: Path, suffix: str = "") -> Path:
    dst = tmp_path_factory.mktemp("fuzz") / (src.stem + (suffix or src.suffix))
    shutil.copyfile(src, dst)
    return dst


# ------------------------------------------------------------------ netx HDF5


def _netx_target(path: Path, mutate) -> None:
    from loihi_slayer.errors import ParameterError
    from loihi_slayer.hdf5 import load_network, save_network

    mutate()
    net = load_network(path)
    again = path.with_suffix(".again.net")
    try:
        save_network(net, again)
    except ParameterError as exc:  # read faithfully (as netx does), refused on write
        if "layer" not in str(exc) or "range" not in str(exc):
            raise CheckFailed(f"save_network refusal without layer and range: {exc}") from None
        raise Refused(f"out-of-range value refused by save_network: {exc}") from None
    if load_network(again) != net:
        raise CheckFailed("a loaded network does not round-trip through save_network")


@fuzz_settings(25)
@given(src=st.sampled_from(NETWORKS), spec=hdf5_mutation())
def test_netx_hdf5_mutations(tmp_path_factory, src, spec):
    path = _mutated_copy(tmp_path_factory, src)
    out = run_isolated(
        lambda: _netx_target(path, lambda: apply_hdf5(str(path), spec)), names=(str(path),)
    )
    record("netx hdf5-level", out)


@fuzz_settings(20)
@given(src=st.sampled_from(NETWORKS), spec=byte_mutation())
def test_netx_byte_mutations(tmp_path_factory, src, spec):
    path = _mutated_copy(tmp_path_factory, src)
    path.write_bytes(apply_bytes(src.read_bytes(), spec))
    record(
        "netx byte-level",
        run_isolated(lambda: _netx_target(path, lambda: None), names=(str(path),)),
    )


# ------------------------------------------------------------------ golden cases


def _golden_target(path: Path, mutate) -> None:
    from loihi_slayer.golden import load_case, verify_case

    mutate()
    case = load_case(path)
    verify_case(case)  # runs or raises one of our errors


@fuzz_settings(25)
@given(src=st.sampled_from(CASES), spec=hdf5_mutation())
def test_golden_hdf5_mutations(tmp_path_factory, src, spec):
    path = _mutated_copy(tmp_path_factory, src)
    out = run_isolated(
        lambda: _golden_target(path, lambda: apply_hdf5(str(path), spec)), names=(str(path),)
    )
    record("golden hdf5-level", out)


@fuzz_settings(20)
@given(src=st.sampled_from(CASES), spec=byte_mutation())
def test_golden_byte_mutations(tmp_path_factory, src, spec):
    path = _mutated_copy(tmp_path_factory, src)
    path.write_bytes(apply_bytes(src.read_bytes(), spec))
    record(
        "golden byte-level",
        run_isolated(lambda: _golden_target(path, lambda: None), names=(str(path),)),
    )


# ------------------------------------------------------------------ spike files

#: extension -> (record bytes, [(field, bits)] most significant first)
LAYOUTS = {
    ".bs1": (5, [("x", 16), ("c", 1), ("t", 23)]),
    ".bs2": (5, [("x", 8), ("y", 8), ("c", 1), ("t", 23)]),
    ".bs3": (7, [("x", 12), ("y", 12), ("c", 8), ("t", 24)]),
    ".bsn": (10, [("n", 16), ("t0", 24), ("t1", 24), ("count", 16)]),
}


def _reference_decode(data: bytes, ext: str) -> dict[str, list[int]]:
    """Independent decoder: each record as one big-endian integer, fields by shifts."""
    size, fields = LAYOUTS[ext]
    out: dict[str, list[int]] = {name: [] for name, _ in fields}
    for k in range(0, len(data), size):
        word = int.from_bytes(data[k : k + size], "big")
        shift = 8 * size
        for name, bits in fields:
            shift -= bits
            out[name].append((word >> shift) & ((1 << bits) - 1))
    return out


def _spike_target(path: Path, ext: str) -> None:
    from loihi_slayer.io import binary

    data = path.read_bytes()
    size = LAYOUTS[ext][0]
    if ext == ".bsn":
        got = binary.read_nd_spikes(path)
        ref = _reference_decode(data, ext)
        same = (
            got.neuron_id.tolist() == ref["n"]
            and got.num_spikes.tolist() == ref["count"]
            and np.allclose(got.t_start, np.array(ref["t0"]) / 1000.0)
            and np.allclose(got.t_end, np.array(ref["t1"]) / 1000.0)
        )
    else:
        reader = {
            ".bs1": binary.read_1d_spikes,
            ".bs2": binary.read_2d_spikes,
            ".bs3": binary.read_3d_spikes,
        }[ext]
        got = reader(path, normalize_channels=False)
        ref = _reference_decode(data, ext)
        same = got.x.tolist() == ref["x"] and got.c.tolist() == ref["c"]
        same = same and np.allclose(got.t, np.array(ref["t"], dtype=float) / 1000.0)
        if "y" in ref:
            same = same and got.y.tolist() == ref["y"]
    if len(data) % size:
        raise CheckFailed(f"a {ext} file of {len(data)} bytes was accepted")
    if not same:
        raise CheckFailed(f"{ext} reader disagrees with the reference decoder")


def _spike_bases(tmp_path_factory) -> dict[str, bytes]:
    from loihi_slayer.io import Event, binary

    rng = np.random.default_rng(1)
    n = 300
    tmp = tmp_path_factory.mktemp("spikes")
    ev1 = Event(rng.integers(0, 200, n), None, rng.integers(0, 2, n), np.sort(rng.random(n)) * 500)
    ev2 = Event(
        rng.integers(0, 34, n),
        rng.integers(0, 34, n),
        rng.integers(0, 2, n),
        np.sort(rng.random(n)) * 500,
    )
    binary.encode_2d_spikes(tmp / "a.bs2", ev2)
    binary.encode_3d_spikes(tmp / "a.bs3", ev2)
    binary.encode_nd_spikes(
        tmp / "a.bsn", np.arange(10), np.zeros(10), np.full(10, 300.0), np.full(10, 60)
    )
    binary.encode_1d_spikes(tmp / "a.bs1", ev1)
    bases = {ext: (tmp / f"a{ext}").read_bytes() for ext in (".bs1", ".bs2", ".bs3", ".bsn")}
    bases[".bs1"] = (ROOT / "loihi_slayer" / "data" / "input.bs1").read_bytes()
    return bases


@pytest.mark.parametrize("ext", sorted(LAYOUTS))
@fuzz_settings(12)
@given(spec=byte_mutation())
def test_spike_file_mutations(tmp_path_factory, ext, spec):
    base = _spike_bases(tmp_path_factory)[ext] if ext not in _BASES else _BASES[ext]
    _BASES.setdefault(ext, base)
    path = tmp_path_factory.mktemp("fuzz") / f"events{ext}"
    path.write_bytes(apply_bytes(base, spec))
    record(f"spikes {ext}", run_isolated(lambda: _spike_target(path, ext), names=(str(path),)))


_BASES: dict[str, bytes] = {}


# ------------------------------------------------------------------ numpy / tonic arrays


def _npy_target(path: Path) -> None:
    from loihi_slayer.io import binary

    ev = binary.read_np_spikes(path)
    arr = np.load(path, allow_pickle=False)
    if not (np.array_equal(ev.x, arr[:, 0]) and np.all(ev.x >= 0) and np.all(np.isfinite(ev.t))):
        raise CheckFailed("accepted events differ from the array or hold invalid values")


@fuzz_settings(30)
@given(spec=array_mutation(), raw=byte_mutation(), level=st.sampled_from(["array", "bytes"]))
def test_numpy_event_arrays(tmp_path_factory, spec, raw, level):
    rng = np.random.default_rng(2)
    arr = np.stack(
        [
            rng.integers(0, 34, 50),
            rng.integers(0, 34, 50),
            rng.integers(0, 2, 50),
            np.sort(rng.random(50)) * 100,
        ],
        axis=1,
    )
    path = tmp_path_factory.mktemp("fuzz") / "events.npy"
    np.save(path, arr if level == "bytes" else apply_array(arr, spec))
    if level == "bytes":
        path.write_bytes(apply_bytes(path.read_bytes(), raw))
    record(f"numpy events {level}", run_isolated(lambda: _npy_target(path), names=(str(path),)))


_TONIC_VALUES = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.just(-1),
    st.just(1),
)


@fuzz_settings(30)
@given(
    fields=st.sampled_from([("x", "y", "t", "p"), ("x", "t", "p"), ("x", "y", "t"), ("t", "p")]),
    dtype=st.sampled_from(["i8", "u2", "f8", "?", "i1"]),
    values=st.lists(_TONIC_VALUES, min_size=0, max_size=8),
    unit=st.sampled_from(["us", "ms", "s", "ns", "h", ""]),
)
def test_tonic_structured_arrays(fields, dtype, values, unit):
    def target() -> None:
        from loihi_slayer.io import Event

        arr = np.zeros(len(values), dtype=[(f, dtype) for f in fields])
        with np.errstate(all="ignore"):
            for f in fields:
                arr[f] = np.asarray(values, dtype=np.float64).astype(dtype)
        ev = Event.from_structured(arr, t_unit=unit)
        if len(ev) != len(values) or (len(ev) and not np.all(np.isfinite(ev.t))):
            raise CheckFailed("accepted tonic events with a wrong length or non-finite times")

    record("tonic arrays", run_isolated(target))


# ------------------------------------------------------------------ yaml


_YAML_VALUES = st.one_of(
    st.text(max_size=5),
    st.integers(-(10**15), 10**15),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.just(1e300),
    st.just(-5),
)
_KEYS = [
    ("neuron", k)
    for k in (
        "theta",
        "tauSr",
        "tauRef",
        "scaleRef",
        "tauRho",
        "scaleRho",
        "vThMant",
        "vDecay",
        "iDecay",
        "refDelay",
        "wgtExp",
        "type",
    )
]
_KEYS += [("simulation", k) for k in ("Ts", "tSample", "nSample")]


def _yaml_target(path: Path) -> None:
    from loihi_slayer import slayer_pytorch as snn
    from loihi_slayer.params import SLAYER_SCHEMA, Number, Params

    p = Params(path)
    neuron, sim = p.get("neuron"), p.get("simulation")
    layer = snn.loihi if isinstance(neuron, dict) and neuron.get("type") == "LOIHI" else snn.layer
    layer(neuron, sim)
    for group, key in _KEYS:  # accepted: every value is inside the documented range
        value = p[group].get(key)
        spec = SLAYER_SCHEMA[group][key]
        if (
            isinstance(spec, Number)
            and value is not None
            and not (
                isinstance(value, (int, float))
                and math.isfinite(value)
                and spec.lo <= value <= spec.hi
            )
        ):
            raise CheckFailed(f"{group}.{key} = {value!r} was accepted")


@fuzz_settings(30)
@given(src=st.sampled_from(YAMLS), key=st.sampled_from(_KEYS), value=_YAML_VALUES)
def test_yaml_value_mutations(tmp_path_factory, src, key, value):
    params = yaml.safe_load(src.read_text())
    params[key[0]][key[1]] = value
    path = tmp_path_factory.mktemp("fuzz") / src.name
    path.write_text(yaml.safe_dump(params))
    # the mutated key, or a key the mutated one makes necessary (type -> tauSr)
    out = run_isolated(lambda: _yaml_target(path), names=((key[1], "needs the key"),))
    record("yaml values", out)


@fuzz_settings(20)
@given(src=st.sampled_from(YAMLS), spec=byte_mutation())
def test_yaml_byte_mutations(tmp_path_factory, src, spec):
    path = tmp_path_factory.mktemp("fuzz") / src.name
    path.write_bytes(apply_bytes(src.read_bytes(), spec))
    record("yaml bytes", run_isolated(lambda: _yaml_target(path)))

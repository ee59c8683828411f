"""Binary spike file formats: hand-built records, real files, errors, round trips."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loihi_slayer.errors import FormatError, ParameterError
from loihi_slayer.io import (
    Event,
    SpikeCountRegions,
    data_path,
    encode_1d_spikes,
    encode_2d_spikes,
    encode_3d_spikes,
    encode_nd_spikes,
    encode_np_spikes,
    encode_spikes,
    read_1d_num_spikes,
    read_1d_spikes,
    read_2d_spikes,
    read_3d_spikes,
    read_nd_spikes,
    read_np_spikes,
    read_spikes,
)

GOLDEN = Path("/work/shared/golden-ext/oxford")
NMNIST = Path("/work/shared/datasets/nmnist-small")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --------------------------------------------------------------- hand-built records
def test_bs1_hand_built_record(tmp_path):
    # neuron 0x1234, polarity 1, t = 0x5ABCDE us; and neuron 1, polarity 0, t = 1 us
    data = bytes([0x12, 0x34, 0x80 | 0x5A, 0xBC, 0xDE, 0x00, 0x01, 0x00, 0x00, 0x01])
    f = _write(tmp_path / "a.bs1", data)
    ev = read_1d_spikes(f, normalize_channels=False)
    assert ev.dim == 1 and ev.y is None
    assert ev.x.tolist() == [0x1234, 1]
    assert ev.c.tolist() == [1, 0]
    assert ev.t.tolist() == [0x5ABCDE / 1000, 0.001]
    # lava-dl default: channels shifted so that the smallest is 0 (already 0 here)
    assert read_1d_spikes(f).c.tolist() == [1, 0]
    # writing the decoded events reproduces the exact bytes
    encode_1d_spikes(tmp_path / "b.bs1", ev)
    assert (tmp_path / "b.bs1").read_bytes() == data


def test_bs1_encode_known_bytes(tmp_path):
    ev = Event([65535, 0], None, [1, 0], [8388.607, 0.0])
    encode_1d_spikes(tmp_path / "a.bs1", ev)
    assert (tmp_path / "a.bs1").read_bytes() == bytes(
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00]
    )


def test_bs2_hand_built_record(tmp_path):
    # x 0xAB, y 0x0C, polarity 1, t 0x000102 us; x 1, y 2, polarity 0, t 0x7FFFFF
    data = bytes([0xAB, 0x0C, 0x80, 0x01, 0x02, 0x01, 0x02, 0x7F, 0xFF, 0xFF])
    f = _write(tmp_path / "a.bs2", data)
    ev = read_2d_spikes(f, normalize_channels=False)
    assert ev.dim == 2
    assert ev.x.tolist() == [0xAB, 1]
    assert ev.y.tolist() == [0x0C, 2]
    assert ev.c.tolist() == [1, 0]
    assert ev.t.tolist() == [0.258, 8388.607]
    encode_2d_spikes(tmp_path / "b.bs2", ev)
    assert (tmp_path / "b.bs2").read_bytes() == data


def test_bs3_hand_built_record(tmp_path):
    # x 0xABC, y 0x123, channel 0x45, t 0x89ABCD us
    data = bytes([0xAB, 0xC1, 0x23, 0x45, 0x89, 0xAB, 0xCD])
    f = _write(tmp_path / "a.bs3", data)
    ev = read_3d_spikes(f, normalize_channels=False)
    assert ev.x.tolist() == [0xABC]
    assert ev.y.tolist() == [0x123]
    assert ev.c.tolist() == [0x45]
    assert ev.t.tolist() == [0x89ABCD / 1000]
    encode_3d_spikes(tmp_path / "b.bs3", ev)
    assert (tmp_path / "b.bs3").read_bytes() == data


def test_bsn_hand_built_record(tmp_path):
    # neuron 0x0102, start 0x030405 us, end 0x060708 us, count 0x090A
    data = bytes(range(1, 11))
    f = _write(tmp_path / "a.bsn", data)
    reg = read_nd_spikes(f)
    assert isinstance(reg, SpikeCountRegions)
    assert reg.neuron_id.tolist() == [0x0102]
    assert reg.t_start.tolist() == [0x030405 / 1000]
    assert reg.t_end.tolist() == [0x060708 / 1000]
    assert reg.num_spikes.tolist() == [0x090A]
    encode_nd_spikes(tmp_path / "b.bsn", *reg)
    assert (tmp_path / "b.bsn").read_bytes() == data
    encode_nd_spikes(tmp_path / "c.bsn", reg)
    assert (tmp_path / "c.bsn").read_bytes() == data
    assert read_1d_num_spikes is read_nd_spikes


def test_empty_files(tmp_path):
    for ext, reader in ((".bs1", read_1d_spikes), (".bs2", read_2d_spikes)):
        ev = reader(_write(tmp_path / f"e{ext}", b""))
        assert len(ev) == 0
    assert len(read_nd_spikes(_write(tmp_path / "e.bsn", b"")).neuron_id) == 0


# --------------------------------------------------------------------- real files
def test_oxford_input_matches_npy():
    ev = read_1d_spikes(data_path("input.bs1"))
    ref = np.load(GOLDEN / "input.npy")
    assert len(ev) == 1889
    rows = np.stack([ev.x, ev.c, ev.t], axis=1)
    np.testing.assert_array_equal(rows, ref)  # exact: x, polarity 0, t_us / 1000


def test_oxford_input_raw_polarity_bit_and_bytes(tmp_path):
    raw = read_1d_spikes(data_path("input.bs1"), normalize_channels=False)
    # every record of the file has the polarity bit set; lava-dl reports it as 0
    # because its Event subtracts c.min()
    assert set(raw.c.tolist()) == {1}
    encode_1d_spikes(tmp_path / "copy.bs1", raw)
    assert (tmp_path / "copy.bs1").read_bytes() == Path(data_path("input.bs1")).read_bytes()


def test_oxford_output_matches_npy():
    ev = read_1d_spikes(data_path("output.bs1"))
    assert len(ev) == 10361
    ref = np.load(GOLDEN / "output.npy")  # target times truncated to whole ms upstream
    np.testing.assert_array_equal(ev.x, ref[:, 0])
    np.testing.assert_array_equal(ev.c, ref[:, 1])
    np.testing.assert_array_equal(np.floor(ev.t), ref[:, 2])


def test_packaged_data_equals_golden():
    for name in ("input.bs1", "output.bs1"):
        assert Path(data_path(name)).read_bytes() == (GOLDEN / name).read_bytes()


def test_nmnist_bs2_and_bsn(tmp_path):
    f = NMNIST / "1.bs2"
    ev = read_2d_spikes(f, sensor_size=(34, 34, 2))
    assert len(ev) == f.stat().st_size // 5
    assert ev.x.max() <= 33 and ev.y.max() <= 33 and set(ev.c.tolist()) == {0, 1}
    raw = read_2d_spikes(f, normalize_channels=False)
    encode_2d_spikes(tmp_path / "1.bs2", raw)
    assert (tmp_path / "1.bs2").read_bytes() == f.read_bytes()
    reg = read_nd_spikes(NMNIST / "Desired_10_60" / "0.bsn")
    assert reg.neuron_id.tolist() == list(range(10))
    assert reg.t_start.tolist() == [0.0] * 10
    assert reg.t_end.tolist() == [300.0] * 10
    assert reg.num_spikes.tolist() == [60] + [10] * 9
    with pytest.raises(ParameterError, match="sensor_size"):
        read_2d_spikes(f, sensor_size=(20, 34, 2))


def test_read_spikes_dispatch(tmp_path):
    ev = read_spikes(data_path("input.bs1"))
    assert len(ev) == 1889
    assert isinstance(read_spikes(NMNIST / "Desired_10_60" / "3.bsn"), SpikeCountRegions)
    encode_spikes(tmp_path / "x.bs1", ev)
    assert read_spikes(tmp_path / "x.bs1") == ev
    with pytest.raises(ParameterError, match="extension"):
        read_spikes(tmp_path / "x.txt")


# ------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("reader", "ext", "record"),
    [
        (read_1d_spikes, ".bs1", 5),
        (read_2d_spikes, ".bs2", 5),
        (read_3d_spikes, ".bs3", 7),
        (read_nd_spikes, ".bsn", 10),
    ],
)
def test_truncated_file(tmp_path, reader, ext, record):
    f = _write(tmp_path / f"t{ext}", bytes(2 * record + 3))
    with pytest.raises(FormatError) as info:
        reader(f)
    msg = str(info.value)
    assert str(f) in msg
    assert f"size {2 * record + 3} bytes" in msg
    assert f"record size {record} bytes" in msg


@pytest.mark.parametrize(
    ("writer", "ev", "field", "value", "limit"),
    [
        (encode_1d_spikes, Event([65536], None, [0], [1.0]), "x", "65536", "65535"),
        (encode_1d_spikes, Event([1], None, [2], [1.0]), "c", "2", "1"),
        (encode_1d_spikes, Event([1], None, [0], [8388.608]), "t", "8388608", "8388607"),
        (encode_2d_spikes, Event([256], [0], [0], [1.0]), "x", "256", "255"),
        (encode_2d_spikes, Event([0], [300], [0], [1.0]), "y", "300", "255"),
        (encode_3d_spikes, Event([4096], [0], [0], [1.0]), "x", "4096", "4095"),
        (encode_3d_spikes, Event([0], [0], [256], [1.0]), "c", "256", "255"),
        (encode_3d_spikes, Event([0], [0], [0], [16777.216]), "t", "16777216", "16777215"),
    ],
)
def test_bit_field_overflow_writes_nothing(tmp_path, writer, ev, field, value, limit):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(ParameterError) as info:
        writer(target, ev)
    msg = str(info.value)
    assert repr(field)[1:-1] in msg and value in msg and f"[0, {limit}]" in msg
    assert target.read_bytes() == b"old"  # untouched
    assert os.listdir(tmp_path) == ["out.bin"]  # no temporary left behind


def test_bsn_errors(tmp_path):
    with pytest.raises(ParameterError, match=r"num_spikes.*65536.*\[0, 65535\]"):
        encode_nd_spikes(tmp_path / "a.bsn", [0], [0.0], [1.0], [65536])
    with pytest.raises(ParameterError, match=r"t_end.*16777216"):
        encode_nd_spikes(tmp_path / "a.bsn", [0], [0.0], [16777.216], [1])
    with pytest.raises(ParameterError, match="t_end must be >= t_start"):
        encode_nd_spikes(tmp_path / "a.bsn", [0], [5.0], [1.0], [1])
    with pytest.raises(ParameterError, match="t_start"):
        encode_nd_spikes(tmp_path / "a.bsn", [0], [-1.0], [1.0], [1])
    assert not (tmp_path / "a.bsn").exists()


def test_dimension_mismatch(tmp_path):
    with pytest.raises(ParameterError, match="2-D"):
        encode_2d_spikes(tmp_path / "a.bs2", Event([1], None, [0], [1.0]))
    with pytest.raises(ParameterError, match="1-D"):
        encode_1d_spikes(tmp_path / "a.bs1", Event([1], [1], [0], [1.0]))


def test_np_spikes_bad_shape(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((4, 5)))
    with pytest.raises(FormatError, match=r"\(4, 5\)"):
        read_np_spikes(tmp_path / "bad.npy")


# ---------------------------------------------------------------------- numpy files
def test_np_spikes_oxford_and_time_unit(tmp_path):
    ev = read_np_spikes(GOLDEN / "input.npy")
    assert ev == read_1d_spikes(data_path("input.bs1"))
    encode_np_spikes(tmp_path / "us.npy", ev, time_unit=1e-6)
    arr = np.load(tmp_path / "us.npy")
    np.testing.assert_allclose(arr[:, 2], ev.t * 1000)
    back = read_np_spikes(tmp_path / "us.npy", time_unit=1e-6)
    np.testing.assert_allclose(back.t, ev.t, rtol=0, atol=1e-9)
    ev2 = Event([1, 2], [3, 4], [0, 1], [0.5, 1.5])
    encode_np_spikes(tmp_path / "two", ev2)  # .npy appended
    assert np.load(tmp_path / "two.npy").tolist() == [[1, 3, 0, 0.5], [2, 4, 1, 1.5]]
    assert read_np_spikes(tmp_path / "two.npy") == ev2


# ---------------------------------------------------------------------- round trips
_US23 = st.integers(0, (1 << 23) - 1)


def _events_1d(draw, n_max=50):
    n = draw(st.integers(0, n_max))
    x = draw(st.lists(st.integers(0, 65535), min_size=n, max_size=n))
    c = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    t = draw(st.lists(_US23, min_size=n, max_size=n))
    return Event(x, None, c, np.asarray(t, dtype=np.int64) / 1000)


@st.composite
def events_1d(draw):
    return _events_1d(draw)


@st.composite
def events_2d(draw, xy_bits=8, c_bits=1, t_bits=23):
    n = draw(st.integers(0, 50))
    xs = st.lists(st.integers(0, (1 << xy_bits) - 1), min_size=n, max_size=n)
    x, y = draw(xs), draw(xs)
    c = draw(st.lists(st.integers(0, (1 << c_bits) - 1), min_size=n, max_size=n))
    t = draw(st.lists(st.integers(0, (1 << t_bits) - 1), min_size=n, max_size=n))
    return Event(x, y, c, np.asarray(t, dtype=np.int64) / 1000)


_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(ev=events_1d())
def test_roundtrip_bs1(tmp_path, ev):
    encode_1d_spikes(tmp_path / "r.bs1", ev)
    assert read_1d_spikes(tmp_path / "r.bs1", normalize_channels=False) == ev


@_SETTINGS
@given(ev=events_2d())
def test_roundtrip_bs2(tmp_path, ev):
    encode_2d_spikes(tmp_path / "r.bs2", ev)
    assert read_2d_spikes(tmp_path / "r.bs2", normalize_channels=False) == ev


@_SETTINGS
@given(ev=events_2d(xy_bits=12, c_bits=8, t_bits=24))
def test_roundtrip_bs3(tmp_path, ev):
    encode_3d_spikes(tmp_path / "r.bs3", ev)
    assert read_3d_spikes(tmp_path / "r.bs3", normalize_channels=False) == ev


@_SETTINGS
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 65535),
            st.integers(0, (1 << 24) - 1),
            st.integers(0, (1 << 24) - 1),
            st.integers(0, 65535),
        ),
        max_size=30,
    )
)
def test_roundtrip_bsn(tmp_path, rows):
    nid = np.array([r[0] for r in rows], dtype=np.int64)
    t0 = np.array([min(r[1], r[2]) for r in rows], dtype=np.int64) / 1000
    t1 = np.array([max(r[1], r[2]) for r in rows], dtype=np.int64) / 1000
    cnt = np.array([r[3] for r in rows], dtype=np.int64)
    encode_nd_spikes(tmp_path / "r.bsn", nid, t0, t1, cnt)
    back = read_nd_spikes(tmp_path / "r.bsn")
    for got, want in zip(back, (nid, t0, t1, cnt), strict=True):
        np.testing.assert_array_equal(got, want)


@_SETTINGS
@given(ev=st.one_of(events_1d(), events_2d()))
def test_roundtrip_npy(tmp_path, ev):
    encode_np_spikes(tmp_path / "r.npy", ev)
    assert read_np_spikes(tmp_path / "r.npy") == ev


def test_normalized_roundtrip_is_idempotent(tmp_path):
    ev = read_1d_spikes(data_path("input.bs1"))
    encode_1d_spikes(tmp_path / "n.bs1", ev)
    assert read_1d_spikes(tmp_path / "n.bs1") == ev


# --------------------------------------------------------------------- performance
def test_read_one_megabyte_fast(tmp_path):
    rng = np.random.default_rng(0)
    n = 1_000_000 // 5
    ev = Event(
        rng.integers(0, 65536, n),
        None,
        rng.integers(0, 2, n),
        rng.integers(0, 1 << 23, n) / 1000,
    )
    encode_1d_spikes(tmp_path / "big.bs1", ev)
    assert (tmp_path / "big.bs1").stat().st_size == 1_000_000
    start = time.perf_counter()
    back = read_1d_spikes(tmp_path / "big.bs1", normalize_channels=False)
    elapsed = time.perf_counter() - start
    assert back == ev
    assert elapsed < 0.5, f"reading 1 MB took {elapsed:.3f} s"


def test_huge_time_is_a_clear_error(tmp_path):
    with pytest.raises(ParameterError, match="too large"):
        encode_1d_spikes(tmp_path / "h.bs1", Event([0], None, [0], [1e30]))
    assert not (tmp_path / "h.bs1").exists()

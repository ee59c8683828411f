"""tonic event arrays <-> Event, checked against tonic itself and the shipped N-MNIST files."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from helpers import ROOT

from loihi_slayer.errors import ParameterError, ParameterTypeError
from loihi_slayer.io import TONIC_DTYPE, Event, from_tonic, read_2d_spikes, to_tonic

NMNIST = ROOT.parent / "shared" / "datasets" / "nmnist-small"
needs_nmnist = pytest.mark.skipif(not NMNIST.is_dir(), reason="shared N-MNIST subset is absent")


def sample_events():
    rng = np.random.default_rng(0)
    n = 200
    return Event(
        rng.integers(0, 34, n),
        rng.integers(0, 34, n),
        rng.integers(0, 2, n),
        np.sort(rng.integers(0, 300_000, n)) / 1000.0,
    )


def test_roundtrip_and_documented_dtype():
    ev = sample_events()
    arr = to_tonic(ev)
    assert arr.dtype == TONIC_DTYPE  # tonic's NMNIST dtype: x, y, t (us), p as int64
    np.testing.assert_array_equal(arr["t"], np.round(ev.t * 1000))
    assert from_tonic(arr, sensor_size=(34, 34, 2)) == ev
    one_d = Event([3, 1], None, [0, 1], [1.0, 2.5])
    assert to_tonic(one_d).dtype.names == ("x", "t", "p")
    assert from_tonic(to_tonic(one_d)) == one_d


def test_narrow_dtypes_and_refusals():
    ev = sample_events()
    narrow = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
    arr = to_tonic(ev, narrow)
    assert arr.dtype == narrow and from_tonic(arr) == ev
    with pytest.raises(ParameterError, match="field 't' spans"):
        to_tonic(ev, np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i2"), ("p", "?")]))
    with pytest.raises(ParameterTypeError, match="fields"):
        to_tonic(ev, np.dtype([("x", "<i8"), ("t", "<i8"), ("p", "<i8")]))
    with pytest.raises(ParameterTypeError, match="Event"):
        to_tonic(np.zeros(3))


def test_binning_matches_tonic_to_frame():
    """Our lava-dl binning (round(t / dt), 0/1) equals tonic's ToFrame (floor, counts) on
    events shifted by half a bin, away from rounding ties."""
    tonic = pytest.importorskip("tonic", reason="needs the [data] extra")
    ev = sample_events()
    window_us, steps = 5000, 60
    t_us = np.round(ev.t * 1000).astype(np.int64)
    keep = (t_us % window_us) != window_us // 2  # no ties
    ev = Event(ev.x[keep], ev.y[keep], ev.c[keep], t_us[keep] / 1000.0)
    arr = to_tonic(ev)
    arr["t"] += window_us // 2
    frames = tonic.transforms.ToFrame(
        sensor_size=(34, 34, 2), time_window=window_us, start_time=0, end_time=window_us * steps
    )(arr)
    ours = ev.to_tensor(sampling_time=window_us / 1000, dim=(2, 34, 34, steps))
    assert frames.shape == (steps, 2, 34, 34)
    np.testing.assert_array_equal(np.moveaxis(frames, 0, -1) > 0, ours > 0)


@needs_nmnist
def test_tonic_arrays_of_shipped_samples_bin_like_the_bs2_files():
    for i in (1, 2, 3):
        ev = read_2d_spikes(NMNIST / f"{i}.bs2")
        back = from_tonic(to_tonic(ev), sensor_size=(34, 34, 2))
        assert back == ev  # times survive the microsecond round trip exactly


@needs_nmnist
def test_nmnist_example_tonic_source_equals_bs2_source():
    """The example's tonic path, fed a tonic-style dataset of the shipped samples, gives the
    same training tensors as its .bs2 path."""
    spec = importlib.util.spec_from_file_location("nmnist_example", ROOT / "examples/nmnist.py")
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    rows = ex.read_list(NMNIST / "test100.txt")[:12]

    class TonicStyle:  # the interface of tonic.datasets.NMNIST
        sensor_size = (34, 34, 2)
        dtype = TONIC_DTYPE

        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            sample, label = rows[i]
            return to_tonic(read_2d_spikes(NMNIST / f"{sample}.bs2"), self.dtype), label

    x_bs2, y_bs2 = ex.load_split(NMNIST, "test100.txt", 60, 5.0, 12)
    x_t, y_t = ex.load_tonic_split(TonicStyle(), 60, 5.0, None, np.random.default_rng(0))
    np.testing.assert_array_equal(x_t, x_bs2)
    np.testing.assert_array_equal(y_t, y_bs2)

"""Event container: validation, binning semantics, tensor conversion, tonic interop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import run_python
from hypothesis import given, settings
from hypothesis import strategies as st

from loihi_slayer.errors import ParameterError, ParameterTypeError
from loihi_slayer.io import Event, data_path, read_1d_spikes, read_np_spikes, tensor_to_event


# ----------------------------------------------------------------------- validation
def test_negative_time_rejected():
    with pytest.raises(ParameterError, match=r"t \(ms\) must be >= 0.*-0.5"):
        Event([0, 1], None, [0, 0], [1.0, -0.5])


def test_negative_and_fractional_indices_rejected():
    with pytest.raises(ParameterError, match="x must be >= 0"):
        Event([-1], None, [0], [0.0])
    with pytest.raises(ParameterError, match="y must hold integer values"):
        Event([1], [0.5], [0], [0.0])
    with pytest.raises(ParameterTypeError, match="same length"):
        Event([1, 2], None, [0], [0.0, 1.0])
    with pytest.raises(ParameterError, match="finite"):
        Event([1], None, [0], [np.nan])


def test_sensor_size():
    Event([0, 33], [0, 33], [0, 1], [0, 1], sensor_size=(34, 34, 2))
    with pytest.raises(ParameterError, match=r"event x outside .*34.*\[0, 33\]"):
        Event([34], [0], [0], [0.0], sensor_size=(34, 34, 2))
    with pytest.raises(ParameterError, match=r"event c outside"):
        Event([3], [0], [2], [0.0], sensor_size=(34, 34, 2))
    with pytest.raises(ParameterError, match=r"event x outside"):
        Event([200], None, [0], [0.0], sensor_size=(200, 1, 1))
    Event([199], None, [0], [0.0], sensor_size=(200,))


# -------------------------------------------------------------------------- binning
def test_to_tensor_1d_hand_example():
    # bins: round(0.4)=0, round(0.5)=0 (half even), round(1.5)=2, round(2.5)=2, round(3.2)=3
    ev = Event([0, 1, 2, 0, 1], None, [0, 0, 1, 1, 0], [0.4, 0.5, 1.5, 2.5, 3.2])
    out = ev.to_tensor()
    assert out.dtype == np.float32
    assert out.shape == (2, 3, 4)  # (C, X, T), T = round(3.2) + 1
    expected = np.zeros((2, 3, 4), np.float32)
    expected[0, 0, 0] = 1
    expected[0, 1, 0] = 1
    expected[1, 2, 2] = 1
    expected[1, 0, 2] = 1
    expected[0, 1, 3] = 1
    np.testing.assert_array_equal(out, expected)


def test_to_tensor_sampling_time_value_and_drop_past_end():
    ev = Event([0, 0, 0], None, [0, 0, 0], [0.0, 1.0, 9.0])
    out = ev.to_tensor(sampling_time=2, dim=(1, 1, 3))
    # bins round(0/2)=0, round(1/2)=0, round(9/2)=4 -> dropped (past the end)
    np.testing.assert_array_equal(out[0, 0], [0.5, 0, 0])
    assert ev.to_tensor(dim=(1, 10)).shape == (1, 10)  # (X, T) form for one channel


def test_to_tensor_2d():
    ev = Event([0, 2], [1, 0], [1, 0], [0.0, 2.0])
    out = ev.to_tensor()
    assert out.shape == (2, 2, 3, 3)  # (C, H, W, T)
    assert out[1, 1, 0, 0] == 1 and out[0, 0, 2, 2] == 1 and out.sum() == 2


def test_fill_tensor_torch_and_lava_layout():
    ev = read_1d_spikes(data_path("input.bs1"))
    lava = ev.fill_tensor(torch.zeros(1, 1, 200, 2000))
    assert isinstance(lava, torch.Tensor)
    ref = np.load("/work/shared/golden-ext/oxford/input.npy")
    expected = np.zeros((200, 2000), np.float32)
    expected[ref[:, 0].astype(int), np.round(ref[:, 2]).astype(int)] = 1
    np.testing.assert_array_equal(lava[0, 0].numpy(), expected)
    three = ev.fill_tensor(np.zeros((1, 200, 2000), np.float32))
    np.testing.assert_array_equal(three[0], expected)
    np.testing.assert_array_equal(
        read_np_spikes("/work/shared/golden-ext/oxford/input.npy").to_tensor(dim=(1, 200, 2000))[0],
        expected,
    )


def test_fill_tensor_modes_and_graded():
    ev = Event([0, 0], None, [0, 0], [1.0, 1.2])  # both in bin 1
    or_t = ev.fill_tensor(np.zeros((1, 1, 1, 3)))
    sum_t = ev.fill_tensor(np.zeros((1, 1, 1, 3)), binning_mode="SUM")
    assert or_t[0, 0, 0].tolist() == [0, 1, 0]
    assert sum_t[0, 0, 0].tolist() == [0, 2, 0]
    torch_sum = ev.fill_tensor(torch.zeros(1, 1, 1, 3), binning_mode="sum")
    assert torch_sum[0, 0, 0].tolist() == [0, 2, 0]
    graded = Event([0, 0], None, [0, 0], [1.0, 1.2], payload=[0.25, 0.5])
    assert graded.fill_tensor(np.zeros((1, 1, 1, 3)))[0, 0, 0].tolist() == [0, 0.75, 0]
    with pytest.raises(ParameterError, match="binning_mode"):
        ev.fill_tensor(np.zeros((1, 1, 1, 3)), binning_mode="MAX")


def test_random_shift_is_reproducible_and_shifts_earlier():
    ev = Event([0] * 5, None, [0] * 5, [10.0, 11.0, 12.0, 13.0, 14.0])
    a = ev.fill_tensor(np.zeros((1, 1, 1, 20)), random_shift=True, rng=3)
    b = ev.fill_tensor(np.zeros((1, 1, 1, 20)), random_shift=True, rng=3)
    np.testing.assert_array_equal(a, b)
    first = int(np.flatnonzero(a[0, 0, 0])[0])
    assert first <= 10


def test_empty_event_needs_dim():
    ev = Event([], None, [], [])
    with pytest.raises(ParameterError, match="dim"):
        ev.to_tensor()
    assert ev.to_tensor(dim=(1, 2, 3)).sum() == 0


# ---------------------------------------------------------------- tensor_to_event
def test_tensor_to_event_hand_example():
    spikes = np.zeros((2, 3, 4), np.float32)
    spikes[1, 2, 3] = 1
    spikes[0, 0, 1] = 1
    ev = tensor_to_event(spikes)
    assert ev.dim == 1 and not ev.graded
    assert ev.x.tolist() == [0, 2] and ev.c.tolist() == [0, 1] and ev.t.tolist() == [1.0, 3.0]
    # value 1 / sampling_time means a binary spike; time = bin * sampling_time
    binary = tensor_to_event(torch.tensor([[[0.0, 0.5]]]), sampling_time=2)
    assert not binary.graded and binary.t.tolist() == [2.0]


def test_tensor_to_event_graded_and_2d():
    spikes = torch.zeros(1, 2, 2, 3)
    spikes[0, 1, 0, 2] = 0.25
    ev = tensor_to_event(spikes)
    assert ev.dim == 2 and ev.graded
    assert (ev.x.tolist(), ev.y.tolist(), ev.t.tolist(), ev.p.tolist()) == ([0], [1], [2.0], [0.25])


@settings(max_examples=30, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 4), st.integers(0, 2), st.integers(0, 9)),
        unique_by=lambda r: (r[0], r[1], r[2], r[3]),
        max_size=40,
    ),
    sampling_time=st.sampled_from([1.0, 0.5, 2.0]),
)
def test_tensor_event_roundtrip(data, sampling_time):
    dense = np.zeros((3, 5, 4, 10), np.float32)  # (C, H, W, T)
    for x, y, c, t in data:
        dense[c, y, x, t] = 1 / sampling_time
    ev = tensor_to_event(dense, sampling_time)
    back = ev.fill_tensor(np.zeros_like(dense), sampling_time)
    np.testing.assert_array_equal(back, dense)


# ------------------------------------------------------------------------- tonic
def test_structured_roundtrip_and_units():
    ev = Event([1, 2], [3, 4], [0, 1], [0.5, 1.25])
    arr = ev.to_structured()
    assert arr.dtype.names == ("x", "y", "t", "p")
    assert arr["t"].tolist() == [500, 1250] and arr["p"].tolist() == [0, 1]
    assert Event.from_structured(arr) == ev
    assert Event.from_structured(ev.to_structured("ms", float), t_unit="ms") == ev
    one_d = Event([5], None, [1], [2.0]).to_structured()
    assert one_d.dtype.names == ("x", "t", "p")


def test_from_structured_tonic_dtype_and_polarity():
    dtype = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])
    arr = np.array([(1, 2, 1500, True), (3, 4, 2000, False)], dtype=dtype)
    ev = Event.from_structured(arr, sensor_size=(34, 34, 2))
    assert ev.c.tolist() == [1, 0] and ev.t.tolist() == [1.5, 2.0]
    signed = np.array([(0, 10, -1), (0, 20, 1)], dtype=[("x", int), ("t", int), ("p", int)])
    assert Event.from_structured(signed).c.tolist() == [0, 1]
    with pytest.raises(ParameterTypeError, match="structured"):
        Event.from_structured(np.zeros(3))
    with pytest.raises(ParameterError, match="t_unit"):
        Event.from_structured(arr, t_unit="min")
    with pytest.raises(ParameterError, match="outside"):
        Event.from_structured(arr, sensor_size=(2, 34, 2))


# -------------------------------------------------------------------------- plots
def test_raster_and_frame_saved(tmp_path):
    pytest.importorskip("matplotlib")
    ev = read_1d_spikes(data_path("input.bs1"))
    fig = ev.show(tmp_path / "raster.png")
    assert (tmp_path / "raster.png").stat().st_size > 1000
    assert fig.axes[0].get_xlabel() == "time (ms)"
    ev2 = Event([0, 5, 9], [1, 4, 8], [0, 1, 1], [0.0, 3.0, 30.0])
    ev2.show(tmp_path / "frame.png")
    assert (tmp_path / "frame.png").stat().st_size > 500
    from loihi_slayer.io import plot

    plot.raster(ev2, tmp_path / "raster2.pdf")
    assert (tmp_path / "raster2.pdf").exists()


def test_anim_gif(tmp_path):
    pytest.importorskip("matplotlib")
    ev = Event([0, 5, 9, 3], [1, 4, 8, 3], [0, 1, 1, 0], [0.0, 30.0, 60.0, 90.0])
    anim = ev.anim(tmp_path / "a.gif", frame_rate=25, interval=30)
    assert (tmp_path / "a.gif").read_bytes()[:3] == b"GIF"
    assert anim is not None
    one_d = Event([0, 3], None, [0, 0], [0.0, 100.0])
    one_d.anim(tmp_path / "b.gif", interval=50)
    assert (tmp_path / "b.gif").exists()


def test_plot_without_matplotlib_says_how_to_install(monkeypatch):
    import sys

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes the import fail
    ev = Event([0], None, [0], [0.0])
    with pytest.raises(ImportError, match=r"pip install loihi_slayer\[plot\]"):
        ev.show()
    from loihi_slayer.stats import LearningStats

    with pytest.raises(ImportError, match=r"pip install loihi_slayer\[plot\]"):
        LearningStats().plot()


def test_importing_io_does_not_import_matplotlib():
    code = (
        "import sys, loihi_slayer.io, loihi_slayer.stats, loihi_slayer.loss;"
        "print('matplotlib' in sys.modules)"
    )
    out = run_python(code, check=True)
    assert out.stdout.strip() == "False"

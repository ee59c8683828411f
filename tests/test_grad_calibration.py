"""The event weight gradient's density limit, measured once per machine and kept on
disk (:mod:`loihi_slayer.synapse._grad_calibration`): the override, the model's
limit, the file's round trip, and files that are not a calibration."""

from __future__ import annotations

import json
import logging
import math

import pytest

from loihi_slayer.synapse import _grad_calibration as gc

#: a calibration by hand: limits 0.8 (1 - b) / k = 0, 0.4, 0.32 at 64, 128, 512 outputs
FAKE = gc.GradCalibration(widths=(64, 128, 512), base=(1.0, 0.5, 0.2), slope=(1.0, 1.0, 2.0))


@pytest.fixture
def unpinned(monkeypatch, tmp_path):
    """The machine's own choice (the suite pins one), a private cache directory, no
    calibration remembered by the process; ``measure`` counted and fixed."""
    monkeypatch.delenv(gc.EVENT_GRAD_ENV, raising=False)
    monkeypatch.setenv("LOIHI_SLAYER_CACHE_DIR", str(tmp_path))
    calls = []

    def fake_measure():
        calls.append(1)
        return FAKE

    monkeypatch.setattr(gc, "measure", fake_measure)
    gc.calibration.cache_clear()
    yield calls
    gc.calibration.cache_clear()


@pytest.mark.parametrize(
    ("raw", "expected"), [("0", 0.0), ("0.25", 0.25), (" 1 ", 1.0), ("off", 0.0), ("OFF", 0.0)]
)
def test_override(monkeypatch, raw, expected):
    monkeypatch.setenv(gc.EVENT_GRAD_ENV, raw)
    assert gc.grad_max_density(512) == expected


@pytest.mark.parametrize("raw", ["1.5", "-0.1", "nan", "inf", "many", ""])
def test_override_out_of_range_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv(gc.EVENT_GRAD_ENV, raw)
    with pytest.raises(ValueError, match=f"{gc.EVENT_GRAD_ENV}=.*density in \\[0, 1\\]"):
        gc.grad_max_density(512)


def test_limit_follows_the_model():
    """:math:`d_{max} = m (1 - b_O) / k_O` at each measured width, within ``[0,
    MAX_DENSITY]``, linear in :math:`\\log_2 O` between two widths, the last width's
    beyond it, 0 below the first (values by hand: margin 0.8)."""
    assert gc.MARGIN == 0.8 and gc.MAX_DENSITY == 0.5
    assert FAKE.max_density(64) == 0.0  # the floor alone costs the GEMM's time
    assert FAKE.max_density(128) == pytest.approx(0.4)
    assert FAKE.max_density(512) == pytest.approx(0.32)
    assert FAKE.max_density(256) == pytest.approx(0.36)  # halfway in log2
    assert FAKE.max_density(96) == pytest.approx(0.4 * (math.log2(96) - 6))
    assert FAKE.max_density(1 << 20) == pytest.approx(0.32)
    assert FAKE.max_density(63) == 0.0 and FAKE.max_density(10) == 0.0
    capped = gc.GradCalibration(widths=(32,), base=(0.0,), slope=(1.0,))
    assert capped.max_density(32) == 0.5  # 0.8, capped
    above = gc.GradCalibration(widths=(32,), base=(3.0,), slope=(1.0,))
    assert above.max_density(4096) == 0.0  # events never win: no negative limit


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"widths": ()}, "GradCalibration.widths="),
        ({"widths": (128, 64)}, "GradCalibration.widths="),
        ({"widths": (64, 64)}, "GradCalibration.widths="),
        ({"widths": (0,)}, "GradCalibration.widths="),
        ({"widths": (64.0,)}, "GradCalibration.widths="),
        ({"widths": (True,)}, "GradCalibration.widths="),
        ({"base": (-0.1,)}, "GradCalibration.base="),
        ({"base": (math.nan,)}, "GradCalibration.base="),
        ({"base": (1,)}, "GradCalibration.base="),
        ({"base": ("1.0",)}, "GradCalibration.base="),
        ({"slope": (0.0,)}, "GradCalibration.slope="),
        ({"slope": (math.inf,)}, "GradCalibration.slope="),
        ({"slope": None}, "GradCalibration.slope="),
        ({"slope": (1.0, 1.0)}, "GradCalibration.slope: 2 values for 1 widths"),
    ],
)
def test_calibration_values_are_checked(fields, match):
    good = {"widths": (64,), "base": (0.5,), "slope": (1.0,)}
    with pytest.raises(ValueError, match=match):
        gc.GradCalibration(**{**good, **fields})


def test_lists_become_tuples():
    cal = gc.GradCalibration(widths=[64, 128], base=[0.5, 0.25], slope=[1.0, 2.0])
    assert cal == gc.GradCalibration(widths=(64, 128), base=(0.5, 0.25), slope=(1.0, 2.0))


def test_measured_once_then_read_from_disk(unpinned):
    assert gc.grad_max_density(128) == pytest.approx(0.4)
    assert len(unpinned) == 1
    data = json.loads(gc._path().read_text())
    assert data == {
        "version": gc.VERSION,
        "key": gc.machine_key(),
        "widths": [64, 128, 512],
        "base": [1.0, 0.5, 0.2],
        "slope": [1.0, 1.0, 2.0],
    }
    gc.calibration.cache_clear()  # a new process
    assert gc.grad_max_density(256) == pytest.approx(0.36)
    assert len(unpinned) == 1  # read, not measured


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xffnot json",
        b"[1, 2]",
        b'{"version": VERSION}',
        b'{"version": VERSION, "key": "KEY", "widths": [64], "base": [0.5]}',
        b'{"version": VERSION, "key": "KEY", "widths": [64], "base": [-3.0], "slope": [1.0]}',
        b'{"version": VERSION, "key": "KEY", "widths": [64], "base": ["0.5"], "slope": [1.0]}',
        b'{"version": VERSION, "key": "KEY", "widths": [64], "base": [1e999], "slope": [1.0]}',
        b'{"version": VERSION, "key": "KEY", "widths": 64, "base": [0.5], "slope": [1.0]}',
        b'{"version": VERSION, "key": "KEY", "widths": [64, 32], "base": [0.5, 0.5], '
        b'"slope": [1.0, 1.0]}',
    ],
)
def test_a_file_that_is_not_a_calibration_is_measured_anew(unpinned, caplog, content):
    path = gc._path()
    content = content.replace(b"VERSION", str(gc.VERSION).encode())  # this version's file
    path.write_bytes(content.replace(b"KEY", json.dumps(gc.machine_key())[1:-1].encode()))
    with caplog.at_level(logging.WARNING, logger=gc.__name__):
        assert gc.grad_max_density(128) == pytest.approx(0.4)
    assert len(unpinned) == 1
    assert str(path) in caplog.text
    assert json.loads(path.read_text())["base"] == [1.0, 0.5, 0.2]  # replaced by a valid one


@pytest.mark.parametrize(
    "other", [{"version": 0}, {"key": "another machine"}], ids=["old version", "other machine"]
)
def test_another_machines_or_versions_file_is_replaced(unpinned, caplog, other):
    path = gc._path()
    data = {"version": gc.VERSION, "key": gc.machine_key(), "widths": [8], "base": [0.0]}
    data["slope"] = [9.0]
    path.write_text(json.dumps({**data, **other}))
    with caplog.at_level(logging.WARNING, logger=gc.__name__):
        assert gc.grad_max_density(128) == pytest.approx(0.4)
    assert len(unpinned) == 1 and not caplog.text  # not an error: measured silently
    assert json.loads(path.read_text())["slope"] == [1.0, 1.0, 2.0]


def test_a_version_2_file_is_replaced_silently(unpinned, caplog):
    """The file of the model with one width (``scan``, ``slope``) before this one."""
    path = gc._path()
    path.write_text(json.dumps({"version": 2, "key": gc.machine_key(), "scan": 78.0, "slope": 3.4}))
    with caplog.at_level(logging.WARNING, logger=gc.__name__):
        assert gc.grad_max_density(128) == pytest.approx(0.4)
    assert len(unpinned) == 1 and not caplog.text
    assert json.loads(path.read_text())["version"] == gc.VERSION


def test_an_unwritable_cache_keeps_the_measurement_in_memory(unpinned, caplog, monkeypatch):
    blocked = gc._path()
    blocked.mkdir()  # a directory where the file should go: neither read nor written
    with caplog.at_level(logging.WARNING, logger=gc.__name__):
        assert gc.grad_max_density(128) == pytest.approx(0.4)
        assert gc.grad_max_density(128) == pytest.approx(0.4)
    assert len(unpinned) == 1
    assert str(blocked) in caplog.text
    assert not list(blocked.parent.glob(".*.tmp"))  # no half-written file left


def test_the_real_measurement_fits_a_model():
    """On this machine: positive, finite costs, and a limit within range for any width."""
    cal = gc.measure()  # the values are checked as the calibration is made
    assert cal.widths == gc.WIDTHS
    for n_out in (1, 16, 100, 128, 1024, 1 << 20):
        assert 0.0 <= cal.max_density(n_out) <= gc.MAX_DENSITY


def test_doctor_reports_without_measuring(unpinned, capsys):
    from loihi_slayer import doctor

    assert "not calibrated on this machine yet" in doctor._event_grad_info()
    assert not unpinned and not gc._path().exists()  # nothing measured, nothing written
    gc.calibration()
    assert "events up to input density 0.00 at 64, 0.40 at 128, 0.32 at 512" in (
        doctor._event_grad_info()
    )

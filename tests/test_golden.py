"""Golden case format, shipped golden files, and the loihi-slayer CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import GOLDEN_DIR

from loihi_slayer.cli import main
from loihi_slayer.errors import FormatError
from loihi_slayer.golden import (
    Expectation,
    GoldenCase,
    load_case,
    record_case,
    save_case,
    verify_case,
)

SHIPPED = sorted(GOLDEN_DIR.glob("*.h5"))
EXPECTED_CASES = {
    "tinynet_netx",
    "tinynet_netx_reset_interval",
    "tinynet_input_block",
    "tinynet_num_layers",
    "tinynet_conv_block",
    "tinynet_sdnn_input",
    "tinynet_sdnn_conv",
    "tinynet_sdnn_dense",
    "oxford_dense",
}


def test_every_external_case_is_shipped():
    assert {p.stem for p in SHIPPED} == EXPECTED_CASES


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_golden_case_is_bit_exact(path):
    report = verify_case(path)
    assert report.ok, report.summary()
    assert report.compared > 0


def test_conversion_script_reproduces_shipped_files(tmp_path, shared_golden):
    """The shipped files are what scripts/convert_golden_ext.py makes from shared/."""
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [
            sys.executable,
            str(root / "scripts" / "convert_golden_ext.py"),
            "--src",
            str(shared_golden),
            "--out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    for path in SHIPPED:
        new, old = load_case(tmp_path / path.name), load_case(path)
        assert len(new.expectations) == len(old.expectations)
        for a, b in zip(new.expectations, old.expectations, strict=True):
            np.testing.assert_array_equal(a.data, b.data)
            assert a.first_step == b.first_step
        np.testing.assert_array_equal(new.input, old.input)


def small_case(tmp_path: Path) -> Path:
    net = GOLDEN_DIR.parent / "tests" / "data" / "network.net"
    rng = np.random.default_rng(0)
    x = (rng.random((200, 60)) < 0.1).astype(np.int64)
    case = record_case(net, x, 60, record=("s", "u", "v"))
    return save_case(case, tmp_path / "case.h5")


def test_round_trip_and_self_verify(tmp_path):
    path = small_case(tmp_path)
    case = load_case(path)
    assert case.num_steps == 60 and len(case.expectations) == 6
    again = save_case(case, tmp_path / "again.h5")
    case2 = load_case(again)
    for a, b in zip(case.expectations, case2.expectations, strict=True):
        assert (a.layer, a.variable, a.first_step) == (b.layer, b.variable, b.first_step)
        np.testing.assert_array_equal(a.data, b.data)
    assert case.network_bytes == case2.network_bytes
    assert verify_case(path).ok


def test_report_names_first_divergence(tmp_path):
    path = small_case(tmp_path)
    case = load_case(path)
    e = next(e for e in case.expectations if e.layer == 1 and e.variable == "s")
    e.data[17, 40] = 1 - e.data[17, 40]
    e.data[3, 50] = 1 - e.data[3, 50]
    report = verify_case(case)
    assert not report.ok and report.mismatches == 2
    first = report.first_divergence
    assert (first.layer, first.variable, first.neuron, first.step) == (1, "s", 17, 41)
    assert first.got == 1 - first.expected
    assert "first divergence: layer 1 variable 's' neuron 17 step 41" in report.summary()


def test_mask_and_subset(tmp_path):
    path = small_case(tmp_path)
    case = load_case(path)
    e = next(e for e in case.expectations if e.layer == 0 and e.variable == "v")
    rows = np.array([7, 3])
    data = e.data[rows, 10:30].copy()
    mask = np.ones_like(data, bool)
    data[1, 5] += 999
    mask[1, 5] = False  # a marker value the comparison must skip
    case.expectations = [Expectation(0, "v", data, first_step=11, neurons=rows, mask=mask)]
    report = verify_case(case)
    assert report.ok and report.compared == mask.sum()


def test_malformed_cases_raise_format_errors(tmp_path):
    path = small_case(tmp_path)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(FormatError, match="bad.h5.*not an HDF5 file"):
        load_case(bad)
    for mutate, pattern in [
        (lambda f: f.__delitem__("run/num_steps"), "group 'run', field 'num_steps'"),
        (
            lambda f: (f.__delitem__("version"), f.create_dataset("version", data=99)),
            "unsupported version 99",
        ),
        (lambda f: f.__delitem__("expect/0/data"), "group 'expect/0', field 'data'"),
        (lambda f: f.__delitem__("network/file"), "group 'network'"),
    ]:
        target = tmp_path / "m.h5"
        target.write_bytes(path.read_bytes())
        with h5py.File(target, "a") as f:
            mutate(f)
        with pytest.raises(FormatError, match=pattern):
            load_case(target)


def test_case_validation():
    with pytest.raises(ValueError, match="exactly one of"):
        GoldenCase(num_steps=3)
    with pytest.raises(ValueError, match="beyond num_steps"):
        GoldenCase(
            num_steps=3,
            network_path="x.net",
            expectations=[Expectation(0, "s", np.zeros((1, 3)), first_step=2)],
        )


def test_cli_verify_exit_codes(tmp_path, capsys):
    path = small_case(tmp_path)
    assert main(["verify", str(path)]) == 0
    assert "PASS" in capsys.readouterr().out
    case = load_case(path)
    case.expectations[0].data[0, 0] += 1
    broken = save_case(case, tmp_path / "broken.h5")
    assert main(["verify", str(path), str(broken)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "first divergence" in out
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x00" * 100)
    assert main(["verify", str(garbage)]) == 3  # invalid input file
    assert "not an HDF5 file" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "missing.h5")]) == 3


def test_cli_emulate_then_verify(tmp_path, capsys):
    net = GOLDEN_DIR.parent / "tests" / "data" / "network.net"
    x = np.zeros((200, 40), np.int64)
    x[::3, ::4] = 1
    np.save(tmp_path / "in.npy", x)
    out = tmp_path / "traces.h5"
    assert (
        main(["emulate", str(net), str(tmp_path / "in.npy"), "-o", str(out), "--record", "s,v"])
        == 0
    )
    assert "traces written" in capsys.readouterr().out
    assert main(["verify", str(out)]) == 0
    assert main(["emulate", str(net), str(tmp_path / "nope.npy"), "-o", str(out)]) == 3


def test_cli_inspect(capsys):
    net = GOLDEN_DIR.parent / "tests" / "data" / "tiny.net"
    assert main(["inspect", str(net)]) == 0
    out = capsys.readouterr().out
    assert "3 layer(s)" in out and "24x3x5x5" in out and "LOIHI" in out


def test_console_script_runs():
    proc = subprocess.run(["loihi-slayer", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "verify" in proc.stdout


def test_cli_emulate_network_without_input_layer(tmp_path, capsys):
    """A network whose first layer is spatial needs netx's input_shape; the case keeps it."""
    from loihi_slayer.hdf5 import (
        CubaNeuron,
        DenseLayer,
        FlattenLayer,
        Network,
        PoolLayer,
        save_network,
    )

    n = CubaNeuron(1024, 256, 2)
    net = Network(
        [
            PoolLayer(
                (2, 3, 3), np.full((1, 1, 2, 2), 4), (2, 2), (2, 2), (0, 0), (1, 1), neuron=n
            ),
            FlattenLayer((18, 1, 1)),
            DenseLayer((4,), np.full((4, 18), 6), neuron=n),
        ]
    )
    save_network(net, tmp_path / "pool.net")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", (rng.random((2, 6, 6, 30)) < 0.3).astype(np.int64))
    out = tmp_path / "case.h5"
    args = ["emulate", str(tmp_path / "pool.net"), str(tmp_path / "x.npy"), "-o", str(out)]
    assert main(args) == 3  # no input layer, no --input-shape: the file cannot run
    assert "input_shape" in capsys.readouterr().err
    assert main(args + ["--input-shape", "2,6,6"]) == 0
    case = load_case(out)
    assert case.input_shape == (2, 6, 6)
    assert sum(int(e.data.sum()) for e in case.expectations) > 0
    assert main(["verify", str(out)]) == 0

"""Regression tests of issue 11: no hang, no crash, no silent acceptance.

Every case listed in the issue, each a test: a zeroed byte range that made
``verify`` hang, a full disk during ``emulate -o``/``save_network``/``Params.save``,
file modes from the umask, memory refused before allocation, values refused at
the door with a message naming the key or field, and the CLI exit-code contract.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from helpers import GOLDEN_DIR, run_python

from loihi_slayer import block, cli
from loihi_slayer.errors import FormatError, LoihiSlayerError, ParameterError, ParameterTypeError
from loihi_slayer.golden import load_case, save_case
from loihi_slayer.hdf5 import (
    CubaNeuron,
    DenseLayer,
    InputLayer,
    Network,
    load_network,
    save_network,
)
from loihi_slayer.io import Event, binary
from loihi_slayer.params import Params
from loihi_slayer.safety import WriteError, check_hdf5_file

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny.net"
P = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03}
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _run_cli(*args: str, fsize: int | None = None, **kw) -> subprocess.CompletedProcess:
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        [sys.executable, "-m", "loihi_slayer.cli", *args],
        capture_output=True,
        text=True,
        env={**ENV, **kw.pop("env", {})},
        preexec_fn=limit,
        timeout=300,
        **kw,
    )


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------ hangs


def test_zeroed_golden_case_does_not_hang_verify(tmp_path, monkeypatch, capsys):
    data = bytearray((GOLDEN_DIR / "tinynet_sdnn_input.h5").read_bytes())
    data[2166:3298] = bytes(3298 - 2166)
    bad = tmp_path / "zeroed.h5"
    bad.write_bytes(bytes(data))
    monkeypatch.setenv("LOIHI_SLAYER_HDF5_TIMEOUT", "3")
    assert cli.main(["verify", str(bad)]) == cli.EXIT_INVALID
    err = capsys.readouterr().err
    assert str(bad) in err and "did not finish" in err


def test_truncated_hdf5_refused_by_the_superblock_check(tmp_path):
    data = TINY.read_bytes()
    bad = tmp_path / "cut.net"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="truncated HDF5 file"):
        check_hdf5_file(bad)
    with pytest.raises(FormatError, match=str(bad)):
        load_network(bad)


@pytest.mark.parametrize(
    ("walk", "message"),
    [
        (lambda name: os.kill(os.getpid(), signal.SIGSEGV), "crashed reading this file (SIGSEGV)"),
        (lambda name: time.sleep(3600), "did not finish within 1 s"),
    ],
)
def test_watchdog_turns_crashes_and_hangs_into_format_errors(tmp_path, monkeypatch, walk, message):
    from loihi_slayer.safety import hdf5_guard

    path = tmp_path / "net.net"
    shutil.copyfile(TINY, path)
    monkeypatch.setattr(hdf5_guard, "_walk", walk)  # what a corrupt file does inside h5py
    monkeypatch.setenv("LOIHI_SLAYER_HDF5_TIMEOUT", "1")
    with pytest.raises(FormatError, match=re.escape(message)) as info:
        load_network(path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------ full disk, atomic writes


def test_full_disk_during_emulate_keeps_the_old_file(tmp_path):
    x = (np.random.default_rng(0).random((3, 16, 16, 200)) < 0.2).astype(np.int64)
    np.save(tmp_path / "in.npy", x)
    old = tmp_path / "out.h5"
    shutil.copyfile(GOLDEN_DIR / "tinynet_sdnn_input.h5", old)
    before = old.read_bytes()
    r = _run_cli(
        "emulate",
        str(TINY),
        str(tmp_path / "in.npy"),
        "-o",
        str(old),
        "--record",
        "s,u,v",
        fsize=8192,
    )
    assert r.returncode == cli.EXIT_INVALID, r.stderr
    assert "File too large" in r.stderr and str(old) in r.stderr and "Traceback" not in r.stderr
    assert old.read_bytes() == before and _leftovers(tmp_path) == []


SAVE_SCRIPT = """
import sys, numpy as np
from loihi_slayer.hdf5 import CubaNeuron, DenseLayer, Network, save_network
from loihi_slayer.params import Params
from loihi_slayer.safety import WriteError
what, path = sys.argv[1], sys.argv[2]
try:
    if what == "net":
        net = Network([DenseLayer((300,), np.ones((300, 300), int), CubaNeuron(0, 4096, 10))])
        save_network(net, path)
    else:
        Params({"neuron": {"theta": 10, "blob": list(range(5000))}}).save(path)
except WriteError as exc:
    print("WriteError", exc)
    sys.exit(3)
"""


@pytest.mark.parametrize("what", ["net", "yaml"])
def test_full_disk_during_save_network_and_params_save(tmp_path, what):
    path = tmp_path / ("n.net" if what == "net" else "p.yaml")
    path.write_bytes(b"old content")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    r = run_python(SAVE_SCRIPT, what, str(path), env=ENV, preexec_fn=limit)
    assert r.returncode == 3, (r.returncode, r.stderr)  # not SIGXFSZ, not SIGSEGV
    assert "File too large" in r.stdout and str(path) in r.stdout
    assert path.read_bytes() == b"old content" and _leftovers(tmp_path) == []


def _net() -> Network:
    return Network(
        [InputLayer((4,)), DenseLayer((3,), np.ones((3, 4), int), CubaNeuron(0, 4096, 5))]
    )


WRITERS = {
    "save_network": lambda p: save_network(_net(), p),
    "save_case": lambda p: save_case(load_case(GOLDEN_DIR / "tinynet_sdnn_input.h5"), p),
    "Params.save": lambda p: Params({"a": 1}).save(p),
    "encode_2d_spikes": lambda p: binary.encode_2d_spikes(p, Event([1], [2], [0], [3.0])),
    "encode_np_spikes": lambda p: binary.encode_np_spikes(p, Event([1], [2], [0], [3.0])),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_writers_use_the_umask_and_refuse_directories(tmp_path, writer):
    write = WRITERS[writer]
    old = os.umask(0o027)
    try:
        write(tmp_path / "new.npy")
    finally:
        os.umask(old)
    assert (tmp_path / "new.npy").stat().st_mode & 0o777 == 0o640  # 0o666 & ~0o027
    (tmp_path / "kept.npy").write_bytes(b"x")
    os.chmod(tmp_path / "kept.npy", 0o604)
    write(tmp_path / "kept.npy")
    assert (tmp_path / "kept.npy").stat().st_mode & 0o777 == 0o604
    (tmp_path / "dir.npy").mkdir()
    with pytest.raises(WriteError, match="directory"):
        write(tmp_path / "dir.npy")
    assert _leftovers(tmp_path) == []


def test_save_network_refuses_int64_min_in_a_float32_field(tmp_path):
    # found by the fuzz suite: abs(-2**63) overflows, so the range check passed and
    # the file written could not be read back
    layer = DenseLayer((2,), np.ones((2, 2), int), CubaNeuron(0, 4096, 5), bias=[-(2**63), 0])
    with pytest.raises(ParameterError, match="range a float32 dataset stores exactly"):
        save_network(Network([layer]), tmp_path / "n.net")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ bounded memory


def test_huge_step_count_in_a_golden_case_is_refused(tmp_path, capsys):
    path = tmp_path / "huge.h5"
    shutil.copyfile(GOLDEN_DIR / "tinynet_sdnn_input.h5", path)
    with h5py.File(path, "r+") as f:
        del f["run/num_steps"]
        f["run/num_steps"] = np.int64(10**12)
    assert cli.main(["verify", str(path)]) == cli.EXIT_INVALID
    err = capsys.readouterr().err
    assert str(path) in err and "num_steps = 1000000000000" in err and "bytes" in err


def test_huge_sizes_refused_before_allocation():
    with pytest.raises(ParameterError, match=r"weight of shape \(1000000, 1000000\).*bytes"):
        block.cuba.Dense(P, 10**6, 10**6)
    ev = Event([10**6 - 1], [10**6 - 1], [0], [5.0])
    with pytest.raises(ParameterError, match=r"dim = \(1, 1000000, 1000000, 6\).*bytes"):
        ev.to_tensor()
    with pytest.raises(ParameterError, match="tSample.*1000000000000"):
        from loihi_slayer import slayer_pytorch as snn

        snn.layer(
            {"theta": 10, "tauSr": 1, "tauRef": 1, "tauRho": 1, "scaleRho": 1},
            {"Ts": 1, "tSample": 10**12},
        )


def test_npy_header_declaring_a_huge_array_is_refused(tmp_path):
    path = tmp_path / "ev.npy"
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**13, 4)}
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(np.zeros(8).tobytes())
    with pytest.raises(FormatError, match=rf"{path}.*shape \(10000000000000, 4\).*bytes"):
        binary.read_np_spikes(path)


# ------------------------------------------------------------------ refuse at the door


@pytest.mark.parametrize(
    ("group", "key", "value", "message"),
    [
        ("neuron", "theta", "abc", r"'neuron.theta' = 'abc' must be a number"),
        ("simulation", "tSample", -5, r"'simulation.tSample' = -5 must be a number in \(0"),
        ("neuron", "theta", float("nan"), r"'neuron.theta' = nan"),
        ("neuron", "theta", float("inf"), r"'neuron.theta' = inf"),
        ("neuron", "theta", 1e300, r"'neuron.theta' = 1e\+300"),
        ("neuron", "theta", -1, r"'neuron.theta' = -1"),
    ],
)
def test_yaml_values_checked_against_the_schema(tmp_path, group, key, value, message):
    from loihi_slayer import slayer_pytorch as snn

    params = yaml.safe_load((ROOT / "examples" / "slayer_pytorch" / "oxford.yaml").read_text())
    params[group][key] = value
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(params))
    p = Params(path)
    with pytest.raises(ParameterError, match=message):
        snn.layer(p["neuron"], p["simulation"])
    from loihi_slayer.params import SLAYER_SCHEMA

    with pytest.raises(ParameterError, match=message):
        Params(path, schema=SLAYER_SCHEMA)


def test_constructors_refuse_bad_sizes_and_geometry():
    with pytest.raises(ParameterError, match=r"threshold = 3000.0 .*\[0, 131071\]"):
        block.cuba.Dense(dict(P, threshold=3000.0), 4, 3)
    with pytest.raises(ParameterError, match="stride = 0 must be >= 1"):
        block.cuba.Conv(P, 2, 4, 3, stride=0)
    with pytest.raises(ParameterTypeError, match="in_neurons must be an integer >= 1, got str"):
        block.cuba.Dense(P, "10", 5)
    with pytest.raises(ParameterError, match="out_neurons = -5 must be >= 1"):
        block.cuba.Dense(P, 10, -5)
    with pytest.raises(ParameterError, match="time axis is empty"):
        block.cuba.Dense(P, 10, 5)(torch.zeros(1, 10, 0))


def test_decay_clamped_like_lava_dl_and_logged_once(caplog):
    from loihi_slayer.safety import clamp

    clamp._SAID.clear()
    with caplog.at_level("WARNING"):
        block.cuba.Dense(dict(P, current_decay=2.0), 4, 3)
        block.cuba.Dense(dict(P, current_decay=3.0), 4, 3)
    said = [r for r in caplog.records if "current_decay" in r.getMessage()]
    assert len(said) == 1 and "clamped to 1" in said[0].getMessage()


def test_inspect_refuses_out_of_range_vdecay(tmp_path, capsys):
    path = tmp_path / "bad.net"
    shutil.copyfile(TINY, path)
    with h5py.File(path, "r+") as f:
        del f["layer/1/neuron/vDecay"]
        f["layer/1/neuron/vDecay"] = np.int64(4097)
    assert cli.main(["inspect", str(path)]) == cli.EXIT_INVALID
    err = capsys.readouterr().err
    assert "vDecay = 4097" in err and "[0, 4096]" in err and str(path) in err


def _edit_case(tmp_path, edit) -> Path:
    path = tmp_path / "case.h5"
    shutil.copyfile(GOLDEN_DIR / "tinynet_sdnn_conv.h5", path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (
            lambda f: f.create_dataset("network/input_shape", data=[0, -1]),
            "input_shape",
            "sizes >= 1",
        ),
        (lambda f: f.create_dataset("input/bogus", data=1), "bogus", "unexpected field"),
        (lambda f: f.create_dataset("expect/0/extra", data=1), "extra", "unexpected field"),
        (lambda f: f["run/spike_exp"].write_direct(np.array(99)), "spike_exp", r"\[0, 16\]"),
        (lambda f: f.create_dataset("run/reset_layers", data=[-1]), "reset_layers", ">= 0"),
    ],
)
def test_golden_fields_checked_even_when_unused(tmp_path, edit, field, message):
    path = _edit_case(tmp_path, edit)
    with pytest.raises(FormatError, match=message) as info:
        load_case(path)
    assert str(path) in str(info.value) and field in str(info.value)


def test_golden_input_shape_must_match_the_network(tmp_path, capsys):
    path = _edit_case(tmp_path, lambda f: f.create_dataset("network/input_shape", data=[7]))
    assert cli.main(["verify", str(path)]) == cli.EXIT_INVALID
    assert "input_shape" in capsys.readouterr().err


def test_golden_case_with_its_last_layer_deleted_does_not_verify(tmp_path, capsys):
    src = load_case(GOLDEN_DIR / "tinynet_sdnn_conv.h5")
    blob = tmp_path / "net.net"
    blob.write_bytes(src.network_bytes)
    with h5py.File(blob, "r+") as f:
        del f[f"layer/{len(f['layer']) - 1}"]
    src.network_bytes = blob.read_bytes()
    path = save_case(src, tmp_path / "short.h5")
    assert cli.main(["verify", str(path)]) == cli.EXIT_INVALID
    assert "does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------ CLI contract


def test_cli_usage_errors_exit_2(capsys):
    assert cli.main(["emulate", str(TINY)]) == cli.EXIT_USAGE
    assert cli.main(["emulate", str(TINY), "x.npy", "-o", "o.h5", "--steps", "0"]) == 2
    assert cli.main(["frobnicate"]) == cli.EXIT_USAGE
    assert "usage error" in capsys.readouterr().err


def test_cli_internal_error_is_one_line_with_a_debug_hint(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("unexpected\nstate")

    monkeypatch.setattr(cli, "cmd_inspect", boom)
    assert cli.main(["inspect", str(TINY)]) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error: RuntimeError: unexpected state" in err
    assert "--debug" in err and str(TINY) in err
    assert cli.main(["--debug", "inspect", str(TINY)]) == cli.EXIT_INTERNAL
    assert "Traceback" in capsys.readouterr().err


def test_cli_help_documents_the_exit_codes():
    r = _run_cli("verify", "--help")
    assert r.returncode == 0
    for line in (
        "0  success",
        "1  verification mismatch",
        "2  usage error",
        "3  invalid input file",
        "4  internal error",
    ):
        assert line in r.stdout


def test_ctrl_c_stops_a_subcommand(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loihi_slayer.cli",
            "demo",
            "--seconds",
            "120",
            "--no-plot",
            "--no-progress",
            "--out",
            str(tmp_path / "demo"),
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)  # let it start training (not an assertion: any phase must stop)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == cli.EXIT_INTERRUPTED, err
    assert "interrupted" in err and "train-to-chip" not in out


def test_errors_are_library_exceptions_naming_the_file(tmp_path):
    bad = tmp_path / "bad.bs2"
    bad.write_bytes(b"\x00" * 7)
    with pytest.raises(LoihiSlayerError, match=str(bad)):
        binary.read_2d_spikes(bad)
    npy = tmp_path / "neg.npy"
    np.save(npy, np.array([[-1.0, 0, 0, 1.0]]))
    with pytest.raises(FormatError, match=str(npy)):
        binary.read_np_spikes(npy)

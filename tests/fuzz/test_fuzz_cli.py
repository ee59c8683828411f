"""Fuzz every CLI subcommand with mutated files and hostile arguments.

The contract checked for each input (run in a forked child, like every fuzz
input): the exit status is one the subcommand may give for that input (0
success, 1 mismatch, 2 usage error, 3 invalid file; never 4 = internal error,
never a signal), no traceback reaches stderr, an error message names the file
it is about, and a successful ``emulate`` writes a case that ``verify`` passes.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
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
NET = ROOT / "tests" / "data" / "tiny.net"
CASES = [ROOT / "golden" / "tinynet_sdnn_input.h5", ROOT / "golden" / "tinynet_sdnn_conv.h5"]


def _cli(argv: list[str], allowed: set[int], files: list[str], workdir: Path) -> int:
    """Run ``loihi-slayer argv`` in this (child) process and check the contract."""
    import os

    from loihi_slayer import cli

    out, err = workdir / "stdout.txt", workdir / "stderr.txt"
    with open(out, "w") as fo, open(err, "w") as fe:
        os.dup2(fo.fileno(), 1)
        os.dup2(fe.fileno(), 2)
        sys.stdout, sys.stderr = fo, fe
        code = cli.main(argv, supervise=False)
        fo.flush()
        fe.flush()
    text = err.read_text()
    if code not in allowed:
        raise CheckFailed(f"exit {code} not in {sorted(allowed)} for {argv}: {text[-800:]}")
    if "Traceback" in text:
        raise CheckFailed(f"traceback on stderr for {argv}: {text[-800:]}")
    if code == 3 and not any(f in text for f in files):
        raise CheckFailed(f"error does not name any of {files}: {text[-800:]}")
    return code


def _refused(code: int, argv: list[str], workdir: Path) -> None:
    """Count a usage error or an invalid file as a clean refusal."""
    if code in (2, 3):
        raise Refused(f"exit {code}: {(workdir / 'stderr.txt').read_text()[-300:]}")


@fuzz_settings(12)
@given(src=st.sampled_from(CASES), spec=st.one_of(hdf5_mutation(), byte_mutation()))
def test_cli_verify(tmp_path_factory, src, spec):
    work = tmp_path_factory.mktemp("cli")
    path = work / src.name
    shutil.copyfile(src, path)

    def target() -> None:
        if len(spec) == 3:
            apply_hdf5(str(path), spec)
        else:
            path.write_bytes(apply_bytes(path.read_bytes(), spec))
        argv = ["verify", str(path)]
        _refused(_cli(argv, {0, 1, 3}, [str(path)], work), argv, work)

    record("cli verify", run_isolated(target))


_ARGS = st.sampled_from(
    [
        [],
        ["--steps", "3"],
        ["--steps", "0"],
        ["--steps", "-4"],
        ["--steps", "10**12"],
        ["--steps", "1000000000000"],
        ["--steps", "x"],
        ["--num-layers", "0"],
        ["--num-layers", "99"],
        ["--num-layers", "2"],
        ["--input-shape", "0,1"],
        ["--input-shape", "a"],
        ["--input-shape", "3,16,16"],
        ["--record", "s,u,v"],
        ["--record", "bogus"],
        ["--reset-interval", "0"],
        ["--reset-interval", "4"],
        ["--input-mode", "bias"],
        ["--backend", "gpu"],
        ["--graded"],
        ["--no-cycle", "--steps", "30"],
    ]
)


@fuzz_settings(15)
@given(
    what=st.sampled_from(["network", "input", "args"]),
    net_spec=hdf5_mutation(),
    arr_spec=array_mutation(),
    args=_ARGS,
)
def test_cli_emulate(tmp_path_factory, what, net_spec, arr_spec, args):
    work = tmp_path_factory.mktemp("cli")
    net, inp, out = work / "net.net", work / "in.npy", work / "out.h5"
    shutil.copyfile(NET, net)
    x = (np.random.default_rng(3).random((3, 16, 16, 12)) < 0.3).astype(np.int64)

    def target() -> None:
        np.save(inp, apply_array(x, arr_spec) if what == "input" else x)
        if what == "network":
            apply_hdf5(str(net), net_spec)
        argv = ["emulate", str(net), str(inp), "-o", str(out)]
        argv += args if what == "args" else ["--steps", "20"]
        code = _cli(argv, {0, 2, 3}, [str(net), str(inp), str(out)], work)
        if code == 0 and _cli(["verify", str(out)], {0, 1, 3}, [str(out)], work) != 0:
            raise CheckFailed("a case written by emulate does not verify")
        _refused(code, argv, work)

    record("cli emulate", run_isolated(target))


@fuzz_settings(15)
@given(spec=st.one_of(hdf5_mutation(), byte_mutation()))
def test_cli_inspect(tmp_path_factory, spec):
    work = tmp_path_factory.mktemp("cli")
    net = work / "net.net"
    shutil.copyfile(NET, net)

    def target() -> None:
        if len(spec) == 3:
            apply_hdf5(str(net), spec)
        else:
            net.write_bytes(apply_bytes(net.read_bytes(), spec))
        argv = ["inspect", str(net)]
        _refused(_cli(argv, {0, 3}, [str(net)], work), argv, work)

    record("cli inspect", run_isolated(target))


@fuzz_settings(10)
@given(
    args=st.sampled_from(
        [
            ["--epochs", "0"],
            ["--epochs", "-1"],
            ["--epochs", "x"],
            ["--seconds", "nan"],
            ["--seconds", "-1"],
            ["--seconds", "inf"],
            ["--lr", "nan"],
            ["--lr", "0"],
            ["--lr", "-1"],
            ["--lr", "x"],
            ["--seed", "1.5"],
            ["--bogus"],
        ]
    ),
    out_is_file=st.booleans(),
)
def test_cli_demo_refuses(tmp_path_factory, args, out_is_file):
    work = tmp_path_factory.mktemp("cli")
    out = work / "out"
    if out_is_file:
        out.write_text("a file, not a directory")

    def target() -> None:
        code = _cli(
            ["demo", "--out", str(out), "--no-progress", "--no-plot", *args],
            {2, 3},
            [str(out)],
            work,
        )
        if code != 2:
            raise CheckFailed(f"{args}: expected a usage error, got exit {code}")
        _refused(code, args, work)

    record("cli demo", run_isolated(target))


def test_cli_demo_output_is_a_file(tmp_path):
    out = tmp_path / "out"
    out.write_text("a file, not a directory")

    def target() -> None:
        argv = ["demo", "--out", str(out), "--epochs", "1", "--no-plot"]
        _refused(_cli(argv, {3}, [str(out)], tmp_path), argv, tmp_path)

    record("cli demo", run_isolated(target))

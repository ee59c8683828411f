"""The end-to-end examples run (tiny budgets) and keep the train-to-chip gap at zero."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT

NMNIST = ROOT.parent / "shared" / "datasets" / "nmnist-small"


@pytest.mark.skipif(not NMNIST.is_dir(), reason="shared/datasets/nmnist-small is absent")
def test_nmnist_example_quick(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "nmnist.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "emulator gap: zero" in proc.stdout
    assert (tmp_path / "nmnist.net").is_file()


def _run(script: str, tmp_path, *extra: str) -> str:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / script),
            "--quick",
            "--out",
            str(tmp_path),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=str(ROOT),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "emulator gap: zero" in proc.stdout
    return proc.stdout


@pytest.mark.parametrize("script", ["pilotnet_sdnn.py", "pilotnet_cuba.py"])
def test_pilotnet_examples_quick(script, tmp_path):
    out = _run(script, tmp_path)
    assert "best test RMSE" in out
    assert (tmp_path / "network.net").is_file() and (tmp_path / "loss.txt").is_file()


def test_xor_example_quick(tmp_path):
    out = _run("xor.py", tmp_path)
    assert "Train loss" in out  # LearningStats printed through its printer
    assert (tmp_path / "network.pt").is_file()


def test_oxford_example_quick(tmp_path):
    _run("oxford.py", tmp_path)
    assert (tmp_path / "network.net").is_file()


def test_pilotnet_data_has_the_curvature():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from pilotnet_data import road_clip
    finally:
        sys.path.pop(0)
    left = road_clip(-1.0, 0.0, 0.0, 0.0, 2)
    right = road_clip(1.0, 0.0, 0.0, 0.0, 2)
    assert left.shape == (3, 32, 64, 2)

    # the far road (upper rows below the horizon) bends to the curvature's side
    def road_cols(img: np.ndarray) -> np.ndarray:
        return np.nonzero(np.all(np.abs(img[:, 10, :, 0].T - 0.35) < 1e-6, 1))[0]

    assert road_cols(left).mean() < 32 < road_cols(right).mean()

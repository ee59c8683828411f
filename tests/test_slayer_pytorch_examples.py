"""Run the slayerPytorch-API examples for a few iterations (subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "slayer_pytorch"
NMNIST = Path("/work/shared/datasets/nmnist-small")


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_oxford_quick_loss_decreases(tmp_path):
    proc = _run("oxford.py", "--quick", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "oxford.json").read_text())
    losses = result["loss"]
    assert len(losses) == 40
    assert min(losses[-10:]) < 0.9 * losses[0]
    assert result["final_loss"] < losses[0]
    assert (tmp_path / "oxford_output.bs1").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.skipif(not (NMNIST / "train1K.txt").exists(), reason="nmnist-small not available")
def test_nmnist_loihi_quick_runs(tmp_path):
    proc = _run("nmnist.py", str(NMNIST), "--quick", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "nmnist.json").read_text())
    assert len(result["iteration_loss"]) == 4  # 32 samples, batch 8
    assert all(0 < v < 1e4 for v in result["iteration_loss"])
    assert result["train_accuracy"][0] is not None and result["test_loss"][0] is not None
    assert (tmp_path / "nmnist-loss.txt").exists()

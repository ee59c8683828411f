"""The end-to-end examples run (tiny budgets) and keep the train-to-chip gap at zero."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT

NMNIST = ROOT.parent / "shared" / "datasets" / "nmnist-small"


@pytest.mark.skipif(not NMNIST.is_dir(), reason="shared/datasets/nmnist-small is absent")
def test_nmnist_example_quick(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "nmnist.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "emulator gap: zero" in proc.stdout
    assert (tmp_path / "nmnist.net").is_file()

"""The documentation site builds in strict mode (every Sphinx warning is an error)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

for _mod in ("sphinx", "numpydoc", "myst_parser"):
    pytest.importorskip(_mod, reason="needs the [docs] extra")


@pytest.mark.slow
def test_docs_build_strict(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-b",
            "html",
            "-q",
            str(ROOT / "docs"),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    api = (tmp_path / "html" / "api.html").read_text()
    # the reference is generated from the docstrings: the kernel's equation and parameters
    assert 'id="loihi_slayer.fixed.api.cuba"' in api and "wgtExp" in api
    assert 'id="loihi_slayer.nir.import_"' in api

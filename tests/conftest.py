"""Test configuration.

numba.cuda reads ``NUMBA_ENABLE_CUDASIM`` once, at import: without an NVIDIA
driver on the machine the CUDA kernels run in numba's simulator, with one they
run on the GPU. An explicit ``NUMBA_ENABLE_CUDASIM`` in the environment wins.
``LOIHI_SLAYER_EVENT_GRAD`` is pinned likewise (unless set).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

if "NUMBA_ENABLE_CUDASIM" not in os.environ and shutil.which("nvidia-smi") is None:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
# the event weight gradient's density limit pinned (it is measured per machine): the
# tests take the same paths on every machine; tests/test_grad_calibration.py unpins it
os.environ.setdefault("LOIHI_SLAYER_EVENT_GRAD", "0.2")

SHARED_GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden-ext"


@pytest.fixture(scope="session")
def shared_golden() -> Path:
    """``shared/golden-ext`` beside the project (skip when absent)."""
    if not SHARED_GOLDEN.is_dir():
        pytest.skip("shared/golden-ext is not beside the project")
    return SHARED_GOLDEN


def pytest_configure(config):
    """numba's IR-assumption warnings as errors (here, not in ``pyproject.toml``: a
    ``filterwarnings`` entry naming a numba class imports numba before this module sets
    ``NUMBA_ENABLE_CUDASIM``, and numba's config, read at its import, would then miss it
    in a run without worker processes). Then drop numba cache files compiled against
    sources changed since the last run (an editable checkout; see
    :mod:`loihi_slayer._numba_cache`), once per run: in the controller, before any worker
    process starts."""
    config.addinivalue_line("filterwarnings", "error::numba.core.errors.NumbaIRAssumptionWarning")
    if hasattr(config, "workerinput"):
        return
    from loihi_slayer import _numba_cache

    _numba_cache.clear_stale()


def pytest_report_header(config):
    sim = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"
    return f"numba.cuda: {'simulator' if sim else 'real GPU'}"

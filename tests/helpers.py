"""Shared test utilities (imported as ``helpers``; pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = ROOT / "golden"
SHARED_GOLDEN = ROOT.parent / "shared" / "golden-ext"


def cuda_available() -> bool:
    """True if numba.cuda (real GPU or the simulator) can run kernels."""
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:
        return False

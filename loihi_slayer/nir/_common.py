"""Constants and helpers shared by the NIR exporter and importer."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .. import hdf5
from ..block.base import AFFINE_V_TH_MANT
from ..fixed.params import DECAY_MAX, VTH_MANT_MAX

#: Seconds per Loihi step in the float view (snnTorch's NIR default).
DEFAULT_DT = 1e-4
#: Metadata key holding the exact integer view.
META = "loihi_slayer"
#: Float <-> chip scale: weights and thresholds are mantissas / 64 (lava-dl's w_scale).
W_SCALE = 64
#: Steps written as the time constant of a zero decay (rounds back to 0).
ZERO_DECAY_TAU_STEPS = 1 << 16
#: Threshold written for a never-spiking (LI) neuron: lava-dl's Affine value.
NEVER_SPIKE_V_TH_MANT = AFFINE_V_TH_MANT
#: vThMant at or above this never fires: v saturates at 2**23 - 1 < vThMant << 6.
_SPIKE_LIMIT = VTH_MANT_MAX + 1
#: Largest vThMant import aims for: the 24-bit current and voltage keep 32x the
#: threshold as headroom before they wrap or saturate.
V_TH_MANT_TARGET = 1 << 12
_WEIGHT_MAX = hdf5.WEIGHT_RANGE[1]


def _nir():
    try:
        return importlib.import_module("nir")
    except ImportError:
        raise ImportError(
            "NIR support needs the optional 'nir' package: pip install loihi_slayer[nir]"
        ) from None


def _tau(decay: np.ndarray, dt: float) -> np.ndarray:
    d = np.asarray(decay, np.float64)
    return np.where(d > 0, DECAY_MAX * dt / np.maximum(d, 1), ZERO_DECAY_TAU_STEPS * dt)


def _full(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A scalar, per-channel (C,) or full array broadcast to the neuron shape."""
    a = np.asarray(value, np.float64)
    if a.ndim == 1 and len(shape) > 1 and a.size == shape[0]:
        a = a.reshape((-1,) + (1,) * (len(shape) - 1))
    return np.broadcast_to(a, shape).astype(np.float64)


def _pack_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """A record's ``extra`` datasets as NIR metadata: keys joined by newlines (they may hold
    '/'), values as ``v<i>`` (at least 1-D: NIR's writer compresses every array), ndims."""
    keys = sorted(extra)
    out: dict[str, Any] = {"keys": "\n".join(keys)}
    ndim = []
    for i, k in enumerate(keys):
        v = extra[k]
        if isinstance(v, str):
            out[f"v{i}"], n = v, -1
        else:
            out[f"v{i}"], n = np.atleast_1d(np.asarray(v)), np.ndim(v)
        ndim.append(n)
    out["ndim"] = np.asarray(ndim, np.int64)
    return out


def _unpack_extra(packed: dict[str, Any] | None) -> dict[str, Any]:
    if not packed:
        return {}
    keys = str(packed["keys"]).split("\n")
    out = {}
    for i, (k, n) in enumerate(zip(keys, np.asarray(packed["ndim"]).reshape(-1), strict=True)):
        v = packed[f"v{i}"]
        out[k] = str(v) if n < 0 else np.asarray(v).reshape(np.shape(v) if n else ())
    return out


def _meta(node: Any) -> dict | None:
    m = getattr(node, "metadata", None) or {}
    return m.get(META) if isinstance(m.get(META), dict) else None


def _int_or_array(v: Any) -> int | np.ndarray:
    a = np.asarray(v, np.int64)
    return int(a) if a.ndim == 0 else a

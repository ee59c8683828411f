"""Mutations of real input files, drawn by hypothesis.

Byte level: bit flips, truncation, zeroed ranges, appended garbage, duplicated
slices. HDF5 level: deleted, extra and retyped datasets and groups, NaN/inf,
huge and negative values and sizes, non-integers, wrong shapes, giant
(compressed, nearly free on disk) datasets. Array level (``.npy``): wrong
shapes, dtypes, NaN/inf, negative and huge values.
"""

from __future__ import annotations

import math
from typing import Any

import h5py
import numpy as np
from hypothesis import strategies as st

BYTE_OPS = ("flip", "truncate", "zero", "extend", "duplicate", "noop")
HDF5_OPS = (
    "delete",
    "extra",
    "string",
    "nan",
    "inf",
    "huge",
    "negative",
    "zero",
    "fraction",
    "empty",
    "matrix",
    "giant",
    "group",
    "scale",
)
ARRAY_OPS = (
    "nan",
    "inf",
    "negative",
    "huge",
    "fraction",
    "empty_time",
    "ndim0",
    "ndim1",
    "strings",
    "bool",
    "transpose",
    "big_shape",
)


@st.composite
def byte_mutation(draw: Any) -> tuple:
    """A byte-level mutation spec: (op, position fraction, length, value)."""
    op = draw(st.sampled_from(BYTE_OPS))
    pos = draw(st.floats(0, 1))
    length = draw(st.integers(1, 4096))
    value = draw(st.integers(0, 255))
    return (op, pos, length, value)


def apply_bytes(data: bytes, spec: tuple) -> bytes:
    """Apply a :func:`byte_mutation` spec to ``data``."""
    op, pos, length, value = spec
    buf = bytearray(data)
    n = len(buf)
    at = min(int(pos * n), max(n - 1, 0))
    if op == "flip" and n:
        for k in range(min(length, 8)):
            buf[(at + k * 97) % n] ^= 1 << ((value + k) % 8)
    elif op == "truncate":
        del buf[at:]
    elif op == "zero":
        buf[at : at + length] = bytes(len(buf[at : at + length]))
    elif op == "extend":
        buf += bytes((value + k) % 256 for k in range(length))
    elif op == "duplicate":
        buf[at:at] = buf[at : at + length]
    return bytes(buf)


@st.composite
def hdf5_mutation(draw: Any) -> tuple:
    """An HDF5-level mutation spec: (op, object index, value seed)."""
    return (draw(st.sampled_from(HDF5_OPS)), draw(st.integers(0, 10**6)), draw(st.integers(0, 7)))


def _objects(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visit(names.append)
    return sorted(names)


_HUGE = (2**62, 10**12, 2**31, 1 << 40, 2**63 - 1, 10**9, 2**24 + 1, 4097)


def apply_hdf5(path: str, spec: tuple) -> str:
    """Apply a :func:`hdf5_mutation` spec to the file in place; describe it."""
    op, index, seed = spec
    with h5py.File(path, "r+") as f:
        names = _objects(f)
        name = names[index % len(names)]
        obj = f[name]
        parent = obj.parent
        base = name.rsplit("/", 1)[-1]
        is_ds = isinstance(obj, h5py.Dataset)
        old = obj[()] if is_ds and obj.size < 10**6 else None

        def replace(value: Any, **kw: Any) -> None:
            del parent[base]
            parent.create_dataset(base, data=value, **kw)

        if op == "delete":
            del parent[base]
        elif op == "extra":
            target = obj if not is_ds else parent
            target.create_dataset(f"extra{seed}", data=np.arange(seed + 1))
        elif op == "string":
            replace("abc" if seed % 2 else "")
        elif op == "group":
            del parent[base]
            parent.create_group(base)
        elif op == "giant" and is_ds:
            shape = (10**6, 10**6) if seed % 2 else (10**11,)
            del parent[base]
            parent.create_dataset(
                base, shape=shape, dtype="i8", chunks=(1, 1024)[-len(shape) :], compression="gzip"
            )
        elif is_ds and old is not None:
            arr = np.array(old)
            if arr.dtype.kind in "OSU":
                replace(np.int64(_HUGE[seed]))
                return f"{op} {name}"
            a = arr.astype(np.float64) if arr.dtype.kind in "biuf" else np.zeros(1)
            if op == "nan":
                replace(np.full_like(a, math.nan))
            elif op == "inf":
                replace(np.full_like(a, -math.inf if seed % 2 else math.inf))
            elif op == "huge":
                replace((a * 0 + _HUGE[seed]).astype(np.int64 if seed != 7 else np.float32))
            elif op == "negative":
                replace(-np.abs(a) - 1 - seed)
            elif op == "zero":
                replace(np.zeros_like(a).astype(arr.dtype if arr.dtype.kind in "biuf" else "f8"))
            elif op == "fraction":
                replace(a + 0.5)
            elif op == "empty":
                replace(np.zeros((0,) + a.shape[1:]))
            elif op == "matrix":
                replace(np.ones((2, 3, 1 + seed)))
            elif op == "scale":
                replace((a * (seed + 2)).astype(arr.dtype if arr.dtype.kind in "iuf" else "f8"))
    return f"{op} {name}"


@st.composite
def array_mutation(draw: Any) -> tuple:
    """An array-level mutation spec: (op, value seed)."""
    return (draw(st.sampled_from(ARRAY_OPS)), draw(st.integers(0, 7)))


def apply_array(arr: np.ndarray, spec: tuple) -> np.ndarray:
    """Apply an :func:`array_mutation` spec to a copy of ``arr``."""
    op, seed = spec
    a = np.array(arr, dtype=np.float64)
    flat = a.reshape(-1)
    k = (seed * 7919) % max(flat.size, 1)
    if op == "nan" and flat.size:
        flat[k] = math.nan
    elif op == "inf" and flat.size:
        flat[k] = math.inf
    elif op == "negative" and flat.size:
        flat[k] = -1 - seed
    elif op == "huge" and flat.size:
        flat[k] = float(_HUGE[seed])
    elif op == "fraction" and flat.size:
        flat[k] += 0.5
    elif op == "empty_time":
        return a[..., :0]
    elif op == "ndim0":
        return np.asarray(seed)
    elif op == "ndim1":
        return flat[: seed + 1]
    elif op == "strings":
        return np.array(["x"] * (seed + 1))
    elif op == "bool":
        return a > 0
    elif op == "transpose":
        return a.T
    elif op == "big_shape":
        return np.broadcast_to(a.reshape(-1)[:1], (seed + 2,) * 2)
    return a

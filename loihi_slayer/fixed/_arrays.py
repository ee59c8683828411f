"""Array plumbing between NumPy, torch (CPU/CUDA) and numba, without copies."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ParameterTypeError


def is_torch(x: Any) -> bool:
    """True for a ``torch.Tensor`` (without importing torch)."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def on_gpu(x: Any) -> bool:
    """True if ``x`` lives in CUDA memory (torch CUDA tensor or numba device array)."""
    if is_torch(x):
        return bool(x.is_cuda)
    return hasattr(x, "__cuda_array_interface__") and not isinstance(x, np.ndarray)


def host_view(x: Any, name: str) -> np.ndarray:
    """A NumPy view of a host array or CPU tensor (no copy)."""
    if is_torch(x):
        if x.is_cuda:
            raise ParameterTypeError(f"{name} is a CUDA tensor; use backend='cuda'")
        return x.detach().numpy()
    if on_gpu(x):
        raise ParameterTypeError(f"{name} is a CUDA device array; use backend='cuda'")
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover
        raise ParameterTypeError(f"{name}: cannot be converted to an array") from exc


def dtype_kind(x: Any) -> str:
    """NumPy dtype kind letter of a NumPy/torch/device array."""
    if is_torch(x):
        import torch

        if x.dtype == torch.bool:
            return "b"
        if x.dtype.is_floating_point or x.dtype.is_complex:
            return "f"
        return "i"
    return np.dtype(x.dtype).kind


def check_integer_array(x: Any, name: str, min_ndim: int = 1) -> None:
    """Raise a clear TypeError unless ``x`` is an integer (or bool) array."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise ParameterTypeError(
            f"{name} must be a NumPy array or torch tensor of integers, got {type(x).__name__}"
        )
    if len(x.shape) < min_ndim:
        raise ParameterTypeError(
            f"{name} must have at least {min_ndim} dimension(s) (time last), got shape "
            f"{tuple(x.shape)}"
        )
    if dtype_kind(x) not in "iub":
        raise ParameterTypeError(
            f"{name} must hold integers (int8..int64 or bool), got dtype {x.dtype}; the "
            "fixed-point kernels are integer-exact, so convert explicitly (e.g. "
            "np.rint(x).astype(np.int64) after checking the values)"
        )


def empty_like_kind(ref: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """An empty array of the same library and device as ``ref``."""
    if is_torch(ref):
        import torch

        tdtype = {
            np.dtype(np.int8): torch.int8,
            np.dtype(np.int32): torch.int32,
            np.dtype(np.int64): torch.int64,
        }[np.dtype(dtype)]
        return torch.zeros(shape, dtype=tdtype, device=ref.device)
    return np.zeros(shape, dtype=dtype)


def from_numpy_like(ref: Any, arr: np.ndarray) -> Any:
    """Wrap a NumPy result as the library of ``ref`` (torch tensors share memory)."""
    if is_torch(ref) and not ref.is_cuda:
        import torch

        return torch.from_numpy(arr)
    return arr

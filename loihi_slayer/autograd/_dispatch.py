"""Backend selection and array plumbing shared by the training ops."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .._threads import follow_torch_threads, waits_passively
from ..errors import ParameterError
from ..fixed.workers import PARALLEL_MIN_WORK

BACKENDS = ("auto", "cpu", "cuda", "reference")


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    """``'auto'`` -> ``'cuda'`` for CUDA tensors, else ``'cpu'``."""
    if backend not in BACKENDS:
        raise ParameterError(f"backend = {backend!r} is not one of {BACKENDS}")
    if backend == "auto":
        return "cuda" if x.is_cuda else "cpu"
    if x.is_cuda and backend != "cuda":
        raise ParameterError(f"tensor is on {x.device} but backend = {backend!r}")
    return backend


def empty2d(rows: int, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A ``(rows, 0)`` placeholder meaning "not recorded / not given"."""
    return torch.empty((rows, 0), dtype=dtype or like.dtype, device=like.device)


def copy_small(t: torch.Tensor) -> torch.Tensor:
    """A copy of a small (state) tensor; on CPU a single-threaded NumPy copy.

    ``Tensor.clone`` of more than torch's grain size (32768 elements) opens a
    parallel region, whose barrier waits for a descheduled worker when other
    processes share the cores.
    """
    if t.is_cuda or t.requires_grad:
        return t.clone()
    return torch.from_numpy(t.numpy().copy())


def stack_small(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """``torch.stack(parts)`` of small (state) tensors; on CPU a single-threaded NumPy stack
    (see :func:`copy_small`)."""
    if any(t.is_cuda or t.requires_grad for t in parts):
        return torch.stack(list(parts))
    return torch.from_numpy(np.stack([t.numpy() for t in parts]))


#: where idle workers sleep, a light kernel's work counts this much less (see
#: :func:`use_parallel`): it runs on the calling thread below about 2 M units
LIGHT_COST = 32


def use_parallel(rows: int, steps: int, light: bool = False) -> bool:
    """Whether a CPU kernel call on ``(rows, steps)`` is worth a parallel region: below
    ``fixed.workers.PARALLEL_MIN_WORK`` neuron-steps it costs more than it saves.

    ``light``: the kernel does a few vector operations per unit (the int8 operand's
    conversion, the narrow product's multiply-adds into 16 output lanes, the int8
    product's scale-out: 0.15-0.35 ns a unit on one thread, a CUBA step 1.6 ns). Where
    idle workers sleep (:func:`~loihi_slayer._threads.waits_passively`, the examples'
    setting) a region first wakes one, which took 40-200 us on the 2-core Zen 4 VM (the
    N-MNIST operand pass: 297 us against 98 spinning), so a light kernel goes parallel
    only from :data:`LIGHT_COST` times the limit (about 2 M units), where half its
    serial time outweighs that. The N-MNIST step there paired 0.927 with its narrow
    product and scale-out on the calling thread and 0.967 more with the operand pass too
    (in-process toggles, 30 rounds of 10 steps); with spinning workers, where the limit
    stays as it was, those kernels on one thread cost 1.03 each."""
    work = rows * steps
    if light and waits_passively():
        work //= LIGHT_COST
    if work >= PARALLEL_MIN_WORK and rows > 1:
        follow_torch_threads()
        return True
    return False


def kernel_array(t: torch.Tensor | np.ndarray, backend: str):
    """What a kernel receives: a NumPy view (cpu, simulator) or a CUDA array view."""
    if isinstance(t, np.ndarray):
        return t
    if t.is_cuda:
        from numba import cuda

        return cuda.as_cuda_array(t.detach())
    return t.detach().numpy()


def launch(kernel, rows: int, *args) -> None:
    """Launch a numba.cuda training kernel on torch's current stream: one thread per row,
    in blocks of one warp (:data:`._cuda.THREADS`; the tiled kernels need exactly that)."""
    from . import _cuda

    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    on_gpu = any(t.is_cuda for t in tensors)
    conv = [kernel_array(a, "cuda") if isinstance(a, torch.Tensor) else a for a in args]
    if on_gpu:
        from numba import cuda

        stream = cuda.external_stream(torch.cuda.current_stream().cuda_stream)
        kernel[_cuda.blocks_for(rows), _cuda.THREADS, stream](*conv)
    else:
        kernel[_cuda.blocks_for(rows), _cuda.THREADS](*conv)


def param_vector(values: np.ndarray | torch.Tensor, per_neuron: int) -> np.ndarray:
    """Length-1 or per-neuron contiguous int64/float64 vector for the kernels."""
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
    arr = np.ascontiguousarray(arr).reshape(-1)
    if arr.size == 1 or arr.size == per_neuron:
        return arr
    raise ParameterError(  # pragma: no cover - guarded by the callers
        f"parameter of size {arr.size} does not match {per_neuron} neurons"
    )

"""Large CPU tensors whose memory is handed out again once nothing references it.

glibc returns freed heap memory to the system once more than its trim threshold is
free, so a tensor of megabytes allocated afresh every training step lands on fresh
pages every step, and each 4 KB page faults on first touch (README, "Fresh memory").
A :class:`Recycled` keeps the storage of the tensor it last handed out and hands the
same memory out again when no tensor, view, saved autograd value or NumPy array still
uses it (the storage's use count, which every such holder raises, is then 1: its own
reference). The values of a handed-out tensor are uninitialised, as ``torch.empty``.
Owners are looked up with :func:`recycled_for`, in a table keyed weakly by the owning
object, so modules keep no extra attribute (nothing to pickle or copy).
"""

from __future__ import annotations

import math
import threading
import weakref

import torch

from . import _operand_handoff as handoff

__all__ = ["Recycled", "kept_empty", "recycled_for", "release_kept_memory"]

#: the storage's use count (private torch API; without it nothing is reused)
_use_count = getattr(torch._C, "_storage_Use_Count", None)


#: False: every :meth:`Recycled.empty` returns new memory and keeps nothing (for
#: ``benchmarks/bench_kept_memory.py``, which times steps with and without kept memory)
ENABLED = True

#: every live Recycled (for :func:`release_kept_memory`)
_ALL: weakref.WeakSet = weakref.WeakSet()
_ALL_LOCK = threading.Lock()


class Recycled:
    """Reusable CPU storages; :meth:`empty` is ``torch.empty`` that reuses one.

    ``keep`` storages are kept at most (the most recently allocated): a role filled by
    several callers per step, such as a kernel shared by several blocks, each still
    holding its tensor when the next asks, needs one storage per caller.
    """

    def __init__(self, keep: int = 1) -> None:
        if keep < 1:
            raise ValueError(f"Recycled: keep = {keep}, must be >= 1")
        self._storages: list[torch.UntypedStorage] = []
        self._keep = keep
        self._lock = threading.Lock()
        with _ALL_LOCK:
            _ALL.add(self)

    def empty(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised contiguous CPU tensor: kept memory that is free and of the
        same size, else new memory (kept from then on)."""
        nbytes = math.prod(shape) * dtype.itemsize
        if not ENABLED:
            return torch.empty(shape, dtype=dtype)
        with self._lock:  # two threads must not both find the memory free
            for st in self._storages:
                if st.nbytes() == nbytes and _use_count(st._cdata) == 1:
                    return torch.empty(0, dtype=dtype).set_(st, 0, shape)
            out = torch.empty(shape, dtype=dtype)
            if _use_count is not None:
                old = self._storages[max(0, len(self._storages) - self._keep + 1) :]
                self._storages = [*old, out.untyped_storage()]
            return out

    @property
    def kept(self) -> tuple[torch.UntypedStorage, ...]:
        """The storages kept now, oldest first."""
        return tuple(self._storages)

    def release(self) -> None:
        """Keep no memory (it is freed once the tensors handed out are gone)."""
        with self._lock:
            self._storages = []


_OWNED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_OWNED_LOCK = threading.Lock()


def recycled_for(owner: object, role: str) -> Recycled:
    """The :class:`Recycled` of ``owner`` (any weak-referenceable object, e.g. a module)
    for one ``role``; it lives as long as ``owner``."""
    with _OWNED_LOCK:
        roles = _OWNED.setdefault(owner, {})
        rec = roles.get(role)
        if rec is None:
            rec = roles[role] = Recycled()
        return rec


#: storages each role of :func:`kept_empty` keeps: the arrays of one role that a
#: network's blocks hold at once (every block's output until the backward) each need one
ROLE_KEEP = 16
_ROLES: dict[str, Recycled] = {}


def kept_empty(
    role: str, shape: tuple[int, ...], dtype: torch.dtype, like: torch.Tensor | None = None
) -> torch.Tensor:
    """``torch.empty(shape, dtype=dtype)`` in memory kept across steps for ``role`` (one
    process-wide :class:`Recycled` of :data:`ROLE_KEEP` storages per role): for the
    arrays of a kernel that has no owning module at hand (an op's outputs, a backward's
    gradients). New memory on ``like``'s device where that is not the CPU, and while
    ``torch.compile`` traces (a traced graph allocates its own)."""
    if (like is not None and like.device.type != "cpu") or torch.compiler.is_compiling():
        device = None if like is None else like.device
        return torch.empty(shape, dtype=dtype, device=device)
    with _OWNED_LOCK:
        rec = _ROLES.get(role)
        if rec is None:
            rec = _ROLES[role] = Recycled(keep=ROLE_KEEP)
    return rec.empty(tuple(shape), dtype)


def release_kept_memory() -> int:
    """Keep no memory anywhere: every :class:`Recycled` (the recurrent blocks', the
    shift's, each synapse's and emulator's) drops its storages, which are freed once the
    tensors handed out are gone. For a process that has finished training and wants the
    memory back; the next step allocates afresh (and keeps that memory again).

    Returns
    -------
    int
        The bytes that were kept.
    """
    handoff.clear()  # the int8 operand it holds is a pool block's kept memory
    with _ALL_LOCK:
        every = list(_ALL)
    total = 0
    for rec in every:
        total += sum(st.nbytes() for st in rec.kept)
        rec.release()
    return total

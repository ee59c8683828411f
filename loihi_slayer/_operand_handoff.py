"""The int8 operand of a dense product, handed over by the kernel that made its input.

A dense product on spikes first converts its time-last float32 input ``(B, I, T)`` into
the int8 operand ``(I, B·T)`` and counts each row's events
(:func:`~loihi_slayer.synapse._int_product.int8_operand`): a pass over the whole input,
with a parallel region of its own. Where the input is the spikes of a CUBA pool block,
the pool's kernel has each spike row in its cache as it writes it, and writes the
operand row and its count there too
(:func:`~loihi_slayer.autograd.cuba.cuba_pooled_spikes`); it then :func:`offer`\\ s
them here, and the product :func:`take`\\ s them instead of converting. The N-MNIST
step (pool -> dense 578 -> 128 -> dense 10) no longer runs the 0.27 ms operand pass
(2-core Intel Xeon VM with AMX; the README, stop 61).

An offer holds for exactly the tensor it was made for: the spikes' own memory (the root
of every view of them) and the version counter that every in-place change of that
memory, through any view, advances. A product's input that is another tensor, a copy,
or the spikes changed since, takes nothing and converts as before. The counter does not
see writes through ``.data`` or a NumPy view of the spikes (PyTorch's autograd does not
see them either, and its documentation warns against them): spikes changed that way
between the pool block and the product would not be converted again, so a module that
edits them in place should use tensor operations (or a copy). One offer is kept (a
pool block's next forward :func:`clear`\\ s it first, so its operand memory is free to
be used again); the operand is read only, by the product and its backward.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

import torch

__all__ = ["Operand", "clear", "offer", "take"]


class Operand(NamedTuple):
    """An int8 operand as :func:`~loihi_slayer.synapse._int_product.int8_operand` returns it."""

    #: ``(I, B·T)`` int8, columns ordered ``(b, t)``
    q: torch.Tensor
    #: the largest magnitude
    top: int
    #: the number of non-zero values
    nonzero: int
    #: ``(B, I)`` int32: each row's non-zero values
    counts: torch.Tensor


class _Offer(NamedTuple):
    spikes: weakref.ReferenceType
    version: int
    data_ptr: int
    q: torch.Tensor
    counts: torch.Tensor


#: the one offer kept (a list: assignment of its item is atomic, no lock needed)
_SLOT: list[_Offer | None] = [None]


def _root(t: torch.Tensor) -> torch.Tensor:
    """The tensor whose memory ``t`` views (``t`` itself where it is no view)."""
    return t if t._base is None else t._base


def clear() -> None:
    """Drop the offer (its operand memory is then free once nothing else holds it)."""
    _SLOT[0] = None


def offer(spikes: torch.Tensor, q: torch.Tensor, counts: torch.Tensor) -> None:
    """Offer ``q`` (``(I, B·T)`` int8) and ``counts`` (``(B, I)`` int32) as the operand of
    the 0/1 spikes ``spikes`` (any view of their memory, ``B·I·T`` float32 values in
    ``(b, i, t)`` order), as they are now."""
    root = _root(spikes)
    _SLOT[0] = _Offer(weakref.ref(root), root._version, root.data_ptr(), q, counts)


def take(x3: torch.Tensor) -> Operand | None:
    """The operand offered for ``x3`` (a contiguous time-last ``(B, I, T)`` float32 view of
    the offered spikes, unchanged since), else None."""
    entry = _SLOT[0]
    if entry is None or entry.spikes() is not _root(x3):
        return None
    n_b, n_i, steps = x3.shape
    if (
        x3._version != entry.version
        or x3.data_ptr() != entry.data_ptr
        or x3.dtype != torch.float32
        or not x3.is_contiguous()
        or tuple(entry.q.shape) != (n_i, n_b * steps)
        or tuple(entry.counts.shape) != (n_b, n_i)
    ):
        return None
    nonzero = int(entry.counts.numpy().sum())
    return Operand(entry.q, int(nonzero > 0), nonzero, entry.counts)

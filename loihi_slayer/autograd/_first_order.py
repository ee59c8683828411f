r"""Backward passes that run compiled kernels: differentiable once, and they say so.

A kernel's backward (a surrogate gradient through the integer dynamics, an exact
product's gradients) is computed by numba/CUDA code on plain arrays, outside autograd.
Its result is a first-order gradient: nothing records how it depends on the saved
state, the weights or the incoming gradient. With ``create_graph=True`` (a gradient
penalty, a Hessian-vector product, meta-learning) PyTorch runs every backward with
gradients on and expects results it can differentiate again. Left alone, such a
backward either fails deep inside (``Can't call numpy() on Tensor that requires
grad``) or hands back a gradient that silently counts as a constant, so a second-order
term comes out partial with no warning.

:func:`first_order` wraps a ``backward``: without ``create_graph`` it is the backward
itself (nothing added on the training path). With it, the backward runs on detached
tensors (its saved tensors and incoming gradients), so the first-order gradients come
out the same bits as without, and the results pass through one node, :class:`_Refuse`,
joined to the graph through the saved tensors and gradients that require grad (a
gradient of the result for any earlier tensor reaches it), whose own backward raises
:class:`~loihi_slayer.errors.DoubleBackwardError` naming the op. So
``torch.autograd.grad(..., create_graph=True)`` works, and any attempt to differentiate
its result through a kernel raises that error rather than giving a wrong number.

.. math::

    \frac{\partial L}{\partial x} \text{ (first order): the kernel's}, \qquad
    \frac{\partial}{\partial \theta}\Bigl(\frac{\partial L}{\partial x}\Bigr)
    \text{ through it: refused.}

Backward passes written with differentiable PyTorch ops (the spike function's
surrogate, the narrow product's ``create_graph`` branch) stay differentiable and are not
wrapped.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import DoubleBackwardError

__all__ = ["first_order"]


class _DetachedCtx:
    """A backward's ``ctx`` whose ``saved_tensors`` come detached; every other attribute
    is the real ``ctx``'s (read and written)."""

    def __init__(self, ctx: Any, saved: tuple) -> None:
        object.__setattr__(self, "_ctx", ctx)
        detached = tuple(None if t is None else t.detach() for t in saved)
        object.__setattr__(self, "saved_tensors", detached)

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_ctx"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_ctx"), name, value)


class _Refuse(torch.autograd.Function):
    """``(message, n, *results, *anchors) -> results``: the first-order results, as part
    of a graph through the anchors; its backward raises (see the module)."""

    @staticmethod
    def forward(ctx, message: str, n: int, *tensors: Tensor) -> tuple[Tensor, ...]:
        ctx.message = message
        return tuple(t.view_as(t) for t in tensors[:n])

    @staticmethod
    def backward(ctx, *grads: Tensor) -> tuple:
        raise DoubleBackwardError(ctx.message)


def _message(name: str) -> str:
    return (
        f"{name}: this gradient cannot be differentiated again (create_graph=True, then a "
        f"backward through it): the op's backward runs a compiled kernel, which gives "
        f"first-order gradients only. First-order gradients with create_graph=True are "
        f"exact; for a second-order term (a gradient penalty, a Hessian-vector product) "
        f"take it through layers without kernels, or by finite differences of first-order "
        f"gradients"
    )


def _refused(message: str, out: Any, anchors: list[Tensor]) -> Any:
    """``out`` (a tensor, or a tuple of tensors and None) with its float tensors passed
    through :class:`_Refuse`, joined to the graph through ``anchors`` (what the true
    gradient depends on: the saved tensors and incoming gradients that require grad),
    so that a gradient of it reaches the refusal whichever tensor it is taken for; with
    no anchor, as fresh leaves (a backward through them still reaches it)."""
    single = isinstance(out, Tensor)
    items = (out,) if single else tuple(out)
    where = [i for i, t in enumerate(items) if isinstance(t, Tensor) and t.is_floating_point()]
    if not where:
        return out
    if anchors:
        marked = _Refuse.apply(message, len(where), *(items[i] for i in where), *anchors)
    else:
        leaves = [items[i].detach().requires_grad_() for i in where]
        marked = _Refuse.apply(message, len(where), *leaves)
    result = list(items)
    for i, t in zip(where, marked, strict=True):
        result[i] = t
    return result[0] if single else tuple(result)


def first_order(name: str | Callable[[Any], str]) -> Callable[[Callable], Callable]:
    """Decorate an autograd ``backward(ctx, *grads)`` that runs kernels (see the
    module). ``name``: the op's name in the error, or ``name(ctx)`` giving it."""

    def wrap(backward: Callable) -> Callable:
        @functools.wraps(backward)
        def wrapper(ctx: Any, *grads: Any) -> Any:
            if not torch.is_grad_enabled():
                return backward(ctx, *grads)
            saved = ctx.saved_tensors
            anchors = [t for t in (*saved, *grads) if isinstance(t, Tensor) and t.requires_grad]
            plain = tuple(g.detach() if isinstance(g, Tensor) else g for g in grads)
            with torch.no_grad():
                out = backward(_DetachedCtx(ctx, saved), *plain)
            label = name(ctx) if callable(name) else name
            return _refused(_message(label), out, anchors)

        return wrapper

    return wrap

"""One autograd function for every family neuron: the family supplies an op object.

A family op (e.g. :class:`loihi_slayer.autograd.alif.AlifOp`) has two methods:

``forward(x, want_trace) -> (outputs, saved)``
    Runs the integer forward on the float input ``x`` and returns a tuple of
    output tensors and whatever the backward needs.
``backward(saved, grads) -> (g_x, *g_params)``
    Receives the output gradients (``None`` where no gradient arrives) and returns
    the input gradient and one gradient (or ``None``) per learnable parameter,
    in the order they were passed to :func:`apply`.

The learnable parameters go through :func:`apply` only so that autograd routes
their gradients; the op reads their values itself.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from ._first_order import first_order

__all__ = ["FamilyFunction", "FamilyOp", "apply"]


class FamilyOp(Protocol):
    """What :func:`apply` needs from a family (see the module docstring)."""

    def forward(self, x: torch.Tensor, want_trace: bool) -> tuple[tuple[torch.Tensor, ...], Any]:
        """Integer forward: ``(outputs, saved)``."""

    def backward(self, saved: Any, grads: tuple[torch.Tensor | None, ...]) -> tuple:
        """``(g_x, *g_params)``."""


class FamilyFunction(torch.autograd.Function):
    """``(x, op, want_trace, *params) -> op outputs``; see :func:`apply`."""

    @staticmethod
    def forward(ctx, x, op, want_trace, *params):
        ctx.set_materialize_grads(False)
        outs, saved = op.forward(x, want_trace)
        ctx.op, ctx.saved = op, saved
        ctx.n_params = len(params)
        # the gradient's dependencies, for a create_graph backward (``first_order``)
        ctx.save_for_backward(x, *params)
        if not want_trace:
            ctx.mark_non_differentiable(*outs[1:])
        return outs

    @staticmethod
    @first_order(lambda ctx: f"{type(ctx.op).__name__} (a neuron family's kernels)")
    def backward(ctx, *grads):
        if all(g is None for g in grads):
            return (None, None, None) + (None,) * ctx.n_params
        g_x, *g_params = ctx.op.backward(ctx.saved, grads)
        ctx.saved = None  # free the saved traces (no double backward)
        return (g_x, None, None, *g_params)


def apply(op: FamilyOp, x: torch.Tensor, want_trace: bool, *params: torch.Tensor):
    """Run ``op`` as a differentiable function of ``x`` and ``params``."""
    return FamilyFunction.apply(x, op, want_trace, *params)

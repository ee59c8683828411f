r"""Kernel ops: a compiled forward/backward kernel pair as one ``torch.library`` custom op.

``torch.compile`` cannot trace numba kernels (or the NumPy glue around them);
wrapped as a custom op, a kernel is one opaque node of the graph, with a fake
(shape-only) implementation for tracing and a registered autograd formula, so
a network of blocks compiles with ``fullgraph=True``. In eager mode the op
calls the same Python function directly on the caller's tensors: no copies.

Adopting the pattern for a neuron family (see :mod:`.cuba`, :mod:`.sigma_delta`):

1. **Forward**: a function of tensors and scalars (``int``, ``float``,
   ``bool``, ``str``, ``list[bool]``...) with type annotations, returning a
   tuple of *new* tensors: never an input or a view of one. State that the
   kernel updates in place goes in as a tensor and comes out as a new one
   (clone it inside, let the kernel write the clone); the Python wrapper
   stores the returned state. Configuration the backward needs but the
   forward does not can be extra scalar arguments. Keep the argument count
   small (pack scalars into ``list[int]``/``list[float]``): torch's autograd
   wrapper walks the schema on every call, at a cost that grows with it.
2. **Fake**: same signature, returns ``new_empty`` tensors of the output
   shapes (shapes may only depend on input shapes and scalar arguments).
3. **Backward**: ``backward(*grads, *saved, *config, needs)`` where ``grads``
   holds one ``Tensor | None`` per forward output (``None``: no gradient
   flows into that output), ``saved``/``config`` are what ``save`` returns,
   and ``needs`` is a ``list[bool]``, one per name in ``grad_inputs``. It
   returns one tensor per ``grad_inputs`` entry (any tensor, e.g. an empty
   one, where ``needs`` is False: it is dropped), of any strides: the custom
   op returns each contiguous, as its fake declares (compiled code trusts the
   fake's strides), the eager path as it comes. Plus its fake.
4. ``op = kernel_op(name, forward, forward_fake, backward, backward_fake,
   save=..., grad_inputs=(...))`` where ``save(inputs, output)`` returns
   ``(tensors, config)``: the tensors (inputs or outputs, ``None`` allowed)
   and the non-tensor values the backward receives.

Call the op as ``op(...)``. In eager mode that runs the forward and backward
functions through a plain :class:`torch.autograd.Function`, which skips the
custom op's dispatch (schema walk, alias checks, redispatch: about 0.1 ms per
call, a quarter of a small layer's step), or, where the call builds no graph (gradients
off, or no input requiring one), the forward function alone; under ``torch.compile``, tracing,
dispatch modes and functorch transforms it calls the registered custom op
(``op.op``, also ``torch.ops.loihi_slayer.<name>``), which is what
``torch.library.opcheck`` tests. Both run the same functions, saved tensors and
gradient routing. The backward op is itself not differentiable (no double
backward), as the kernels it wraps: with ``create_graph=True`` the first-order
gradients come as without, and a backward through them raises
:class:`~loihi_slayer.errors.DoubleBackwardError` (:mod:`._first_order`), unless the op
declares its backward differentiable (``differentiable_backward=True``: PyTorch ops).

:func:`check_finite` raises a :class:`~loihi_slayer.errors.ParameterError`
for NaN/inf in eager mode and keeps the check (as an ordered side-effect op)
in compiled graphs, where a data-dependent ``if`` would break the graph.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import ParameterError
from ._first_order import first_order

NAMESPACE = "loihi_slayer"


def plain_eager(args: tuple) -> bool:
    """Whether a call may skip the custom op: plain eager tensors, no tracing, no dispatch
    mode or functorch transform (private torch checks, each defaulting to the custom op)."""
    if torch.compiler.is_compiling():
        return False
    if getattr(torch._C, "_len_torch_dispatch_stack", lambda: 1)():
        return False
    if getattr(torch._C, "_are_functorch_transforms_active", lambda: True)():
        return False
    return all(type(a) in _PLAIN_TENSORS for a in args if isinstance(a, Tensor))


_PLAIN_TENSORS = (Tensor, torch.nn.Parameter)


class KernelOp:
    """A kernel op: the custom op ``op`` and its eager fast path (see the module docstring).

    Attributes
    ----------
    op
        The registered ``torch.library`` custom op (``torch.ops.loihi_slayer.<name>``).
    """

    def __init__(
        self, op: torch.library.CustomOpDef, eager: type | None, forward: Callable | None = None
    ) -> None:
        self.op = op
        self._eager = eager
        self._forward = forward

    def __call__(self, *args: Any) -> Any:
        """Run the op: the eager path where :func:`plain_eager` allows it, else ``op``.
        On the eager path a call that builds no graph (gradients off, or no input that
        requires one) runs the forward function itself: the autograd function around it
        would only cost its set-up (about 30 us, a sixth of a small neuron's forward)."""
        if self._eager is not None and plain_eager(args):
            if torch.is_grad_enabled() and any(
                a.requires_grad for a in args if isinstance(a, Tensor)
            ):
                return self._eager.apply(*args)
            return self._forward(*args)
        return self.op(*args)


def _contiguous_results(fn: Callable) -> Callable:
    """``fn`` with each tensor it returns made contiguous (a view of another layout is
    copied), for a custom op whose fake returns contiguous tensors."""

    @functools.wraps(fn)
    def contiguous_fn(*args: Any, **kwargs: Any) -> Any:
        return tuple(t.contiguous() for t in fn(*args, **kwargs))

    return contiguous_fn


def kernel_op(
    name: str,
    forward: Callable,
    forward_fake: Callable,
    backward: Callable | None = None,
    backward_fake: Callable | None = None,
    *,
    save: Callable[[tuple, Any], tuple[Sequence[Tensor | None], Sequence[Any]]] | None = None,
    grad_inputs: Sequence[str] = (),
    differentiable_backward: bool = False,
) -> KernelOp:
    """Register ``forward`` (and ``backward``) as the custom op ``loihi_slayer::<name>``.

    Parameters
    ----------
    name
        Op name; the backward op is ``<name>_backward``.
    forward, forward_fake
        Annotated implementation and its shape-only fake (see the module docstring).
    backward, backward_fake
        Backward implementation and fake; ``None`` for an op without gradient.
    save
        ``save(inputs, output) -> (tensors, config)``: what the backward receives
        after the output gradients.
    grad_inputs
        Names of the forward parameters the backward returns gradients for, in order.
    differentiable_backward
        Whether ``backward`` is written in differentiable PyTorch ops (a gradient of its
        gradient is then PyTorch's); else it runs kernels and is first-order only: with
        ``create_graph=True`` it runs on detached tensors and a further backward through
        its result raises (:func:`~loihi_slayer.autograd._first_order.first_order`).

    Returns
    -------
    KernelOp
        The forward op (callable; ``.op`` is the custom op).
    """
    op = torch.library.custom_op(f"{NAMESPACE}::{name}", forward, mutates_args=())
    op.register_fake(forward_fake)
    if backward is None:
        return KernelOp(op, None)
    if save is None or backward_fake is None:
        raise TypeError(f"kernel_op {name!r}: a backward needs save= and backward_fake")
    bop = torch.library.custom_op(
        f"{NAMESPACE}::{name}_backward", _contiguous_results(backward), mutates_args=()
    )
    bop.register_fake(backward_fake)
    params = list(inspect.signature(forward).parameters)
    grad_pos = [params.index(n) for n in grad_inputs]

    def setup_context(ctx, inputs, output):
        tensors, config = save(inputs, output)
        ctx.save_for_backward(*tensors)
        ctx.config = tuple(config)
        ctx.set_materialize_grads(False)

    def route(ctx, grads: tuple, run: Callable) -> tuple:
        needs = [bool(ctx.needs_input_grad[i]) for i in grad_pos]
        out: list[Tensor | None] = [None] * len(params)
        if not any(needs) or all(g is None for g in grads):
            return tuple(out)
        res = run(*grads, *ctx.saved_tensors, *ctx.config, needs)
        for i, need, g in zip(grad_pos, needs, res, strict=True):
            if need:
                out[i] = g
        return tuple(out)

    once = (lambda fn: fn) if differentiable_backward else first_order(f"{NAMESPACE}::{name}")

    @once
    def backward_fn(ctx, *grads):
        return route(ctx, grads, bop)

    op.register_autograd(backward_fn, setup_context=setup_context)

    forward_impl, backward_impl = forward, backward

    class Eager(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *args):
            output = forward_impl(*args)
            setup_context(ctx, args, output)
            return output

        @staticmethod
        @once
        def backward(ctx, *grads):
            return route(ctx, grads, backward_impl)

    Eager.__name__ = Eager.__qualname__ = f"{name}_eager"
    return KernelOp(op, Eager, forward_impl)


# ------------------------------------------------------------------ finite check


def _check_finite_impl(x: Tensor, message: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ParameterError(message)


def _check_finite_fake(x: Tensor, message: str) -> None:
    return None


_check_finite_op = torch.library.custom_op(
    f"{NAMESPACE}::check_finite", _check_finite_impl, mutates_args=()
)
_check_finite_op.register_fake(_check_finite_fake)
# an op without outputs is dead code to the compiler unless it is marked effectful
# (private torch API; without it compiled graphs rely on the kernels' own input checks)
_register_effectful = getattr(torch.library, "_register_effectful_op", None)
if _register_effectful is not None:  # pragma: no branch
    from torch._higher_order_ops.effects import EffectType

    _register_effectful(_check_finite_op._opoverload, EffectType.ORDERED)


def check_finite(x: Tensor, message: str) -> None:
    """Raise :class:`ParameterError` ``message`` if ``x`` holds NaN/inf (also when compiled)."""
    if torch.compiler.is_compiling():
        _check_finite_op(x.detach(), message)
    elif not bool(torch.isfinite(x.detach()).all()):
        raise ParameterError(message)

"""A CUBA dense block's training step as one autograd node (CPU).

A ``cuba.Dense`` block with weight norm and the default quantizer builds four autograd
nodes a step: the weight norm, the quantizer, the exact product and the neuron, each
with its Python around the kernels. :func:`fused_dense` runs the same kernels in one
node, :class:`FusedDense`:

.. math::

    w = g \\frac{v}{\\lVert v \\rVert}, \\quad q = Q_8(w), \\quad z = q\\,x,
    \\quad s = \\operatorname{shift}(\\operatorname{CUBA}(z))

forward, and backward the neuron's surrogate gradient, the product's input and weight
gradients, the quantizer's straight-through mask and the weight norm's gradient
(``aten::_weight_norm_interface_backward``), in that order. Every value and gradient
is the four nodes' bit for bit: the same functions compute them (the quantizer pass,
the product the synapse takes, :func:`~loihi_slayer.synapse.layer.exact_dense_plan`,
the neuron op's ``_cuba_forward``/``_cuba_backward``). The N-MNIST training step (578 -> 128 -> 10)
took 0.964-0.966 of its time (this path on and off in one process, 50 rounds of 10
steps, paired medians; Zen 4, 2 threads).

Where the product goes event by event and the neuron has no refractory period, one
kernel pass sums each batch item's events and steps its neurons on the sums
(:mod:`._event_cuba`).

The path is taken only where nothing could tell the difference (:func:`_eligible`):
eager CPU float32, gradients wanted for both weight-norm parameters, no hooks on the
block's modules (they would not run) nor global ones, the default quantizer of the
block's own neuron, no mask, no persistent neuron state, batch norm, dropout or
learnable decays, the spikes shifted one step in the kernels. Elsewhere, and where a
product refuses the input, the block runs its four nodes as before. The node is
differentiable once, as the four nodes' kernels: with ``create_graph=True`` its
first-order gradients are the same, and a gradient of them raises
(:func:`~loihi_slayer.autograd._first_order.first_order`).
"""

from __future__ import annotations

import torch
from torch.nn.utils.parametrizations import _WeightNorm

from .._threads import small_torch_ops
from ..autograd import cuba as _cuba_op
from ..autograd._dispatch import resolve_backend
from ..autograd._first_order import first_order
from ..autograd.cuba import CubaState, op_config
from ..errors import ParameterError
from ..neuron import base as _neuron_base
from ..neuron import cuba as _cuba_neuron
from ..quantize import _quantized, clamp_gradient, grid_8bit, int8_grid
from ..synapse import Dense as _DenseSynapse
from ..synapse._narrow_product import Refused
from ..synapse.layer import exact_dense_plan
from . import _event_cuba
from .core import no_global_hooks

#: take the fused path where it applies (``False``: always the four nodes; for
#: comparisons)
ENABLED = True


#: the neuron op's bias input: none (read only, never saved)
_NO_BIAS = torch.zeros(1, dtype=torch.int64)


class _Ctx:
    """The parts of autograd's ``ctx`` that the products' bodies use, for calling their
    ``forward``/``backward`` inside :class:`FusedDense`."""

    saved_tensors: tuple = ()

    def __init__(self, needs_input_grad: tuple[bool, ...]) -> None:
        self.needs_input_grad = needs_input_grad

    def save_for_backward(self, *tensors: torch.Tensor) -> None:
        self.saved_tensors = tensors


def _eligible(block, x: torch.Tensor) -> tuple | None:
    """``(synapse, neuron, g, v)`` (the weight norm's parameters) where
    :func:`fused_dense` may stand in for the block's four nodes (see the module), else
    None: the checks that need no pass over the data. Submodules and parameters are read
    from the modules' own tables (``_modules``, ``_parameters``): through
    ``Module.__getattr__`` each read cost about 1.4 us (2-core Zen 4), and these checks
    12-21 us a block in all (now about 5)."""
    if not ENABLED or not isinstance(x, torch.Tensor):
        return None
    mods = block._modules
    syn, neu = mods.get("synapse"), mods.get("neuron")
    if (
        not torch.is_grad_enabled()
        or torch.compiler.is_compiling()
        or x.device.type != "cpu"
        or x.dtype != torch.float32
        or type(neu) is not _cuba_neuron.Neuron
        or not isinstance(syn, _DenseSynapse)
        or type(syn).forward is not _DenseSynapse.forward
        or not block.delay_shift
        or not getattr(syn, "_weight_norm", False)
        or syn.mask is not None
        or syn.exact
        or syn.time_major_output
        or neu.persistent_state
        or neu.norm is not None
        or neu.drop is not None
        or neu.requires_grad
        or any(p.requires_grad for p in neu._parameters.values())
        or resolve_backend(neu.backend, x) != "cpu"
        or not no_global_hooks()
    ):
        return None
    hook = syn.pre_hook_fx
    if (
        getattr(hook, "__self__", None) is not neu
        or getattr(hook, "__func__", None) is not _neuron_base.Neuron.quantize_8bit
    ):
        return None
    tables = syn._modules.get("parametrizations")
    norms = None if tables is None or len(tables) != 1 else tables._modules.get("weight")
    if norms is None or len(norms) != 1:
        return None
    norm = norms._modules.get("0")
    if type(norm) is not _WeightNorm or norm.dim != 0:
        return None
    g, v = norms._parameters.get("original0"), norms._parameters.get("original1")
    if g is None or v is None or not (g.requires_grad and v.requires_grad):
        return None
    if g.dtype != torch.float32 or v.dtype != g.dtype:
        return None
    # the modules the four nodes call (the block's own hooks run around its forward);
    # listed, not walked: ``block.modules()`` cost more than the rest of these checks
    for m in (syn, neu, tables, norms, norm):
        hooks = m._forward_hooks, m._forward_pre_hooks, m._backward_hooks, m._backward_pre_hooks
        if any(hooks):
            return None
    return syn, neu, g, v


def fused_dense(block, x: torch.Tensor) -> torch.Tensor | None:
    """The shifted spikes of ``block`` (a ``cuba.Dense``) on ``x`` from one autograd node
    (:class:`FusedDense`), or None where that path does not apply: the caller then runs
    the block's synapse and neuron as modules (which also raise the errors of bad input
    or weights)."""
    parts = _eligible(block, x)
    if parts is None:
        return None
    syn, neu, g, v = parts
    x = block._check_input(x)
    x3 = x.reshape(x.shape[0], syn.in_neurons, x.shape[-1])
    with torch.no_grad(), small_torch_ops():
        w, norm = torch._weight_norm_interface(v, g, 0)
    try:  # the quantizer's pass; NaN/inf weights: the module path says so
        q, inside = _quantized(w, *grid_8bit(neu.w_scale))
    except ParameterError:
        return None
    m, unit, top = int8_grid(q)
    n_out = v.shape[0]
    w2 = q.reshape(n_out, syn.in_neurons)
    grid = (m.reshape(w2.shape), unit, top)
    plan = exact_dense_plan(x3, w2, syn, False, grid)
    if plan is None:
        return None
    carrier = x3.new_empty(1).expand(x3.shape[0], n_out, x3.shape[-1])
    neu._check_input(carrier)
    state = neu._get_state(carrier)
    try:
        return FusedDense.apply(x3, g, v, neu, state, plan, (norm, inside))
    except Refused:
        return None


class FusedDense(torch.autograd.Function):
    """``(x3, g, v) -> s``: the product ``plan`` (``(Function, arguments)``, whose
    weight is the quantized weight norm of ``(g, v)``), then the CUBA neuron ``neuron``
    from ``state`` with its spikes shifted one step; ``weight_path`` holds the weight
    norm's norms and the quantizer's mask for the backward. See the module."""

    @staticmethod
    def forward(ctx, x3, g, v, neuron, state: CubaState, plan, weight_path):
        product, args = plan
        inner = _Ctx((x3.requires_grad, True) + (False,) * (len(args) - 2))
        spec = neuron._spec
        config, rho = op_config(spec, False, False, True, True)
        decays = neuron.current_decay, neuron.voltage_decay
        start = state.stacked()
        outputs = None
        if _event_cuba.applies(plan, spec, x3.shape[0]):  # product and neuron in one pass
            outputs = _event_cuba.event_cuba(inner, args, spec, *decays, _NO_BIAS, start)
        # the neuron's input (in the one pass, only its shape is read: the spikes')
        z = product.forward(inner, *args) if outputs is None else outputs[0]
        inputs = (z, *decays, _NO_BIAS, start, config, rho, spec.backend)
        if outputs is None:
            outputs = _cuba_op._cuba_forward(*inputs)
        state.assign(outputs[4])
        neuron_tensors, ctx.neuron_config = _cuba_op._cuba_save(inputs, outputs)
        # every tensor through save_for_backward (not kept on ctx): autograd then checks
        # them for in-place changes (the narrow product keeps the input) and saved-tensor
        # hooks see them, as with the four nodes
        ctx.product, ctx.inner = product, inner
        ctx.counts = len(inner.saved_tensors), len(neuron_tensors)
        norm, inside = weight_path
        # the input too where it requires grad: unread, but a create_graph backward reaches
        # it through this node's saved tensors (``first_order``), as through the four
        # nodes' (the CUBA op saves its outputs)
        anchor = x3 if x3.requires_grad else None
        ctx.save_for_backward(g, v, norm, inside, anchor, *inner.saved_tensors, *neuron_tensors)
        inner.saved_tensors = ()
        return outputs[0]

    @staticmethod
    @first_order("block.cuba.Dense (its fused training node)")
    def backward(ctx, g_s):
        g, v, norm, inside, _, *rest = ctx.saved_tensors
        n_inner = ctx.counts[0]
        ctx.inner.saved_tensors = tuple(rest[:n_inner])
        tensors, config = rest[n_inner:], ctx.neuron_config
        g_z = _cuba_op._cuba_backward(
            g_s, None, None, None, None, None, *tensors, *config, [True, False, False]
        )[0]
        g_x, g_w2 = ctx.product.backward(ctx.inner, g_z)[:2]
        # contiguous, as autograd's own weight-norm node passes it: the aten kernel reads a
        # strided gradient as if it were not (torch 2.13, CPU: wrong values, no error). The
        # products return contiguous weight gradients (the event one since stop 54, when
        # this copy took 32 us a step), so this only guards and costs nothing
        g_w = clamp_gradient(g_w2.reshape(v.shape), inside).contiguous()
        with small_torch_ops():
            g_v, g_g = torch.ops.aten._weight_norm_interface_backward(g_w, v, g, norm, 0)
        return g_x, g_g, g_v, None, None, None, None

r"""Spike functions and the one-step time shift (lava-dl ``slayer.spike`` / ``utils.time``).

:func:`spike` is lava-dl's spike function with Loihi's strict compare
:math:`s = [v > \vartheta]` (``v`` and ``θ`` on the state grid, so the compare
is exact in float) and the surrogate derivative (spec §5.4)

.. math::

    \frac{\partial s}{\partial v} = \frac{\rho}{2\tau} e^{-|v-\vartheta|/\tau}
    \quad\text{(binary)}, \qquad
    \rho\, e^{\min(v-\vartheta, 0)/\tau}\quad\text{(graded: } s = [v>\vartheta]\,v).
"""

from __future__ import annotations

import math

import torch

from .._recycle import Recycled
from ..autograd.spike import spike_op
from ..errors import ParameterError
from . import complex as complex


def spike(
    voltage: torch.Tensor,
    threshold: float,
    tau_rho: float = 1.0,
    scale_rho: float = 1.0,
    graded: bool = False,
) -> torch.Tensor:
    """Binary (or graded) spikes ``v > threshold`` with the lava-dl surrogate gradient."""
    if tau_rho <= 0:
        raise ParameterError(f"spike: tau_rho must be > 0, got {tau_rho}")
    th = float(threshold)
    return spike_op(voltage, th, 0, th, float(tau_rho), float(scale_rho), bool(graded))


def binary(voltage: torch.Tensor, threshold: float, tau_rho: float = 1.0, scale_rho: float = 1.0):
    """Binary spikes (see :func:`spike`)."""
    return spike(voltage, threshold, tau_rho, scale_rho, False)


def graded(voltage: torch.Tensor, threshold: float, tau_rho: float = 1.0, scale_rho: float = 1.0):
    """Graded spikes ``[v > θ]·v`` (see :func:`spike`)."""
    return spike(voltage, threshold, tau_rho, scale_rho, True)


def shift(x: torch.Tensor, last: torch.Tensor | None = None) -> torch.Tensor:
    """Delay by one time step: ``y[..., 0] = last`` (zeros if None), ``y[..., t] = x[..., t-1]``.

    This is the per-layer synaptic latency of Loihi (spec §7); the gradient
    is the inverse shift.
    """
    if x.dim() < 2:
        raise ParameterError(f"shift: expected a time-last tensor, found shape {tuple(x.shape)}")
    first = torch.zeros_like(x[..., :1]) if last is None else last.reshape(x[..., :1].shape)
    if x.shape[-1] == 0:  # nothing to shift: the result is ``first`` alone
        return torch.cat([first.to(x.dtype), x], dim=-1)
    return _Shift.apply(x, first.to(x.dtype))


#: memory kept across steps for the shift's output and its gradient on CPU (arrays of a
#: block's whole output, which fresh memory would make fault page by page at every
#: step), one storage per shifted block up to ``keep`` blocks
_SHIFTED, _SHIFTED_GRAD = Recycled(keep=8), Recycled(keep=8)


def _kept(like: torch.Tensor) -> bool:
    """Whether the shift keeps memory for tensors like ``like``: on CPU, in eager mode
    (a traced graph allocates its own)."""
    return like.device.type == "cpu" and not torch.compiler.is_compiling()


def _empty_in_layout(rec: Recycled, shape, stride, like: torch.Tensor) -> torch.Tensor:
    """``torch.empty_strided(shape, stride)`` (a dense layout) in ``rec``'s kept memory
    (see :func:`_kept`; else new memory)."""
    if not _kept(like):
        return like.new_empty_strided(shape, stride)
    return rec.empty((math.prod(shape),), like.dtype).as_strided(shape, stride)


class _Shift(torch.autograd.Function):
    """The shift in ``x``'s memory layout, forward and backward: a time-last view of
    time-major memory (a fused recurrent block's output) stays one, where ``cat`` would
    transpose it (a full copy across the cache lines, at every block and in the
    backward)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        if _kept(x):
            layout = (x.shape, torch.empty_like(x, device="meta").stride())  # x's, dense
            y = _empty_in_layout(_SHIFTED, *layout, x)
        else:
            y = torch.empty_like(x)
            layout = (y.shape, y.stride())
        y[..., :1] = first
        y[..., 1:] = x[..., :-1]
        ctx.layout = layout
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x's layout, whatever g's (an expanded sum grad)
        gx = _empty_in_layout(_SHIFTED_GRAD, *ctx.layout, g)
        gx[..., :-1] = g[..., 1:]
        gx[..., -1:] = 0
        return gx, g[..., :1]


class Spike(torch.autograd.Function):
    r"""lava-dl's spike function object: ``Spike.apply(v, th, tau_rho, scale_rho, graded_spike,
    voltage_last, scale)``.

    Forward :math:`s = [v > \vartheta]` (graded: :math:`[v > \vartheta]\,v/\mathrm{scale}`);
    backward as :func:`spike`. lava-dl compares :math:`v \ge \vartheta`, which fires one
    step early on the ties Loihi's CUBA neuron does not fire on (spec §5.6); the chip's
    strict compare is used here. ``voltage_last`` is accepted and unused (as lava-dl's
    forward, it only shapes the graded previous voltage).
    """

    @staticmethod
    def forward(ctx, voltage, threshold, tau_rho, scale_rho, graded_spike, voltage_last, scale):
        th = torch.as_tensor(threshold, dtype=voltage.dtype, device=voltage.device)
        fire = (voltage > th).to(voltage.dtype)
        ctx.save_for_backward(voltage, th)
        ctx.cfg = (float(tau_rho), float(scale_rho), bool(graded_spike))
        return fire * voltage / scale if graded_spike else fire

    @staticmethod
    def backward(ctx, g):
        v, th = ctx.saved_tensors
        tau, rho, graded = ctx.cfg
        if graded:
            d = rho * torch.exp(torch.clamp(v - th, max=0) / tau)
        else:
            d = rho / (2 * tau) * torch.exp(-torch.abs(v - th) / tau)
        return g * d, None, None, None, None, None, None


class StepDelay(torch.nn.Module):
    """One-step delay module; with ``persistent_state`` the last bin carries to the next call."""

    def __init__(self, persistent_state: bool = False) -> None:
        super().__init__()
        self.persistent_state = persistent_state
        self._last: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shifted ``x`` (zero fill, or the previous call's last bin)."""
        last = None
        prev = self._last
        if self.persistent_state and prev is not None and prev.shape == x[..., -1].shape:
            last = prev
        y = shift(x, last)
        if self.persistent_state:
            self._last = x[..., -1].detach().clone()
        return y


def step_delay(x: torch.Tensor, state: StepDelay | None = None) -> torch.Tensor:
    """lava-dl ``step_delay``: shift by one bin, using ``state`` to persist the last bin."""
    return shift(x) if state is None else state(x)


__all__ = ["Spike", "StepDelay", "binary", "complex", "graded", "shift", "spike", "step_delay"]

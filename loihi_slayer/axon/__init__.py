r"""Axon: delta encoder and learnable axonal delay (lava-dl ``slayer.axon``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..autograd.sigma_delta import SdnnSpec, SdnnState, SigmaDeltaFunction
from ..errors import ParameterError
from ..utils.time import shift as time_shift

MAX_DELAY = 62


class Delta(torch.nn.Module):
    r"""Delta encoder on the integer kernel (netx ``Delta``; spec §4.1), lava-dl ``axon.Delta``.

    .. math::

        a[t] = \operatorname{rint}(64\,x[t])\,2^{12},\quad
        \Delta[t] = a[t] - a[t-1] + r[t-1],\quad
        s[t] = \Delta[t]\,[|\Delta[t]| \ge 2^{12}\vartheta_{mant}],\quad
        y[t] = \lfloor s[t]/2^6 \rfloor / 4096

    with :math:`\vartheta_{mant} = \operatorname{trunc}(64\vartheta)`. Gradient
    straight through (``g[t] - g[t+1]``) plus lava-dl's threshold gradient.

    Parameters
    ----------
    threshold
        Delta threshold :math:`\vartheta` (the parameter ``threshold``).
    scale
        lava-dl's quantization step ``1/scale``: the threshold is clamped to
        ``[1/scale, inf)``. The payload grid is always the chip's
        (:math:`2^{-12}`), which is lava-dl's for ``scale = 4096`` (the value
        its sigma-delta neuron passes).
    tau_grad, scale_grad
        Threshold-gradient relaxation and scale.
    cum_error
        Accumulate the error before thresholding.
    shared_param
        One threshold (True) or one per channel (False; created on the first
        input or by :meth:`init_shape`, shaped ``(C, 1, ...)`` as lava-dl).
    persistent_state
        Keep the encoder state across calls.
    requires_grad
        Learn the threshold.
    min_threshold
        Keyword only (older lava-dl releases): lower clamp of the threshold,
        overriding ``1/scale``.
    backend
        Keyword only: kernel backend (``'auto'``, ``'cpu'``, ``'cuda'``, ``'reference'``).
    """

    def __init__(
        self,
        threshold: float,
        scale: int = 1 << 6,
        tau_grad: float = 1,
        scale_grad: float = 1,
        cum_error: bool = False,
        shared_param: bool = True,
        persistent_state: bool = False,
        requires_grad: bool = False,
        *,
        min_threshold: float | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if isinstance(scale, bool) or not float(scale) > 0:
            raise ParameterError(f"axon.Delta: scale must be > 0, got {scale!r}")
        self.scale = scale
        lo = 1.0 / float(scale) if min_threshold is None else float(min_threshold)
        self.min_threshold = max(lo, 1.0 / 4096)
        self.tau_grad, self.scale_grad = float(tau_grad), float(scale_grad)
        self.cum_error = bool(cum_error)
        self.shared_param = bool(shared_param)
        self.persistent_state = bool(persistent_state)
        self.requires_grad = bool(requires_grad)
        self.backend = backend
        self.shape: tuple[int, ...] | None = None
        self.threshold = torch.nn.Parameter(
            torch.tensor([float(threshold)]), requires_grad=self.requires_grad
        )
        self._state: SdnnState | None = None

    @property
    def device(self) -> torch.device:
        """Device of the threshold."""
        return self.threshold.device

    def init_shape(self, shape: Sequence[int]) -> None:
        """Fix the encoder shape (no batch, no time); per-channel thresholds if not shared."""
        self.shape = tuple(int(s) for s in shape)
        if not self.shared_param and self.threshold.numel() != self.shape[0]:
            with torch.no_grad():
                t = self.threshold.data.reshape(-1)[:1].repeat(self.shape[0])
                self.threshold.data = t.reshape(self.shape[0], *([1] * (len(self.shape) - 1)))

    def clamp(self) -> None:
        """Clamp the threshold to ``[min_threshold, inf)`` (lava-dl ``clamp``)."""
        with torch.no_grad():
            self.threshold.data.clamp_(min=self.min_threshold)

    def reset_state(self) -> None:
        """Forget the persistent state."""
        self._state = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Graded delta payload of ``x`` ``(N, C, ..., T)``."""
        if x.dim() < 3:
            raise ParameterError(
                f"axon.Delta: expected input (N, C, ..., T), found {tuple(x.shape)}"
            )
        if self.shape is None:
            self.init_shape(x.shape[1:-1])
        elif tuple(x.shape[1:-1]) != self.shape:
            raise ParameterError(
                f"axon.Delta: expected input (N, {', '.join(map(str, self.shape))}, T), "
                f"found {tuple(x.shape)}"
            )
        self.clamp()
        rows = x.numel() // x.shape[-1]
        st = self._state
        if not self.persistent_state or st is None or st.sigma.numel() != rows:
            st = SdnnState.zeros(rows, x.device)
            if self.persistent_state:
                self._state = st
        c = x.shape[1]
        spec = SdnnSpec(
            "delta",
            False,
            self.cum_error,
            self.tau_grad,
            self.scale_grad,
            c,
            rows // (x.shape[0] * c),
            self.backend,
        )
        return SigmaDeltaFunction.apply(x, self.threshold.reshape(-1), None, spec, st)


class _DelayFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, delay, shape):
        d = torch.floor(delay.detach().clamp(0, MAX_DELAY)).to(torch.int64)
        steps = x.shape[-1]
        d_full = d.reshape(1, *shape[: d.dim()], *([1] * (len(shape) - d.dim())), 1)
        t = torch.arange(steps, device=x.device)
        idx = t - d_full
        idx_b = torch.broadcast_to(idx, x.shape)
        y = torch.where(idx_b >= 0, torch.gather(x, -1, idx_b.clamp(min=0)), torch.zeros_like(x))
        ctx.save_for_backward(idx_b, y)
        ctx.ddim = d.dim()
        return y

    @staticmethod
    def backward(ctx, g):
        idx, y = ctx.saved_tensors
        gx = torch.zeros_like(g)
        gx.scatter_add_(-1, idx.clamp(min=0), torch.where(idx >= 0, g, torch.zeros_like(g)))
        dy = y.clone()
        dy[..., 1:] -= y[..., :-1]
        gd = -(g * dy)
        sum_dims = [0, gd.dim() - 1] + list(range(1 + ctx.ddim, gd.dim() - 1))
        return gx, gd.sum(dim=sum_dims), None


class Delay(torch.nn.Module):
    r"""Learnable axonal delay per neuron (or per channel), lava-dl semantics (spec §7.1).

    Forward: :math:`y[t] = x[t - \lfloor d \rfloor]` with zero fill and
    ``d`` clamped to ``[0, 62]``; exported as ``floor(d)``. Gradient with respect
    to ``d`` by finite difference of the output:
    :math:`\partial L/\partial d = -\sum_t g[t]\,(y[t] - y[t-1])`.

    Parameters
    ----------
    sampling_time
        Kept for API compatibility; must be 1.
    max_delay
        Upper clamp (at most 62, the chip's; lava-dl's default None means 62 here).
    grad_scale
        Multiplier of the delay gradient.
    shape
        Delay shape: ``(C,)`` (per channel) or the full neuron shape; else
        :meth:`init_shape` must be called before the first forward.
    """

    def __init__(
        self,
        sampling_time: float = 1,
        max_delay: int | None = MAX_DELAY,
        grad_scale: float = 1,
        *,
        shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if sampling_time != 1:
            raise ParameterError(f"axon.Delay: sampling_time must be 1, got {sampling_time}")
        max_delay = MAX_DELAY if max_delay is None else max_delay
        if not 0 <= int(max_delay) <= MAX_DELAY:
            raise ParameterError(f"axon.Delay: max_delay = {max_delay} outside [0, {MAX_DELAY}]")
        self.sampling_time = sampling_time
        self.max_delay = int(max_delay)
        self.grad_scale = float(grad_scale)
        self.delay = torch.nn.Parameter(torch.zeros(0))
        self.shape: tuple[int, ...] | None = None
        if shape is not None:
            self.init_shape(shape)

    def init_shape(self, shape: Sequence[int]) -> None:
        """Create the delays, uniform in [0, 1) (lava-dl initialization).

        The parameter object is kept (its data replaced), so an optimizer built
        before still updates it.
        """
        self.shape = tuple(int(s) for s in shape)
        self.delay.data = torch.rand(self.shape, device=self.delay.device)

    def clamp(self) -> None:
        """Clamp the delays to ``[0, max_delay]`` (done before every forward)."""
        with torch.no_grad():
            self.delay.data.clamp_(0, self.max_delay)

    @property
    def device_params(self) -> dict:
        """Exported integer delays ``floor(clamp(d, 0, max_delay))``."""
        return {"delay": self.integer_delay.cpu().numpy()}

    @property
    def integer_delay(self) -> torch.Tensor:
        """``floor(clamp(d, 0, max_delay))`` as int64."""
        return torch.floor(self.delay.detach().clamp(0, self.max_delay)).to(torch.int64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Delay each neuron of ``x`` ``(N, *shape, T)`` by its integer delay."""
        if self.shape is None:
            if x.dim() < 3:
                raise ParameterError(
                    f"axon.Delay: expected input (N, C, ..., T), found {tuple(x.shape)}"
                )
            self.init_shape((x.shape[1],))  # lava-dl: one delay per channel on first use
        if tuple(x.shape[1 : 1 + len(self.shape)]) != self.shape or x.dim() < 3:
            raise ParameterError(
                f"axon.Delay: expected input (N, {', '.join(map(str, self.shape))}, ..., T), "
                f"found {tuple(x.shape)}"
            )
        self.clamp()
        d = self.delay
        if self.grad_scale != 1:
            d = d * self.grad_scale - (d * (self.grad_scale - 1)).detach()
        return _DelayFn.apply(x, d, tuple(x.shape[1:-1]))


def delay(input: torch.Tensor, delay_val: int = 1, sampling_time: float = 1) -> torch.Tensor:
    """Delay ``input`` by ``delay_val / sampling_time`` steps, zero fill (lava-dl ``axon.delay``).

    ``delay_val`` is a scalar or one value per neuron (see
    :func:`loihi_slayer.utils.time.shift`); the gradient is the inverse shift.
    """
    return _FixedDelay.apply(input, delay_val, sampling_time)


class _FixedDelay(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, delay_val, sampling_time):
        ctx.cfg = (delay_val, sampling_time)
        return time_shift(x, delay_val, sampling_time)

    @staticmethod
    def backward(ctx, g):
        d, ts = ctx.cfg
        return time_shift(g, -d, ts), None, None


__all__ = ["Delay", "Delta", "MAX_DELAY", "delay"]

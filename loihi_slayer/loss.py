"""Spike-train losses (lava-dl ``slayer.loss`` and slayerPytorch ``numSpikes`` semantics).

All losses are :class:`torch.nn.Module` objects taking time-last spike tensors
``(N, C, T)`` or ``(N, C, H, W, T)``; the classification losses collapse the
spatial dimensions into one class axis. Implemented from the published
descriptions of lava-dl and slayerPytorch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ._recycle import kept_empty
from .classifier import MovingWindow, Rate, causal_filter
from .errors import ParameterError, ParameterTypeError
from .utils.filter import FIR

__all__ = [
    "SparsityEnforcer",
    "SpikeTime",
    "SpikeRate",
    "SpikeMax",
    "SpikeMoid",
    "NumSpikes",
    "exponential_kernel",
    "srm_alpha_kernel",
]

_REDUCTIONS = ("sum", "mean")


def _check_reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ParameterError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _check_positive(value: float, name: str) -> float:
    if not (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    ):
        raise ParameterError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_labels(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    if not isinstance(label, torch.Tensor):
        raise ParameterTypeError(f"label must be a torch.Tensor, got {type(label).__name__}")
    if label.dtype.is_floating_point or label.dtype == torch.bool:
        raise ParameterTypeError(f"label must be an integer tensor, got dtype {label.dtype}")
    if label.numel():
        low, high = (int(v) for v in torch.aminmax(label))
        if low < 0 or high >= num_classes:
            raise ParameterError(
                f"label values must be in [0, {num_classes - 1}] (number of output classes), "
                f"got min {low}, max {high}"
            )
    return label.long()


def _time_labels(label: torch.Tensor, n_batch: int, n_time: int) -> torch.Tensor:
    """Per-time-step labels ``(N, T)``; a ``(N,)`` label is replicated in time."""
    if label.ndim == 1:
        label = label[:, None].expand(n_batch, n_time)
    if tuple(label.shape) != (n_batch, n_time):
        raise ParameterTypeError(
            f"label must be (N,) or (N, T) = ({n_batch}, {n_time}), got {tuple(label.shape)}"
        )
    return label


def exponential_kernel(time_constant: float, length: int, filter_order: int = 1) -> torch.Tensor:
    """Causal exponential FIR kernel ``exp(-k / time_constant)``, ``k = 0..length-1``.

    For ``filter_order > 1`` the kernel is convolved with itself
    ``filter_order - 1`` times (truncated to ``length``), e.g. order 2 gives the
    alpha-like ``(k + 1) * exp(-k / time_constant)``.

    Parameters
    ----------
    time_constant
        decay time constant in time steps (> 0).
    length
        number of taps (>= 1).
    filter_order
        number of cascaded exponential filters (>= 1).

    Returns
    -------
    torch.Tensor
        float32 kernel of shape ``(length,)``.
    """
    tau = _check_positive(time_constant, "time_constant")
    length = _check_int(length, "length", 1)
    order = _check_int(filter_order, "filter_order", 1)
    base = torch.exp(-torch.arange(length, dtype=torch.float64) / tau)
    kernel = base.clone()
    for _ in range(order - 1):
        kernel = causal_filter(kernel, base)
    return kernel.float()


def srm_alpha_kernel(
    time_constant: float, sampling_time: float = 1.0, epsilon: float = 0.01, max_length: int = 10000
) -> torch.Tensor:
    """slayerPytorch's SRM alpha PSP kernel ``t / tau * exp(1 - t / tau)``.

    Sampled at ``t = 0, Ts, 2 Ts, ...`` and truncated at the first sample with
    ``|value| < epsilon`` and ``t > tau`` (that sample excluded).

    Parameters
    ----------
    time_constant
        ``tauSr`` in ms (> 0).
    sampling_time
        ``Ts`` in ms (> 0).
    epsilon
        truncation threshold.
    max_length
        hard cap on the number of taps.

    Returns
    -------
    torch.Tensor
        float32 kernel.
    """
    tau = _check_positive(time_constant, "time_constant")
    ts = _check_positive(sampling_time, "sampling_time")
    t = np.arange(max_length) * ts
    values = t / tau * np.exp(1 - t / tau)
    stop = np.flatnonzero((np.abs(values) < epsilon) & (t > tau))
    if stop.size:
        values = values[: stop[0]]
    return torch.tensor(values, dtype=torch.float32)


class SpikeTime(torch.nn.Module):
    """Spike-time loss, a van Rossum like distance between spike trains.

    Both the output and the target spike trains are filtered by a causal
    exponential FIR filter (``exp(-k / time_constant)``, ``length`` taps,
    cascaded ``filter_order`` times) and compared with the mean squared error:
    ``L = reduce((h * s - h * s_hat) ** 2)``.

    Parameters
    ----------
    time_constant
        time constant of the low-pass filter (time steps). Defaults to 5.
    length
        number of filter taps. Defaults to 100.
    filter_order
        order of the low-pass filter. Defaults to 1.
    reduction
        ``'sum'`` or ``'mean'``. Defaults to ``'sum'``.
    """

    def __init__(
        self,
        time_constant: float = 5,
        length: int = 100,
        filter_order: int = 1,
        reduction: str = "sum",
    ) -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)
        #: the low-pass filter, a callable module (lava-dl: ``loss.filter(x)``)
        self.filter = FIR(fir_response=exponential_kernel(time_constant, length, filter_order))

    def forward(self, input: torch.Tensor, desired: torch.Tensor) -> torch.Tensor:
        """Loss between output spikes ``input`` and ``desired`` spikes (same shape)."""
        if input.shape != desired.shape:
            raise ParameterTypeError(
                f"input and desired must have the same shape, got {tuple(input.shape)} "
                f"and {tuple(desired.shape)}"
            )
        desired = desired.to(dtype=input.dtype)
        return _squared_error(self.filter(input), self.filter(desired), self.reduction)


def _squared_error(a: torch.Tensor, b: torch.Tensor, reduction: str) -> torch.Tensor:
    r"""``F.mse_loss(a.flatten(), b.flatten(), reduction)``:

    .. math:: L = \sum_i (a_i - b_i)^2 \quad (\text{divided by the count for 'mean'})

    On the CPU (eager, a float tensor needing a gradient) as :class:`_SquaredError`,
    whose difference and gradient live in memory kept across steps: the Oxford
    example's loss compares 400 000 filtered values, and the fresh memory of
    ``mse_loss``'s backward took 0.4-0.5 ms a step there, page by page. The squares are
    summed by ``torch.sum``/``torch.mean``.
    """
    if (
        a.device.type == "cpu"
        and a.requires_grad
        and torch.is_grad_enabled()
        and a.shape == b.shape
        and a.dtype == b.dtype
        and a.is_floating_point()
        and not torch.compiler.is_compiling()
    ):
        return _SquaredError.apply(a, b, reduction)
    return F.mse_loss(a.flatten(), b.flatten(), reduction=reduction)


class _SquaredError(torch.autograd.Function):
    """:func:`_squared_error` as one node: ``d = a - b`` kept for the backward, the
    gradient ``2 d g`` (over the count for ``'mean'``) into kept memory. Under
    ``create_graph`` the backward is the composite's own, differentiable again."""

    @staticmethod
    def forward(ctx, a, b, reduction):
        d = kept_empty("squared error difference", tuple(a.shape), a.dtype)
        torch.sub(a.detach(), b.detach(), out=d)
        squares = kept_empty("squared error squares", tuple(a.shape), a.dtype)
        torch.mul(d, d, out=squares)
        ctx.save_for_backward(a, b, d)
        ctx.reduction = reduction
        return squares.mean() if reduction == "mean" else squares.sum()

    @staticmethod
    def backward(ctx, g):
        a, b, d = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: the composite's graph
            with torch.enable_grad():
                loss = F.mse_loss(a.flatten(), b.flatten(), reduction=ctx.reduction)
            wanted = [t for t, w in zip((a, b), ctx.needs_input_grad[:2], strict=True) if w]
            grads = iter(torch.autograd.grad(loss, wanted, g, create_graph=True))
            g_a = next(grads) if ctx.needs_input_grad[0] else None
            g_b = next(grads) if ctx.needs_input_grad[1] else None
            return g_a, g_b, None
        scale = 2.0 * g
        if ctx.reduction == "mean":
            scale = scale / d.numel()
        g_a = kept_empty("squared error gradient", tuple(d.shape), d.dtype)
        torch.mul(d, scale, out=g_a)
        g_b = -g_a if ctx.needs_input_grad[1] else None
        return (g_a if ctx.needs_input_grad[0] else None), g_b, None


class SpikeRate(torch.nn.Module):
    """Spike-rate loss: MSE between the output rate and a target rate.

    The target rate is ``true_rate`` for the labelled class and ``false_rate``
    for the others. Without a moving window the rate is the mean over time and
    there is one label per sample; with ``moving_window`` the rate is the
    causal moving-window rate and labels may be given per time step.

    Parameters
    ----------
    true_rate
        target rate of the true class, in [0, 1].
    false_rate
        target rate of the other classes, in [0, 1].
    moving_window
        window length in time steps, or ``None``.
    reduction
        ``'sum'`` or ``'mean'``.
    """

    def __init__(
        self,
        true_rate: float,
        false_rate: float,
        moving_window: int | None = None,
        reduction: str = "sum",
    ) -> None:
        super().__init__()
        for name, value in (("true_rate", true_rate), ("false_rate", false_rate)):
            if not (0 <= value <= 1):
                raise ParameterError(f"{name} must be in [0, 1], got {value!r}")
        self.true_rate = float(true_rate)
        self.false_rate = float(false_rate)
        self.reduction = _check_reduction(reduction)
        self.window = None if moving_window is None else MovingWindow(moving_window)

    def forward(self, input: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Loss for spikes ``input`` and integer class ``label`` ``(N,)`` or ``(N, T)``."""
        input = input.reshape(input.shape[0], -1, input.shape[-1])
        n, c, t = input.shape
        label = _check_labels(label, c)
        if self.window is None:
            if label.shape != (n,):
                raise ParameterTypeError(f"label must have shape ({n},), got {tuple(label.shape)}")
            # the target's values exactly (``true·1 + false·0``, ``true·0 + false·1``)
            target = input.new_full((n, c), self.false_rate)
            target.scatter_(1, label[:, None], self.true_rate)
            if input.requires_grad and torch.is_grad_enabled():
                return _RateMSE.apply(input, target, self.reduction)
            return _rate_mse(input, target, self.reduction)
        else:
            label = _time_labels(label, n, t)
            one_hot = F.one_hot(label, num_classes=c).transpose(1, 2).to(input.dtype)
            rate = self.window.rate(input)
        target = self.true_rate * one_hot + self.false_rate * (1 - one_hot)
        return F.mse_loss(rate.flatten(), target.flatten(), reduction=self.reduction)


def _rate_mse(input: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    r"""The MSE between the time-mean rate of ``input`` ``(N, C, T)`` and ``target``
    ``(N, C)``:

    .. math:: L = \sum_{n,c} \Big(\frac{1}{T}\sum_t x_{n,c,t} - r_{n,c}\Big)^2

    (divided by ``N·C`` for ``reduction='mean'``)."""
    return F.mse_loss(Rate.rate(input).flatten(), target.flatten(), reduction=reduction)


#: ``aten::mse_loss_backward``'s reduction argument
_REDUCTION_ENUM = {"mean": 1, "sum": 2}


class _RateMSE(torch.autograd.Function):
    """:func:`_rate_mse` as one autograd node: the same forward ops, and in the backward
    the ops of the three nodes it replaces (MSE, view, mean), so the loss and its
    gradient have the composite's bits. The N-MNIST step's loss took 73 aten calls
    (``SpikeRate``'s label check, one-hot target, its nodes). Under ``create_graph`` the
    backward is the composite's own, differentiable again."""

    @staticmethod
    def forward(ctx, input, target, reduction):
        rate = Rate.rate(input).flatten()
        ctx.save_for_backward(input, rate, target)
        ctx.reduction = reduction
        return F.mse_loss(rate, target.flatten(), reduction=reduction)

    @staticmethod
    def backward(ctx, g):
        input, rate, target = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: the composite's graph, from the input
            with torch.enable_grad():
                loss = _rate_mse(input, target, ctx.reduction)
            (g_in,) = torch.autograd.grad(loss, input, g, create_graph=True)
            return g_in, None, None
        g_rate = torch.ops.aten.mse_loss_backward(
            g, rate, target.flatten(), _REDUCTION_ENUM[ctx.reduction]
        )
        n, c, t = input.shape
        return g_rate.reshape(n, c, 1).expand(n, c, t).div(t), None, None


class SpikeMax(torch.nn.Module):
    """Spike-max loss: negative log likelihood of the label under the rate confidence.

    Modes:

    * ``'probability'``: ``p = r / (sum(r) + eps)`` and ``L = -log p[label]``
      (lava-dl; infinite when the true class is silent).
    * ``'logprobability'``: the smoothed ``log(r + eps) - log(sum(r + eps))``,
      always finite.
    * ``'softmax'``: ``log_softmax(r)``.

    Parameters
    ----------
    moving_window
        window length in time steps, or ``None`` (whole-sample rate).
    mode
        ``'probability'``, ``'logprobability'`` or ``'softmax'``.
    reduction
        ``'sum'`` or ``'mean'``.
    eps
        smoothing constant.
    """

    _MODES = ("probability", "logprobability", "softmax")

    def __init__(
        self,
        moving_window: int | None = None,
        mode: str = "probability",
        reduction: str = "sum",
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if mode not in self._MODES:
            raise ParameterError(f"mode must be one of {self._MODES}, got {mode!r}")
        self.mode = mode
        self.reduction = _check_reduction(reduction)
        self.eps = eps
        self.window = None if moving_window is None else MovingWindow(moving_window, eps=eps)

    def _log_p(self, rate: torch.Tensor) -> torch.Tensor:
        if self.mode == "probability":
            return torch.log(rate / (torch.sum(rate, dim=1, keepdim=True) + self.eps))
        if self.mode == "logprobability":
            smooth = rate + self.eps
            return torch.log(smooth) - torch.log(torch.sum(smooth, dim=1, keepdim=True))
        return F.log_softmax(rate, dim=1)

    def forward(self, input: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Loss for spikes ``input`` and integer class ``label`` ``(N,)`` or ``(N, T)``."""
        input = input.reshape(input.shape[0], -1, input.shape[-1])
        n, c, t = input.shape
        label = _check_labels(label, c)
        if self.window is None:
            if label.shape != (n,):
                raise ParameterTypeError(f"label must have shape ({n},), got {tuple(label.shape)}")
            log_p = self._log_p(Rate.rate(input))
            return F.nll_loss(log_p, label, reduction=self.reduction)
        label = _time_labels(label, n, t)
        log_p = self._log_p(self.window.rate(input))  # (N, C, T)
        return F.nll_loss(
            log_p.transpose(1, 2).reshape(-1, c), label.reshape(-1), reduction=self.reduction
        )


class SpikeMoid(torch.nn.Module):
    """SpikeMoid loss: binary cross entropy of ``sigmoid((r - theta) / alpha)``.

    ``r`` is the mean rate over time (one target per sample and class) or the
    moving-window rate (targets per time step).

    Parameters
    ----------
    moving_window
        window length in time steps, or ``None``.
    reduction
        ``'sum'`` or ``'mean'``.
    alpha
        sigmoid temperature (> 0).
    theta
        rate offset subtracted before the sigmoid.
    """

    def __init__(
        self,
        moving_window: int | None = None,
        reduction: str = "sum",
        alpha: float = 1,
        theta: float = 0,
    ) -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)
        self.alpha = _check_positive(alpha, "alpha")
        self.theta = float(theta)
        self.window = None if moving_window is None else MovingWindow(moving_window)

    def forward(self, input: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Loss for spikes ``input`` and targets in [0, 1]: ``(N, C)`` or ``(N, C, T)``."""
        input = input.reshape(input.shape[0], -1, input.shape[-1])
        n, c, t = input.shape
        label = label.to(input.dtype)
        if self.window is None:
            if tuple(label.shape) != (n, c):
                raise ParameterTypeError(
                    f"label must have shape (N, C) = ({n}, {c}), got {tuple(label.shape)}"
                )
            probs = torch.sigmoid((input.mean(-1) - self.theta) / self.alpha)
        else:
            if label.ndim == 2:
                label = label[..., None].expand(n, c, t)
            if tuple(label.shape) != (n, c, t):
                raise ParameterTypeError(
                    f"label must have shape (N, C) or (N, C, T) = ({n}, {c}, {t}), "
                    f"got {tuple(label.shape)}"
                )
            probs = torch.sigmoid((self.window.rate(input) - self.theta) / self.alpha)
        return F.binary_cross_entropy(probs.flatten(), label.flatten(), reduction=self.reduction)


def _region_value(region: Any, key: str) -> float:
    if isinstance(region, Mapping):
        if key not in region:
            raise ParameterError(
                f"tgt_spike_region needs keys 'start' and 'stop', got {sorted(region)}"
            )
        return float(region[key])
    start, stop = region
    return float(start if key == "start" else stop)


def _count_value(count: Any, flag: bool) -> float:
    if not isinstance(count, Mapping):
        true_c, false_c = count
        return float(true_c if flag else false_c)
    for key in (flag, str(flag), str(flag).lower()):
        if key in count:
            return float(count[key])
    raise ParameterError(f"tgt_spike_count needs keys True and False, got {list(count)}")


class NumSpikes(torch.nn.Module):
    """slayerPytorch's spike-count loss (``spikeLoss.numSpikes``).

    Inside the target region ``[start, stop)`` (ms, converted to time indices
    ``rint(start / Ts)`` .. ``rint(stop / Ts)``) the error is the spike-count
    error spread over the region; outside it the error is the PSP-filtered
    output spike train (spikes there are penalized like ``spikeTime`` with an
    empty target)::

        n      = Ts * sum_{t in region} s(t)                  (actual count)
        n_hat  = tgt_spike_count[True] for the desired class, [False] otherwise
        e(t)   = psp(s - s * 1_region)(t) + 1_region(t) * (n - n_hat) / (stop - start) * scale
        L      = 1/2 * Ts * sum_t e(t) ** 2

    ``n``, ``n_hat`` and ``s * 1_region`` are treated as constants for the
    gradient (as in slayerPytorch), so ``dL/ds = Ts * psp^T(e)``.

    Parameters
    ----------
    tgt_spike_region
        ``{'start': ms, 'stop': ms}`` or a ``(start, stop)`` pair.
    tgt_spike_count
        ``{True: count, False: count}`` (YAML ``true``/``false`` keys work) or a
        ``(true_count, false_count)`` pair.
    sampling_time
        ``Ts`` in ms.
    time_constant
        ``tauSr`` (ms) of the default SRM alpha PSP kernel.
    psp
        custom PSP callable ``tensor -> tensor`` (time last); overrides the
        default alpha kernel.
    num_spikes_scale
        ``numSpikesScale`` factor of the count error.
    """

    def __init__(
        self,
        tgt_spike_region: Any,
        tgt_spike_count: Any,
        sampling_time: float = 1.0,
        time_constant: float = 1.0,
        psp: Callable[[torch.Tensor], torch.Tensor] | None = None,
        num_spikes_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.sampling_time = _check_positive(sampling_time, "sampling_time")
        self.start = _region_value(tgt_spike_region, "start")
        self.stop = _region_value(tgt_spike_region, "stop")
        self.start_id = int(np.rint(self.start / self.sampling_time))
        self.stop_id = int(np.rint(self.stop / self.sampling_time))
        if self.start_id < 0 or self.stop_id <= self.start_id:
            raise ParameterError(
                f"tgt_spike_region must satisfy 0 <= start < stop, got start={self.start}, "
                f"stop={self.stop} (time indices {self.start_id}..{self.stop_id})"
            )
        self.true_count = _count_value(tgt_spike_count, True)
        self.false_count = _count_value(tgt_spike_count, False)
        self.num_spikes_scale = float(num_spikes_scale)
        self.psp = psp
        self.register_buffer(
            "psp_kernel",
            srm_alpha_kernel(time_constant, self.sampling_time),
            persistent=False,
        )

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | Any, **kwargs: Any) -> NumSpikes:
        """Build from a slayerPytorch style parameter set.

        Uses ``params['training']['error']`` (``tgtSpikeRegion``,
        ``tgtSpikeCount``), ``params['simulation']['Ts']`` and
        ``params['neuron']['tauSr']`` when present.
        """
        error = params["training"]["error"]
        if "type" in error and error["type"] != "NumSpikes":
            raise ParameterError(f"training.error.type must be 'NumSpikes', got {error['type']!r}")
        simulation = params["simulation"] if "simulation" in params else {}
        neuron = params["neuron"] if "neuron" in params else {}
        options: dict[str, Any] = {
            "sampling_time": simulation.get("Ts", 1.0),
            "time_constant": neuron.get("tauSr", 1.0),
        }
        options.update(kwargs)
        return cls(error["tgtSpikeRegion"], error["tgtSpikeCount"], **options)

    def _apply_psp(self, spike: torch.Tensor) -> torch.Tensor:
        if self.psp is not None:
            return self.psp(spike)
        return causal_filter(spike, self.psp_kernel, self.sampling_time)

    def forward(self, spike_out: torch.Tensor, desired_class: torch.Tensor) -> torch.Tensor:
        """Loss for output spikes and the desired classes.

        Parameters
        ----------
        spike_out
            output spikes, time last, e.g. ``(N, C, T)`` or ``(N, C, H, W, T)``.
        desired_class
            one-hot / boolean tensor of shape ``spike_out.shape[:-1]`` or with a
            trailing time axis of length 1 (slayerPytorch), or integer class
            indices ``(N,)`` over the flattened non-batch, non-time axes.

        Returns
        -------
        torch.Tensor
            scalar loss.
        """
        if self.stop_id > spike_out.shape[-1]:
            raise ParameterError(
                f"target region stop index {self.stop_id} exceeds the {spike_out.shape[-1]} "
                "time steps of spike_out"
            )
        desired = self._desired_mask(spike_out, desired_class)
        region = torch.zeros(spike_out.shape[-1], dtype=spike_out.dtype, device=spike_out.device)
        region[self.start_id : self.stop_id] = 1
        with torch.no_grad():
            actual = spike_out[..., self.start_id : self.stop_id].sum(-1, keepdim=True)
            actual = actual * self.sampling_time
            target = torch.where(
                desired,
                torch.tensor(self.true_count, dtype=spike_out.dtype, device=spike_out.device),
                torch.tensor(self.false_count, dtype=spike_out.dtype, device=spike_out.device),
            )
            count_error = (actual - target) / (self.stop_id - self.start_id) * self.num_spikes_scale
            spike_desired = spike_out.detach() * region
        error = self._apply_psp(spike_out - spike_desired) + count_error * region
        return 0.5 * torch.sum(error**2) * self.sampling_time

    #: slayerPytorch method name.
    def numSpikes(self, spike_out: torch.Tensor, desired_class: torch.Tensor) -> torch.Tensor:
        """Alias of :meth:`forward` (slayerPytorch name)."""
        return self.forward(spike_out, desired_class)

    @staticmethod
    def _desired_mask(spike_out: torch.Tensor, desired_class: torch.Tensor) -> torch.Tensor:
        """Boolean mask shaped ``spike_out.shape[:-1] + (1,)``."""
        if not isinstance(desired_class, torch.Tensor):
            desired_class = torch.as_tensor(desired_class)
        desired_class = desired_class.to(spike_out.device)
        target_shape = tuple(spike_out.shape[:-1]) + (1,)
        if (
            desired_class.ndim == 1
            and spike_out.ndim > 2
            and not (desired_class.dtype == torch.bool)
            and tuple(desired_class.shape) == (spike_out.shape[0],)
        ):
            n_classes = int(np.prod(spike_out.shape[1:-1]))
            labels = _check_labels(desired_class, n_classes)
            mask = F.one_hot(labels, n_classes).bool()
            return mask.reshape(target_shape)
        if tuple(desired_class.shape) == tuple(spike_out.shape[:-1]):
            desired_class = desired_class[..., None]
        if tuple(desired_class.shape) != target_shape:
            raise ParameterTypeError(
                f"desired_class must have shape {tuple(spike_out.shape[:-1])}, {target_shape} "
                f"or ({spike_out.shape[0]},) class indices; got {tuple(desired_class.shape)}"
            )
        return desired_class != 0


class SparsityEnforcer:
    r"""Event-rate penalty (lava-dl ``loss.SparsityEnforcer``).

    Each :meth:`append` adds :math:`\operatorname{relu}(\overline{|x|} - r_{max})^2`
    (``mean |x|`` over the whole tensor); :attr:`loss` is ``lam`` times their sum.

    Parameters
    ----------
    max_rate
        Event rate above which events are penalized.
    lam
        Scale of the loss.
    """

    def __init__(self, max_rate: float = 0.01, lam: float = 1.0) -> None:
        self.max_rate = float(max_rate)
        self.lam = float(lam)
        self.loss_list: list[torch.Tensor] = []

    def clear(self) -> None:
        """Forget the gathered terms."""
        self.loss_list = []

    @property
    def loss(self) -> torch.Tensor | float:
        """``lam * sum`` of the gathered terms (0 when none)."""
        return self.lam * sum(self.loss_list)

    def append(self, x: torch.Tensor) -> None:
        """Add the penalty of the events in ``x``."""
        rate = torch.mean(torch.abs(x))
        self.loss_list.append(torch.relu(rate - self.max_rate) ** 2)

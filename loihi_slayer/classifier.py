"""Spike-train classifiers (lava-dl ``slayer.classifier`` semantics).

Spike tensors are time last: ``(N, C, T)`` or ``(N, C, H, W, T)``; spatial
dimensions are collapsed into one class axis.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import ParameterError, ParameterTypeError

__all__ = ["Rate", "MovingWindow", "causal_filter"]

_MODES = ("probability", "softmax", "logsoftmax")


def _check_spike(spike: torch.Tensor) -> torch.Tensor:
    if not isinstance(spike, torch.Tensor):
        raise ParameterTypeError(f"spike must be a torch.Tensor, got {type(spike).__name__}")
    if spike.ndim < 2:
        raise ParameterTypeError(
            f"spike must be at least (N, T) time-last, got shape {tuple(spike.shape)}"
        )
    return spike


def _check_mode(mode: str) -> str:
    if mode not in _MODES:
        raise ParameterError(f"mode must be one of {_MODES}, got {mode!r}")
    return mode


def causal_filter(signal: torch.Tensor, kernel: torch.Tensor, sampling_time: float = 1.0):
    """Causal FIR filtering along the last (time) axis.

    ``out[..., t] = sampling_time * sum_k kernel[k] * signal[..., t - k]`` with
    zeros before time 0; the output has the input's shape. Differentiable.

    Parameters
    ----------
    signal
        tensor, time last.
    kernel
        1-D impulse response.
    sampling_time
        scale factor (lava-dl's FIR ``sampling_time``).

    Returns
    -------
    torch.Tensor
        filtered signal.
    """
    kernel = kernel.flatten().to(dtype=signal.dtype, device=signal.device)
    shape = signal.shape
    x = signal.reshape(-1, 1, shape[-1])
    weight = torch.flip(kernel, dims=[0]).reshape(1, 1, -1)
    y = F.conv1d(F.pad(x, (kernel.numel() - 1, 0)), weight)
    return (y * sampling_time).reshape(shape)


class Rate(torch.nn.Module):
    """Global rate classifier: the mean of the spike train over time is the score.

    ``rate = mean_t s``; ``confidence`` is ``rate / (sum(rate) + eps)``
    (``'probability'``), ``softmax(rate)`` or ``log_softmax(rate)``; the
    prediction is ``argmax(rate)``.

    Examples
    --------
    >>> spike = torch.zeros(1, 3, 4); spike[0, 2, :2] = 1
    >>> Rate.predict(spike)
    tensor([2])
    """

    def forward(self, spike: torch.Tensor) -> torch.Tensor:
        """Predicted class of every sample (see :meth:`predict`)."""
        return Rate.predict(spike)

    @staticmethod
    def rate(spike: torch.Tensor) -> torch.Tensor:
        """Mean over the last (time) axis.

        Parameters
        ----------
        spike
            spike tensor, batch first and time last.

        Returns
        -------
        torch.Tensor
            rate, the input shape without its time axis.
        """
        return torch.mean(_check_spike(spike), dim=-1)

    @staticmethod
    def confidence(
        spike: torch.Tensor, mode: str = "probability", eps: float = 1e-6
    ) -> torch.Tensor:
        """Class confidence from the spike rate, shape ``(N, classes)``.

        Parameters
        ----------
        spike
            spike tensor, batch first and time last.
        mode
            ``'probability'`` (rate normalized by its sum plus ``eps``),
            ``'softmax'`` or ``'logsoftmax'``.
        eps
            small value added to the normalizer in ``'probability'`` mode.

        Returns
        -------
        torch.Tensor
            confidences.
        """
        _check_mode(mode)
        rate = Rate.rate(spike).reshape(spike.shape[0], -1)
        if mode == "probability":
            return rate / (torch.sum(rate, dim=1, keepdim=True) + eps)
        if mode == "softmax":
            return F.softmax(rate, dim=1)
        return F.log_softmax(rate, dim=1)

    @staticmethod
    def predict(spike: torch.Tensor) -> torch.Tensor:
        """Index of the class (flattened non-batch, non-time axes) with the highest rate.

        Parameters
        ----------
        spike
            spike tensor, batch first and time last.

        Returns
        -------
        torch.Tensor
            int64 tensor of shape ``(N,)``.
        """
        rate = Rate.rate(spike)
        return torch.argmax(rate.reshape(spike.shape[0], -1), dim=1)


class MovingWindow(torch.nn.Module):
    """Moving-window rate classifier producing a prediction at every time step.

    ``rate(t) = (1 / W) * sum_{k=0}^{W-1} s(t - k)`` (causal, zeros before 0).

    Parameters
    ----------
    time_window
        window length ``W`` in time steps (>= 1).
    mode
        confidence mode, ``'probability'``, ``'softmax'`` or ``'logsoftmax'``.
    eps
        small value added to the normalizer in ``'probability'`` mode.
    """

    def __init__(self, time_window: int, mode: str = "probability", eps: float = 1e-6) -> None:
        super().__init__()
        if int(time_window) != time_window or time_window < 1:
            raise ParameterError(f"time_window must be an integer >= 1, got {time_window!r}")
        self.time_window = int(time_window)
        self.mode = _check_mode(mode)
        self.eps = eps
        self.register_buffer(
            "filter", torch.ones(self.time_window) / self.time_window, persistent=False
        )

    def rate(self, spike: torch.Tensor) -> torch.Tensor:
        """Moving-window spike rate, same shape as ``spike``."""
        return causal_filter(_check_spike(spike), self.filter)

    def confidence(self, spike: torch.Tensor, mode: str | None = None) -> torch.Tensor:
        """Confidence at every time step, shape ``(N, classes, T)``.

        Parameters
        ----------
        spike
            spike tensor, batch first and time last.
        mode
            overrides the object's mode when given.

        Returns
        -------
        torch.Tensor
            confidences, normalized over the class axis.
        """
        mode = self.mode if mode is None else _check_mode(mode)
        rate = self.rate(spike).reshape(spike.shape[0], -1, spike.shape[-1])
        if mode == "probability":
            return rate / (torch.sum(rate, dim=1, keepdim=True) + self.eps)
        if mode == "softmax":
            return F.softmax(rate, dim=1)
        return F.log_softmax(rate, dim=1)

    def predict(self, spike: torch.Tensor) -> torch.Tensor:
        """Predicted class at every time step, int64 ``(N, T)``."""
        rate = self.rate(spike).reshape(spike.shape[0], -1, spike.shape[-1])
        return torch.argmax(rate, dim=1)

    def forward(self, spike: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`predict`."""
        return self.predict(spike)

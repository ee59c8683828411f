"""Time-axis primitives of the slayerPytorch compatibility layer.

All tensors are time last. The functions here implement slayerPytorch's
documented behaviour (``slayerCuda.conv``/``corr``/``shift``/``getSpikes``)
in plain PyTorch (CPU and CUDA tensors) with a numba kernel for the
sequential SRM spike loop on the CPU.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from numba import njit

from ..errors import ParameterError
from ..utils import filter as _filter
from ..utils.time import shift as _time_shift

__all__ = [
    "alpha_kernel",
    "causal_conv",
    "causal_corr",
    "shift",
    "srm_spikes",
]


def alpha_kernel(
    tau: float, t_sample: float, ts: float, mult: float = 1.0, epsilon: float = 0.01
) -> list[float]:
    r"""slayerPytorch's sampled alpha kernel.

    :math:`\epsilon(t) = \mathrm{mult}\cdot\frac{t}{\tau}e^{1 - t/\tau}` at
    ``t = 0, Ts, 2Ts, ... < tSample``, stopping (exclusive) at the first sample
    with ``|value| < epsilon`` and ``t > tau``.

    Parameters
    ----------
    tau
        time constant in ms (> 0).
    t_sample
        sample length in ms.
    ts
        sampling time in ms (> 0).
    mult
        scale factor (``-scaleRef * theta`` for the refractory kernel).
    epsilon
        truncation threshold.

    Returns
    -------
    list of float
        kernel samples.
    """
    if not (tau > 0 and math.isfinite(tau)):
        raise ParameterError(f"tau = {tau!r} must be a finite number > 0 (ms)")
    if not (ts > 0 and math.isfinite(ts)):
        raise ParameterError(f"Ts = {ts!r} must be a finite number > 0 (ms)")
    values: list[float] = []
    for t in np.arange(0, t_sample, ts):
        value = mult * t / tau * math.exp(1 - t / tau)
        if abs(value) < epsilon and t > tau:
            break
        values.append(value)
    return values


def causal_conv(x: torch.Tensor, kernel: torch.Tensor, ts: float = 1.0) -> torch.Tensor:
    """Causal convolution in time (:func:`loihi_slayer.utils.filter.conv`)."""
    return _filter.conv(x, kernel, ts)


def causal_corr(x: torch.Tensor, kernel: torch.Tensor, ts: float = 1.0) -> torch.Tensor:
    """Anti-causal correlation in time (:func:`loihi_slayer.utils.filter.corr`)."""
    return _filter.corr(x, kernel, ts)


def shift(x: torch.Tensor, delay: Any, ts: float = 1.0) -> torch.Tensor:
    """Delay along time by ``trunc(delay / Ts)`` bins (:func:`loihi_slayer.utils.time.shift`)."""
    return _time_shift(x, delay, ts)


@njit(cache=True)
def _srm_spike_kernel(u, s, ref, theta, amplitude):  # pragma: no cover - compiled
    n_neurons, steps = u.shape
    k = ref.shape[0]
    for n in range(n_neurons):
        for t in range(steps):
            if u[n, t] >= theta:
                s[n, t] = amplitude
                stop = min(k, steps - t)
                for j in range(stop):
                    u[n, t + j] += ref[j]


def srm_spikes(u: torch.Tensor, ref_kernel: torch.Tensor, theta: float, ts: float) -> torch.Tensor:
    """slayerPytorch's ``getSpikes``: threshold ``u`` in time order, adding the refractory kernel.

    ``u`` is modified in place: wherever ``u[t] >= theta`` a spike of amplitude
    ``1 / Ts`` is emitted and ``ref_kernel[j]`` is added to ``u[t + j]``.

    Parameters
    ----------
    u
        membrane potential, time last (float tensor, CPU or CUDA). Updated in place.
    ref_kernel
        refractory response (1-D).
    theta
        threshold.
    ts
        sampling time (spike amplitude ``1 / Ts``).

    Returns
    -------
    torch.Tensor
        spikes, same shape and dtype as ``u``.
    """
    shape = u.shape
    steps = shape[-1]
    if u.device.type == "cpu":
        flat = u.detach().reshape(-1, steps)
        work = flat.numpy().astype(np.float32, copy=True)
        spikes = np.zeros_like(work)
        ref = ref_kernel.detach().cpu().numpy().astype(np.float32)
        _srm_spike_kernel(work, spikes, ref, np.float32(theta), np.float32(1.0 / ts))
        _write_back(u, torch.from_numpy(work).reshape(shape))
        return torch.from_numpy(spikes).reshape(shape).to(u.dtype)
    flat = u.detach().reshape(-1, steps).clone()
    ref = ref_kernel.detach().to(device=u.device, dtype=u.dtype)
    k = ref.numel()
    spikes = torch.zeros_like(flat)
    for t in range(steps):
        fired = flat[:, t] >= theta
        spikes[:, t] = fired.to(u.dtype) / ts
        stop = min(k, steps - t)
        flat[:, t : t + stop] += fired[:, None].to(u.dtype) * ref[:stop]
    _write_back(u, flat.reshape(shape))
    return spikes.reshape(shape)


def _write_back(u: torch.Tensor, values: torch.Tensor) -> None:
    """Store the refractory-updated potential into ``u``'s memory, as slayerPytorch's kernel.

    Through ``u.data``: the write must not bump autograd's version counter, or a
    ``u`` that is a view (or saved for backward) breaks the backward pass.
    """
    u.data.copy_(values.to(device=u.device, dtype=u.dtype))

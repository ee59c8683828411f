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
import torch.nn.functional as F
from numba import njit

from ..errors import ParameterError

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
    """``out[..., t] = Ts * sum_k kernel[k] * x[..., t - k]`` (zeros before 0). Differentiable."""
    kernel = kernel.detach().flatten().to(dtype=x.dtype, device=x.device)
    shape = x.shape
    rows = math.prod(shape[:-1])
    # depthwise form (rows as channels): much faster on the CPU than a batch of 1-channel rows
    flat = x.reshape(1, rows, shape[-1])
    weight = torch.flip(kernel, dims=[0]).reshape(1, 1, -1).expand(rows, 1, -1).contiguous()
    y = F.conv1d(F.pad(flat, (kernel.numel() - 1, 0)), weight, groups=rows)
    return (y * ts).reshape(shape)


def causal_corr(x: torch.Tensor, kernel: torch.Tensor, ts: float = 1.0) -> torch.Tensor:
    """``out[..., t] = Ts * sum_k kernel[k] * x[..., t + k]`` (adjoint of :func:`causal_conv`)."""
    return torch.flip(causal_conv(torch.flip(x, dims=[-1]), kernel, ts), dims=[-1])


def shift(x: torch.Tensor, delay: Any, ts: float = 1.0) -> torch.Tensor:
    """Delay ``x`` along time by ``trunc(delay / Ts)`` bins, zero fill.

    Parameters
    ----------
    x
        tensor, time last.
    delay
        scalar, or tensor broadcastable to ``x.shape[1:-1]`` (per neuron, shared
        over the batch) or ``x.shape[:-1]``. Negative delays shift earlier.
    ts
        sampling time of ``delay``.

    Returns
    -------
    torch.Tensor
        shifted tensor (same shape).
    """
    steps = x.shape[-1]
    if not torch.is_tensor(delay) or delay.numel() == 1:
        d = float(delay.item() if torch.is_tensor(delay) else delay)
        n = int(d / ts)
        if n == 0:
            return x.clone()
        out = torch.zeros_like(x)
        if abs(n) >= steps:
            return out
        if n > 0:
            out[..., n:] = x[..., : steps - n]
        else:
            out[..., : steps + n] = x[..., -n:]
        return out
    d = delay.detach().to(x.device)
    n = torch.trunc(d / ts).to(torch.long)
    if n.dim() == x.dim() - 2:
        n = n.unsqueeze(0)
    n = n.expand(x.shape[:-1])
    idx = torch.arange(steps, device=x.device) - n[..., None]
    valid = (idx >= 0) & (idx < steps)
    out = torch.gather(x, -1, idx.clamp(0, steps - 1))
    return out * valid.to(x.dtype)


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
        u.detach().copy_(torch.from_numpy(work).reshape(shape).to(u.dtype))
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
    u.detach().copy_(flat.reshape(shape))
    return spikes.reshape(shape)

r"""Sigma-delta training op: integer forward (18 fractional bits), straight-through backward.

Forward (``mode='sigma_delta'``), exactly :func:`loihi_slayer.fixed.dynamics.sdnn_step`
with ``E = S = 6``:

.. math::

    \sigma[t] &= \sigma[t-1] + \operatorname{rint}(2^{18} x[t]) \\
    a[t] &= \max(\sigma[t] + b, 0) \\
    \Delta[t] &= a[t] - a[t-1] + r[t-1], \quad
    s[t] &= \Delta[t]\,[\,|\Delta[t]| \ge \vartheta_{mant} 2^{12}\,], \quad
    r[t] = \Delta[t] - s[t] \\
    y[t] &= \lfloor s[t] / 2^6 \rfloor / 4096

``mode='delta'`` (input encoder) uses ``a[t] = rint(64 x[t]) << 12`` instead.

Backward (lava-dl, spec §4.3): straight-through delta
``g_a[t] = g[t] - g[t+1]``, ReLU derivative, reverse cumulative sum for sigma,
bias gradient ``sum g_z``, and the threshold gradient
``-d * scale_grad * exp(-(|d|-θ)/tau_grad) / θ`` where ``|d| > θ``, else ``-sign(d)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ParameterError
from . import _cpu, reference
from ._dispatch import empty2d, kernel_array, launch, resolve_backend

MODES = {"delta": 0, "sigma_delta": 1}


@dataclass
class SdnnSpec:
    """Static configuration: ``mode``, ``relu``, ``cum_error``, gradient shape, layout."""

    mode: str
    relu: bool
    cum_error: bool
    tau_grad: float
    scale_grad: float
    channels: int
    per_channel: int
    backend: str = "auto"


@dataclass
class SdnnState:
    """Integer state vectors (length ``rows``): sigma, act, residue, error."""

    sigma: torch.Tensor
    act: torch.Tensor
    residue: torch.Tensor
    error: torch.Tensor

    @classmethod
    def zeros(cls, rows: int, device=None) -> SdnnState:
        """All-zero state."""

        def z():
            return torch.zeros(rows, dtype=torch.int64, device=device)

        return cls(z(), z(), z(), z())


def _expand(values: np.ndarray, spec: SdnnSpec) -> np.ndarray:
    values = np.asarray(values).reshape(-1)
    if values.size == 1:
        return values
    if values.size == spec.channels:
        return np.repeat(values, spec.per_channel)
    if values.size == spec.channels * spec.per_channel:
        return values
    raise ParameterError(
        f"sigma-delta parameter has {values.size} values, expected 1, {spec.channels} "
        f"(channels) or {spec.channels * spec.per_channel} (neurons)"
    )


def threshold_mant(threshold: torch.Tensor) -> np.ndarray:
    """``trunc(threshold * 64)`` (the exported ``vThMant``), int64."""
    return torch.trunc(threshold.detach().to(torch.float64) * 64).to(torch.int64).cpu().numpy()


def bias_int(bias: torch.Tensor) -> np.ndarray:
    """Hardware bias, 18 fractional bits: ``rint(b * 64) << 12`` (bias_mant on the 1/64 grid)."""
    return torch.round(bias.detach().to(torch.float64) * 64).to(torch.int64).cpu().numpy() << 12


class SigmaDeltaFunction(torch.autograd.Function):
    """``(x, threshold, bias) -> y`` on the integer kernels (see module docstring)."""

    @staticmethod
    def forward(ctx, x, threshold, bias, spec, state):
        ctx.set_materialize_grads(False)
        backend = resolve_backend(spec.backend, x)
        shape = x.shape
        steps = shape[-1]
        x2 = x.detach().reshape(-1, steps).contiguous()
        rows = x2.shape[0]
        mode = MODES[spec.mode]
        in_scale = 64.0 if mode == 0 else float(1 << 18)
        v_th = _expand(threshold_mant(threshold), spec) << 12
        b = _expand(bias_int(bias), spec) if bias is not None else np.zeros(1, np.int64)
        want_th = threshold.requires_grad
        relu = 1 if (spec.relu and mode == 1) else 0
        if backend == "reference":
            st = {k: getattr(state, k).cpu().numpy() for k in ("sigma", "act", "residue", "error")}
            y, mask, d, st = reference.sdnn_forward(
                mode, x2.cpu().numpy(), in_scale, v_th, b, relu, spec.cum_error, st
            )
            if not np.all(np.isfinite(x2.cpu().numpy())):
                raise ParameterError("sigma-delta neuron: input contains NaN/inf")
            for k, v in st.items():
                getattr(state, k).copy_(torch.from_numpy(np.asarray(v)))
            y = torch.from_numpy(y).to(torch.float32)
            mask = torch.from_numpy(np.asarray(mask, np.uint8).reshape(rows, steps))
            d = torch.from_numpy(d).to(torch.float32)
        else:
            y = torch.empty((rows, steps), dtype=torch.float32, device=x.device)
            mask = (
                torch.empty((rows, steps), dtype=torch.uint8, device=x.device)
                if relu else empty2d(rows, x2, torch.uint8)
            )  # fmt: skip
            d = (
                torch.empty((rows, steps), dtype=torch.float32, device=x.device)
                if want_th else empty2d(rows, x2, torch.float32)
            )  # fmt: skip
            bad = torch.zeros(rows, dtype=torch.int8, device=x.device)
            args = (mode, x2, in_scale, v_th, b, relu, int(spec.cum_error), state.sigma,
                    state.act, state.residue, state.error, y, mask, d, bad)  # fmt: skip
            if backend == "cpu":
                _cpu.sdnn_forward(
                    *[kernel_array(a, backend) if isinstance(a, torch.Tensor) else a for a in args]
                )
            else:
                from . import _cuda

                launch(_cuda.sdnn_forward, rows, *args)
            if bool(bad.any()):
                raise ParameterError(
                    "sigma-delta neuron: input contains NaN/inf or values too large for the "
                    "integer state (|x| * 2**18 >= 2**41)"
                )
        ctx.spec = spec
        ctx.backend = backend
        ctx.shape = shape
        ctx.mode = mode
        ctx.n_th = threshold.numel()
        ctx.n_b = None if bias is None else bias.numel()
        ctx.theta = np.maximum(_expand(threshold.detach().double().cpu().numpy(), spec), 1 / 4096)
        ctx.save_for_backward(mask if relu else None, d if want_th else None)
        return y.reshape(shape).to(x.dtype) if x.dtype != torch.float32 else y.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        if g is None:
            return None, None, None, None, None
        mask, d = ctx.saved_tensors
        spec, shape = ctx.spec, ctx.shape
        steps = shape[-1]
        g2 = g.reshape(-1, steps).contiguous()
        rows = g2.shape[0]
        want_b = ctx.n_b is not None and ctx.needs_input_grad[2]
        want_th = d is not None
        if ctx.backend == "reference":
            gx, gb, gth = reference.sdnn_backward(
                g2.cpu().numpy(), None if mask is None else mask.cpu().numpy(),
                None if d is None else d.cpu().numpy().astype(np.float64), ctx.theta,
                spec.tau_grad, spec.scale_grad, ctx.mode,
            )  # fmt: skip
            gx = torch.from_numpy(np.ascontiguousarray(gx)).to(g.dtype)
            gb = torch.from_numpy(gb)
            gth = None if gth is None else torch.from_numpy(gth)
        else:
            gx = torch.empty_like(g2)
            gb = torch.zeros(rows if want_b else 0, dtype=torch.float64, device=g.device)
            gth = torch.zeros(rows if want_th else 0, dtype=torch.float64, device=g.device)
            m = mask if mask is not None else empty2d(rows, g2, torch.uint8)
            dd = d if d is not None else empty2d(rows, g2, torch.float32)
            args = (g2, m, dd, ctx.theta, float(spec.tau_grad), float(spec.scale_grad), ctx.mode,
                    gx, gb, gth)  # fmt: skip
            if ctx.backend == "cpu":
                _cpu.sdnn_backward(
                    *[kernel_array(a, "cpu") if isinstance(a, torch.Tensor) else a for a in args]
                )
            else:
                from . import _cuda

                launch(_cuda.sdnn_backward, rows, *args)
        batch = rows // (spec.channels * spec.per_channel)

        def reduce(vals, n):
            v = vals.reshape(batch, spec.channels, spec.per_channel)
            if n == 1:
                return v.sum().reshape(1)
            if n == spec.channels:
                return v.sum(dim=(0, 2))
            return v.sum(dim=0).reshape(-1)

        g_th = reduce(gth, ctx.n_th).float() if want_th else None
        g_b = reduce(gb, ctx.n_b).float() if want_b else None
        return gx.reshape(shape), g_th, g_b, None, None

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
from torch import Tensor

from .._recycle import kept_empty
from ..errors import ParameterError
from . import _cpu, reference
from ._dispatch import (
    copy_small,
    empty2d,
    kernel_array,
    launch,
    resolve_backend,
    stack_small,
    use_parallel,
)
from .op import kernel_op

MODES = {"delta": 0, "sigma_delta": 1}

#: CPU kernels by parallel (see ``_dispatch.use_parallel``)
_CPU_FORWARD = {True: _cpu.sdnn_forward, False: _cpu.sdnn_forward_serial}
_CPU_BACKWARD = {True: _cpu.sdnn_backward, False: _cpu.sdnn_backward_serial}


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


STATE_NAMES = ("sigma", "act", "residue", "error")


@dataclass
class SdnnState:
    """Integer state vectors (length ``rows``): sigma, act, residue, error."""

    sigma: torch.Tensor
    act: torch.Tensor
    residue: torch.Tensor
    error: torch.Tensor

    def stacked(self) -> torch.Tensor:
        """``(4, rows)`` int64 in :data:`STATE_NAMES` order (a new tensor)."""
        return stack_small([getattr(self, k) for k in STATE_NAMES])

    def assign(self, stacked: torch.Tensor) -> None:
        """Take the state from a ``(4, rows)`` tensor (rows of it, no copy)."""
        for i, k in enumerate(STATE_NAMES):
            setattr(self, k, stacked[i])

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


# Op arguments: tensors, then the configuration packed in two lists (few schema
# arguments keep the per-call dispatch overhead small):
#   config = [mode, relu, cum_error, channels, per_channel, want_th, want_mask]
# (want_mask = False: no gradient wanted, the ReLU mask is not recorded)
#   grad = [tau_grad, scale_grad]


def op_config(
    spec: SdnnSpec, want_th: bool, want_mask: bool = True
) -> tuple[list[int], list[float]]:
    """The ``config`` and ``grad`` arguments of ``loihi_slayer::sigma_delta`` for ``spec``."""
    ints = [
        MODES[spec.mode],
        int(spec.relu),
        int(spec.cum_error),
        spec.channels,
        spec.per_channel,
        int(want_th),
        int(want_mask),
    ]
    return ints, [spec.tau_grad, spec.scale_grad]


def _sdnn_forward(
    x: Tensor,
    threshold: Tensor,
    bias: Tensor | None,
    state: Tensor,
    config: list[int],
    grad: list[float],
    backend: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    mode, relu, cum_error, channels, per_channel, want_th, want_mask = config
    spec = SdnnSpec(
        next(k for k, v in MODES.items() if v == mode),
        bool(relu),
        bool(cum_error),
        grad[0],
        grad[1],
        channels,
        per_channel,
        backend,
    )
    backend = resolve_backend(backend, x)
    shape = x.shape
    steps = shape[-1]
    x2 = x.detach().reshape(-1, steps).contiguous()
    rows = x2.shape[0]
    in_scale = 64.0 if mode == 0 else float(1 << 18)
    v_th = _expand(threshold_mant(threshold), spec) << 12
    b = _expand(bias_int(bias), spec) if bias is not None else np.zeros(1, np.int64)
    relu_i = 1 if (relu and mode == 1) else 0
    rec_mask = bool(relu_i and want_mask)
    state_end = copy_small(state)
    if backend == "reference":
        st = {k: state_end[i].cpu().numpy() for i, k in enumerate(STATE_NAMES)}
        y, mask, d, st = reference.sdnn_forward(
            mode, x2.cpu().numpy(), in_scale, v_th, b, relu_i, cum_error, st
        )
        if not np.all(np.isfinite(x2.cpu().numpy())):
            raise ParameterError("sigma-delta neuron: input contains NaN/inf")
        state_end.copy_(torch.from_numpy(np.stack([np.asarray(st[k]) for k in STATE_NAMES])))
        y = torch.from_numpy(y).to(x.dtype)
        mask = torch.from_numpy(np.asarray(mask, np.uint8).reshape(rows, steps))
        mask = mask if rec_mask else empty2d(rows, x2, torch.uint8)
        d = torch.from_numpy(d).to(torch.float32) if want_th else empty2d(rows, x2, torch.float32)
    else:
        # y in the input dtype (payloads are exact in float32 and float64): no cast copy
        # (on the CPU in memory kept across steps: fresh, every page of these faults)
        y = kept_empty("sigma-delta output", (rows, steps), x.dtype, x)
        mask = (
            kept_empty("sigma-delta mask", (rows, steps), torch.uint8, x)
            if rec_mask
            else empty2d(rows, x2, torch.uint8)
        )
        d = (
            kept_empty("sigma-delta delta", (rows, steps), torch.float32, x)
            if want_th
            else empty2d(rows, x2, torch.float32)
        )
        if backend == "cpu":  # NumPy views and flags made directly (as the CUBA op's)
            st = state_end.numpy()
            bad = np.zeros(rows, np.int8)
            _CPU_FORWARD[use_parallel(rows, steps)](
                mode,
                x2.numpy(),
                in_scale,
                v_th,
                b,
                relu_i,
                int(cum_error),
                st[0],
                st[1],
                st[2],
                st[3],
                y.numpy(),
                mask.numpy(),
                d.numpy(),
                bad,
            )
            refused = np.count_nonzero(bad)
        else:
            from . import _cuda

            bad_t = torch.zeros(rows, dtype=torch.int8, device=x.device)
            launch(
                _cuda.sdnn_forward,
                rows,
                mode,
                x2,
                in_scale,
                v_th,
                b,
                relu_i,
                int(cum_error),
                state_end[0],
                state_end[1],
                state_end[2],
                state_end[3],
                y,
                mask,
                d,
                bad_t,
            )
            refused = bool(bad_t.any())
        if refused:
            raise ParameterError(
                "sigma-delta neuron: input contains NaN/inf or values too large for the "
                "integer state (|x| * 2**18 >= 2**41)"
            )
    return y.reshape(shape), mask, d, state_end


def _sdnn_forward_fake(x, threshold, bias, state, config, grad, backend):
    mode, relu, _, _, _, want_th, want_mask = config
    steps = x.shape[-1]
    rows = x.numel() // steps
    relu_i = relu and mode == 1 and want_mask
    return (
        x.new_empty(x.shape),
        x.new_empty((rows, steps if relu_i else 0), dtype=torch.uint8),
        x.new_empty((rows, steps if want_th else 0), dtype=torch.float32),
        state.new_empty(state.shape),
    )


def _sdnn_save(inputs, output):
    x, threshold, bias, _, config, grad, backend = inputs
    _, mask, d, _ = output
    n_b = 0 if bias is None else bias.numel()
    return (mask, d, threshold), (config, grad, n_b, backend)


def _sdnn_backward(
    g: Tensor | None,
    g_mask: Tensor | None,
    g_d: Tensor | None,
    g_state: Tensor | None,
    mask: Tensor,
    d: Tensor,
    threshold: Tensor,
    config: list[int],
    grad: list[float],
    n_b: int,
    backend: str,
    needs: list[bool],
) -> tuple[Tensor, Tensor, Tensor]:
    mode, _, _, channels, per_channel, _, _ = config
    tau_grad, scale_grad = grad
    backend = resolve_backend(backend, threshold)
    shape = g.shape
    steps = shape[-1]
    g2 = g.reshape(-1, steps).contiguous()
    rows = g2.shape[0]
    want_b = n_b > 0 and needs[2]
    want_th = d.shape[1] > 0 and needs[1]
    spec = SdnnSpec("sigma_delta", True, False, tau_grad, scale_grad, channels, per_channel)
    theta = np.maximum(_expand(threshold.detach().double().cpu().numpy(), spec), 1 / 4096)
    if backend == "reference":
        gx, gb, gth = reference.sdnn_backward(
            g2.cpu().numpy(),
            mask.cpu().numpy() if mask.shape[1] else None,
            d.cpu().numpy().astype(np.float64) if want_th else None,
            theta,
            tau_grad,
            scale_grad,
            mode,
        )
        gx = torch.from_numpy(np.ascontiguousarray(gx)).to(g.dtype)
        gb = torch.from_numpy(gb)
        gth = None if gth is None else torch.from_numpy(gth)
    else:
        gx = kept_empty("sigma-delta input grad", tuple(g2.shape), g2.dtype, g2)
        gb = torch.zeros(rows if want_b else 0, dtype=torch.float64, device=g.device)
        gth = torch.zeros(rows if want_th else 0, dtype=torch.float64, device=g.device)
        dd = d if want_th else empty2d(rows, g2, torch.float32)
        args = (g2, mask, dd, theta, float(tau_grad), float(scale_grad), mode, gx, gb, gth)
        if backend == "cpu":
            _CPU_BACKWARD[use_parallel(rows, steps)](
                *[kernel_array(a, "cpu") if isinstance(a, torch.Tensor) else a for a in args]
            )
        else:
            from . import _cuda

            launch(_cuda.sdnn_backward, rows, *args)
    batch = rows // (channels * per_channel)

    def reduce(vals, n):
        v = vals.reshape(batch, channels, per_channel)
        if n == 1:
            return v.sum().reshape(1)
        if n == channels:
            return v.sum(dim=(0, 2))
        return v.sum(dim=0).reshape(-1)

    g_th = reduce(gth, threshold.numel()).to(threshold.dtype) if want_th else None
    g_b = reduce(gb, n_b).to(threshold.dtype) if want_b else None
    if g_th is None and needs[1]:
        g_th = torch.zeros_like(threshold)
    return (
        gx.reshape(shape),
        g_th if g_th is not None else threshold.new_empty(0),
        g_b if g_b is not None else threshold.new_empty(n_b if needs[2] else 0),
    )


def _sdnn_backward_fake(
    g, g_mask, g_d, g_state, mask, d, threshold, config, grad, n_b, backend, needs
):
    return (
        g.new_empty(g.shape),
        threshold.new_empty(threshold.shape if needs[1] else (0,)),
        threshold.new_empty((n_b if needs[2] else 0,)),
    )


sdnn_op = kernel_op(
    "sigma_delta",
    _sdnn_forward,
    _sdnn_forward_fake,
    _sdnn_backward,
    _sdnn_backward_fake,
    save=_sdnn_save,
    grad_inputs=("x", "threshold", "bias"),
)


def sdnn_apply(x, threshold, bias, spec: SdnnSpec, state: SdnnState):
    """``(x, threshold, bias) -> y`` on the integer kernels (see module docstring).

    ``state`` is advanced. Runs as the custom op ``loihi_slayer::sigma_delta``.
    """
    want_mask = torch.is_grad_enabled() and (
        x.requires_grad
        or threshold.requires_grad
        or (bias is not None and isinstance(bias, Tensor) and bias.requires_grad)
    )
    config, grad = op_config(spec, threshold.requires_grad, want_mask)
    y, _, _, st_end = sdnn_op(x, threshold, bias, state.stacked(), config, grad, spec.backend)
    state.assign(st_end)
    return y


class SigmaDeltaFunction:
    """Compatibility name: ``SigmaDeltaFunction.apply(...)`` is :func:`sdnn_apply`."""

    apply = staticmethod(sdnn_apply)

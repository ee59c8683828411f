r"""ALIF training op: the model's integer kernels forward, a surrogate-gradient scan backward.

Forward: :func:`loihi_slayer.fixed.run` of the registered ``'alif'`` model (spec
§6.1) on :math:`a = \operatorname{rne}(\mathrm{scale}\cdot x)`; float outputs are
the integer traces over ``s_scale = 64 * scale``.

Backward (:mod:`._li_scan`): lava-dl's spike surrogate (spec §5.4) at
:math:`v[t] - (\vartheta[t] + r[t])`, with the adaptive threshold
:math:`\vartheta` and the refractory state :math:`r` as constants, exactly as
lava-dl (its adaptive-threshold dynamics return no gradient), through the
reverse-time scans of the voltage and current leaky integrators:

.. math::

    \frac{\partial s}{\partial v} = \frac{\rho}{2\tau}
        e^{-|v - \vartheta - r|/\tau}
        \quad(\text{graded: } \rho\, e^{\min(v - \vartheta - r, 0)/\tau}),\qquad
    \tau = 100\,\tau_{grad}\,\vartheta_0,\ \rho = 0.1\,\mathrm{scale\_grad}

(:math:`\vartheta_0` the base threshold ``vThMant / scale``; lava-dl's
``TAU_RHO_MULT = 100``, ``SCALE_RHO_MULT = 0.1`` for ALIF). Decay gradients are
the analytic ones of the linear recursion (see :mod:`._li_scan`); the threshold
and refractory decays get none (as lava-dl). The refractory hold of
``ref_delay > 1`` is ignored by the gradient, like a reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import _li_scan
from ._convert import FLOAT_TRACE, scaled_sum, spikes_float
from ._dispatch import resolve_backend

__all__ = ["SCALE_RHO_MULT", "TAU_RHO_MULT", "AlifOp", "spike"]

TAU_RHO_MULT = 100.0
SCALE_RHO_MULT = 0.1
TRACES = ("s", "u", "v", "th", "r")


@dataclass
class Surrogate:
    """Surrogate width and amplitude of one neuron."""

    tau: float
    rho: float
    graded: bool

    @property
    def amp(self) -> float:
        return self.rho if self.graded else self.rho / (2.0 * self.tau)


def reduce_param_grad(g_rows: torch.Tensor, n_values: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Per-row gradients ``(N * C * HW,)`` summed to a shared ``(1,)`` or ``(C,)`` parameter
    (``shape``: the input shape ``(N, C, ..., T)``)."""
    g = g_rows.reshape(shape[0], shape[1], -1)
    if n_values == 1:
        return g.sum().reshape(1)
    return g.sum(dim=(0, 2))


class AlifOp:
    """One forward/backward of :class:`loihi_slayer.neuron.alif.Neuron` (a family op).

    Parameters
    ----------
    neuron
        The neuron (its input conversion, kernels and persistent state).
    params
        The model parameters for the neuron shape.
    state
        Initial integer state (``u, v, th, r, rc``), host arrays of the lead shape.
    surrogate
        Surrogate parameters.
    want_di, want_dv
        Whether the current/voltage decays want a gradient.
    need_grad
        Whether any gradient can be asked for (else only the spikes are recorded).
    n_decay
        Sizes of the current and voltage decay parameters (1 or C).
    """

    def __init__(
        self,
        neuron: Any,
        params: Any,
        state: dict,
        surrogate: Surrogate,
        want_di: bool,
        want_dv: bool,
        n_decay: tuple[int, int],
        need_grad: bool = True,
    ) -> None:
        self.neuron = neuron
        self.params = params
        self.state = state
        self.sur = surrogate
        self.want = (want_di, want_dv)
        self.n_decay = n_decay
        self.need_grad = need_grad

    def forward(self, x: torch.Tensor, want_trace: bool):
        n = self.neuron
        shape, steps = x.shape, x.shape[-1]
        rows = x.numel() // steps
        dt = x.dtype  # integer states / s_scale are exact in float32 (|value| < 2**24)
        a = n.int_input(x)
        keep = self.need_grad or want_trace
        record = TRACES if keep else (("s", "v") if self.sur.graded else ("s",))
        tr, final = n.run_model(a, self.params, self.state, record)
        n._keep_state(final)
        inv = 1.0 / n.s_scale
        s = spikes_float(tr["s"], dt)
        if self.sur.graded:
            s = s * scaled_sum(tr["v"], None, inv, dt, kept=FLOAT_TRACE)
        if not keep:
            empty = x.new_empty(0)
            return (s, empty, empty, empty, empty), None
        want_di, want_dv = self.want
        v = scaled_sum(tr["v"], None, inv, dt, kept=FLOAT_TRACE)
        v_post = None
        if want_dv:
            v_post = v.reshape(rows, steps)
            if np.any(np.asarray(self.params["ref_delay"]) > 1):
                # the voltage a decay multiplies: 0 after a spike that starts a hold
                v_post = torch.where(tr["s"].reshape(rows, steps) != 0, 0.0, v_post)
        saved = {
            "shape": shape,
            "v": v.reshape(rows, steps),
            "theta": scaled_sum(tr["th"], tr["r"], inv, dt, kept=FLOAT_TRACE).reshape(rows, steps),
            "u": (
                scaled_sum(tr["u"], None, inv, dt, kept=FLOAT_TRACE).reshape(rows, steps)
                if want_di
                else None
            ),
            "v_post": v_post,
            "u0": torch.from_numpy(self.state["u"].reshape(-1) * inv),
            "v0": torch.from_numpy(self.state["v"].reshape(-1) * inv),
            "decays": (self.params["i_decay"], self.params["v_decay"]),
        }
        if not want_trace:
            empty = x.new_empty(0)
            return (s, empty, empty, empty, empty), saved
        traces = tuple(scaled_sum(tr[k], None, inv, dt) for k in ("u", "v", "th", "r"))
        return (s, *traces), saved

    def backward(self, saved: dict, grads: tuple):
        g_s, g_cur, g_vol = grads[:3]
        shape = saved["shape"]
        steps = shape[-1]
        rows = saved["v"].shape[0]

        def flat(g):
            return None if g is None or g.numel() == 0 else g.reshape(rows, steps)

        want_di, want_dv = self.want
        backend = resolve_backend(self.neuron.backend, saved["v"])
        i_dec, v_dec = (self._per_row(d, shape) for d in saved["decays"])
        g_x, g_di, g_dv = _li_scan.backward(
            backend,
            flat(g_s),
            flat(g_vol),
            flat(g_cur),
            saved["v"],
            saved["theta"],
            saved["u"],
            saved["v_post"],
            1.0 / self.sur.tau,
            self.sur.amp,
            self.sur.graded,
            i_dec,
            v_dec,
            saved["u0"],
            saved["v0"],
            want_di,
            want_dv,
        )
        dtype = g_s.dtype if g_s is not None else (g_vol if g_vol is not None else g_cur).dtype
        gi = None if g_di is None else reduce_param_grad(g_di, self.n_decay[0], shape).float()
        gv = None if g_dv is None else reduce_param_grad(g_dv, self.n_decay[1], shape).float()
        return g_x.reshape(shape).to(dtype), gi, gv

    @staticmethod
    def _per_row(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Per-row (``N * C * HW``) int64 vector of a shared or per-channel parameter."""
        arr = np.asarray(values, np.int64)
        if arr.size == 1:
            return arr.reshape(1)
        return np.ascontiguousarray(np.broadcast_to(arr, shape[:-1]).reshape(-1))


def spike(
    voltage: torch.Tensor,
    threshold: torch.Tensor,
    refractory: torch.Tensor,
    s_scale: int,
    surrogate: Surrogate,
) -> torch.Tensor:
    """Spikes ``v >= θ + r`` on the integer grid, with the surrogate backward of :class:`AlifOp`.

    Forward: ``rne(v * S) >= rne(θ * S) + rne(r * S)`` (graded: times ``v``);
    backward: :math:`\\partial s/\\partial v` (no gradient into θ and r).
    """
    return _Spike.apply(voltage, threshold, refractory, s_scale, surrogate)


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, th, r, s_scale, sur):
        def q(t):
            return torch.round(t.detach().to(torch.float64) * s_scale)

        spk = (q(v) >= q(th) + q(r)).to(v.dtype)
        ctx.save_for_backward(v, th, r)
        ctx.sur = sur
        return spk * v if sur.graded else spk

    @staticmethod
    def backward(ctx, g):
        v, th, r = ctx.saved_tensors
        sur = ctx.sur
        z = v - (th + r)
        if sur.graded:
            d = sur.amp * torch.exp(torch.clamp(z, max=0) / sur.tau)
        else:
            d = sur.amp * torch.exp(-torch.abs(z) / sur.tau)
        return g * d, None, None, None, None

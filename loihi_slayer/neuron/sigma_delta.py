r"""Loihi sigma-delta (SDNN) neuron for training (lava-dl ``slayer.neuron.sigma_delta`` API).

Forward = lava-nc's fixed-point ``SigmaDelta`` (spec §4.1, 4.2) in int64 with
18 fractional bits, through :func:`loihi_slayer.fixed.dynamics.sdnn_step`:

.. math::

    \sigma[t] &= \sigma[t-1] + \operatorname{rint}(2^{18} x[t]) \\
    a[t] &= \operatorname{relu}(\sigma[t] + 2^{12} b_{mant}) \\
    \Delta[t] &= a[t] - a[t-1] + r[t-1], \qquad
    s[t] = \Delta[t]\,\big[|\Delta[t]| \ge 2^{12}\vartheta_{mant}\big], \qquad
    r[t] = \Delta[t] - s[t] \\
    y[t] &= \lfloor s[t] / 2^6 \rfloor / 4096

with :math:`\vartheta_{mant} = \operatorname{trunc}(64\vartheta)` and
:math:`b_{mant} = \operatorname{rint}(64 b)`. The output payload has 12
fractional bits and is exact in float32.

**What the synapse must do.** ``x`` must be the exact sum ``Σ w·y`` of
quantized weights (multiples of 1/32) and payloads (multiples of 1/4096), i.e.
a multiple of :math:`2^{-17}`. float32 accumulation is exact only while the
partial sums stay below about :math:`2^{6}` (spec §4.4); use a synapse with
``exact=True`` (float64 accumulation, :mod:`loihi_slayer.synapse`), which is
exact for any realistic layer. Off-grid input is rounded to :math:`2^{-18}`.

Backward: straight-through delta, ReLU and cumsum derivatives, lava-dl's
threshold gradient (see :mod:`loihi_slayer.autograd.sigma_delta`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..autograd.sigma_delta import SdnnSpec, SdnnState, SigmaDeltaFunction
from ..errors import ParameterError
from . import base

logger = logging.getLogger(__name__)

_RELU = (F.relu, torch.relu, torch.nn.functional.relu)


def neuron_params(device_params: dict, scale: int = 1 << 6) -> dict:
    """Translate exported device parameters back to constructor arguments."""
    return {"threshold": device_params["vThMant"] / scale}


def _activation_kind(activation) -> bool:
    """True for ReLU, False for the identity; anything else is rejected."""
    if activation in _RELU or isinstance(activation, torch.nn.ReLU):
        return True
    if activation is None or isinstance(activation, torch.nn.Identity):
        return False
    name = getattr(activation, "__name__", type(activation).__name__)
    raise ParameterError(
        f"sigma_delta.Neuron: activation {name!r} has no Loihi integer form; allowed: "
        f"torch.nn.functional.relu / torch.relu / torch.nn.ReLU(), or None / "
        f"torch.nn.Identity() (identity)"
    )


class Neuron(base.Neuron):
    r"""Sigma-delta ReLU neuron; integer forward, straight-through backward.

    Parameters
    ----------
    threshold
        Delta threshold :math:`\vartheta` (a parameter; the forward and the
        export use ``trunc(64 θ)``).
    activation
        ReLU (``torch.nn.functional.relu``) or identity (``None``).
    tau_grad, scale_grad
        Threshold-gradient relaxation and scale.
    scale
        Must be 64 (the netx SDNN format, spec §4.2).
    cum_error
        Accumulate the error before thresholding (lava-nc semantics).
    shared_param
        One threshold for all neurons (True) or one per channel (False).
    persistent_state
        Keep sigma/act/residue across calls (reset on batch-size change).
    requires_grad
        Learn threshold and bias.
    shape, backend
        As for :class:`loihi_slayer.neuron.cuba.Neuron`.
    """

    def __init__(
        self,
        threshold: float,
        activation: Callable | None,
        tau_grad: float = 1,
        scale_grad: float = 1,
        scale: int = 1 << 6,
        cum_error: bool = False,
        shared_param: bool = True,
        persistent_state: bool = False,
        requires_grad: bool = False,
        dropout: torch.nn.Module | None = None,
        *,
        shape: Sequence[int] | None = None,
        backend: str = "auto",
    ) -> None:
        if scale != 1 << 6:
            raise ParameterError(
                f"sigma_delta.Neuron: scale = {scale!r}; the netx SDNN fixed-point format "
                f"(12-bit payload, 18-bit state) needs scale = 64"
            )
        super().__init__(
            threshold, tau_grad, scale_grad, scale, persistent_state, shared_param,
            requires_grad, None, backend,
        )  # fmt: skip
        self.relu = _activation_kind(activation)
        self.activation = activation if activation is not None else torch.nn.Identity()
        self.cum_error = bool(cum_error)
        self.graded_spike = True
        self.drop = dropout
        self.threshold_param = torch.nn.Parameter(
            torch.tensor([self._threshold], dtype=torch.float32), requires_grad=self.requires_grad
        )
        # learnable only once set_bias() gives it a value: an unused parameter that
        # requires grad would stop DistributedDataParallel
        self.bias = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
        self.bias_is_set = False
        self._state: SdnnState | None = None
        if shape is not None:
            self.init_shape(shape)

    def init_shape(self, shape: Sequence[int]) -> None:
        """Fix the neuron shape; per-channel thresholds when ``shared_param=False``."""
        super().init_shape(shape)
        if not self.shared_param and self.threshold_param.numel() != self.shape[0]:
            with torch.no_grad():
                self.threshold_param.data = self.threshold_param.data.repeat(self.shape[0])

    @property
    def threshold(self):
        """Current threshold (float, or per-channel tensor)."""
        t = self.threshold_param.detach()
        return float(t[0]) if t.numel() == 1 else t.clone()

    @property
    def v_th_mant(self):
        """Exported ``vThMant = trunc(64 θ)`` (int or int array)."""
        m = torch.trunc(self.threshold_param.detach().double() * self.w_scale)
        m = m.to(torch.int64).cpu().numpy()
        return int(m[0]) if m.size == 1 else m

    @property
    def device_params(self) -> dict:
        """Export parameters exactly as lava-dl writes them."""
        return {
            "type": "SDNN",
            "activation": getattr(self.activation, "__name__", "relu" if self.relu else "unit"),
            "vThMant": self.v_th_mant,
        }

    @property
    def bias_mant(self) -> np.ndarray | None:
        """Exported bias mantissas ``rint(64 b)`` (None unless :meth:`set_bias` was called)."""
        if not self.bias_is_set:
            return None
        return torch.round(self.bias.detach().double() * 64).to(torch.int64).cpu().numpy()

    def set_bias(self, bias: torch.Tensor | float) -> None:
        """Set the bias added inside the activation (quantized to 1/64 in the forward)."""
        b = torch.as_tensor(bias, dtype=torch.float32).detach().reshape(-1)
        if not torch.isfinite(b).all():
            raise ParameterError("sigma_delta.Neuron.set_bias: bias contains NaN/inf")
        self.bias.data = b.to(self.bias.device)
        self.bias.requires_grad_(self.requires_grad)
        self.bias_is_set = True

    def reset_state(self) -> None:
        """Forget the persistent state."""
        self._state = None

    def _get_state(self, x: torch.Tensor) -> SdnnState:
        rows = x.numel() // x.shape[-1]
        st = self._state
        if not self.persistent_state or st is None or st.sigma.numel() != rows:
            st = SdnnState.zeros(rows, x.device)
            if self.persistent_state:
                self._state = st
        return st

    def _spec(self, mode: str) -> SdnnSpec:
        c, hw = self._channels(self.shape)
        return SdnnSpec(mode, self.relu, self.cum_error, self.tau_grad, self.scale_grad, c, hw,
                        self.backend)  # fmt: skip

    def _clamp(self) -> None:
        with torch.no_grad():
            self.threshold_param.data.clamp_(min=1.0 / self.s_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Graded payload ``(N, *shape, T)`` (multiples of 1/4096)."""
        self._check_input(x)
        self._clamp()
        if self.bias_is_set and self.bias.numel() not in (1, self.shape[0], self.num_neurons):
            raise ParameterError(
                f"sigma_delta.Neuron: bias has {self.bias.numel()} values, expected 1, "
                f"{self.shape[0]} or {self.num_neurons}"
            )
        y = SigmaDeltaFunction.apply(
            x, self.threshold_param, self.bias if self.bias_is_set else None,
            self._spec("sigma_delta"), self._get_state(x),
        )  # fmt: skip
        return self.drop(y) if self.drop is not None else y

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """Input-layer delta encoder only (netx ``Delta``): ``a = rint(64 x) << 12``."""
        self._check_input(x)
        self._clamp()
        return SigmaDeltaFunction.apply(
            x, self.threshold_param, None, self._spec("delta"), self._get_state(x)
        )

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

**Bias and norm.** ``b`` is the sum of the bias set with :meth:`Neuron.set_bias`
and, with ``norm=MeanOnlyBatchNorm`` (lava-dl's PilotNet), of
:math:`-Q(\mu_c)`, the negated quantized mean of the sigma output
:math:`\sigma` per channel (batch mean while training, running mean in eval
mode, as lava-dl). :math:`Q` is ``quantize_8bit``, so :math:`64\,Q(\mu_c)` is
an even integer and the exported ``bias`` is exact: the chip runs the eval-mode
network bit for bit.

**Activations.** ReLU and the identity run on the integer kernel and export.
Any other activation (and a ``norm`` that is not mean-only, e.g.
:class:`~loihi_slayer.neuron.norm.WgtScaleBatchNorm`) trains as lava-dl does,
:math:`y = \Delta(f(\mathrm{norm}(\sigma) + b))`, with the delta encoder on the
integer kernel (fed the differences of :math:`f(\cdot)`); export refuses it
with a :class:`~loihi_slayer.errors.ParameterError`, the chip has no such unit.

**What the synapse must do.** ``x`` must be the exact sum ``Σ w·y`` of
quantized weights (multiples of 1/32) and payloads (multiples of 1/4096), i.e.
a multiple of :math:`2^{-17}`. float32 accumulation is exact only while the
partial sums stay below about :math:`2^{6}` (spec §4.4); use a synapse with
``exact=True`` (float64 accumulation, :mod:`loihi_slayer.synapse`), which is
exact for any realistic layer. Off-grid input is rounded to :math:`2^{-18}`.

**Parameter names** follow lava-dl so that its ``network.pt`` loads with
``strict=True``: ``delta.threshold`` (shape ``(1,)``, or ``(C,)``/``(C, 1, 1)``
with ``shared_param=False``), ``bias`` and ``norm.running_mean``.

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
from ..axon import Delta
from ..dendrite import Sigma
from ..errors import ParameterError
from . import base
from .norm import maps_to_bias

logger = logging.getLogger(__name__)

#: activations with a Loihi integer form: True = ReLU, False = identity.
_CHIP_ACTIVATIONS: dict[object, bool] = {F.relu: True, torch.relu: True}


def neuron_params(device_params: dict, scale: int = 1 << 6) -> dict:
    """Translate exported device parameters back to constructor arguments."""
    return {"threshold": device_params["vThMant"] / scale}


def chip_activation(activation) -> bool | None:
    """True for ReLU, False for the identity, None for an activation the chip cannot run."""
    if activation is None or isinstance(activation, torch.nn.Identity):
        return False
    if isinstance(activation, torch.nn.ReLU):
        return True
    try:
        return _CHIP_ACTIVATIONS.get(activation)
    except TypeError:  # unhashable callables
        return None


def _name(activation) -> str:
    return getattr(activation, "__name__", type(activation).__name__)


class Neuron(base.Neuron):
    r"""Sigma-delta neuron; integer forward, straight-through backward.

    Parameters
    ----------
    threshold
        Delta threshold :math:`\vartheta` (the parameter ``delta.threshold``;
        the forward and the export use ``trunc(64 θ)``).
    activation
        Any callable. ReLU (``torch.nn.functional.relu``, ``torch.relu``,
        ``torch.nn.ReLU()``) and identity (``None``, ``torch.nn.Identity()``)
        run on the chip; others train only (export refuses them).
    tau_grad, scale_grad
        Threshold-gradient relaxation and scale.
    scale
        Must be 64 (the netx SDNN format, spec §4.2).
    cum_error
        Accumulate the error before thresholding (lava-nc semantics).
    norm
        ``None``, or a normalization class/factory called without arguments
        (:class:`~loihi_slayer.neuron.norm.MeanOnlyBatchNorm` maps to the chip
        bias; :class:`~loihi_slayer.neuron.norm.WgtScaleBatchNorm` trains only).
    dropout
        Optional module applied to the output (e.g. :class:`~.dropout.Dropout`).
    shared_param
        One threshold for all neurons (True) or one per channel (False).
    persistent_state
        Keep sigma/act/residue across calls (reset on batch-size change).
    requires_grad
        Learn threshold and bias.
    num_neurons
        lava-dl's argument, accepted and unused (the shape comes from ``shape``
        or the first input).
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
        norm: Callable | None = None,
        dropout: torch.nn.Module | None = None,
        shared_param: bool = True,
        persistent_state: bool = False,
        requires_grad: bool = False,
        *,
        num_neurons: int | None = None,
        shape: Sequence[int] | None = None,
        backend: str = "auto",
    ) -> None:
        if scale != 1 << 6:
            raise ParameterError(
                f"sigma_delta.Neuron: scale = {scale!r}; the netx SDNN fixed-point format "
                f"(12-bit payload, 18-bit state) needs scale = 64"
            )
        super().__init__(
            threshold,
            tau_grad,
            scale_grad,
            scale,
            persistent_state,
            shared_param,
            requires_grad,
            None,
            backend,
        )
        self.relu = chip_activation(activation)
        self.activation = activation if activation is not None else torch.nn.Identity()
        self.cum_error = bool(cum_error)
        self.graded_spike = True
        self.drop = dropout
        self.num_neurons_hint = num_neurons
        self.sigma = Sigma(persistent_state=self.persistent_state)
        self.delta = Delta(
            self._threshold,
            self.s_scale,
            tau_grad,
            scale_grad,
            cum_error,
            self.shared_param,
            self.persistent_state,
            self.requires_grad,
            backend=backend,
        )
        # learnable only once set_bias() gives it a value: an unused parameter that
        # requires grad would stop DistributedDataParallel
        self.bias = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
        self.bias_is_set = False
        self.norm = None if norm is None else norm()
        if self.norm is not None and hasattr(self.norm, "pre_hook_fx"):
            self.norm.pre_hook_fx = self.quantize_8bit
        self._state: SdnnState | None = None
        self._f_last: torch.Tensor | None = None
        if shape is not None:
            self.init_shape(shape)

    def init_shape(self, shape: Sequence[int]) -> None:
        """Fix the neuron shape; per-channel thresholds when ``shared_param=False``."""
        super().init_shape(shape)
        self.delta.init_shape(self.shape)
        if self.norm is not None and hasattr(self.norm, "init_features"):
            self.norm.init_features(self.shape[0])

    # ------------------------------------------------------------- properties
    @property
    def threshold_param(self) -> torch.nn.Parameter:
        """The threshold parameter (lava-dl name ``delta.threshold``)."""
        return self.delta.threshold

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.delta.threshold.device

    @property
    def threshold(self):
        """Current threshold (float, or per-channel tensor)."""
        t = self.delta.threshold.detach().reshape(-1)
        return float(t[0]) if t.numel() == 1 else t.clone()

    @property
    def v_th_mant(self):
        """Exported ``vThMant = trunc(64 θ)`` (int or int array)."""
        m = torch.trunc(self.delta.threshold.detach().double().reshape(-1) * self.w_scale)
        m = m.to(torch.int64).cpu().numpy()
        return int(m[0]) if m.size == 1 else m

    @property
    def chip_ready(self) -> bool:
        """Whether the chip can run this neuron (activation and norm have integer forms)."""
        return self.relu is not None and self._norm_is_bias()

    def _norm_is_bias(self) -> bool:
        return self.norm is None or maps_to_bias(self.norm)

    def _refuse_export(self) -> None:
        if self.relu is None:
            raise ParameterError(
                f"sigma_delta.Neuron: activation {_name(self.activation)!r} has no Loihi integer "
                f"form and cannot be exported; the chip runs ReLU (torch.nn.functional.relu, "
                f"torch.relu, torch.nn.ReLU()) or the identity (None, torch.nn.Identity())"
            )
        if not self._norm_is_bias():
            exp = getattr(self.norm, "weight_exp", None)
            raise ParameterError(
                f"sigma_delta.Neuron: norm {type(self.norm).__name__} (weight_exp = "
                f"{None if exp is None else exp.tolist()}) cannot be exported; only "
                f"MeanOnlyBatchNorm maps to the chip (as the neuron bias)"
            )

    @property
    def device_params(self) -> dict:
        """Export parameters exactly as lava-dl writes them (refused for non-chip units)."""
        self._refuse_export()
        return {
            "type": "SDNN",
            "activation": getattr(self.activation, "__name__", "relu" if self.relu else "unit"),
            "vThMant": self.v_th_mant,
        }

    @property
    def bias_mant(self) -> np.ndarray | None:
        """Exported bias mantissas ``rint(64 b) - 64 Q(mean)`` (None without bias or norm)."""
        if not self.bias_is_set and self.norm is None:
            return None
        self._refuse_export()
        b = self._bias_eval()
        return torch.round(b.detach().double() * 64).to(torch.int64).cpu().numpy()

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
        self._f_last = None
        self.delta.reset_state()
        self.sigma.pre_state = None

    # ------------------------------------------------------------------ bias
    def _norm_shift(self, sigma: torch.Tensor | None) -> torch.Tensor | None:
        """``-Q(mean)`` per channel: batch mean of ``sigma`` in training, else running mean."""
        norm = self.norm
        if not maps_to_bias(norm):
            return None
        if sigma is not None and norm.training and norm.update:
            mean = sigma.reshape(sigma.shape[0], sigma.shape[1], -1).mean(dim=(0, 2))
            norm.update_running_mean(mean.to(norm.running_mean.dtype))
        else:
            mean = norm.running_mean
        return -norm.pre_hook_fx(mean.to(torch.float32))

    def _combine(self, shift: torch.Tensor | None) -> torch.Tensor | None:
        bias = self.bias if self.bias_is_set else None
        if shift is None:
            return bias
        if bias is None:
            return shift
        c = shift.numel()
        if bias.numel() in (1, c):
            return bias.reshape(-1) + shift
        return (bias.reshape(c, -1) + shift.reshape(c, 1)).reshape(-1)

    def _bias_eval(self) -> torch.Tensor:
        b = self._combine(self._norm_shift(None))
        return torch.zeros(1) if b is None else b

    def _check_bias(self, bias: torch.Tensor | None) -> None:
        if bias is not None and bias.numel() not in (1, self.shape[0], self.num_neurons):
            raise ParameterError(
                f"sigma_delta.Neuron: bias has {bias.numel()} values, expected 1, "
                f"{self.shape[0]} or {self.num_neurons}"
            )

    # --------------------------------------------------------------- forward
    def _get_state(self, x: torch.Tensor) -> SdnnState:
        rows = x.numel() // x.shape[-1]
        st = self._state
        if not self.persistent_state or st is None or st.sigma.numel() != rows:
            st = SdnnState.zeros(rows, x.device)
            if self.persistent_state:
                self._state = st
        return st

    def _spec(self, mode: str, relu: bool = False) -> SdnnSpec:
        c, hw = self._channels(self.shape)
        return SdnnSpec(
            mode, relu, self.cum_error, self.tau_grad, self.scale_grad, c, hw, self.backend
        )

    def _clamp(self) -> None:
        with torch.no_grad():
            self.delta.threshold.data.clamp_(min=1.0 / self.s_scale)

    def _integer_forward(self, x: torch.Tensor) -> torch.Tensor:
        sigma = None
        if maps_to_bias(self.norm) and self.norm.training and self.norm.update:
            sigma = torch.cumsum(x.to(torch.float64), dim=-1)
        bias = self._combine(self._norm_shift(sigma))
        self._check_bias(bias)
        return SigmaDeltaFunction.apply(
            x,
            self.delta.threshold.reshape(-1),
            bias,
            self._spec("sigma_delta", bool(self.relu)),
            self._get_state(x),
        )

    def _float_forward(self, x: torch.Tensor) -> torch.Tensor:
        """lava-dl's ``delta(f(norm(sigma(x)) + b))`` for units the chip cannot run.

        The delta encoder is the integer kernel (identity mode) fed the
        differences of :math:`f`, so its state keeps 18 fractional bits.
        """
        dend = self.sigma(x.to(torch.float64))
        if self.norm is not None:
            dend = self.norm(dend)
        bias = self._combine(None)
        self._check_bias(bias)
        if bias is not None:
            q = torch.round(bias * 64) / 64
            b = bias + (q - bias).detach()  # forward on the 1/64 grid, gradient straight
            dend = dend + b.to(dend.dtype).reshape(1, *self._bias_view(b))
        f = self.activation(dend)
        last = self._f_last
        if not self.persistent_state or last is None or last.shape != f[..., -1].shape:
            last = torch.zeros_like(f[..., -1])
        df = torch.cat([f[..., :1] - last.unsqueeze(-1), f[..., 1:] - f[..., :-1]], dim=-1)
        if self.persistent_state:
            self._f_last = f[..., -1].detach()
        th = self.delta.threshold.reshape(-1)
        y = SigmaDeltaFunction.apply(df, th, None, self._spec("sigma_delta"), self._get_state(x))
        return y.to(x.dtype)

    def _bias_view(self, b: torch.Tensor) -> tuple[int, ...]:
        n = len(self.shape) + 1  # neuron dims + time
        if b.numel() == 1:
            return (1,) * n
        if b.numel() == self.shape[0]:
            return (self.shape[0],) + (1,) * (n - 1)
        return (*self.shape, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Graded payload ``(N, *shape, T)`` (multiples of 1/4096)."""
        self._check_input(x)
        self._clamp()
        y = self._integer_forward(x) if self.chip_ready else self._float_forward(x)
        return self.drop(y) if self.drop is not None else y

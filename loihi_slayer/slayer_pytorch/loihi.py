"""slayerPytorch's Loihi spike layer (``snn.loihi``) on the library's integer CUBA kernel.

The forward pass of :meth:`spikeLayer.spikeLoihi` / :meth:`spikeLayer.spikeLoihiFull`
runs :func:`loihi_slayer.fixed.cuba` with slayerPytorch's Loihi-1 conventions
(``shared/spec/loihi-fixed-point.md`` §2.2, §2.4, §5.4):

* integer input ``W = trunc(weightedSpikes * Ts)`` (integer tensors are used as
  they are, with ``Ts = 1``), synaptic scaling ``2**(6 + wgtExp)`` with
  ``wgtExp >= 0``;
* the input at bin 0 is dropped and the state is 0 there;
* decays round toward zero, spikes when ``v > vThMant * 2**6`` (strict), a spike
  holds ``v`` at 0 for ``refDelay`` bins (``refDelay = 1``: no refractory period);
* output spikes have amplitude ``1 / Ts``;
* the reported voltage is ``vDecay`` at spike bins and 0 in refractory bins.

Differences from slayerPytorch's CUDA kernel: the library kernel wraps the
current to 24 bit and saturates the voltage (Loihi's state widths) where the
slayerPytorch kernel uses 32-bit arithmetic; both agree while ``|u|, |v| < 2**23``
and ``|u| * (4096 - iDecay) < 2**32``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch

from .. import fixed
from ..errors import ParameterError, ParameterTypeError
from ..fixed.params import DECAY_MAX, VTH_MANT_MAX, int_param
from ..params import check_descriptors
from . import slayer
from ._core import causal_corr
from .quantize import quantizeWeights

__all__ = ["spikeLayer", "loihi", "loihi_spikes"]

logger = logging.getLogger(__name__)

_REF_SCALE = 1000


def _quantize_step2(weights: torch.Tensor) -> torch.Tensor:
    """Weights on Loihi's mixed-sign grid (even integers), straight-through gradient."""
    return quantizeWeights.apply(weights, 2)


def loihi_spikes(
    weightedSpikes: Any,
    params: fixed.CubaParams,
    v_decay: int,
    Ts: float,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run slayerPytorch's Loihi neuron on weighted spikes through :func:`fixed.cuba`.

    Parameters
    ----------
    weightedSpikes
        synaptic input, time last: a float tensor of weighted spikes of amplitude
        ``1 / Ts`` (converted with ``trunc(x * Ts)``) or an integer tensor of
        synaptic sums (used as is, ``Ts = 1``).
    params
        the neuron's :class:`~loihi_slayer.fixed.CubaParams` (no bias).
    v_decay
        ``vDecay``, reported as the voltage of spike bins.
    Ts
        sampling time.
    backend
        :func:`fixed.cuba` backend (``'auto'`` picks CUDA for CUDA tensors).

    Returns
    -------
    spike, voltage, current
        float tensors of the input's shape: spikes of amplitude ``1 / Ts``,
        the reported voltage and the current ``u``.
    """
    if not torch.is_tensor(weightedSpikes):
        raise ParameterTypeError(
            f"weightedSpikes must be a torch tensor, got {type(weightedSpikes).__name__}"
        )
    x = weightedSpikes.detach()
    if x.dtype.is_floating_point:
        dtype = x.dtype
        a = torch.trunc(x * Ts)
        if not torch.all(torch.isfinite(a)):
            raise ParameterError("weightedSpikes must be finite")
        a = a.to(torch.int64)
        amplitude = 1.0 / Ts
    elif x.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        dtype = torch.float32
        a = x.to(torch.int64)
        amplitude = 1.0
    else:
        raise ParameterTypeError(f"weightedSpikes has unsupported dtype {x.dtype}")
    shape = a.shape
    a = a.reshape(-1, shape[-1]).clone()
    a[:, 0] = 0  # slayerPytorch drops the input at bin 0 and keeps the state 0 there
    traces, _ = fixed.cuba(a, params, record=("s", "u", "v"), backend=backend)
    s = traces["s"].reshape(shape).to(device=x.device)
    spikes = s.to(dtype) * amplitude
    voltage = torch.where(
        s.bool(),
        torch.tensor(float(v_decay), dtype=dtype, device=x.device),
        traces["v"].reshape(shape).to(device=x.device, dtype=dtype),
    )
    current = traces["u"].reshape(shape).to(device=x.device, dtype=dtype)
    return spikes, voltage, current


class _LoihiSpike(torch.autograd.Function):
    """Loihi spikes with slayerPytorch's surrogate gradient (spec §5.4)."""

    @staticmethod
    def forward(ctx, weighted, layer):
        spikes, voltage, _ = layer.spikeLoihiFull(weighted)
        ctx.theta = float(layer.neuron["theta"])
        ctx.tau = float(layer.neuron["tauRho"]) * ctx.theta
        ctx.scale = float(layer.neuron["scaleRho"])
        ctx.ts = layer.Ts
        ctx.save_for_backward(voltage, layer.srmKernel)
        return spikes

    @staticmethod
    def backward(ctx, grad):
        voltage, kernel = ctx.saved_tensors
        pdf = ctx.scale / ctx.tau * torch.exp(-torch.abs(voltage - ctx.theta) / ctx.tau)
        return causal_corr(grad * pdf, kernel, ctx.ts), None


class spikeLayer(slayer.spikeLayer):
    """SLAYER spike layer with the Loihi-1 CUBA neuron (``snn.loihi``).

    Parameters
    ----------
    neuronDesc
        ``type: LOIHI``, ``vThMant`` (0..131071), ``vDecay``, ``iDecay`` (0..4096),
        ``refDelay`` (1..63, default 1), ``wgtExp`` (0..7, default 0),
        ``tauRho`` (relative to theta), ``scaleRho``. Not modified: the layer
        keeps a copy in :attr:`neuron` with ``theta = vThMant * 2**6`` and
        ``scaleRho`` divided by the PSP kernel maximum (as slayerPytorch does).
    simulationDesc
        ``Ts`` and ``tSample`` (ms).
    backend
        :func:`loihi_slayer.fixed.cuba` backend, ``'auto'`` by default.

    Attributes
    ----------
    params : loihi_slayer.fixed.CubaParams
        the integer neuron parameters passed to the kernel.
    maxPspKernel : float
        maximum of the Loihi PSP kernel.
    """

    def __init__(self, neuronDesc: Any, simulationDesc: Any, backend: str = "auto") -> None:
        check_descriptors(neuronDesc, simulationDesc)  # also keys this layer derives (theta)
        neuron = dict(neuronDesc)
        ints = {}
        for key, lo, hi, default in (
            ("vThMant", 0, VTH_MANT_MAX, None),
            ("vDecay", 0, DECAY_MAX, None),
            ("iDecay", 0, DECAY_MAX, None),
            ("refDelay", 1, 63, 1),
            ("wgtExp", 0, 7, 0),
        ):
            if key not in neuron:
                if default is None:
                    raise ParameterError(f"the Loihi neuron descriptor needs {key!r}")
                neuron[key] = default
            ints[key] = int(int_param(key, neuron[key], lo, hi))
            neuron[key] = ints[key]
        for key in ("tauRho", "scaleRho"):
            if key not in neuron:
                raise ParameterError(f"the Loihi neuron descriptor needs {key!r}")
        if not float(neuron["tauRho"]) > 0:
            raise ParameterError(f"tauRho = {neuron['tauRho']!r} must be > 0")
        neuron["theta"] = ints["vThMant"] * 64
        self.params = fixed.CubaParams(
            i_decay=ints["iDecay"],
            v_decay=ints["vDecay"],
            v_th_mant=ints["vThMant"],
            ref_delay=ints["refDelay"],
            bias_mant=0,
            bias_exp=0,
            wgt_exp=ints["wgtExp"],
        )
        self.backend = backend
        super().__init__(neuron, simulationDesc)
        self.maxPspKernel = float(torch.max(self.srmKernel).item())
        if self.maxPspKernel <= 0:
            raise ParameterError("the Loihi PSP kernel is empty; check Ts and tSample")
        neuron["scaleRho"] = float(neuron["scaleRho"]) / self.maxPspKernel
        logger.debug(
            "Loihi layer: max PSP kernel %g, scaleRho scaled to %g",
            self.maxPspKernel,
            neuron["scaleRho"],
        )

    def _max_len(self, *decays: int) -> float:
        """Kernel length cap: none when every decay is > 0 (the kernel then reaches 0)."""
        if all(int(d) > 0 for d in decays):
            return math.inf
        return max(self.Ns, 1) + 1

    def calculateSrmKernel(self) -> torch.Tensor:
        """Integer impulse response of the neuron, halved (slayerPytorch's Loihi PSP).

        ``u[0] = v[0] = 2**(7 + wgtExp)`` (a weight of 2), then
        ``u <- u (4096 - iDecay) >> 12``, ``v <- (v (4096 - vDecay) >> 12) + u``
        until ``v`` reaches 0; the kernel is ``v / 2``. Without decay (``iDecay``
        or ``vDecay`` = 0) the response never ends and is cut at ``Ns + 1`` samples.
        """
        n = self.neuron
        u = v = 1 << (7 + int(n["wgtExp"]))
        values = [v]
        cap = self._max_len(n["iDecay"], n["vDecay"])
        while v > 0 and len(values) < cap:
            u = (u * (4096 - int(n["iDecay"]))) >> 12
            v = ((v * (4096 - int(n["vDecay"]))) >> 12) + u
            values.append(v)
        return torch.tensor([x / 2 for x in values], dtype=torch.float32)

    def calculateRefKernel(self, SCALE: float = _REF_SCALE) -> torch.Tensor:
        """Refractory kernel for :meth:`spike`: absolute part, then the decaying reset."""
        n = self.neuron
        theta = int(n["theta"])
        absolute = np.full(int(n["refDelay"]), -SCALE * theta, dtype=np.float64)
        absolute[0] = 0
        relative = [theta]
        cap = self._max_len(n["vDecay"])
        while relative[-1] > 0 and len(relative) < cap:
            relative.append((relative[-1] * (4096 - int(n["vDecay"]))) >> 12)
        kernel = np.concatenate((absolute, -2 * np.asarray(relative, dtype=np.float64)))
        return torch.tensor(kernel, dtype=torch.float32)

    # -- neuron
    def spikeLoihi(self, weightedSpikes: torch.Tensor) -> torch.Tensor:
        """Loihi spikes (amplitude ``1/Ts``) with the surrogate gradient.

        Backward: ``corr(grad * pdf, srmKernel, Ts)`` with
        ``pdf = scaleRho / (tauRho theta) * exp(-|v_rep - theta| / (tauRho theta))``
        on the reported voltage ``v_rep``.
        """
        return _LoihiSpike.apply(weightedSpikes, self)

    def spikeLoihiFull(
        self,
        weightedSpikes: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(spike, voltage, current)`` of the Loihi neuron (no gradient).

        ``voltage`` is the reported voltage: ``vDecay`` at spike bins, 0 in
        refractory bins, ``v`` elsewhere.
        """
        return loihi_spikes(
            weightedSpikes, self.params, int(self.neuron["vDecay"]), self.Ts, self.backend
        )

    def getVoltage(self, membranePotential: torch.Tensor) -> np.ndarray:
        """Voltage traces ``(neurons, Ns)`` with refractory-marked samples set to ``theta + 1``."""
        voltage = membranePotential.detach().reshape(-1, self.Ns).cpu().numpy()
        theta = self.neuron["theta"]
        return np.where(voltage <= -500 * theta, theta + 1, voltage)

    # -- synapses (weights quantized in steps of 2 by default)
    @staticmethod
    def _hook(preHookFx: Any, quantize: bool) -> Any:
        if preHookFx is not None:
            return preHookFx
        return _quantize_step2 if quantize else None

    def dense(
        self,
        inFeatures: Any,
        outFeatures: int,
        weightScale: float = 100,
        preHookFx: Any = None,
        quantize: bool = True,
    ) -> slayer._denseLayer:
        """Dense layer with weights quantized to even values (``quantize=False`` disables)."""
        return slayer._denseLayer(
            inFeatures, outFeatures, weightScale, self._hook(preHookFx, quantize)
        )

    def conv(
        self,
        inChannels: int,
        outChannels: int,
        kernelSize: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        weightScale: float = 100,
        preHookFx: Any = None,
        quantize: bool = True,
    ) -> slayer._convLayer:
        """Convolution layer with weights quantized to even values."""
        return slayer._convLayer(
            inChannels,
            outChannels,
            kernelSize,
            stride,
            padding,
            dilation,
            groups,
            weightScale,
            self._hook(preHookFx, quantize),
        )

    def convTranspose(
        self,
        inChannels: int,
        outChannels: int,
        kernelSize: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        weightScale: float = 100,
        preHookFx: Any = None,
        quantize: bool = True,
    ) -> slayer._convTransposeLayer:
        """Transposed convolution with weights quantized to even values."""
        return slayer._convTransposeLayer(
            inChannels,
            outChannels,
            kernelSize,
            stride,
            padding,
            dilation,
            groups,
            weightScale,
            self._hook(preHookFx, quantize),
        )

    def _pool_weight(self) -> float:
        value = torch.tensor(1.1 * self.neuron["theta"] / self.maxPspKernel)
        return float(quantizeWeights.apply(value, 2).item())

    def pool(
        self,
        kernelSize: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        preHookFx: Any = None,
    ) -> slayer._poolLayer:
        """Sum pooling with weight ``quantize(1.1 theta / maxPspKernel, 2)``."""
        block = slayer._poolLayer(1.0, kernelSize, stride, padding, dilation, preHookFx)
        block.weight.data.fill_(self._pool_weight())
        return block

    def unpool(
        self,
        kernelSize: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        preHookFx: Any = None,
    ) -> slayer._unpoolLayer:
        """Un-pooling with weight ``quantize(1.1 theta / maxPspKernel, 2)``."""
        block = slayer._unpoolLayer(1.0, kernelSize, stride, padding, dilation, preHookFx)
        block.weight.data.fill_(self._pool_weight())
        return block


#: ``snn.loihi`` alias.
loihi = spikeLayer

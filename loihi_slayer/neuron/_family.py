r"""A training neuron over any registered neuron model (:mod:`loihi_slayer.models`).

:class:`FamilyNeuron` is the shared machinery of the families whose forward is the
model's generated integer kernel, run by :func:`loihi_slayer.fixed.run` (ALIF,
and the resonator families): lava-dl's decay parameters (stored ×4096, shared or
per channel), their validation against the model's hardware ranges at
construction, the float -> integer input conversion, the model's
:class:`~loihi_slayer.models.base.ModelParams` for the neuron shape, and the
persistent integer state carried across calls.

A family module subclasses it, sets :attr:`FamilyNeuron.model` and
:attr:`FamilyNeuron.decays`, and writes its autograd op (see
:mod:`loihi_slayer.autograd._family`); :mod:`loihi_slayer.neuron.alif` is the
worked example.

**Input conversion.** The float synaptic sum ``x`` (weight units) becomes the
integer synaptic input :math:`a = \operatorname{rne}(\mathrm{scale}\cdot x)`,
which the model scales by :math:`2^6` itself. With weights on the
``quantize_8bit`` grid and 0/1 (or integer-multiple) input spikes, ``x`` is a
multiple of ``2/scale`` and ``a`` is the exact integer sum, provided the float
sum is exact: float32 is exact while :math:`|a| < 2^{24}` (float64: :math:`2^{53}`).
Inputs with :math:`|\mathrm{scale}\cdot x| \ge 2^{31}` or NaN/inf are refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .. import fixed
from .._recycle import kept_empty
from ..autograd._convert import INPUT_LIMIT, to_int
from ..errors import ParameterError
from ..models.base import ModelParams, NeuronModel
from . import base


def _torch_dtype(dt: Any) -> torch.dtype:
    """The torch dtype of the NumPy dtype ``dt``."""
    return torch.from_numpy(np.empty(0, dt)).dtype


__all__ = ["INPUT_LIMIT", "Decay", "FamilyNeuron"]


@dataclass(frozen=True)
class Decay:
    """One lava-dl decay argument of a family neuron.

    Attributes
    ----------
    arg
        lava-dl constructor argument, also the ``torch.nn.Parameter`` name
        (stored as ``4096 * decay``).
    param
        The model's parameter name (:class:`~loihi_slayer.models.base.Param`).
    jitter
        With ``shared_param=False`` a scalar draws per-channel values within ±1 %
        (lava-dl's current/voltage decays); otherwise the scalar is used as is.
    clamp
        Clamp the stored value to ``[0, 4096]`` before use (lava-dl clamps only
        some decays; the others are checked against the hardware range).
    learnable
        Receives a gradient when ``requires_grad`` (the others are parameters for
        lava-dl's state-dict names but get no gradient, as in lava-dl).
    """

    arg: str
    param: str
    jitter: bool = True
    clamp: bool = True
    learnable: bool = True


class FamilyNeuron(base.Neuron):
    """Base class of the training neurons of registered models (see the module docstring).

    Parameters
    ----------
    threshold, tau_grad, scale_grad, scale, persistent_state, shared_param, requires_grad,
    shape, backend
        As :class:`loihi_slayer.neuron.base.Neuron`.
    decays
        ``arg -> value`` for every entry of :attr:`decays`: a fraction in ``[0, 1]``,
        or with ``shared_param=False`` a ``(min, max)`` pair (lava-dl).

    Raises
    ------
    ParameterError
        A decay outside ``[0, 1]`` or a threshold mantissa outside the model's range.
    """

    #: the registered model whose kernels run the forward
    model: ClassVar[NeuronModel]
    #: lava-dl decay arguments, in constructor order
    decays: ClassVar[tuple[Decay, ...]] = ()

    def __init__(
        self,
        threshold: float,
        tau_grad: float,
        scale_grad: float,
        scale: int,
        persistent_state: bool,
        shared_param: bool,
        requires_grad: bool,
        decays: Mapping[str, Any],
        shape: Sequence[int] | None = None,
        backend: str = "auto",
    ) -> None:
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
        self._check_device("threshold", "v_th_mant", self.v_th_mant, "trunc(threshold * scale)")
        self._ranges: dict[str, tuple[float, float]] = {}
        for d in self.decays:
            lo, hi = self._decay_range(d, decays[d.arg])
            self._ranges[d.arg] = (lo, hi)
            self.register_parameter(
                d.arg,
                torch.nn.Parameter(
                    torch.tensor([self.p_scale * lo], dtype=torch.float32),
                    requires_grad=self.requires_grad,
                ),
            )
        self._state: dict[str, np.ndarray] | None = None
        self.clamp()
        if shape is not None:
            self.init_shape(shape)

    # -------------------------------------------------------------- validation
    @property
    def _name(self) -> str:
        return f"{type(self).__module__.replace('loihi_slayer.', '')}.{type(self).__name__}"

    def _param(self, name: str):
        return next(p for p in self.model.params if p.name == name)

    def _check_device(self, arg: str, param: str, value: int, how: str = "") -> None:
        """A :class:`ParameterError` naming ``arg``, the device field, its value and range."""
        p = self._param(param)
        if not p.lo <= value <= p.hi:
            via = f" ({how}, scale {self.w_scale})" if how else ""
            raise ParameterError(
                f"{self._name}: {arg} gives {p.field} = {value}{via}, outside the hardware "
                f"range [{p.lo}, {p.hi}]"
            )

    def _decay_range(self, d: Decay, value: Any) -> tuple[float, float]:
        if np.isscalar(value):
            v = base.check_finite_float(d.arg, value)
            vals = (v, v) if (self.shared_param or not d.jitter) else (v * 0.99, v * 1.01)
            self._check_decay(d, v)
            return vals
        if self.shared_param:
            raise ParameterError(
                f"{self._name}: {d.arg} must be a scalar when shared_param=True, got {value!r}"
            )
        vals = list(value)
        if len(vals) != 2:
            raise ParameterError(
                f"{self._name}: {d.arg} must be a scalar or a (min, max) pair, got {value!r}"
            )
        lo, hi = (base.check_finite_float(d.arg, v) for v in vals)
        for v in (lo, hi):
            self._check_decay(d, v)
        return lo, hi

    def _check_decay(self, d: Decay, value: float) -> None:
        p = self._param(d.param)
        stored = round(self.p_scale * value)
        if not p.lo <= stored <= p.hi:
            raise ParameterError(
                f"{self._name}: {d.arg} = {value!r} gives {p.field} = {stored}, outside the "
                f"hardware range [{p.lo}, {p.hi}] (decay fractions lie in "
                f"[{p.lo / self.p_scale:g}, {p.hi / self.p_scale:g}])"
            )

    # ------------------------------------------------------------------ shape
    def init_shape(self, shape: Sequence[int]) -> None:
        """Fix the neuron shape; draws per-channel decays when ``shared_param=False``."""
        super().init_shape(shape)
        c = self.shape[0]
        if not self.shared_param:
            with torch.no_grad():
                for d in self.decays:
                    p = getattr(self, d.arg)
                    if p.numel() != c:
                        lo, hi = self._ranges[d.arg]
                        p.data = self.p_scale * (lo + (hi - lo) * torch.rand(c, device=p.device))
            self.clamp()
        norm = getattr(self, "norm", None)
        if norm is not None:
            norm.init_features(c)

    def clamp(self) -> None:
        """Clamp the decays marked ``clamp`` to ``[0, 4096]`` (lava-dl)."""
        with torch.no_grad():
            for d in self.decays:
                if d.clamp:
                    getattr(self, d.arg).data.clamp_(0, self.p_scale)

    # ------------------------------------------------------------- parameters
    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return getattr(self, self.decays[0].arg).device

    def decay_int(self, arg: str) -> int | np.ndarray:
        """Hardware value ``rne(4096 * decay)`` of decay ``arg`` (int, or per-channel array).

        Does not modify the parameter (a ``clamp`` decay is clamped in the copy).
        """
        d = next(d for d in self.decays if d.arg == arg)
        p = getattr(self, arg).detach()
        if d.clamp:
            p = p.clamp(0, self.p_scale)
        val = torch.round(p).to(torch.int64).cpu().numpy()
        return int(val[0]) if val.size == 1 else val

    def model_params(self, **values: Any) -> ModelParams:
        """The model's validated parameters for the neuron shape.

        Decays come from the parameters; ``values`` gives the others. Per-channel
        arrays are laid out to broadcast over ``(N, C, *spatial)``.
        """
        spatial = (1,) * (len(self.shape) - 1) if self.shape else ()
        out = {}
        for d in self.decays:
            v = self.decay_int(d.arg)
            out[d.param] = v if np.isscalar(v) else np.asarray(v).reshape((-1,) + spatial)
        out.update(values)
        return ModelParams(self.model, out, context=self._name)

    # ------------------------------------------------------------------ state
    def reset_state(self) -> None:
        """Forget the persistent state."""
        self._state = None

    def _initial_state(self, lead: tuple[int, ...], params: ModelParams) -> dict[str, np.ndarray]:
        n = int(np.prod(lead))
        vec = params.vectors(lead)
        rest = self.model.initial_state(
            {p.name: vec[i] for i, p in enumerate(self.model.params)}, n
        )
        return {k: v.reshape(lead) for k, v in rest.items()}

    def _get_state(self, lead: tuple[int, ...], params: ModelParams) -> dict[str, np.ndarray]:
        st = self._state
        if not self.persistent_state or st is None or next(iter(st.values())).shape != lead:
            # a new batch size restarts from rest (lava-dl)
            st = self._initial_state(lead, params)
        return st

    def _keep_state(self, state: Mapping[str, np.ndarray]) -> None:
        if self.persistent_state:
            self._state = {k: np.array(v, np.int64) for k, v in state.items()}

    def _state_float(self, name: str) -> torch.Tensor | None:
        if self._state is None:
            return None
        return torch.from_numpy(self._state[name].astype(np.float32) / self.s_scale)

    # ------------------------------------------------------------------ input
    def int_input(self, x: torch.Tensor) -> torch.Tensor:
        """``rne(scale * x)`` as int64 on ``x``'s device (see the module docstring); on the
        CPU in memory kept across steps (the kernels read it in the same call)."""
        out = None if x.is_cuda else kept_empty("family int input", tuple(x.shape), torch.int64)
        a, bad = to_int(x, self.w_scale, INPUT_LIMIT, out)
        if bad:
            raise ParameterError(
                f"{self._name}: input holds NaN/inf or values whose integer synaptic sum "
                f"|rne(x * scale)| reaches 2**31 ({bad} value(s))"
            )
        return a

    def run_model(
        self,
        a: torch.Tensor | tuple[torch.Tensor, ...],
        params: ModelParams,
        state: Mapping[str, np.ndarray],
        record: Sequence[str],
    ) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
        """Run the model's kernels on integer input ``a`` ``(N, *shape, T)`` (a tuple
        ``(re, im)`` for complex-input models).

        Returns torch traces on ``a``'s device and the final state (host int64). On the
        CPU backend the traces are written into memory kept across steps (the callers
        convert them within the step; fresh memory would fault page by page).
        """
        first = a[0] if isinstance(a, tuple) else a
        out = None
        if self.backend == "cpu" or (self.backend == "auto" and first.device.type == "cpu"):
            dtypes = {k: self.model.spike_dtype if k == "s" else np.int64 for k in record}
            out = {
                k: kept_empty("family traces", tuple(first.shape), _torch_dtype(dt))
                for k, dt in dtypes.items()
            }
        traces, final = fixed.run(
            self.model, a, params, state=state, record=tuple(record), backend=self.backend, out=out
        )
        tr = {
            k: torch.as_tensor(np.asarray(v) if not torch.is_tensor(v) else v).to(first.device)
            for k, v in traces.items()
        }
        return tr, {k: np.asarray(v, np.int64) for k, v in final.items()}

"""The block base class: naming, neuron construction, input checks, shift/delay, export
helpers and the hardware ranges checked at export (see :mod:`loihi_slayer.block.base`).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import hdf5
from ..axon import MAX_DELAY, Delay
from ..errors import ParameterError, ParameterTypeError
from ..spike import shift

log = logging.getLogger(__name__)

#: Hardware ranges checked at export.
V_TH_MANT_MAX = (1 << 17) - 1
DECAY_MAX = 1 << 12
WEIGHT_MIN, WEIGHT_MAX = -256, 254
CUBA_BIAS_RANGE = (-(1 << 12), (1 << 12) - 1)  # signed 13-bit bias mantissa
SDNN_BIAS_RANGE = (-(1 << 15), (1 << 15) - 1)  # "precision 16"
#: vThMant lava-dl's Affine block writes so that the neuron never spikes.
AFFINE_V_TH_MANT = (1 << 18) - 1

__all__ = [
    "AFFINE_V_TH_MANT",
    "CUBA_BIAS_RANGE",
    "DECAY_MAX",
    "SDNN_BIAS_RANGE",
    "V_TH_MANT_MAX",
    "WEIGHT_MAX",
    "WEIGHT_MIN",
    "Block",
]


def _pair(v: Any, name: str) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    try:
        a, b = (int(x) for x in v)
    except (TypeError, ValueError):
        raise ParameterTypeError(f"{name} must be an int or a pair of ints, got {v!r}") from None
    return a, b


def _decay_int(param: torch.Tensor) -> int | np.ndarray:
    """``rne(clamp(param, 0, 4096))`` without touching the parameter."""
    v = torch.round(param.detach().clamp(0, DECAY_MAX)).cpu().numpy().astype(np.int64)
    return int(v[0]) if v.size == 1 else v


# =============================================================================== base


def no_global_hooks() -> bool:
    """Whether no global module hooks are registered (``nn.modules.module``'s
    ``register_module_forward_hook``, ``..._forward_pre_hook``, ``..._full_backward_hook``,
    ``..._full_backward_pre_hook``): a block that runs its neuron's fused path instead of
    calling the neuron module skips them, so it only does so here."""
    from torch.nn.modules import module as _module

    return not (
        _module._global_forward_hooks
        or _module._global_forward_pre_hooks
        or _module._global_backward_hooks
        or _module._global_backward_pre_hooks
    )


class Block(torch.nn.Module, metaclass=abc.ABCMeta):
    """Common base: naming, neuron construction, input checks, shift/delay, export.

    Subclass modules (:mod:`loihi_slayer.block.cuba`, :mod:`.sigma_delta`) set
    ``family`` (``'cuba'`` or ``'sigma_delta'``) and ``neuron_class``.
    """

    family: str = ""
    neuron_class: type | None = None
    #: the synapse computes in float64 (sigma-delta: graded payloads need the exact sum)
    exact_synapse: bool = False
    #: chip integer per unit of the block's float output (graded payloads: 4096)
    payload_scale: int = 1
    default_delay_shift: bool = True

    neuron: torch.nn.Module | None
    delay: Delay | None

    # ------------------------------------------------------------------ helpers
    @property
    def block_name(self) -> str:
        """``block.<family>.<Class>``, used in every error message."""
        return f"block.{self.family}.{type(self).__name__}" if self.family else type(self).__name__

    def _make_neuron(self, neuron_params: dict | None, drop_norm: bool = False, **force):
        if neuron_params is None:
            raise ParameterError(f"{self.block_name}: neuron_params is required")
        if not isinstance(neuron_params, dict):
            raise ParameterTypeError(
                f"{self.block_name}: neuron_params must be a dict, got {type(neuron_params)!r}"
            )
        params = dict(neuron_params)  # never mutate the caller's dict
        if drop_norm and params.get("norm") is not None:
            log.debug("%s: norm removed (pool-type blocks have no bias)", self.block_name)
            params["norm"] = None
        params.update(force)
        assert self.neuron_class is not None
        try:
            return self.neuron_class(**params)
        except TypeError as exc:
            raise ParameterTypeError(f"{self.block_name}: bad neuron_params: {exc}") from None
        except ParameterError as exc:
            raise ParameterError(f"{self.block_name}: {exc}") from None

    def _resolve_delay_shift(self, delay_shift: bool | None) -> bool:
        return self.default_delay_shift if delay_shift is None else bool(delay_shift)

    def _check_tensor(self, x: Any) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise ParameterTypeError(
                f"{self.block_name}: input must be a torch.Tensor, got {type(x)}"
            )
        if not x.is_floating_point():
            raise ParameterTypeError(
                f"{self.block_name}: input must be a float tensor, got {x.dtype}"
            )
        return x

    def _shape_error(self, expected: str, x: torch.Tensor) -> ParameterError:
        return ParameterError(
            f"{self.block_name}: expected input {expected}, found shape {tuple(x.shape)}"
        )

    def _post(self, s: torch.Tensor) -> torch.Tensor:
        """Apply the one-step shift and the axonal delay."""
        if getattr(self, "delay_shift", False):
            s = shift(s)
        if getattr(self, "delay", None) is not None:
            s = self.delay(s)
        return s

    def _log(self, x: torch.Tensor, rate: bool = True):
        if getattr(self, "count_log", False):
            return x, (torch.mean((x > 0).to(torch.float32)) if rate else None)
        return x

    # ------------------------------------------------------------------- shapes
    @abc.abstractmethod
    def init_shapes(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Fix the block's shapes from its input shape (no batch, no time).

        Returns the output shape. Call once before training (or pass the
        shape at construction); see the module docstring.
        """

    @property
    def shape(self) -> tuple[int, ...] | None:
        """Neuron (output) shape, or None while unknown."""
        n = getattr(self, "neuron", None)
        return None if n is None or n.shape is None else tuple(n.shape)

    # ------------------------------------------------------------------- export
    @abc.abstractmethod
    def to_layer(self) -> hdf5.Layer:
        """The :mod:`loihi_slayer.hdf5` schema record of this block (block unchanged)."""

    def export_hdf5(self, handle) -> None:
        """Write this block as one netx layer into the h5py group ``handle``."""
        from ..hdf5.layer_io import write_layer

        write_layer(handle, self.to_layer())

    # ------------------------------------------------------------- export utils
    def _need_shape(self) -> tuple[int, ...]:
        shp = self.shape
        if shp is None:
            raise ParameterError(
                f"{self.block_name}: the neuron shape is unknown; pass input_shape=... or call "
                f"init_shapes(input_shape) before exporting"
            )
        return shp

    def _mantissa(self, syn: torch.nn.Module, field: str) -> np.ndarray:
        """Integer mantissas exactly as the forward sees them: ``pre_hook_weight * scale``."""
        with torch.no_grad():
            w = syn.pre_hook_weight.detach().to(torch.float64).cpu() * self.neuron.w_scale
        return self._grid(w.numpy(), field)

    def _grid(self, m: np.ndarray, field: str) -> np.ndarray:
        if not np.all(np.isfinite(m)):
            raise ParameterError(f"{self.block_name}: field {field!r} holds NaN/inf")
        r = np.rint(m)
        bad = (r != m) | (r < WEIGHT_MIN) | (r > WEIGHT_MAX) | (np.mod(r, 2) != 0)
        if np.any(bad):
            v = float(m[bad].reshape(-1)[0])
            raise ParameterError(
                f"{self.block_name}: field {field!r} holds mantissa {v!r}, not an even integer in "
                f"[{WEIGHT_MIN}, {WEIGHT_MAX}] ({int(bad.sum())} value(s)); the Loihi 8-bit grid "
                f"needs pre_hook_fx = neuron.quantize_8bit"
            )
        return r.astype(np.int64)

    def _dense_matrix(self, syn: torch.nn.Module, field: str) -> np.ndarray:
        """(out, in) mantissas of a dense-type synapse, with netx's sign-mode edge case checked."""
        w = self._mantissa(syn, field)
        w = w.reshape(w.shape[0], w.shape[1])
        if w.size and w.max() <= 0 and w.min() == WEIGHT_MIN:
            raise ParameterError(
                f"{self.block_name}: field {field!r} is all non-positive and holds {WEIGHT_MIN}; "
                f"Loihi's inhibitory sign mode (netx) clips it to {WEIGHT_MIN + 1}, so the chip "
                f"would differ from training"
            )
        return w

    def _check_range(self, field: str, value: Any, lo: int, hi: int) -> Any:
        arr = np.asarray(value)
        if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
            raise ParameterError(
                f"{self.block_name}: field {field!r} = {arr.tolist() if arr.size < 8 else arr} is "
                f"outside the hardware range [{lo}, {hi}]"
            )
        return value

    def _neuron_record(self, *, sigma_output: bool = False, v_th_mant: int | None = None):
        """The :mod:`loihi_slayer.hdf5` neuron record of this block's neuron.

        CUBA and sigma-delta have dedicated record classes; every other registered
        model (:mod:`loihi_slayer.models`) is written generically from its
        declaration. ``v_th_mant`` overrides the threshold (Affine's never-firing
        262143).
        """
        build = _NEURON_RECORDS.get(self.family, Block._model_record)
        return build(self, sigma_output=sigma_output, v_th_mant=v_th_mant)

    def _cuba_record(self, *, sigma_output: bool = False, v_th_mant: int | None = None):
        n = self.neuron
        # not neuron.device_params: its decay getters clamp the parameters in place
        i_dec = self._check_range("neuron/iDecay", _decay_int(n.current_decay), 0, DECAY_MAX)
        v_dec = self._check_range("neuron/vDecay", _decay_int(n.voltage_decay), 0, DECAY_MAX)
        vth = n.v_th_mant if v_th_mant is None else v_th_mant
        if v_th_mant is None:
            self._check_range("neuron/vThMant", vth, 0, V_TH_MANT_MAX)
        return hdf5.CubaNeuron(
            i_decay=i_dec,
            v_decay=v_dec,
            v_th_mant=vth,
            ref_delay=n.ref_delay,
            graded_spike=bool(n.graded_spike),
        )

    def _sdnn_record(self, *, sigma_output: bool = False, v_th_mant: int | None = None):
        p = self.neuron.device_params
        vth = None if sigma_output else p["vThMant"]
        if vth is not None:
            self._check_range("neuron/vThMant", vth, 0, V_TH_MANT_MAX)
        return hdf5.SigmaDeltaNeuron(
            v_th_mant=vth, activation=p["activation"], sigma_output=sigma_output
        )

    def _model_record(self, *, sigma_output: bool = False, v_th_mant: int | None = None):
        """Generic record of a registered model from the neuron's netx ``device_params``."""
        n = self.neuron
        model = n.model
        dev = n.device_params
        params = {}
        for p in model.params:
            if p.field == "vThMant" and v_th_mant is not None:
                params[p.field] = np.int64(v_th_mant)
                continue
            if p.field not in dev:
                if p.optional:
                    continue
                raise ParameterError(f"{self.block_name}: device_params lack {p.field!r}")
            value = np.asarray(dev[p.field])
            self._check_range(f"neuron/{p.field}", value, p.lo, p.hi)
            params[p.field] = value.astype(np.int64)
        if "gradedSpike" in dev:
            if bool(dev["gradedSpike"]) and not model.graded:
                raise ParameterError(
                    f"{self.block_name}: field 'neuron/gradedSpike' = True, but the chip's "
                    f"{model.netx_type} neuron sends binary spikes; train with graded_spike=False"
                )
            params["gradedSpike"] = np.int64(bool(dev["gradedSpike"]))
        return hdf5.GenericNeuron(type=model.netx_type, params=params)

    def _bias_record(self) -> np.ndarray | None:
        n = self.neuron
        if self.family == "cuba":
            b = n.bias
            if b is None:
                return None
            b = np.asarray(b, np.int64).reshape(-1)
            return self._check_range("bias", b, *CUBA_BIAS_RANGE)
        b = getattr(n, "bias_mant", None)
        if b is None:
            return None
        b = np.asarray(b, np.int64).reshape(-1)
        c = self._need_shape()[0]
        if b.size == 1:
            b = np.repeat(b, c)
        if b.size != c:
            raise ParameterError(
                f"{self.block_name}: field 'bias' has {b.size} values; export needs one per "
                f"channel ({c})"
            )
        return self._check_range("bias", b, *SDNN_BIAS_RANGE)

    def _delay_record(self) -> np.ndarray | None:
        if getattr(self, "delay", None) is None:
            return None
        d = self.delay.delay.detach().cpu().to(torch.float64).numpy()
        if not np.all(np.isfinite(d)):
            raise ParameterError(f"{self.block_name}: field 'delay' holds NaN/inf")
        d = np.floor(np.clip(d, 0, self.delay.max_delay)).astype(np.int64).reshape(-1)
        return self._check_range("delay", d, 0, MAX_DELAY)


#: neuron families with a dedicated record class; every other one uses Block._model_record
_NEURON_RECORDS = {"cuba": Block._cuba_record, "sigma_delta": Block._sdnn_record}

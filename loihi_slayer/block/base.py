r"""Shared machinery of the SLAYER blocks (lava-dl ``slayer.block`` API).

A block is synapse -> neuron -> one-step shift (``delay_shift``) -> optional
axonal delay, on time-last tensors ``(N, C, T)`` or ``(N, C, H, W, T)``. The
neuron forward runs Loihi's integer kernels and the synapse sees exactly the
exported weight mantissas divided by the scale (``pre_hook_fx`` defaults to the
neuron's ``quantize_8bit``), so the trained network is the exported network.

**Shapes.** Every block knows its neuron shape before training:

* dense-type blocks (Dense, Recurrent, KWTA, Affine, Output) from
  ``out_neurons`` at construction;
* spatial blocks (Conv, ConvT, Pool, Unpool) from the keyword ``input_shape=``
  (``(H, W)`` or ``(C, H, W)``) or ONE explicit :meth:`Block.init_shapes` call
  (or :func:`init_shapes` over a whole sequence of blocks). Parameters and
  buffers (axonal delays, norm means, per-channel decays) depend only on the
  channel count, so they are all created at construction; a spatial block with
  shared neuron parameters may still learn its spatial size from its first
  input (this creates nothing, so DistributedDataParallel is unaffected). With
  ``shared_param=False`` the shape must be given explicitly.

**Export.** :meth:`Block.to_layer` builds the :mod:`loihi_slayer.hdf5` schema
record (it never modifies the block: weight norm stays enabled, no data is
touched); :meth:`Block.export_hdf5` writes that record into one ``layer/<i>``
group; :func:`export_network` writes a whole sequence of blocks atomically.
Values outside the hardware ranges raise :class:`~loihi_slayer.errors.ParameterError`
naming the block and the field.

**Time alignment with the chip** (spec ``loihi-fixed-point.md`` §7.2): with
``delay_shift=True`` on every block, block output index ``n`` equals the chip
spikes of that layer at Lava step ``n`` (emulator trace column ``n - 1``); the
input index ``n`` is what the first synapse receives at step ``n`` (index 0
must be zero), or, for an input block with a neuron, what that neuron receives
at step ``n + 1``.
"""

from __future__ import annotations

import abc
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import hdf5
from ..axon import MAX_DELAY, Delay
from ..dendrite import Sigma
from ..errors import LoihiSlayerError, ParameterError, ParameterTypeError
from ..fixed.api import conv_output_size, conv_transpose_output_size
from ..spike import shift
from ..synapse import Conv as _ConvSyn
from ..synapse import ConvTranspose as _ConvTSyn
from ..synapse import Dense as _DenseSyn
from ..synapse import Pool as _PoolSyn
from ..synapse import Unpool as _UnpoolSyn

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
    "AbstractAffine",
    "AbstractAverage",
    "AbstractConv",
    "AbstractConvT",
    "AbstractDense",
    "AbstractFlatten",
    "AbstractInput",
    "AbstractKWTA",
    "AbstractOutput",
    "AbstractPool",
    "AbstractRecurrent",
    "AbstractTimeDecimation",
    "AbstractUnpool",
    "Block",
    "GapReport",
    "compare_with_emulator",
    "export_network",
    "init_shapes",
    "network_record",
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


class Block(torch.nn.Module, metaclass=abc.ABCMeta):
    """Common base: naming, neuron construction, input checks, shift/delay, export.

    Subclass modules (:mod:`loihi_slayer.block.cuba`, :mod:`.sigma_delta`) set
    ``family`` (``'cuba'`` or ``'sigma_delta'``) and ``neuron_class``.
    """

    family: str = ""
    neuron_class: type | None = None
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
        if self.family == "sigma_delta" and "norm" in params:
            if params["norm"] is not None:
                raise ParameterError(f"{self.block_name}: sigma-delta neurons take no norm")
            del params["norm"]
        params.update(force)
        assert self.neuron_class is not None
        try:
            return self.neuron_class(**params)
        except TypeError as exc:
            raise ParameterTypeError(f"{self.block_name}: bad neuron_params: {exc}") from None

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
        n = self.neuron
        if self.family == "cuba":
            # not neuron.device_params: its decay getters clamp the parameters in place
            p = {
                "iDecay": _decay_int(n.current_decay),
                "vDecay": _decay_int(n.voltage_decay),
                "vThMant": n.v_th_mant,
                "refDelay": n.ref_delay,
                "gradedSpike": n.graded_spike,
            }
        else:
            p = n.device_params
        if self.family == "cuba":
            i_dec = self._check_range("neuron/iDecay", p["iDecay"], 0, DECAY_MAX)
            v_dec = self._check_range("neuron/vDecay", p["vDecay"], 0, DECAY_MAX)
            vth = p["vThMant"] if v_th_mant is None else v_th_mant
            if v_th_mant is None:
                self._check_range("neuron/vThMant", vth, 0, V_TH_MANT_MAX)
            return hdf5.CubaNeuron(
                i_decay=i_dec, v_decay=v_dec, v_th_mant=vth, ref_delay=p["refDelay"],
                graded_spike=bool(p["gradedSpike"]),
            )  # fmt: skip
        vth = None if sigma_output else p["vThMant"]
        if vth is not None:
            self._check_range("neuron/vThMant", vth, 0, V_TH_MANT_MAX)
        return hdf5.SigmaDeltaNeuron(
            v_th_mant=vth, activation=p["activation"], sigma_output=sigma_output
        )

    def _bias_record(self) -> np.ndarray | None:
        n = self.neuron
        if self.family == "cuba":
            b = n.bias
            if b is None:
                return None
            b = np.asarray(b, np.int64).reshape(-1)
            return self._check_range("bias", b, *CUBA_BIAS_RANGE)
        b = n.bias_mant
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


# ============================================================================= input


class AbstractInput(Block):
    """Input block: optional neuron on the (affine-transformed) input, then the shift.

    Parameters
    ----------
    neuron_params
        Neuron parameters, or None for a pass-through input (only the shift).
    weight, bias
        Learnable scalar affine transform ``z = Q(x)·Q(w) + Q(b)`` (None: off).
    delay_shift
        Shift the output by one step (CUBA default True; sigma-delta default False).
    count_log
        Also return the mean event rate.
    shape
        Keyword only: neuron shape ``(C,)`` or ``(C, H, W)`` (else learnt from
        the first input or :meth:`init_shapes`; input blocks create no
        shape-dependent parameters).
    """

    def __init__(
        self,
        neuron_params: dict | None = None,
        weight: float | None = None,
        bias: float | None = None,
        delay_shift: bool | None = None,
        count_log: bool = False,
        *,
        shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.count_log = bool(count_log)
        self.delay_shift = self._resolve_delay_shift(delay_shift)
        self.delay = None
        self.neuron = None if neuron_params is None else self._make_neuron(neuron_params)
        self.weight = None if weight is None else torch.nn.Parameter(torch.tensor([float(weight)]))
        self.bias = None if bias is None else torch.nn.Parameter(torch.tensor([float(bias)]))
        self.input_shape: tuple[int, ...] | None = None
        if shape is not None:
            self.init_shapes(shape)

    def pre_hook_fx(self, x: torch.Tensor, descale: bool = False) -> torch.Tensor:
        """The input quantizer: the neuron's ``quantize_8bit`` (identity without a neuron)."""
        if self.neuron is None:
            return x
        return self.neuron.quantize_8bit(x, descale=descale)

    @property
    def shape(self) -> tuple[int, ...] | None:
        if self.neuron is not None and self.neuron.shape is not None:
            return tuple(self.neuron.shape)
        return self.input_shape

    def init_shapes(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        shp = tuple(int(s) for s in input_shape)
        if self.input_shape is not None and self.input_shape != shp:
            raise ParameterError(
                f"{self.block_name}: shape already set to {self.input_shape}, got {shp}"
            )
        self.input_shape = shp
        if self.neuron is not None and self.neuron.shape is None:
            self.neuron.init_shape(shp)
        return shp

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        z = self.pre_hook_fx(x)
        if self.weight is not None:
            z = z * self.pre_hook_fx(self.weight)
        if self.bias is not None:
            z = z + self.pre_hook_fx(self.bias)
        return z

    def _check_input(self, x: torch.Tensor) -> None:
        self._check_tensor(x)
        if x.dim() not in (3, 5):
            raise self._shape_error("(N, C, T) or (N, C, H, W, T)", x)
        if self.shape is None:
            self.init_shapes(x.shape[1:-1])
        elif tuple(x.shape[1:-1]) != self.shape:
            raise self._shape_error(f"(N, {', '.join(map(str, self.shape))}, T)", x)

    def forward(self, x: torch.Tensor):
        """Quantize/transform, run the neuron (if any), shift."""
        self._check_input(x)
        if self.neuron is not None:
            x = self._run_neuron(self._transform(x))
        return self._log(self._post(x))

    def _run_neuron(self, z: torch.Tensor) -> torch.Tensor:
        return self.neuron(z)

    def to_layer(self) -> hdf5.InputLayer:
        shape = self._need_shape()
        if self.neuron is None:
            return hdf5.InputLayer(shape)

        def scalar(p: torch.nn.Parameter | None, field: str) -> int | None:
            if p is None:
                return None
            with torch.no_grad():
                m = (
                    self.pre_hook_fx(p.detach().to(torch.float64)).cpu().numpy()
                    * self.neuron.w_scale
                )
            return int(self._grid(m, field)[0])

        return hdf5.InputLayer(
            shape, neuron=self._neuron_record(),
            weight=scalar(self.weight, "weight"), bias=scalar(self.bias, "bias"),
        )  # fmt: skip


# ========================================================================= stateless


class AbstractFlatten(Block):
    """Flatten ``(N, C, H, W, T)`` to ``(N, C·H·W, T)``; exported as ``flatten [C·H·W, 1, 1]``."""

    def __init__(self, count_log: bool = False, *, input_shape: Sequence[int] | None = None):
        super().__init__()
        self.count_log = bool(count_log)
        self.input_shape: tuple[int, ...] | None = None
        if input_shape is not None:
            self.init_shapes(input_shape)

    @property
    def shape(self) -> tuple[int, ...] | None:
        return None if self.input_shape is None else (math.prod(self.input_shape), 1, 1)

    def init_shapes(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        self.input_shape = tuple(int(s) for s in input_shape)
        return (math.prod(self.input_shape),)

    def forward(self, x: torch.Tensor):
        """Reshape to ``(N, -1, T)``."""
        self._check_tensor(x)
        if x.dim() < 3:
            raise self._shape_error("(N, C, ..., T)", x)
        if self.input_shape is None:
            self.init_shapes(x.shape[1:-1])
        elif tuple(x.shape[1:-1]) != self.input_shape:
            raise self._shape_error(f"(N, {', '.join(map(str, self.input_shape))}, T)", x)
        y = x.reshape(x.shape[0], -1, x.shape[-1])
        return (y, None) if self.count_log else y

    def to_layer(self) -> hdf5.FlattenLayer:
        return hdf5.FlattenLayer(self._need_shape())


class AbstractAverage(Block):
    """Population average: mean over ``num_outputs`` contiguous groups of the flattened input.

    Output ``(N, num_outputs, T)``. Exported as ``average`` with ``shape =
    (num_outputs, 1, 1)``; the chip sums (training mean = sum / group size).
    """

    def __init__(self, num_outputs: int, count_log: bool = False) -> None:
        super().__init__()
        if isinstance(num_outputs, bool) or int(num_outputs) < 1:
            raise ParameterError(f"{self.block_name}: num_outputs must be >= 1, got {num_outputs}")
        self.num_outputs = int(num_outputs)
        self.count_log = bool(count_log)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.num_outputs, 1, 1)

    def init_shapes(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        n = math.prod(int(s) for s in input_shape)
        if n % self.num_outputs:
            raise ParameterError(
                f"{self.block_name}: {n} inputs cannot be split into {self.num_outputs} groups"
            )
        return (self.num_outputs,)

    def forward(self, x: torch.Tensor):
        """Group mean."""
        self._check_tensor(x)
        if x.dim() < 3 or (x[0, ..., 0].numel() % self.num_outputs):
            raise self._shape_error(
                f"(N, C, ..., T) with C·H·W a multiple of {self.num_outputs}", x
            )
        y = torch.mean(x.reshape(x.shape[0], self.num_outputs, -1, x.shape[-1]), dim=2)
        return (y, None) if self.count_log else y

    def to_layer(self) -> hdf5.AverageLayer:
        return hdf5.AverageLayer(self.shape)


class AbstractTimeDecimation(Block):
    """Time decimation: mean over ``factor`` consecutive steps (zero padded at the end).

    ``y[..., k] = mean(x[..., k·f : (k+1)·f])``, as lava-dl. Exported as
    ``decimate`` with ``factor``; the chip sums (training mean = sum / factor).
    """

    def __init__(self, factor: int, count_log: bool = False) -> None:
        super().__init__()
        f = int(factor)
        if f < 1 or f & (f - 1):
            raise ParameterError(
                f"{self.block_name}: factor must be a power of 2 >= 1, got {factor}"
            )
        self.factor = f
        self.count_log = bool(count_log)
        self.input_shape: tuple[int, ...] | None = None

    @property
    def shape(self) -> tuple[int, ...] | None:
        return self.input_shape

    def init_shapes(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        self.input_shape = tuple(int(s) for s in input_shape)
        return self.input_shape

    def forward(self, x: torch.Tensor):
        """Decimate the time axis."""
        self._check_tensor(x)
        if x.dim() < 3:
            raise self._shape_error("(N, C, ..., T)", x)
        if self.input_shape is None:
            self.init_shapes(x.shape[1:-1])
        pad = -x.shape[-1] % self.factor
        xp = F.pad(x, (0, pad))
        y = xp.reshape(*xp.shape[:-1], xp.shape[-1] // self.factor, self.factor).mean(-1)
        return (y, None) if self.count_log else y

    def to_layer(self) -> hdf5.TimeDecimationLayer:
        return hdf5.TimeDecimationLayer(self._need_shape(), self.factor)


# ============================================================================== dense


class _SynapseBlock(Block):
    """Blocks with one synapse and one neuron."""

    synapse: torch.nn.Module

    def _init_common(self, neuron_params, delay, delay_shift, count_log, drop_norm=False,
                     **force) -> None:  # fmt: skip
        self.count_log = bool(count_log)
        self.delay_shift = self._resolve_delay_shift(delay_shift)
        self.neuron = self._make_neuron(neuron_params, drop_norm=drop_norm, **force)
        self._want_delay = bool(delay)
        self.delay = None

    def _hook(self, pre_hook_fx):
        return self.neuron.quantize_8bit if pre_hook_fx is None else pre_hook_fx

    def _exact(self) -> bool:
        return self.family == "sigma_delta"

    def _make_delay(self, channels: int) -> None:
        if self._want_delay:
            self.delay = Delay(max_delay=MAX_DELAY, shape=(channels,))

    def _neuron_forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.neuron(z)

    def forward(self, x: torch.Tensor):
        """synapse -> neuron -> shift -> delay."""
        z = self.synapse(self._check_input(x))
        return self._log(self._post(self._neuron_forward(z)))


class AbstractDense(_SynapseBlock):
    """Dense block: ``Dense`` synapse, neuron, shift, optional axonal delay.

    Parameters
    ----------
    neuron_params
        Neuron constructor arguments (dict, not modified).
    in_neurons, out_neurons
        Synapse size (``in_neurons`` may be a shape; it is flattened).
    weight_scale, weight_norm
        Weight initialization scale; weight normalization.
    pre_hook_fx
        Weight quantizer (default: the neuron's ``quantize_8bit``).
    delay
        Learnable axonal delay per output neuron.
    delay_shift
        One-step output shift (CUBA default True, sigma-delta default False).
    mask
        0/1 connectivity mask ``(out, in)`` (applied without modifying the weight).
    count_log
        Also return the mean event rate.
    """

    def __init__(
        self,
        neuron_params: dict,
        in_neurons: int | Sequence[int],
        out_neurons: int,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        delay: bool = False,
        delay_shift: bool | None = None,
        mask: torch.Tensor | None = None,
        count_log: bool = False,
    ) -> None:
        super().__init__()
        self._init_common(neuron_params, delay, delay_shift, count_log, **self._neuron_force())
        self.synapse = _DenseSyn(
            in_neurons, out_neurons, weight_scale, weight_norm, self._hook(pre_hook_fx), mask,
            exact=self._exact(),
        )  # fmt: skip
        self.neuron.init_shape((int(out_neurons),))
        self._make_delay(int(out_neurons))

    def _neuron_force(self) -> dict:
        return {}

    @property
    def in_neurons(self) -> int:
        return self.synapse.in_neurons

    def init_shapes(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        n = math.prod(int(s) for s in input_shape)
        if n != self.in_neurons:
            raise ParameterError(
                f"{self.block_name}: expected {self.in_neurons} input neurons, found input shape "
                f"{tuple(input_shape)}"
            )
        return tuple(self.neuron.shape)

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        self._check_tensor(x)
        ok = (x.dim() == 3 and x.shape[1] == self.in_neurons) or (
            x.dim() == 5 and x.shape[1] * x.shape[2] * x.shape[3] == self.in_neurons
        )
        if not ok:
            raise self._shape_error(
                f"(N, {self.in_neurons}, T) or (N, C, H, W, T) with C·H·W = {self.in_neurons}", x
            )
        return x

    def to_layer(self) -> hdf5.DenseLayer:
        w = self._dense_matrix(self.synapse, "weight")
        return hdf5.DenseLayer(
            self._need_shape(), w, neuron=self._neuron_record(),
            bias=self._bias_record(), delay=self._delay_record(),
        )  # fmt: skip


class AbstractAffine(AbstractDense):
    """Affine block: dense synapse into a neuron that never spikes; returns the voltage.

    With ``dynamics=False`` the synaptic sum itself is returned. No shift (as
    lava-dl). Exported as ``dense`` with ``vThMant = 2**18 - 1`` (lava-dl's
    "never spike" value) when ``dynamics`` is True, else without a neuron.
    """

    def __init__(
        self,
        neuron_params: dict,
        in_neurons: int | Sequence[int],
        out_neurons: int,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        dynamics: bool = True,
        mask: torch.Tensor | None = None,
        count_log: bool = False,
    ) -> None:
        self.dynamics = bool(dynamics)
        super().__init__(neuron_params, in_neurons, out_neurons, weight_scale, weight_norm,
                         pre_hook_fx, False, False, mask, count_log)  # fmt: skip
        if self.dynamics:
            # a threshold no 24-bit saturated voltage can exceed
            self.neuron._threshold = AFFINE_V_TH_MANT / self.neuron.w_scale
            self.neuron.make_spec()

    def _neuron_forward(self, z: torch.Tensor) -> torch.Tensor:
        if not self.dynamics:
            return z
        return self.neuron.dynamics(z)[1]

    def forward(self, x: torch.Tensor):
        """Voltage (or synaptic sum), no shift."""
        y = self._neuron_forward(self.synapse(self._check_input(x)))
        return (y, None) if self.count_log else y

    def to_layer(self) -> hdf5.DenseLayer:
        w = self._mantissa(self.synapse, "weight")
        neuron = self._neuron_record(v_th_mant=AFFINE_V_TH_MANT) if self.dynamics else None
        return hdf5.DenseLayer(self._need_shape(), w.reshape(w.shape[0], w.shape[1]), neuron=neuron)


class AbstractOutput(AbstractDense):
    """Sigma-delta output block: dense synapse into a sigma accumulator (no neuron dynamics).

    Returns ``cumsum(synapse(x))`` (float64, exact). Exported as ``dense`` with
    the SDNN neuron and ``sigma_output = True``.
    """

    def __init__(
        self,
        neuron_params: dict,
        in_neurons: int | Sequence[int],
        out_neurons: int,
        weight_scale: float = 1,
        weight_norm: bool = False,
        count_log: bool = False,
    ) -> None:
        super().__init__(neuron_params, in_neurons, out_neurons, weight_scale, weight_norm,
                         None, False, False, None, count_log)  # fmt: skip
        self.sigma = Sigma()

    def forward(self, x: torch.Tensor):
        """Accumulated synaptic input."""
        y = self.sigma(self.synapse(self._check_input(x)))
        return self._log(y)

    def to_layer(self) -> hdf5.DenseLayer:
        w = self._mantissa(self.synapse, "weight")
        return hdf5.DenseLayer(
            self._need_shape(), w.reshape(w.shape[0], w.shape[1]),
            neuron=self._neuron_record(sigma_output=True),
        )  # fmt: skip


# ========================================================================== recurrent


class _StepLoop:
    """Mixin: run the neuron one step at a time with feedback of its own spikes."""

    persistent_state: bool

    def _loop(self, z: torch.Tensor, feedback: Callable[[torch.Tensor], torch.Tensor]):
        neuron = self.neuron
        if not self.persistent_state:
            neuron.reset_state()
        spike = z.new_zeros(z.shape[:-1])
        outs = []
        for t in range(z.shape[-1]):
            a = z[..., t] + feedback(spike)
            spike = neuron(a.unsqueeze(-1))[..., 0]
            outs.append(spike)
        return torch.stack(outs, dim=-1)


class AbstractRecurrent(_StepLoop, AbstractDense):
    r"""Recurrent dense block: :math:`s[t] = f(W s_{in}[t] + R s[t-1])`.

    The neuron runs one step at a time with its state carried between steps
    (reset at every call unless ``neuron_params['persistent_state']``).
    ``requires_grad`` makes the recurrent weight learnable. Exported as
    ``dense_rec`` with ``weight_rec`` (out, out).
    """

    def __init__(
        self,
        neuron_params: dict,
        in_neurons: int | Sequence[int],
        out_neurons: int,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        requires_grad: bool = True,
        delay: bool = False,
        delay_shift: bool | None = None,
        count_log: bool = False,
    ) -> None:
        self.persistent_state = bool((neuron_params or {}).get("persistent_state", False))
        super().__init__(neuron_params, in_neurons, out_neurons, weight_scale, weight_norm,
                         pre_hook_fx, delay, delay_shift, None, count_log)  # fmt: skip
        self.recurrent_synapse = _DenseSyn(
            out_neurons, out_neurons, weight_scale, weight_norm, self._hook(pre_hook_fx),
            exact=self._exact(),
        )  # fmt: skip
        self.recurrent_synapse.weight.requires_grad_(bool(requires_grad))

    @property
    def input_synapse(self) -> torch.nn.Module:
        """lava-dl name of the feed-forward synapse."""
        return self.synapse

    def _neuron_force(self) -> dict:
        return {"persistent_state": True}

    def _neuron_forward(self, z: torch.Tensor) -> torch.Tensor:
        n = z.shape[1]
        return self._loop(z, lambda s: self.recurrent_synapse(s.reshape(s.shape[0], n, 1))[..., 0])

    def to_layer(self) -> hdf5.DenseRecurrentLayer:
        w = self._dense_matrix(self.synapse, "weight")
        r = self._dense_matrix(self.recurrent_synapse, "weight_rec")
        return hdf5.DenseRecurrentLayer(
            self._need_shape(), w.reshape(w.shape[:2]), neuron=self._neuron_record(),
            bias=self._bias_record(), delay=self._delay_record(), weight_rec=r.reshape(r.shape[:2]),
        )  # fmt: skip


class AbstractKWTA(_StepLoop, AbstractDense):
    r"""k-winners-take-all block (lava-dl semantics).

    .. math::

        s[t] = f\big(W s_{in}[t] + Q(R)\, s[t-1] + Q(b)\big),\qquad
        R = (1 + a) I - 1,\qquad b = \vartheta (N - 2K) / N / \mathrm{scale}

    with ``Q`` the neuron's ``quantize_8bit`` and ``a`` the learnable
    ``self_excitation`` clamped to [0, 1]. (lava-dl divides the bias by the
    weight scale, so it usually quantizes to 0.) Exported as ``kwta`` with
    ``weight_rec = Q(R)·scale`` and ``input_bias = Q(b)·scale`` per neuron.
    """

    def __init__(
        self,
        neuron_params: dict,
        in_neurons: int | Sequence[int],
        out_neurons: int,
        num_winners: int,
        self_excitation: float = 0.5,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        delay_shift: bool | None = None,
        requires_grad: bool = True,
        count_log: bool = False,
    ) -> None:
        self.persistent_state = bool((neuron_params or {}).get("persistent_state", False))
        super().__init__(neuron_params, in_neurons, out_neurons, weight_scale, weight_norm,
                         pre_hook_fx, False, delay_shift, None, count_log)  # fmt: skip
        if not 0 <= int(num_winners) <= int(out_neurons):
            raise ParameterError(
                f"{self.block_name}: num_winners = {num_winners} outside [0, {out_neurons}]"
            )
        self.num_neurons = int(out_neurons)
        self.num_winners = int(num_winners)
        self.requires_grad = bool(requires_grad)
        self.self_excitation = torch.nn.Parameter(
            torch.tensor([float(self_excitation)]), requires_grad=self.requires_grad
        )

    def _neuron_force(self) -> dict:
        return {"persistent_state": True}

    def clamp(self) -> None:
        """Clamp the self excitation to [0, 1]."""
        with torch.no_grad():
            self.self_excitation.data.clamp_(0, 1)

    def recurrent_weight(self) -> torch.Tensor:
        """Quantized ``R = (1 + a) I - 1``."""
        eye = torch.eye(self.num_neurons, device=self.self_excitation.device)
        return self.neuron.quantize_8bit((1 + self.self_excitation) * eye - 1)

    def recurrent_bias(self) -> torch.Tensor:
        """Quantized ``θ (N - 2K) / N / scale`` (lava-dl's formula)."""
        th = float(self.neuron.threshold)
        b = th * (self.num_neurons - 2 * self.num_winners) / self.num_neurons / self.neuron.w_scale
        return self.neuron.quantize_8bit(torch.tensor([b], device=self.self_excitation.device))

    def _neuron_forward(self, z: torch.Tensor) -> torch.Tensor:
        self.clamp()
        r = self.recurrent_weight().to(z.dtype)
        b = self.recurrent_bias().to(z.dtype)
        return self._loop(z, lambda s: F.linear(s, r) + b)

    def to_layer(self) -> hdf5.Layer:
        w = self._dense_matrix(self.synapse, "weight")
        with torch.no_grad():
            r = self.recurrent_weight().double().cpu().numpy() * self.neuron.w_scale
            b = self.recurrent_bias().double().cpu().numpy() * self.neuron.w_scale
        r = self._grid(r, "weight_rec")
        b = np.repeat(self._grid(b, "input_bias"), self.num_neurons)
        return hdf5.KWTALayer(
            self._need_shape(), w.reshape(w.shape[:2]), neuron=self._neuron_record(),
            weight_rec=r, input_bias=b,
        )  # fmt: skip


# ============================================================================ spatial


class _SpatialBlock(_SynapseBlock):
    """Conv / ConvT / Pool / Unpool: spatial shapes from ``input_shape`` or :meth:`init_shapes`."""

    in_channels: int | None  # None: any (pool/unpool)
    out_channels: int | None
    input_shape: tuple[int, int, int] | None

    def _setup_spatial(self, input_shape) -> None:
        self.input_shape = None
        if input_shape is not None:
            self.init_shapes(input_shape)

    #: output length along one axis: ``(size, kernel, stride, padding, dilation) -> int``
    _out_size = staticmethod(conv_output_size)

    def _out_hw(self, h: int, w: int) -> tuple[int, int]:
        """Output (H, W) of the synapse for an (h, w) input."""
        s = self.synapse
        kh, kw = s.kernel_size[:2]
        return (
            self._out_size(h, kh, s.stride[0], s.padding[0], s.dilation[0]),
            self._out_size(w, kw, s.stride[1], s.padding[1], s.dilation[1]),
        )

    def init_shapes(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        shp = tuple(int(s) for s in input_shape)
        if len(shp) == 2:
            if self.in_channels is None:
                raise ParameterError(
                    f"{self.block_name}: input_shape must be (C, H, W) for this block, got {shp}"
                )
            shp = (self.in_channels,) + shp
        if len(shp) != 3 or min(shp) < 1:
            raise ParameterError(
                f"{self.block_name}: input_shape must be (H, W) or (C, H, W), got "
                f"{tuple(input_shape)}"
            )
        if self.in_channels is not None and shp[0] != self.in_channels:
            raise ParameterError(
                f"{self.block_name}: expected {self.in_channels} input channels, found input "
                f"shape {shp}"
            )
        h, w = self._out_hw(shp[1], shp[2])
        if h < 1 or w < 1:
            raise ParameterError(
                f"{self.block_name}: input shape {shp} gives an empty output ({h}, {w})"
            )
        c = self.out_channels if self.out_channels is not None else shp[0]
        if self.input_shape is not None and self.input_shape != shp:
            raise ParameterError(
                f"{self.block_name}: input shape already set to {self.input_shape}, got {shp}"
            )
        self.input_shape = shp
        if self.neuron.shape is None:
            self.neuron.init_shape((c, h, w))
        if self._want_delay and self.delay is None:
            self._make_delay(c)
        return (c, h, w)

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        self._check_tensor(x)
        c = "C" if self.in_channels is None else str(self.in_channels)
        if x.dim() != 5 or (self.in_channels is not None and x.shape[1] != self.in_channels):
            raise self._shape_error(f"(N, {c}, H, W, T)", x)
        if self.input_shape is None:
            if not getattr(self.neuron, "shared_param", True):
                raise ParameterError(
                    f"{self.block_name}: the input shape is unknown; with shared_param=False pass "
                    f"input_shape=(H, W) or call init_shapes((C, H, W)) before the first forward"
                )
            self.init_shapes(x.shape[1:4])
        elif tuple(x.shape[1:4]) != self.input_shape:
            raise self._shape_error(f"(N, {', '.join(map(str, self.input_shape))}, T)", x)
        return x

    def _syn_geometry(self) -> dict:
        s = self.synapse
        return {
            "stride": tuple(s.stride[:2]), "padding": tuple(s.padding[:2]),
            "dilation": tuple(s.dilation[:2]),
        }  # fmt: skip


class AbstractConv(_SpatialBlock):
    """Convolution block (2-D, time kernel 1); lava-dl arguments plus ``input_shape``.

    Parameters
    ----------
    neuron_params, in_features, out_features, kernel_size, stride, padding, dilation,
    groups, weight_scale, weight_norm, pre_hook_fx, delay, delay_shift, count_log
        As lava-dl (delay: one learnable delay per output channel).
    input_shape
        Keyword only: ``(H, W)`` or ``(C, H, W)`` of the input (else :meth:`init_shapes`).
    """

    _synapse_class = _ConvSyn

    def __init__(
        self,
        neuron_params: dict,
        in_features: int,
        out_features: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        delay: bool = False,
        delay_shift: bool | None = None,
        count_log: bool = False,
        *,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self._init_common(neuron_params, delay, delay_shift, count_log)
        self.synapse = self._synapse_class(
            in_features, out_features, kernel_size, stride, padding, dilation, groups,
            weight_scale, weight_norm, self._hook(pre_hook_fx), exact=self._exact(),
        )  # fmt: skip
        self.in_channels, self.out_channels = int(in_features), int(out_features)
        self._make_delay(self.out_channels)
        norm = getattr(self.neuron, "norm", None)
        if norm is not None:
            norm.init_features(self.out_channels)
        self._setup_spatial(input_shape)

    _layer_class = hdf5.ConvLayer

    def to_layer(self) -> hdf5.ConvLayer:
        w = self._mantissa(self.synapse, "weight")
        return self._layer_class(
            self._need_shape(), w[..., 0], groups=self.synapse.groups,
            neuron=self._neuron_record(), bias=self._bias_record(), delay=self._delay_record(),
            **self._syn_geometry(),
        )  # fmt: skip


class AbstractConvT(AbstractConv):
    """Transposed convolution block (PyTorch ``conv_transpose2d`` semantics, output_padding 0).

    Exported as ``convT`` with weight ``(in, out/groups, kH, kW)``.
    """

    _synapse_class = _ConvTSyn

    _out_size = staticmethod(conv_transpose_output_size)

    _layer_class = hdf5.ConvTransposeLayer


class AbstractPool(_SpatialBlock):
    """Sum-pooling block: per-channel cross-correlation with a fixed ``(1, 1, kH, kW)`` kernel.

    The kernel value is ``weight_scale`` quantized by ``pre_hook_fx``; a
    ``norm`` in ``neuron_params`` is dropped (pool blocks have no bias).

    Parameters
    ----------
    neuron_params, kernel_size, stride, padding, dilation, weight_scale, weight_norm,
    pre_hook_fx, delay, delay_shift, count_log
        As lava-dl (``stride`` defaults to ``kernel_size``).
    input_shape
        Keyword only: ``(C, H, W)`` of the input (else :meth:`init_shapes`).
    """

    _synapse_class = _PoolSyn
    _type = "pool"

    def __init__(
        self,
        neuron_params: dict,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        delay: bool = False,
        delay_shift: bool | None = None,
        count_log: bool = False,
        *,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self._init_common(neuron_params, delay, delay_shift, count_log, drop_norm=True)
        self.synapse = self._synapse_class(
            kernel_size, stride, padding, dilation, weight_scale, weight_norm,
            self._hook(pre_hook_fx), exact=self._exact(),
        )  # fmt: skip
        self.in_channels = self.out_channels = None
        if delay and input_shape is None:
            raise ParameterError(
                f"{self.block_name}: delay=True needs the channel count at construction; pass "
                f"input_shape=(C, H, W)"
            )
        self._setup_spatial(input_shape)

    _layer_class = hdf5.PoolLayer

    def to_layer(self) -> hdf5.Layer:
        w = self._mantissa(self.synapse, "weight")
        return self._layer_class(
            self._need_shape(), w[..., 0], kernel_size=tuple(self.synapse.kernel_size[:2]),
            neuron=self._neuron_record(), delay=self._delay_record(), **self._syn_geometry(),
        )  # fmt: skip


class AbstractUnpool(AbstractPool):
    """Sum-unpooling block: per-channel transposed convolution with a fixed kernel."""

    _synapse_class = _UnpoolSyn

    _out_size = staticmethod(conv_transpose_output_size)

    _layer_class = hdf5.UnpoolLayer


# ============================================================================ network


def _blocks(blocks: torch.nn.Module | Iterable[torch.nn.Module]) -> list[Block]:
    if isinstance(blocks, Block):
        items = [blocks]
    elif isinstance(blocks, torch.nn.Module) and hasattr(blocks, "blocks"):
        items = list(blocks.blocks)
    elif isinstance(blocks, (torch.nn.Sequential, torch.nn.ModuleList)):
        items = list(blocks)
    else:
        items = list(blocks)
    for i, b in enumerate(items):
        if not isinstance(b, Block):
            raise ParameterTypeError(
                f"block {i} is a {type(b).__name__}, not a loihi_slayer block; only "
                f"loihi_slayer.block.cuba / sigma_delta blocks can be exported"
            )
    return items


def init_shapes(blocks, input_shape: Sequence[int]) -> tuple[int, ...]:
    """Propagate ``input_shape`` (no batch, no time) through a sequence of blocks.

    The one explicit shape call to make before training (and before wrapping the
    model in DistributedDataParallel). Returns the output shape.
    """
    shp = tuple(int(s) for s in input_shape)
    for b in _blocks(blocks):
        shp = tuple(b.init_shapes(shp))
    return shp


def network_record(blocks, simulation: hdf5.Simulation | None = None) -> hdf5.Network:
    """The :class:`~loihi_slayer.hdf5.Network` record of a sequence of blocks (blocks unchanged).

    Parameters
    ----------
    blocks
        ``torch.nn.Sequential``, ``ModuleList``, a module with a ``blocks``
        attribute (lava-dl's network convention) or any iterable of blocks.
    simulation
        Optional legacy ``simulation`` group.
    """
    layers = []
    items = _blocks(blocks)
    for i, b in enumerate(items):
        try:
            layer = b.to_layer()
        except LoihiSlayerError as exc:
            raise type(exc)(f"layer {i}: {exc}") from None
        if isinstance(layer, hdf5.TimeDecimationLayer):
            layer.latency = _decimation_latency(items[:i])
        layers.append(layer)
    return hdf5.Network(layers, simulation)


def _decimation_latency(before: list[Block]) -> int:
    """1 if the nearest block with a neuron before a decimation shifts its output by
    one step (``delay_shift``): its index n is then chip step n, one step earlier
    than an unshifted state, so the chip groups must start one step earlier."""
    for b in reversed(before):
        if isinstance(b, (AbstractFlatten, AbstractAverage, AbstractTimeDecimation)):
            continue
        return 1 if getattr(b, "delay_shift", False) else 0
    return 0


def export_network(blocks, path: str | os.PathLike[str],
                   simulation: hdf5.Simulation | None = None) -> hdf5.Network:  # fmt: skip
    """Export a whole sequence of blocks to a netx ``.net`` file, atomically.

    The records are built and validated first; the file is written to a
    temporary file beside ``path`` and renamed into place, so an error leaves
    no partial file (and an existing file untouched). The model is not changed.

    Returns
    -------
    Network
        The exported record.

    Raises
    ------
    ParameterError
        A parameter is outside the hardware range (message names the layer,
        block and field).
    OSError
        The destination cannot be written (message names the path).
    """
    net = network_record(blocks, simulation)
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(directory):
        raise FileNotFoundError(2, f"cannot export network: directory {directory!r} does not exist",
                                target)  # fmt: skip
    if os.path.isdir(target):
        raise IsADirectoryError(21, "cannot export network: the path is a directory", target)
    try:
        hdf5.save_network(net, target)
    except PermissionError as exc:
        raise PermissionError(exc.errno, f"cannot export network: {directory!r} is not writable",
                              target) from None  # fmt: skip
    log.info("exported %d layers to %s", len(net.layers), target)
    if log.isEnabledFor(logging.INFO):  # the chip resource report, only when someone listens
        from ..resources import resource_report

        log.info("chip resources:\n%s", resource_report(net).table())
    return net


# ====================================================================== train-to-chip gap


@dataclass
class GapReport:
    """Result of :func:`compare_with_emulator`.

    Attributes
    ----------
    mismatches
        Layer index -> number of differing entries (spikes, payloads or states).
    compared
        Layer index -> number of compared entries.
    skipped
        Layer index -> why the layer was not compared.
    """

    mismatches: dict[int, int] = field(default_factory=dict)
    compared: dict[int, int] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every compared layer matches exactly (and something was compared)."""
        return bool(self.compared) and not any(self.mismatches.values())

    def summary(self) -> str:
        """One line per layer."""
        lines = []
        for i in sorted(set(self.compared) | set(self.skipped)):
            if i in self.compared:
                lines.append(
                    f"layer {i}: {self.mismatches.get(i, 0)} mismatches in "
                    f"{self.compared[i]} compared values"
                )
            else:
                lines.append(f"layer {i}: not compared ({self.skipped[i]})")
        return "\n".join(lines)


def _eval_outputs(items: list[Block], x: torch.Tensor) -> list[torch.Tensor]:
    mods = [m for b in items for m in b.modules()]
    flags = [m.training for m in mods]
    try:
        for m in mods:
            m.training = False
        outs = []
        with torch.no_grad():
            y = x
            for b in items:
                y = b(y)
                if isinstance(y, tuple):
                    y = y[0]
                outs.append(y.detach().to(torch.float64).cpu())
    finally:
        for m, f in zip(mods, flags, strict=True):
            m.training = f
    return outs


def _as_int(a: torch.Tensor | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    r = np.rint(arr)
    if not np.array_equal(r, arr):
        raise ParameterError(f"compare_with_emulator: {what} is not on the integer grid")
    return r.astype(np.int64)


def _shift_delay(pred: np.ndarray, valid: np.ndarray, shift_on: bool, d: np.ndarray | None):
    """Apply the block's one-step shift and per-channel delay to (C, ..., T) arrays."""
    steps = pred.shape[-1]
    if shift_on:
        pred = np.concatenate([np.zeros_like(pred[..., :1]), pred[..., :-1]], -1)
        valid = np.concatenate([np.ones_like(valid[..., :1]), valid[..., :-1]], -1)
    if d is not None:
        out_p, out_v = np.zeros_like(pred), np.ones_like(valid)
        for c in range(pred.shape[0]):
            k = int(d[c])
            if k < steps:
                out_p[c, ..., k:] = pred[c, ..., : steps - k]
                out_v[c, ..., k:] = valid[c, ..., : steps - k]
        pred, valid = out_p, out_v
    return pred, valid


def _aligned(emu: np.ndarray, a: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """emu (..., T_emu) columns m + a -> DL index m, with a validity mask."""
    pred = np.zeros(emu.shape[:-1] + (steps,), np.int64)
    valid = np.zeros(pred.shape, bool)
    n = max(0, min(steps, emu.shape[-1] - a))
    if a >= 0:
        pred[..., :n] = emu[..., a : a + n]
        valid[..., :n] = True
    else:  # DL index m < -a have no chip counterpart
        lo = -a
        n = max(0, min(steps, emu.shape[-1] + lo) - lo)
        pred[..., lo : lo + n] = emu[..., :n]
        valid[..., lo : lo + n] = True
    return pred, valid


def compare_with_emulator(
    blocks, x: torch.Tensor, network: hdf5.Network | str | os.PathLike | None = None,
    *, backend: str = "cpu",
) -> GapReport:  # fmt: skip
    """Run the training forward and the emulator and compare every layer, value for value.

    Alignment (spec §7.2/§7.4): each block's synaptic input is tracked with an
    offset ``a`` = (chip step of its input index ``n``) - ``n``. A neuron at
    training index ``m`` is emulator trace column ``m + a``; a block with
    ``delay_shift`` keeps ``a``, one without it adds 1; flatten/average keep
    it; a time decimation with exported ``latency`` L needs ``a == 1 - L`` (export
    sets L = 1 after a block with ``delay_shift``) and leaves ``a == 1`` on the
    decimated axis. The input is fed as ``x[..., 1:]``
    (``a = 0``) when the first block is a synapse and ``x[..., 0]`` is zero,
    else ``x`` (``a = 1``); an input block with a neuron gets its quantized,
    affine-transformed input injected directly. Leading chip steps (``a > 0``)
    are exact only for layers without bias. Values compared: CUBA spikes,
    sigma-delta payloads (×4096), Affine voltages (×4096), Output sigma (×2**18),
    average sums (mean × group) and decimation sums (mean × factor).

    Parameters
    ----------
    blocks
        The model (as for :func:`export_network`); it is run in eval mode
        without gradients and left as it was.
    x
        Training input ``(N, ...)``; every sample is emulated.
    network
        The exported network (record or file); default: built from ``blocks``.
    backend
        Emulator kernel backend.
    """
    from ..emulate import Emulator

    items = _blocks(blocks)
    if network is None:
        network = network_record(items)
    # a network starting with a spatial block has no input layer: give the emulator
    # the shape that init_shapes recorded (netx's input_shape argument)
    first_shape = (
        getattr(items[0], "input_shape", None) if isinstance(items[0], _SpatialBlock) else None
    )
    emu = Emulator(network, backend=backend, input_shape=first_shape)
    outs = _eval_outputs(items, x)
    report = GapReport()
    first = items[0]
    sd = first.family == "sigma_delta"
    xin = x.detach().to(torch.float64).cpu()
    if isinstance(first, AbstractInput) and first.neuron is not None:
        with torch.no_grad():
            data = first._transform(x.detach()).to(torch.float64).cpu() * first.neuron.w_scale
        # the input neuron rounds its input to the integer sum (half to even), as here
        data, a0, graded = np.rint(data.numpy()).astype(np.int64), 0, False
    else:
        graded = sd
        data = _as_int(xin * (4096 if sd else 1), "the input")
        if isinstance(first, AbstractInput):
            a0 = 0 if first.delay_shift else 1
        elif not np.any(data[..., 0]):
            data = np.concatenate([data[..., 1:], np.zeros_like(data[..., :1])], -1)
            a0 = 0
        else:
            a0 = 1
    steps = data.shape[-1]
    record = {
        i: ("s", "v") if isinstance(b, AbstractAffine) else ("s",)
        for i, b in enumerate(items)
        if not isinstance(b, AbstractFlatten)
        and not (isinstance(b, AbstractInput) and b.neuron is None)
    }
    for n in range(data.shape[0]):
        tr = emu.run(data[n], steps, graded_input=graded, record=record)
        a, t_len = a0, steps
        for i, b in enumerate(items):
            y = outs[i][n].numpy()
            lt = tr.layers.get(i)
            if isinstance(b, AbstractInput):
                if b.neuron is not None:
                    scale = 4096 if sd else 1
                    pred, valid = _aligned(lt.data["s"].reshape(y.shape), 0, t_len)
                    pred, valid = _shift_delay(pred, valid, b.delay_shift, None)
                    _tally(report, i, y * scale, pred, valid)
                    a = 0 if b.delay_shift else 1
                continue
            if isinstance(b, AbstractFlatten):
                continue
            if isinstance(b, (AbstractAverage, AbstractTimeDecimation)):
                factor = (
                    math.prod(outs[i - 1][n].shape[:-1]) // b.num_outputs
                    if isinstance(b, AbstractAverage) else b.factor
                )  # fmt: skip
                if isinstance(b, AbstractTimeDecimation):
                    lat = getattr(emu.network.layers[i], "latency", 0)
                    if a != 1 - lat:
                        report.skipped[i] = (
                            f"decimation input offset is {a} but the exported layer has "
                            f"latency {lat}; the chip groups different steps"
                        )
                    t_len = y.shape[-1]
                    shift_a = 0
                else:
                    shift_a = a - 1
                if lt is None or "s" not in lt.data:
                    report.skipped.setdefault(i, "the emulator records no trace for this layer")
                    continue
                if i in report.skipped:
                    continue
                pred, valid = _aligned(lt.data["s"].reshape(y.shape[:-1] + (-1,)), shift_a, t_len)
                payload = 4096 if b.family == "sigma_delta" else 1
                got = y * factor * payload  # mean × group size (× payload scale): the sum
                r = np.rint(got)
                got = np.where(np.abs(got - r) < 1e-3, r, got)
                _tally(report, i, got, pred, valid)
                continue
            if lt is None:
                report.skipped[i] = "the emulator records no trace for this layer"
                continue
            if isinstance(b, AbstractAffine):
                var, scale = ("v", b.neuron.s_scale) if b.dynamics else ("s", None)
                if scale is None:
                    report.skipped[i] = "Affine(dynamics=False) has no chip equivalent"
                    continue
                pred, valid = _aligned(lt.data[var].reshape(y.shape), a, t_len)
                _tally(report, i, y * scale, pred, valid)
            elif isinstance(b, AbstractOutput):
                pred, valid = _aligned(lt.data["s"].reshape(y.shape), a, t_len)
                _tally(report, i, y * (1 << 18), pred, valid)
            else:
                scale = 4096 if b.family == "sigma_delta" else 1
                pred, valid = _aligned(lt.data["s"].reshape(y.shape), a, t_len)
                d = None if b.delay is None else b.delay.integer_delay.cpu().numpy().reshape(-1)
                pred, valid = _shift_delay(pred, valid, b.delay_shift, d)
                _tally(report, i, y * scale, pred, valid)
                a = a if b.delay_shift else a + 1
    return report


def _tally(report: GapReport, i: int, got: np.ndarray, pred: np.ndarray, valid: np.ndarray):
    diff = (got != pred) & valid
    report.mismatches[i] = report.mismatches.get(i, 0) + int(diff.sum())
    report.compared[i] = report.compared.get(i, 0) + int(valid.sum())

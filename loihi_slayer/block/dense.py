"""Dense-type blocks: the synapse-block base, Dense, Affine, Output."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .. import hdf5
from ..axon import MAX_DELAY, Delay
from ..dendrite import Sigma
from ..errors import ParameterError
from ..synapse import Dense as _DenseSyn
from ._fused_dense import fused_dense
from .core import (
    AFFINE_V_TH_MANT,
    Block,
    no_global_hooks,
)

# ============================================================================== dense


class _SynapseBlock(Block):
    """Blocks with one synapse and one neuron."""

    synapse: torch.nn.Module

    def _init_common(
        self, neuron_params, delay, delay_shift, count_log, drop_norm=False, **force
    ) -> None:
        self.count_log = bool(count_log)
        self.delay_shift = self._resolve_delay_shift(delay_shift)
        self.neuron = self._make_neuron(neuron_params, drop_norm=drop_norm, **force)
        self._want_delay = bool(delay)
        self.delay = None

    def _hook(self, pre_hook_fx):
        return self.neuron.quantize_8bit if pre_hook_fx is None else pre_hook_fx

    def _exact(self) -> bool:
        return self.exact_synapse

    def _make_delay(self, channels: int) -> None:
        if self._want_delay:
            self.delay = Delay(max_delay=MAX_DELAY, shape=(channels,))

    def _neuron_forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.neuron(z)

    def _shifted_neuron_forward(self, z: torch.Tensor) -> torch.Tensor | None:
        """The neuron's spikes already shifted one step (``neuron.shifted_forward``, the
        shift inside its kernels), or None where the neuron family has no such path, this
        block runs its neuron another way, or module hooks would be skipped."""
        fused = getattr(self.neuron, "shifted_forward", None)
        if (
            fused is None
            or not self.delay_shift
            or type(self)._neuron_forward is not _SynapseBlock._neuron_forward
            or not no_global_hooks()
        ):
            return None
        return fused(z)

    def forward(self, x: torch.Tensor):
        """synapse -> neuron -> shift -> delay; the shift inside the neuron's kernels where
        it has them (:meth:`_shifted_neuron_forward`)."""
        z = self.synapse(self._check_input(x))
        s = self._shifted_neuron_forward(z)
        if s is None:
            return self._log(self._post(self._neuron_forward(z)))
        return self._log(s if self.delay is None else self.delay(s))


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
        self.synapse = self._synapse_class(
            in_neurons,
            out_neurons,
            weight_scale,
            weight_norm,
            self._hook(pre_hook_fx),
            mask,
            exact=self._exact(),
        )
        if self.time_major_synapse:  # a complex synapse passes it to both parts
            self.synapse.time_major_output = True
        self.neuron.init_shape((int(out_neurons),))
        self._make_delay(int(out_neurons))

    #: whether the synapse's output is a view of time-major memory (set by blocks whose
    #: neuron steps through time itself: the recurrent ones)
    time_major_synapse = False

    #: the synapse module (a complex one for the resonator families)
    _synapse_class = _DenseSyn

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

    def forward(self, x: torch.Tensor):
        """synapse -> neuron -> shift -> delay; a CUBA block with weight norm and its
        neuron's quantizer as one autograd node where nothing could tell the difference
        (:mod:`._fused_dense`: the same kernels, the same bits, less Python a step)."""
        s = fused_dense(self, x)
        if s is None:
            return super().forward(x)
        return self._log(s if self.delay is None else self.delay(s))

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
            self._need_shape(),
            w,
            neuron=self._neuron_record(),
            bias=self._bias_record(),
            delay=self._delay_record(),
        )


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
        super().__init__(
            neuron_params,
            in_neurons,
            out_neurons,
            weight_scale,
            weight_norm,
            pre_hook_fx,
            False,
            False,
            mask,
            count_log,
        )
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
        super().__init__(
            neuron_params,
            in_neurons,
            out_neurons,
            weight_scale,
            weight_norm,
            None,
            False,
            False,
            None,
            count_log,
        )
        self.sigma = Sigma()

    def forward(self, x: torch.Tensor):
        """Accumulated synaptic input."""
        y = self.sigma(self.synapse(self._check_input(x)))
        return self._log(y)

    def to_layer(self) -> hdf5.DenseLayer:
        w = self._mantissa(self.synapse, "weight")
        return hdf5.DenseLayer(
            self._need_shape(),
            w.reshape(w.shape[0], w.shape[1]),
            neuron=self._neuron_record(sigma_output=True),
        )

"""Blocks with a recurrent synapse: Recurrent and KWTA.

**Time loop.** The neuron sees, at each step, its feed-forward input plus the
feedback of its own spikes of the previous step, its state carried from step to
step without gradient (the gradient flows back in time through the spike
feedback only). The reference implementation calls the neuron once per step
(:meth:`_StepLoop._step_loop`). Where a fused kernel is registered for the
neuron class (:data:`FUSED_LOOPS`: CUBA and ALIF, :mod:`loihi_slayer.autograd.recurrent`)
and applies, the whole loop, recurrent matmul included, runs in one compiled
call, forward and backward, with the same spikes bit for bit and the same
gradients; otherwise (other neuron families, CUDA tensors, graded spikes,
dropout, batch-statistics norm, weights off the ``1/scale`` grid, ``torch.compile``
tracing) the step-by-step loop runs. :data:`FUSED` ``= False`` forces the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import hdf5
from ..errors import ParameterError
from ..neuron import alif as _alif_neuron
from ..neuron import cuba as _cuba_neuron
from ..synapse import Dense as _DenseSyn
from .dense import AbstractDense

# ========================================================================== recurrent


#: run the time loop of Recurrent/KWTA blocks in one fused kernel where one is
#: registered and applies (False: always the step-by-step loop, e.g. to time it)
FUSED = True


def _fused(name: str) -> Callable:
    """The fused loop ``autograd.recurrent.<name>`` behind the checks every family shares;
    None where it would not reproduce the step-by-step loop."""

    def run(neuron, z: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, kwta: bool):
        from ..autograd import recurrent as fused

        if not fused.supports(neuron, z) or w.dtype != z.dtype:
            return None
        grid = fused.feedback_grid(w, b, neuron.w_scale)
        if grid is None:
            return None
        return getattr(fused, name)(neuron, z, w, b, grid, kwta)

    return run


#: fused time loops by neuron class (exact class: a subclass may change the dynamics);
#: each ``run(neuron, z, W, b, kwta)`` returns the spikes, or None to fall back to the
#: step-by-step loop (``kwta``: ``W`` is KWTA's ``o + (d - o) I``)
FUSED_LOOPS: dict[type, Callable] = {
    _cuba_neuron.Neuron: _fused("cuba_recurrent"),
    _alif_neuron.Neuron: _fused("alif_recurrent"),
}


class _StepLoop:
    """Mixin: run the neuron with feedback of its own spikes, fused or one step at a time."""

    persistent_state: bool
    #: the time loop reads time-major input: the feed-forward product makes it so (no
    #: transpose; applied by the dense block's constructor)
    time_major_synapse = True

    def _loop(
        self,
        z: torch.Tensor,
        feedback: Callable[[torch.Tensor], torch.Tensor],
        weights: Callable[[], tuple[torch.Tensor, torch.Tensor | None]],
        kwta: bool = False,
    ) -> torch.Tensor:
        r"""Spikes of :math:`s[t] = f(z[t] + \mathrm{feedback}(s[t-1]))`, :math:`s[-1] = 0`.

        ``weights()`` gives the feedback as ``(W, b)`` (``feedback(s) = W s + b``) for
        a fused loop registered in :data:`FUSED_LOOPS` for the neuron class; ``kwta``:
        ``W`` is KWTA's ``o + (d - o) I`` (its gradient then needs only its diagonal and
        off-diagonal sums, see :func:`loihi_slayer.autograd.recurrent.feedback_weight_grad`).
        """
        if FUSED and not torch.compiler.is_compiling():  # traced: the loop unrolls
            run = FUSED_LOOPS.get(type(self.neuron))
            if run is not None:
                if not self.persistent_state:
                    self.neuron.reset_state()
                w, b = weights()
                s = run(self.neuron, z, w, b, kwta)
                if s is not None:
                    return s
        return self._step_loop(z, feedback)

    def _step_loop(self, z: torch.Tensor, feedback: Callable[[torch.Tensor], torch.Tensor]):
        """The reference: one neuron call per time step."""
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

    The neuron's state is carried between steps (reset at every call unless
    ``neuron_params['persistent_state']``); the time loop is fused where it can
    be (see the module docstring).
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
        super().__init__(
            neuron_params,
            in_neurons,
            out_neurons,
            weight_scale,
            weight_norm,
            pre_hook_fx,
            delay,
            delay_shift,
            None,
            count_log,
        )
        self.recurrent_synapse = _DenseSyn(
            out_neurons,
            out_neurons,
            weight_scale,
            weight_norm,
            self._hook(pre_hook_fx),
            exact=self._exact(),
        )
        self.recurrent_synapse.weight.requires_grad_(bool(requires_grad))

    @property
    def input_synapse(self) -> torch.nn.Module:
        """lava-dl name of the feed-forward synapse."""
        return self.synapse

    def _neuron_force(self) -> dict:
        return {"persistent_state": True}

    def _neuron_forward(self, z: torch.Tensor) -> torch.Tensor:
        n = z.shape[1]
        syn = self.recurrent_synapse
        fb_dtype = torch.float64 if syn.exact else z.dtype  # the dtype the synapse returns
        return self._loop(
            z,
            lambda s: syn(s.reshape(s.shape[0], n, 1))[..., 0],
            lambda: (syn.pre_hook_weight.reshape(n, n).to(fb_dtype), None),
        )

    def to_layer(self) -> hdf5.DenseRecurrentLayer:
        w = self._dense_matrix(self.synapse, "weight")
        r = self._dense_matrix(self.recurrent_synapse, "weight_rec")
        return hdf5.DenseRecurrentLayer(
            self._need_shape(),
            w.reshape(w.shape[:2]),
            neuron=self._neuron_record(),
            bias=self._bias_record(),
            delay=self._delay_record(),
            weight_rec=r.reshape(r.shape[:2]),
        )


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
        super().__init__(
            neuron_params,
            in_neurons,
            out_neurons,
            weight_scale,
            weight_norm,
            pre_hook_fx,
            False,
            delay_shift,
            None,
            count_log,
        )
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
        return self._loop(z, lambda s: F.linear(s, r) + b, lambda: (r, b), kwta=True)

    def to_layer(self) -> hdf5.Layer:
        w = self._dense_matrix(self.synapse, "weight")
        with torch.no_grad():
            r = self.recurrent_weight().double().cpu().numpy() * self.neuron.w_scale
            b = self.recurrent_bias().double().cpu().numpy() * self.neuron.w_scale
        r = self._grid(r, "weight_rec")
        b = np.repeat(self._grid(b, "input_bias"), self.num_neurons)
        return hdf5.KWTALayer(
            self._need_shape(),
            w.reshape(w.shape[:2]),
            neuron=self._neuron_record(),
            weight_rec=r,
            input_bias=b,
        )

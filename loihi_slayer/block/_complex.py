r"""Blocks with a complex synapse: the shared part of the resonator block modules
(:mod:`.rf`, :mod:`.rf_iz`, :mod:`.adrf`, :mod:`.adrf_iz`).

A resonator neuron takes the pair :math:`(W_{re} s, W_{im} s)` of a
:mod:`loihi_slayer.synapse.complex` synapse; these classes put that synapse
into the generic blocks of :mod:`loihi_slayer.block.base` (a family module adds
``family`` and ``neuron_class``, as :mod:`loihi_slayer.block.cuba` does).

**Export.** A block with a complex synapse is written as lava-dl writes it:
``Dense``, ``Conv``, ``ConvT``, ``Pool`` and ``Unpool`` as their real-valued
records (type ``dense``, ``conv``, ``convT``, ``pool``, ``unpool``; the same
geometry and neuron fields) with the group ``weight/real`` and ``weight/imag``
in place of ``weight``, each holding the 8-bit-grid mantissas the forward uses
(no bias). The emulator computes :math:`(W_{re} * s, W_{im} * s)` by running the
layer's real synapse with each part. The input block with a neuron (its real
input drives ``re``) is written as usual. ``Recurrent``, ``KWTA`` and ``Affine``
are refused at export with an :class:`~loihi_slayer.errors.UnsupportedLayerError`
naming the block: lava-dl raises on a complex recurrent layer, writes nothing
for KWTA, and no model runs complex feedback. A graded-spike resonator is
refused by the generic neuron record (the chip models emit binary spikes).

**Recurrent and KWTA.** The feedback of the last step's spikes enters both
parts: through the complex recurrent synapse (``Recurrent``) or, for ``KWTA``,
the same real lateral weights and bias added to the real and the imaginary
input (lava-dl's KWTA has no complex form; this is our choice).

The time loop runs fused (:mod:`loihi_slayer.autograd.recurrent_complex`, one
compiled call with the feedback inside, bit-exact with the step-by-step loop)
where :data:`FUSED_LOOPS` has the neuron class and the conditions of
:mod:`loihi_slayer.block.recurrent` hold (``block.recurrent.FUSED`` switches both).

**Affine** (``rf``, ``rf_iz``): returns the pair ``(real, imag)`` of the neuron
state (``dynamics=True``) or of the synapse (``dynamics=False``); the neuron's
threshold is set to the largest ``vThMant`` the model accepts (131071), which
the saturated phase state cannot cross.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .. import hdf5
from ..errors import UnsupportedLayerError
from ..fixed.params import VTH_MANT_MAX
from ..neuron import adrf, adrf_iz, rf, rf_iz
from ..synapse import complex as complex_synapse
from . import base
from . import recurrent as _recurrent


class _Complex:
    """Export checks shared by the complex blocks."""

    #: why the block cannot be exported (blocks that can override ``to_layer``)
    _not_exportable = "netx has no record for it"

    def _refuse(self, why: str):
        return UnsupportedLayerError(f"{self.block_name}: cannot be exported: {why}")

    def to_layer(self) -> hdf5.Layer:
        raise self._refuse(self._not_exportable)


class Input(base.AbstractInput):
    """Input block; a resonator neuron gets the (affine-transformed) input as its real part."""


class Dense(_Complex, base.AbstractDense):
    """Dense block with a complex synapse; exported as ``dense`` with ``weight/real``/``imag``."""

    _synapse_class = complex_synapse.Dense

    def to_layer(self) -> hdf5.DenseLayer:
        re = self._dense_matrix(self.synapse.real, "weight/real")
        im = self._dense_matrix(self.synapse.imag, "weight/imag")
        return hdf5.DenseLayer(
            self._need_shape(),
            re,
            neuron=self._neuron_record(),
            delay=self._delay_record(),
            weight_imag=im,
        )


class Affine(_Complex, base.AbstractAffine):
    """Affine block with a complex synapse: returns ``(real, imag)`` (see the module docstring)."""

    _synapse_class = complex_synapse.Dense
    _not_exportable = (
        "its output is the resonator state, which netx cannot express (no 'never fire' "
        "threshold: vThMant is 17 bits)"
    )

    def __init__(
        self,
        neuron_params,
        in_neurons,
        out_neurons,
        weight_scale=1,
        weight_norm=False,
        pre_hook_fx=None,
        dynamics=True,
        mask=None,
        count_log=False,
    ) -> None:
        self.dynamics = bool(dynamics)
        base.AbstractDense.__init__(
            self,
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
            self.neuron._threshold = VTH_MANT_MAX / self.neuron.w_scale

    def _neuron_forward(self, z):
        if not self.dynamics:
            return z
        return tuple(self.neuron.dynamics(z)[:2])


class Recurrent(_Complex, base.AbstractRecurrent):
    """Recurrent block with complex input and recurrent synapses (training only)."""

    _synapse_class = complex_synapse.Dense
    _not_exportable = (
        "a complex recurrent synapse has no netx record (lava-dl raises on it) and the emulator "
        "runs no complex feedback"
    )

    def __init__(
        self,
        neuron_params,
        in_neurons,
        out_neurons,
        weight_scale=1,
        weight_norm=False,
        pre_hook_fx=None,
        requires_grad=True,
        delay=False,
        delay_shift=None,
        count_log=False,
    ) -> None:
        super().__init__(
            neuron_params,
            in_neurons,
            out_neurons,
            weight_scale,
            weight_norm,
            pre_hook_fx,
            requires_grad,
            delay,
            delay_shift,
            count_log,
        )
        rec = complex_synapse.Dense(
            out_neurons,
            out_neurons,
            weight_scale,
            weight_norm,
            self._hook(pre_hook_fx),
            exact=self._exact(),
        )
        for part in (rec.real, rec.imag):
            part.weight.requires_grad_(bool(requires_grad))
        self.recurrent_synapse = rec

    def _neuron_forward(self, z):
        n = z[0].shape[1]
        rec = self.recurrent_synapse
        fb_dtype = torch.float64 if rec.exact else z[0].dtype  # the dtype the synapse returns

        def weights():
            return tuple(p.pre_hook_weight.reshape(n, n).to(fb_dtype) for p in (rec.real, rec.imag))

        return _complex_loop(self, z, lambda s: rec(s.reshape(-1, n, 1)), weights)


class KWTA(_Complex, base.AbstractKWTA):
    """k-winners-take-all with a complex input synapse (lateral feedback into both parts;
    training only)."""

    _synapse_class = complex_synapse.Dense
    _not_exportable = "lava-dl writes no KWTA record and the emulator runs no complex feedback"

    def _neuron_forward(self, z):
        self.clamp()
        r = self.recurrent_weight().to(z[0].dtype)
        b = self.recurrent_bias().to(z[0].dtype)

        def feedback(s):
            f = (F.linear(s, r) + b).unsqueeze(-1)
            return f, f

        return _complex_loop(self, z, feedback, lambda: (r, r), b, kwta=True)


def _fused_resonator(neuron, z, w, b, kwta=False):
    """The fused loop of :mod:`loihi_slayer.autograd.recurrent_complex` behind the checks of
    :mod:`loihi_slayer.autograd.recurrent`; None where it would not reproduce the step loop."""
    from ..autograd import recurrent as fused
    from ..autograd.recurrent_complex import resonator_recurrent

    dtype = z[0].dtype
    if not fused.supports(neuron, z[0]) or any(t.dtype != dtype for t in (z[1], *w)):
        return None
    grids = tuple(fused.feedback_grid(part, b, neuron.w_scale) for part in w)
    if any(g is None for g in grids):
        return None
    return resonator_recurrent(neuron, z, w, b, grids, kwta)


#: fused time loops by neuron class (exact class: a subclass may change the dynamics);
#: ``run(neuron, (z_re, z_im), (W_re, W_im), b, kwta)`` returns the spikes or None (step
#: loop; ``kwta``: the weights are KWTA's ``o + (d - o) I``)
FUSED_LOOPS: dict[type, Callable] = {
    cls.Neuron: _fused_resonator for cls in (rf, rf_iz, adrf, adrf_iz)
}


def _complex_loop(block, z, feedback, weights, bias=None, kwta=False):
    """Spikes of ``neuron((re[t] + f_re, im[t] + f_im))`` with ``f = feedback(s[t-1])``: fused
    where it can be (``weights()`` gives the feedback ``(W_re, W_im)``, ``bias`` its constant,
    ``kwta``: KWTA's ``o + (d - o) I``), else one step at a time.

    The neuron carries its state between steps (reset at each call unless persistent).
    """
    neuron = block.neuron
    if not block.persistent_state:
        neuron.reset_state()
    if _recurrent.FUSED and not torch.compiler.is_compiling():
        run = FUSED_LOOPS.get(type(neuron))
        if run is not None:
            s = run(neuron, z, weights(), bias, kwta)
            if s is not None:
                return s
    re, im = z
    spike = re.new_zeros(re.shape[:-1])
    outs = []
    for t in range(re.shape[-1]):
        f_re, f_im = feedback(spike)
        spike = neuron((re[..., t : t + 1] + f_re, im[..., t : t + 1] + f_im))[..., 0]
        outs.append(spike)
    return torch.stack(outs, dim=-1)


class _Spatial:
    """Conv, ConvT, Pool and Unpool with a complex synapse: exported by the real block's
    ``to_layer``, ``weight`` holding the real and ``weight_imag`` the imaginary part."""

    def _layer_weights(self) -> dict[str, np.ndarray]:
        syn = self.synapse
        return {
            "weight": self._mantissa(syn.real, "weight/real")[..., 0],
            "weight_imag": self._mantissa(syn.imag, "weight/imag")[..., 0],
        }


class Conv(_Spatial, base.AbstractConv):
    """Convolution block with a complex synapse; exported as ``conv`` with
    ``weight/real``/``imag``."""

    _synapse_class = complex_synapse.Conv


class ConvT(_Spatial, base.AbstractConvT):
    """Transposed convolution block with a complex synapse; exported as ``convT`` with
    ``weight/real``/``imag``."""

    _synapse_class = complex_synapse.ConvTranspose


class Pool(_Spatial, base.AbstractPool):
    """Sum-pooling block with a complex synapse; exported as ``pool`` with
    ``weight/real``/``imag``."""

    _synapse_class = complex_synapse.Pool


class Unpool(_Spatial, base.AbstractUnpool):
    """Sum-unpooling block with a complex synapse; exported as ``unpool`` with
    ``weight/real``/``imag``."""

    _synapse_class = complex_synapse.Unpool

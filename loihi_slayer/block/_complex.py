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

**Affine** (``rf``, ``rf_iz``): returns the pair ``(real, imag)`` of the neuron
state (``dynamics=True``) or of the synapse (``dynamics=False``); the neuron's
threshold is set to the largest ``vThMant`` the model accepts (131071), which
the saturated phase state cannot cross.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import hdf5
from ..errors import UnsupportedLayerError
from ..fixed.params import VTH_MANT_MAX
from ..synapse import complex as complex_synapse
from . import base


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
            self._need_shape(), re, neuron=self._neuron_record(), delay=self._delay_record(),
            weight_imag=im,
        )  # fmt: skip


class Affine(_Complex, base.AbstractAffine):
    """Affine block with a complex synapse: returns ``(real, imag)`` (see the module docstring)."""

    _synapse_class = complex_synapse.Dense
    _not_exportable = (
        "its output is the resonator state, which netx cannot express (no 'never fire' "
        "threshold: vThMant is 17 bits)"
    )

    def __init__(self, neuron_params, in_neurons, out_neurons, weight_scale=1,
                 weight_norm=False, pre_hook_fx=None, dynamics=True, mask=None,
                 count_log=False) -> None:  # fmt: skip
        self.dynamics = bool(dynamics)
        base.AbstractDense.__init__(
            self, neuron_params, in_neurons, out_neurons, weight_scale, weight_norm,
            pre_hook_fx, False, False, mask, count_log,
        )  # fmt: skip
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

    def __init__(self, neuron_params, in_neurons, out_neurons, weight_scale=1,
                 weight_norm=False, pre_hook_fx=None, requires_grad=True, delay=False,
                 delay_shift=None, count_log=False) -> None:  # fmt: skip
        super().__init__(neuron_params, in_neurons, out_neurons, weight_scale, weight_norm,
                         pre_hook_fx, requires_grad, delay, delay_shift, count_log)  # fmt: skip
        rec = complex_synapse.Dense(
            out_neurons, out_neurons, weight_scale, weight_norm, self._hook(pre_hook_fx),
            exact=self._exact(),
        )  # fmt: skip
        for part in (rec.real, rec.imag):
            part.weight.requires_grad_(bool(requires_grad))
        self.recurrent_synapse = rec

    def _neuron_forward(self, z):
        n = z[0].shape[1]
        return _complex_loop(self, z, lambda s: self.recurrent_synapse(s.reshape(-1, n, 1)))


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

        return _complex_loop(self, z, feedback)


def _complex_loop(block, z, feedback):
    """One step at a time: ``neuron((re[t] + f_re, im[t] + f_im))`` with ``f = feedback(s[t-1])``.

    The neuron carries its state between steps (reset at each call unless persistent).
    """
    neuron = block.neuron
    if not block.persistent_state:
        neuron.reset_state()
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

r"""CUBA-LIF, Loihi's current-based leaky integrate-and-fire neuron (spec §2).

.. math::

    u[t] &= \operatorname{wrap}_{24}\big(\operatorname{rz}(u[t-1](4096-\mathrm{iDecay})/4096)
            + 2^{6}\operatorname{shift}(a[t], \mathrm{wgtExp})\big)\\
    v[t] &= \operatorname{sat}_{24}\big(\operatorname{rz}(v[t-1](4096-\mathrm{vDecay})/4096)
            + u[t] + \mathrm{bias}\big)\\
    s[t] &= v[t] > \mathrm{vThMant}\cdot 2^6,\quad v[t]\leftarrow 0 \text{ if } s[t]

The kernels are generated from :func:`loihi_slayer.fixed.dynamics.cuba_step`
(:mod:`loihi_slayer.fixed.codegen`), which steps 16 neurons per vectorised
lane loop; the step is written branch-free for that. The step takes the *effective*
threshold ``vThMant << 6`` and bias ``biasMant << biasExp``, which
:func:`loihi_slayer.fixed.cuba` derives from :class:`~loihi_slayer.fixed.CubaParams`
(the validated device parameters).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ParameterError
from ..fixed import api
from ..fixed.dynamics import cuba_step
from ..fixed.params import CUBA_RANGES, CubaParams
from ._context import LayerContext, per_channel
from .base import NeuronModel, Param

#: netx's default neuron of a dense layer without a neuron group never fires:
#: vThMant << 6 >= 2**23 lies above every saturated voltage
NEVER_FIRES_V_TH_MANT = 1 << 17


class _EffectiveParams:
    """The kernel's effective parameters seen through :class:`CubaParams`' interface."""

    def __init__(self, p):
        self._p = p
        self.v_th = p["v_th"]
        self.bias = p["bias"]

    def array(self, name: str):
        if name in ("bias_mant", "bias_exp"):  # bias is already effective
            return self._p["bias"] if name == "bias_mant" else 0
        return self._p[name]


def _reference(inputs, p, state):
    """:func:`loihi_slayer.fixed.reference.cuba` (the spec as code) on the kernel parameters."""
    from ..fixed import reference

    (a,) = inputs
    return reference.cuba(a, _EffectiveParams(p), state)


def _run(
    inputs, params: CubaParams, *, state=None, reset=None, record=("s",), backend="auto", out=None
):
    (a,) = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    return api.cuba(a, params, state=state, reset=reset, record=record, backend=backend, out=out)


def from_record(neuron: Any, ctx: LayerContext) -> CubaParams:
    """:class:`CubaParams` of a ``CubaNeuron`` record (None: netx's default integrator)."""
    from ..hdf5 import default_dense_neuron

    integrator = False
    if neuron is None:
        neuron, integrator = default_dense_neuron(), True
    elif np.all(np.asarray(neuron.v_th_mant) >= NEVER_FIRES_V_TH_MANT):
        # lava-dl's Affine writes 262143, netx's default neuron 131072: never fires
        integrator = True
    bias = 0 if ctx.bias is None else per_channel(ctx.bias, ctx.shape)
    try:
        return CubaParams(
            i_decay=per_channel(neuron.i_decay, ctx.shape),
            v_decay=per_channel(neuron.v_decay, ctx.shape),
            v_th_mant=1 if integrator else per_channel(neuron.v_th_mant, ctx.shape),
            ref_delay=neuron.ref_delay,
            bias_mant=bias,
            bias_exp=6,
            wgt_exp=neuron.wgt_exp,
            integrator_only=integrator,
        )
    except ParameterError as exc:
        raise ParameterError(f"{ctx.where}: {exc}") from None


#: the step's parameters: device decays, effective threshold and bias (an integrator
#: gets 2**23, above every saturated voltage), refractory delay, weight exponent
_KERNEL_PARAMS = (
    Param("i_decay", "iDecay", 0, CUBA_RANGES["i_decay"][1], default=4096),
    Param("v_decay", "vDecay", 0, CUBA_RANGES["v_decay"][1], default=4096),
    Param("v_th", "vThMant", 0, 1 << 23, default=64, doc="vThMant << 6"),
    Param("ref_delay", "refDelay", *CUBA_RANGES["ref_delay"], default=1),
    Param("bias", "bias", -(1 << 23), 1 << 23, default=0, doc="biasMant << biasExp"),
    Param("wgt_exp", "wgtExp", *CUBA_RANGES["wgt_exp"], default=0),
)

MODEL = NeuronModel(
    name="cuba",
    netx_types=("CUBA", "LOIHI"),
    params=_KERNEL_PARAMS,
    states=("u", "v", "rc"),
    inputs=("a",),
    traces=api.CUBA_TRACES,
    state_traces=("u", "v"),
    step=cuba_step,
    reference=_reference,
    runner=_run,
    from_record=from_record,
    doc="current-based leaky integrate-and-fire",
)

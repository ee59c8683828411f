r"""Sigma-delta neuron, lava-nc's legacy residue model (spec §4).

.. math::

    \sigma[t] &= \sigma[t-1] + x[t], \qquad
    a[t] = \max(\sigma[t] + \mathrm{bias}\,2^{E+S}, 0)\\
    \Delta[t] &= a[t] - a[t-1] + r[t-1], \qquad
    s[t] = \Delta[t]\,\big[|\Delta[t]| \ge \mathrm{vThMant}\,2^{E+S}\big]

One record type runs in three modes, chosen by the layer: an ``input`` layer
delta-encodes its input, a ``sigma_output`` neuron only accumulates, every other
layer is a full sigma-delta neuron. It runs on its own kernel
(:func:`loihi_slayer.fixed.sigma_delta`, over :func:`loihi_slayer.fixed.dynamics.sdnn_step`,
which takes the mode before the state, outside the generated-kernel convention).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..errors import ParameterError
from ..fixed import api
from ..fixed.params import SDNN_RANGES, SigmaDeltaParams
from ._context import LayerContext, per_channel
from .base import NeuronModel, Param

log = logging.getLogger(__name__)

#: netx's sigma-delta state exponent
STATE_EXP = 6


@dataclass(frozen=True)
class ModeParams:
    """Sigma-delta parameters with the mode the layer runs them in."""

    params: SigmaDeltaParams
    mode: str


def _run(
    inputs, params: ModeParams, *, state=None, reset=None, record=("s",), backend="auto", out=None
):
    (x,) = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    return api.sigma_delta(
        x,
        params.params,
        mode=params.mode,
        state=state,
        reset=reset,
        record=record,
        backend=backend,
        out=out,
    )


def from_record(neuron: Any, ctx: LayerContext) -> ModeParams:
    """:class:`ModeParams` of a ``SigmaDeltaNeuron`` record in its layer."""
    if neuron.activation not in (None, "relu"):
        log.warning(
            "%s: sigma-delta activation %r is run as ReLU (netx/lava-nc support ReLU only)",
            ctx.where,
            neuron.activation,
        )
    mode = "delta" if ctx.is_input else ("sigma" if neuron.sigma_output else "sigma_delta")
    vth = 0 if neuron.v_th_mant is None else per_channel(neuron.v_th_mant, ctx.shape)
    try:
        params = SigmaDeltaParams(
            v_th_mant=vth,
            bias=0 if ctx.bias is None else per_channel(ctx.bias, ctx.shape),
            spike_exp=ctx.spike_exp,
            state_exp=STATE_EXP,
            activation="relu",
        )
    except ParameterError as exc:
        raise ParameterError(f"{ctx.where}: {exc}") from None
    return ModeParams(params, mode)


_FIELDS = {"v_th_mant": "vThMant", "bias": "bias", "spike_exp": "spikeExp", "state_exp": "stateExp"}
_DEFAULTS = {"v_th_mant": 0, "bias": 0, "spike_exp": 6, "state_exp": STATE_EXP}

MODEL = NeuronModel(
    name="sigma_delta",
    netx_types=("SDNN",),
    params=tuple(
        Param(k, _FIELDS[k], lo, hi, default=_DEFAULTS[k]) for k, (lo, hi) in SDNN_RANGES.items()
    ),
    states=("sigma", "act", "residue", "error"),
    inputs=("a",),
    traces=api.SDNN_TRACES,
    step=None,  # sdnn_step takes the mode first: it runs on its own kernel, not a generated one
    reference=None,
    graded=True,
    runner=_run,
    from_record=from_record,
    doc="sigma-delta (graded spikes)",
)

"""Run any registered neuron model on integer synaptic input: :func:`run`.

The kernels come from the model's step function (:mod:`.codegen`); the
``'reference'`` backend runs the model's independent NumPy reference. All three
backends agree bit for bit (the property tests decide).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ParameterError, ParameterTypeError
from ._arrays import check_integer_array, host_view
from .api import _backend, _out_arrays, _record, _run_kernels, _segments, _shape
from .params import int_param

if TYPE_CHECKING:
    from ..models.base import ModelParams, NeuronModel

__all__ = ["run"]


def _model(model: NeuronModel | str) -> NeuronModel:
    if isinstance(model, str):
        from .. import models

        return models.get(model)
    return model


def _inputs(model: NeuronModel, x: Any) -> list[Any]:
    xs = list(x) if isinstance(x, (tuple, list)) else [x]
    if len(xs) != len(model.inputs):
        raise ParameterError(
            f"{model.name} takes {len(model.inputs)} input(s) {model.inputs}, got {len(xs)}"
        )
    for name, a in zip(model.inputs, xs, strict=True):
        check_integer_array(a, f"input {name!r}")
    shapes = {tuple(a.shape) for a in xs}
    if len(shapes) != 1:
        raise ParameterError(f"{model.name}: inputs {model.inputs} differ in shape: {shapes}")
    if not xs[0].shape or xs[0].shape[-1] < 0:
        raise ParameterError(f"{model.name}: inputs need a time axis, got shape {xs[0].shape}")
    return xs


def _state(
    model: NeuronModel,
    params: ModelParams,
    state: Mapping[str, Any] | None,
    lead: tuple[int, ...],
) -> np.ndarray:
    n = math.prod(lead)
    vec = params.vectors(lead)
    init = model.initial_state({p.name: vec[i] for i, p in enumerate(model.params)}, n)
    st = np.stack([init[k] for k in model.states]) if model.states else np.zeros((0, n), np.int64)
    if state is None:
        return np.ascontiguousarray(st, dtype=np.int64)
    unknown = set(state) - set(model.states)
    if unknown:
        raise ParameterError(f"state: unknown entries {sorted(unknown)}; allowed: {model.states}")
    for i, k in enumerate(model.states):
        if k in state:
            arr = int_param(f"state[{k!r}]", host_view(state[k], k), *model.state_range)
            try:
                st[i] = np.broadcast_to(arr, lead).reshape(-1)
            except ValueError:
                raise ParameterError(
                    f"state[{k!r}] has shape {arr.shape}, expected the neuron shape {lead}"
                ) from None
    return np.ascontiguousarray(st, dtype=np.int64)


def run(
    model: NeuronModel | str,
    inputs: Any,
    params: ModelParams | Mapping[str, Any] | None = None,
    *,
    state: Mapping[str, Any] | None = None,
    reset: Any = None,
    record: Iterable[str] | str = ("s",),
    backend: str = "auto",
    out: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a neuron model's integer dynamics over time-last integer input.

    Parameters
    ----------
    model
        A :class:`~loihi_slayer.models.base.NeuronModel` or its registry name.
    inputs
        The ``(*neurons, T)`` integer synaptic sums (after the weight exponent; the
        model's step applies the ``<< 6``); a tuple ``(re, im)`` for complex-input
        models.
    params
        :class:`~loihi_slayer.models.base.ModelParams` or a dict of device
        parameters (scalars or arrays broadcastable to ``neurons``).
    state
        Initial state (``model.states``); the model's resting state when omitted.
        Not modified.
    reset
        Boolean ``(T,)`` mask: return the state to rest at the start of marked steps.
    record
        Names from ``model.traces``.
    backend
        ``'auto'``, ``'reference'``, ``'cpu'`` or ``'cuda'``.
    out
        Optional ``{trace: array}`` to write recorded traces into (``'cpu'``
        backend; exact shape and dtype, C-contiguous, writable).

    Returns
    -------
    traces, state
        Recorded ``(*neurons, T)`` arrays (int8 spikes, int64 otherwise; torch in,
        torch out) and the final int64 state (``(*neurons,)`` per name).
    """
    model = _model(model)
    if model.step is None or model.reference is None:
        raise ParameterTypeError(
            f"model {model.name!r} runs on its own kernel: use model.run(...) "
            f"(e.g. loihi_slayer.fixed.{model.name})"
        )
    if params is None:
        params = model.make_params()
    elif isinstance(params, Mapping):
        params = model.make_params(**params)
    elif getattr(params, "model", None) is not model:
        raise ParameterTypeError(
            f"params must be ModelParams of {model.name!r} or a dict, got {params!r}"
        )
    xs = _inputs(model, inputs)
    names = _record(record, model.traces)
    backend = _backend(backend, xs[0])
    lead, steps = _shape(xs[0])
    n = math.prod(lead)
    st = _state(model, params, state, lead)
    rest = partial(_state, model, params, None, lead)  # made only where a segment resets
    segments = _segments(reset, steps)
    dtypes = {k: (model.spike_dtype if k == "s" else np.int64) for k in model.traces}

    _out_arrays(out, names, lead + (steps,), dtypes, backend)  # refuse before work
    if backend == "reference":
        xr = [host_view(a, "input").astype(np.int64).reshape(n, steps) for a in xs]
        vec = params.vectors(lead)
        pv = {p.name: np.broadcast_to(vec[i], (n,)) for i, p in enumerate(model.params)}
        cur = {k: st[i].copy() for i, k in enumerate(model.states)}
        rest_st = rest()
        outs = {k: np.zeros((n, steps), dtypes[k]) for k in model.traces}
        for t0, t1, zero in segments:
            if zero:
                cur = {k: rest_st[i].copy() for i, k in enumerate(model.states)}
            tr, cur = model.reference([a[:, t0:t1] for a in xr], pv, cur)
            for k in model.traces:
                outs[k][:, t0:t1] = tr[k]
        traces = {k: outs[k].reshape(lead + (steps,)) for k in names}
        return traces, {k: np.asarray(v, np.int64).reshape(lead) for k, v in cur.items()}

    traces, final = _run_kernels(
        model, xs, params.vectors(lead), st, rest, segments, names, dtypes, backend, out=out
    )
    return traces, {k: final[i].reshape(lead) for i, k in enumerate(model.states)}

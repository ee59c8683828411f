r"""The declaration of a neuron model, and its validated integer parameter set.

A :class:`NeuronModel` states everything the rest of the library needs to know
about one Loihi neuron model, once:

- its integer **step** (plain scalar Python on int64, in the style of
  :mod:`loihi_slayer.fixed.dynamics`), from which the numba ``njit`` and
  ``numba.cuda`` kernels are generated (:mod:`loihi_slayer.fixed.codegen`);
- an independent, vectorised NumPy **reference** of the same dynamics (the spec
  as code), against which the kernels are tested bit for bit;
- its **parameters** with their hardware ranges and netx dataset names
  (:class:`Param`), validated by :class:`ModelParams`;
- its **state**, **input** and **trace** names;
- its netx neuron **type** strings.

The step convention, which the kernel generator relies on, is::

    step(*states, *inputs, *params) -> (*new_states, *trace_values)

with one trace value per name in ``traces`` that is not in ``state_traces``
(``'s'`` first: the spike, or the graded payload); a trace named in
``state_traces`` records that state's new value instead. Parameters reach the
step as the integers named in ``params``, in that order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import FormatError, ParameterError
from ..fixed.params import int_param

__all__ = ["ModelParams", "NeuronModel", "Param"]


@dataclass(frozen=True)
class Param:
    """One integer device parameter of a neuron model.

    Attributes
    ----------
    name
        Python name (``snake_case``), also the keyword of :class:`ModelParams`.
    field
        The netx HDF5 dataset name under ``neuron/`` (``camelCase``).
    lo, hi
        Inclusive hardware range.
    default
        Value when omitted; None makes the parameter required.
    doc
        One line for the documentation.
    optional
        A file may omit the field (it then takes ``default``); other fields are
        required in a netx neuron group.
    """

    name: str
    field: str
    lo: int
    hi: int
    default: int | None = None
    doc: str = ""
    optional: bool = False


@dataclass(frozen=True)
class NeuronModel:
    """Everything about one neuron model, declared once (see the module docstring).

    Attributes
    ----------
    name
        Registry key (``'alif'``, ``'rf'``, ...), also the ``block.<name>`` module name.
    netx_types
        The netx ``neuron/type`` strings read as this model; the first is written.
    params
        Device parameters in the order the step takes them.
    states
        State variables in the order the step takes and returns them.
    inputs
        Synaptic inputs per step: ``('a',)`` for a real synapse, ``('re', 'im')`` for
        a complex one.
    traces
        Recordable values; ``'s'`` first. Those not in ``state_traces`` are the
        values the step returns after the states, in this order.
    state_traces
        Traces that record a state after the step (no extra step output).
    step
        The scalar integer step (see the module docstring); None only for a model
        with its own ``runner`` whose step does not follow the convention.
    reference
        ``reference(inputs, params, state) -> (traces, state)``: the NumPy int64
        reference over ``(N, T)`` inputs, ``(N,)`` parameter and state vectors
        (models with their own ``runner`` keep theirs in :mod:`loihi_slayer.fixed.reference`).
    init_state
        ``init_state(params) -> {state: (N,) int64}`` from the ``(N,)`` parameter
        vectors; default all zeros (an adaptive threshold starts at its base value).
    graded
        True when ``'s'`` is a graded payload rather than a 0/1 spike.
    state_range
        Inclusive range accepted for user-given initial states.
    runner
        ``runner(inputs, params, *, state, reset, record, backend, out)`` for models
        with their own entry point and parameter class (CUBA: :func:`loihi_slayer.fixed.cuba`,
        sigma-delta: :func:`loihi_slayer.fixed.sigma_delta`, both on generated
        kernels too); None means the generated kernels through :func:`loihi_slayer.fixed.run`.
    from_record
        ``from_record(neuron, ctx) -> params`` building the runner's parameters
        from a :mod:`loihi_slayer.hdf5` neuron record (``ctx``: layer index, neuron
        shape, bias, whether it is an input layer); None means the generic mapping
        of the record's netx fields onto :attr:`params`.
    check
        ``check(values, where)``: cross-parameter validation after the range checks
        (``values``: name -> int64 array; ``where``: error-message prefix); raises
        :class:`~loihi_slayer.errors.ParameterError`. None when the ranges suffice.
    doc
        Short description for tables and errors.
    """

    name: str
    netx_types: tuple[str, ...]
    params: tuple[Param, ...]
    states: tuple[str, ...]
    inputs: tuple[str, ...]
    traces: tuple[str, ...]
    step: Callable[..., tuple] | None
    reference: Callable[..., tuple[dict, dict]] | None
    init_state: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    state_traces: tuple[str, ...] = ()
    graded: bool = False
    state_range: tuple[int, int] = (-(1 << 23) + 1, (1 << 23) - 1)
    runner: Callable[..., tuple[dict, dict]] | None = None
    from_record: Callable[..., Any] | None = None
    check: Callable[[Mapping[str, np.ndarray], str], None] | None = None
    doc: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.traces or self.traces[0] != "s":
            raise ValueError(f"model {self.name!r}: traces must start with 's'")
        if not self.inputs:
            raise ValueError(f"model {self.name!r}: at least one input")
        if not set(self.state_traces) <= set(self.states) & set(self.traces):
            raise ValueError(f"model {self.name!r}: state_traces must name states and traces")
        if self.runner is None and (self.reference is None or self.step is None):
            raise ValueError(f"model {self.name!r}: without a runner it needs step and reference")

    @property
    def spike_dtype(self) -> np.dtype:
        """dtype of the ``'s'`` trace the kernels write: int64 graded payloads, int8
        spikes."""
        return np.dtype(np.int64 if self.graded else np.int8)

    @property
    def step_traces(self) -> tuple[str, ...]:
        """Traces the step returns after the states (``traces`` less ``state_traces``)."""
        return tuple(t for t in self.traces if t not in self.state_traces)

    @property
    def netx_type(self) -> str:
        """The ``neuron/type`` string written to files."""
        return self.netx_types[0]

    @property
    def fields(self) -> dict[str, Param]:
        """netx field name -> :class:`Param`."""
        return {p.field: p for p in self.params}

    def make_params(self, **values: Any) -> ModelParams:
        """Validated parameters of this model (see :class:`ModelParams`)."""
        return ModelParams(self, values)

    def params_from_record(self, neuron: Any, ctx: Any) -> Any:
        """The runner's parameters from a :mod:`loihi_slayer.hdf5` neuron record.

        Uses the model's ``from_record`` hook, else maps the record's netx fields
        (``neuron.params``) onto :attr:`params`, per channel over ``ctx.shape``.

        Raises
        ------
        FormatError
            A required field is missing (names the layer group and the field).
        ParameterError
            A value lies outside its hardware range.
        """
        if self.from_record is not None:
            return self.from_record(neuron, ctx)
        from ._context import per_channel

        fields = getattr(neuron, "params", {})
        values = {}
        for p in self.params:
            if p.field in fields:
                values[p.name] = per_channel(fields[p.field], ctx.shape)
            elif not p.optional:
                raise FormatError(
                    f"{self.netx_type} neuron needs field {p.field!r}",
                    group=f"layer/{ctx.index}/neuron",
                    field=p.field,
                )
        return ModelParams(self, values, context=ctx.where)

    def run(self, inputs: Any, params: Any, **kwargs: Any) -> tuple[dict, dict]:
        """Run the model: its own ``runner`` or :func:`loihi_slayer.fixed.run`."""
        if self.runner is not None:
            return self.runner(inputs, params, **kwargs)
        from ..fixed.run import run

        return run(self, inputs, params, **kwargs)

    def initial_state(self, params: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """``(n,)`` int64 initial state vectors for per-neuron parameter vectors."""
        full = {k: np.broadcast_to(v, (n,)) for k, v in params.items()}
        if self.init_state is None:
            return {k: np.zeros(n, np.int64) for k in self.states}
        out = self.init_state(full)
        return {k: np.array(np.broadcast_to(out[k], (n,)), np.int64) for k in self.states}


class ModelParams:
    """Validated integer parameters of one :class:`NeuronModel`.

    Each value is a scalar or an integer array broadcastable to the neuron shape
    (per-neuron or per-channel parameters), checked once against the hardware
    range of its :class:`Param`.

    Parameters
    ----------
    model
        The model the parameters belong to.
    values
        ``name -> value``; omitted parameters take their default.
    context
        Prefix for error messages (e.g. ``"block.alif.Dense"`` or ``"layer 3"``).

    Raises
    ------
    ParameterError
        Unknown or missing parameters, values outside the hardware range, NaN/inf.
    """

    def __init__(self, model: NeuronModel, values: Mapping[str, Any], context: str = ""):
        self.model = model
        where = f"{context}: " if context else ""
        known = {p.name for p in model.params}
        unknown = set(values) - known
        if unknown:
            raise ParameterError(
                f"{where}{model.name} has no parameter(s) {sorted(unknown)}; "
                f"allowed: {sorted(known)}"
            )
        arrays: dict[str, np.ndarray] = {}
        for p in model.params:
            value = values.get(p.name, p.default)
            if value is None:
                raise ParameterError(f"{where}{model.name} needs parameter {p.name!r}")
            arrays[p.name] = int_param(f"{where}{p.name}", value, p.lo, p.hi)
        if model.check is not None:
            model.check(arrays, where)
        self._arrays = arrays

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def __repr__(self) -> str:
        items = ", ".join(
            f"{k}={v.item() if v.size == 1 else v.shape}" for k, v in self._arrays.items()
        )
        return f"ModelParams({self.model.name}: {items})"

    def as_dict(self) -> dict[str, np.ndarray]:
        """``name -> int64 array`` (copies)."""
        return {k: v.copy() for k, v in self._arrays.items()}

    def vectors(self, lead: tuple[int, ...]) -> np.ndarray:
        """``(P, M)`` int64 parameter table for the kernels.

        ``M`` is 1 when every parameter is shared, else the neuron count (the
        kernel indexes column ``n % M``).
        """
        n = math.prod(lead)
        shared = all(v.size == 1 for v in self._arrays.values())
        m = 1 if shared else n
        out = np.empty((len(self._arrays), m), np.int64)
        for row, (k, v) in enumerate(self._arrays.items()):
            if v.size == 1:
                out[row] = v.reshape(-1)[0]
                continue
            try:
                out[row] = np.broadcast_to(v, lead).reshape(-1)
            except ValueError:
                raise ParameterError(
                    f"{self.model.name} parameter {k!r} has shape {v.shape}, which does not "
                    f"broadcast to the neuron shape {lead}"
                ) from None
        return out

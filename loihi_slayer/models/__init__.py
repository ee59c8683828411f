"""The neuron-model registry: every Loihi neuron model, each declared once.

Each public module of this package declares one model as ``MODEL``
(a :class:`~loihi_slayer.models.base.NeuronModel`); the registry finds them by
itself, so adding a model touches only its own module. Blocks, the emulator,
the netx reader/writer and the train-to-chip checker look models up here
(:func:`get`, :func:`by_netx_type`) instead of branching on names.

Examples
--------
>>> from loihi_slayer import models
>>> models.get("alif").states
('u', 'v', 'th', 'r', 'rc')
>>> models.by_netx_type("ALIF").name
'alif'
"""

from __future__ import annotations

import importlib
import pkgutil

from ..errors import ParameterError
from .base import ModelParams, NeuronModel, Param

__all__ = ["ModelParams", "NeuronModel", "Param", "all_models", "by_netx_type", "get", "names"]

_REGISTRY: dict[str, NeuronModel] = {}
_BY_TYPE: dict[str, NeuronModel] = {}


def _load() -> None:
    if _REGISTRY:
        return
    found: dict[str, NeuronModel] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        model = getattr(importlib.import_module(f"{__name__}.{info.name}"), "MODEL", None)
        if isinstance(model, NeuronModel):
            found[model.name] = model
    by_type = {t: m for m in found.values() for t in m.netx_types}
    _BY_TYPE.update(by_type)
    _REGISTRY.update(found)


def get(name: str) -> NeuronModel:
    """The model registered as ``name`` (``'cuba'``, ``'alif'``, ``'rf'``, ...)."""
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ParameterError(
            f"unknown neuron model {name!r}; registered: {sorted(_REGISTRY)}"
        ) from None


def by_netx_type(type_name: str) -> NeuronModel | None:
    """The model a netx ``neuron/type`` string denotes, or None if no model has it."""
    _load()
    return _BY_TYPE.get(type_name)


def names() -> tuple[str, ...]:
    """Registered model names, sorted."""
    _load()
    return tuple(sorted(_REGISTRY))


def all_models() -> tuple[NeuronModel, ...]:
    """Every registered model, sorted by name."""
    _load()
    return tuple(_REGISTRY[k] for k in sorted(_REGISTRY))

"""loihi_slayer: bit-accurate Loihi fixed-point kernels, emulator and SNN training.

``import loihi_slayer as slayer`` is lava-dl's ``lava.lib.dl.slayer``: the
subpackages ``slayer.block``, ``neuron``, ``synapse``, ``axon``, ``dendrite``,
``spike``, ``utils``, ``io``, ``loss``, ``classifier`` and ``auto`` are imported
on first access (module ``__getattr__``), so ``import loihi_slayer`` itself
stays cheap (no torch, no numba). Importing it before torch sets
``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy or a spin count
(:mod:`._threads`).
"""

from __future__ import annotations

import importlib
from typing import Any

from . import _threads
from ._version import __version__

_threads.configure()  # before torch starts its OpenMP runtime, if it has not yet

#: lava-dl's ``slayer`` subpackages, loaded on first attribute access.
SUBMODULES = (
    "auto",
    "axon",
    "block",
    "classifier",
    "dendrite",
    "io",
    "loss",
    "neuron",
    "spike",
    "synapse",
    "utils",
)

#: functions loaded on first access too, by name: module
FUNCTIONS = {"release_kept_memory": "_recycle"}

__all__ = ["__version__", *SUBMODULES, *FUNCTIONS]


def __getattr__(name: str) -> Any:
    if name in SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    if name in FUNCTIONS:
        fn = getattr(importlib.import_module(f"{__name__}.{FUNCTIONS[name]}"), name)
        globals()[name] = fn
        return fn
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(SUBMODULES) | set(FUNCTIONS))

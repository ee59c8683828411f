"""slayerPytorch's ``spikeFileIO`` module for ``from ... import *``.

slayerPytorch's module had no ``__all__``, so a star import also brought its
imports: ``np`` and, from matplotlib, ``plt``, ``animation`` and ``cm``. They
are exported here too (the matplotlib ones when matplotlib is installed,
imported on first use).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import numpy as np

from .io import *
from .io import __all__ as _io_all

_MATPLOTLIB = {
    "plt": "matplotlib.pyplot",
    "animation": "matplotlib.animation",
    "cm": "matplotlib.cm",
}

__all__ = [*_io_all, "np"]
if importlib.util.find_spec("matplotlib") is not None:
    __all__ += list(_MATPLOTLIB)


def __getattr__(name: str) -> Any:
    if name in _MATPLOTLIB:
        module = importlib.import_module(_MATPLOTLIB[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

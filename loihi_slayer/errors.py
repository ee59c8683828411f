"""Exception types shared by the whole package.

Every error raised for bad user input is one of these, so callers can catch
``ValueError``/``TypeError`` as usual or the library-specific classes.
"""

from __future__ import annotations

from typing import Any


class LoihiSlayerError(Exception):
    """Base class of every error this library raises on purpose."""


class ParameterError(LoihiSlayerError, ValueError):
    """A parameter value lies outside its allowed (hardware) range."""


class ParameterTypeError(LoihiSlayerError, TypeError):
    """A parameter or array has the wrong type, dtype or shape."""


class FormatError(LoihiSlayerError, ValueError):
    """A file (netx HDF5, golden case, spike file) is malformed.

    Parameters
    ----------
    message
        What is wrong.
    file, group, field
        Where it is wrong; included in the message when given.
    """

    def __init__(
        self,
        message: str,
        *,
        file: Any = None,
        group: str | None = None,
        field: str | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.group = group
        self.field = field
        where = []
        if self.file is not None:
            where.append(f"file {self.file!r}")
        if group is not None:
            where.append(f"group {group!r}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class UnsupportedLayerError(LoihiSlayerError, NotImplementedError):
    """A network contains a layer type that this part of the library cannot run."""


class DoubleBackwardError(LoihiSlayerError, RuntimeError):
    """A gradient computed by a compiled kernel was differentiated again (a backward
    through the result of ``create_graph=True``): the kernels give first-order
    gradients only (see :mod:`loihi_slayer.autograd._first_order`)."""


def describe(value: Any) -> str:
    """Short printable form of a scalar or array value for error messages."""
    try:
        import numpy as np

        arr = np.asarray(value)
        if arr.ndim == 0:
            return repr(arr.item())
        if arr.size <= 6:
            return repr(arr.tolist())
        return f"array of shape {arr.shape} (min {arr.min()!r}, max {arr.max()!r})"
    except Exception:  # pragma: no cover - describing must never fail
        return repr(value)

"""Load ``.npy`` / ``.npz`` arrays with their size checked before the data is read.

A corrupt or hostile header can declare ``10**12`` elements; numpy would try to
allocate them. Here the header is parsed first and the allocation checked
against the memory budget; pickled (object) arrays are never loaded.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from ..errors import FormatError, ParameterError
from .memory import check_allocation

__all__ = ["load_array"]


def _check_npy_header(fh, name: str) -> None:
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(fh)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = fmt.read_array_header_2_0(fh)
    else:  # pragma: no cover - read_magic refuses unknown versions
        raise ValueError(f"unsupported .npy version {version}")
    if dtype.hasobject:
        raise FormatError("object (pickled) arrays are not loaded", file=name)
    try:
        check_allocation(f"an array of shape {shape} and dtype {dtype}", [shape], dtype.itemsize)
    except ParameterError as exc:
        raise FormatError(str(exc), file=name) from None


def load_array(path: str | os.PathLike[str], member: str | None = None) -> np.ndarray:
    """Read an array from a ``.npy`` file, or ``member`` of an ``.npz`` file.

    Parameters
    ----------
    path
        The file.
    member
        Name of the array in an ``.npz`` archive (None: a plain ``.npy``).

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    FileNotFoundError
        No such file.
    FormatError
        Not a readable numpy file, a pickled array, a missing member, or an
        array too large for memory (the message names the file).
    """
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(2, "No such file", name)
    try:
        if member is None:
            with open(name, "rb") as fh:
                _check_npy_header(fh, name)
            return np.load(name, allow_pickle=False)
        with zipfile.ZipFile(name) as z:
            entry = f"{member}.npy"
            if entry not in z.namelist():
                raise FormatError(f"an .npz input needs an array named {member!r}", file=name)
            with z.open(entry) as fh:
                _check_npy_header(fh, name)
        with np.load(name, allow_pickle=False) as archive:
            return archive[member]
    except FormatError:
        raise
    except Exception as exc:  # numpy raises many kinds on a corrupt file
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise FormatError(f"not a readable numpy array file: {text}", file=name) from None

"""Guards between user input and the machine: atomic writes, bounded memory,
HDF5 files checked before h5py reads them.

Every reader and writer of the package goes through these helpers, so that no
input a user gives can hang the process, crash it, leave a damaged file behind
or allocate memory without bound.
"""

from __future__ import annotations

from .atomic import WriteError, atomic_write_bytes, creation_mode, h5py_bytes
from .hdf5_guard import check_hdf5_file
from .memory import check_allocation, memory_limit

__all__ = [
    "WriteError",
    "atomic_write_bytes",
    "check_allocation",
    "check_hdf5_file",
    "creation_mode",
    "h5py_bytes",
    "memory_limit",
]

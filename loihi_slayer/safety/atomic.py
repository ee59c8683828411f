"""Atomic file writes: a complete new file or the untouched old one, never a mix.

The bytes are written to a temporary file in the destination's directory, flushed
to disk and renamed over the destination with :func:`os.replace`. On any failure
(disk full, file size limit, permission, the path is a directory, Ctrl-C) the
temporary file is removed and the old file is left as it was. New files get the
mode the umask gives (``0o666 & ~umask``), replaced files keep their mode.

HDF5 files are built in memory first (:func:`h5py_bytes`) so that the HDF5
library never sees a failing write: its error paths on a full disk are not
reliable (they can abort the process at exit).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from ..errors import LoihiSlayerError

__all__ = ["WriteError", "atomic_write_bytes", "creation_mode", "h5py_bytes"]


class WriteError(LoihiSlayerError, OSError):
    """A file could not be written; the old file (if any) is unchanged.

    Parameters
    ----------
    path
        The destination.
    reason
        What went wrong (e.g. the OS error text).
    err
        The ``errno`` value, when known.
    """

    def __init__(self, path: str, reason: str, err: int | None = None) -> None:
        self.path = path
        self.reason = reason
        OSError.__init__(self, err or errno.EIO, f"file {path!r}: cannot write: {reason}")
        self.filename = path

    def __str__(self) -> str:
        return f"file {self.path!r}: cannot write: {self.reason}"


def creation_mode(path: str) -> int:
    """Permission bits for ``path``: its current mode, else ``0o666 & ~umask``."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = _current_umask()
        return 0o666 & ~umask


def _current_umask() -> int:
    # os.umask both sets and returns; guard the two calls against other threads
    with _UMASK_LOCK:
        umask = os.umask(0)
        os.umask(umask)
    return umask


_UMASK_LOCK = threading.Lock()


def _ignore_sigxfsz() -> None:
    """Exceeding RLIMIT_FSIZE must give EFBIG, not kill the process (SIGXFSZ)."""
    sig = getattr(signal, "SIGXFSZ", None)
    if sig is None or threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, signal.SIG_IGN)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview) -> str:
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path
        Destination file. Its directory must exist.
    data
        The complete file content.

    Returns
    -------
    str
        The destination path.

    Raises
    ------
    WriteError
        The file could not be written (the message names the file and the
        reason); nothing is left behind and an existing file is unchanged.
    """
    target = os.fspath(path)
    _ignore_sigxfsz()
    if os.path.isdir(target):
        raise WriteError(target, "the path is a directory", errno.EISDIR)
    directory = os.path.dirname(os.path.abspath(target))
    mode = creation_mode(target)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory
        )
    except OSError as exc:
        raise WriteError(target, exc.strerror or str(exc), exc.errno) from None
    try:
        view = memoryview(data).cast("B")
        with os.fdopen(fd, "wb") as fh:
            written = 0
            while written < len(view):
                n = fh.write(view[written:])
                if not n:  # pragma: no cover - a full disk raises instead
                    raise OSError(errno.ENOSPC, "no space left on device")
                written += n
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise WriteError(target, exc.strerror or str(exc), exc.errno) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def h5py_bytes(build: Callable[[Any], None]) -> bytes:
    """Bytes of an HDF5 file built in memory by ``build(h5py_file)``.

    Parameters
    ----------
    build
        Called with a writable :class:`h5py.File`; fills it.

    Returns
    -------
    bytes
        The complete file, ready for :func:`atomic_write_bytes`.
    """
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as file:
        build(file)
    return buf.getvalue()

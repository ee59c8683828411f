"""Check an HDF5 file before h5py reads it, so that a corrupt file cannot hang.

Two stages:

1. **Bounded structural reads** (pure Python, a few hundred bytes): the
   superblock signature is found, its version is known and the end-of-file
   address it records does not lie beyond the file (a truncated file).
2. **Watchdog**: a forked child process opens the file with h5py, walks every
   group and reads every dataset (each at most :data:`MAX_DATASET_BYTES`) under
   a memory limit, while the parent waits at most a few seconds. Corrupt
   internal structures can make the HDF5 library loop forever or crash; that
   happens in the child, which is killed, and the parent raises a
   :class:`~loihi_slayer.errors.FormatError`. The HDF5 library is
   deterministic, so once the child has read everything the caller's own reads
   of the same file cannot hang either. The parent waits in ``select``, so
   Ctrl-C interrupts it at once.

Environment
-----------
``LOIHI_SLAYER_HDF5_TIMEOUT``
    Seconds the watchdog allows (default: 10 s plus 1 s per 20 MB).
``LOIHI_SLAYER_HDF5_WATCHDOG=0``
    Skip stage 2 (stage 1 always runs).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import select
import signal
import struct
import time

from ..errors import FormatError

__all__ = ["MAX_DATASET_BYTES", "check_hdf5_file"]

#: Datasets larger than this are not read by the watchdog (the readers refuse them).
MAX_DATASET_BYTES = 1 << 31
_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_UNDEFINED = (1 << 64) - 1


def _timeout(size: int) -> float:
    env = os.environ.get("LOIHI_SLAYER_HDF5_TIMEOUT")
    if env:
        with contextlib.suppress(ValueError):
            return max(0.1, float(env))
    return 10.0 + size / 20e6


def _superblock(name: str, size: int) -> None:
    """Stage 1: locate and sanity-check the superblock with bounded reads."""
    with open(name, "rb") as fh:
        offset = 0
        head = b""
        while offset + 8 <= size:  # signature at 0, 512, 1024, 2048, ...
            fh.seek(offset)
            head = fh.read(96)
            if head[:8] == _SIGNATURE:
                break
            offset = 512 if offset == 0 else offset * 2
        else:
            raise FormatError("not an HDF5 file (no superblock signature)", file=name, group="/")
    version = head[8] if len(head) > 8 else -1
    if version in (0, 1):
        if len(head) < 24:
            raise FormatError("truncated HDF5 superblock", file=name, group="/")
        size_off, size_len = head[13], head[14]
        start = 24 + (4 if version == 1 else 0)
    elif version in (2, 3):
        if len(head) < 12:
            raise FormatError("truncated HDF5 superblock", file=name, group="/")
        size_off, size_len = head[9], head[10]
        start = 12
    else:
        raise FormatError(f"unknown HDF5 superblock version {version}", file=name, group="/")
    if size_off not in (2, 4, 8, 16) or size_len not in (2, 4, 8, 16):
        raise FormatError(
            f"corrupt HDF5 superblock (offset size {size_off}, length size {size_len})",
            file=name,
            group="/",
        )
    if size_off != 8:
        return  # legal but unusual; stage 2 still guards the reads
    fields = head[start : start + 32]
    if len(fields) < 24:
        raise FormatError("truncated HDF5 superblock", file=name, group="/")
    if version in (0, 1):
        base, _free, eof = struct.unpack("<QQQ", fields[:24])
    else:
        base, _ext, eof = struct.unpack("<QQQ", fields[:24])
    if base == _UNDEFINED or eof == _UNDEFINED or base > size:
        raise FormatError(
            f"corrupt HDF5 superblock (base address {base}, end of file {eof})",
            file=name,
            group="/",
        )
    if base + eof > size:
        raise FormatError(
            f"truncated HDF5 file: the superblock records {base + eof} bytes but the file has "
            f"{size}",
            file=name,
            group="/",
        )


def _walk(name: str) -> None:  # pragma: no cover - runs in the forked child
    """Stage 2 body: touch every object of the file (errors are fine, hangs are not)."""
    import h5py
    import numpy as np

    from .memory import memory_limit

    with h5py.File(name, "r") as f:
        seen: set[int] = set()
        stack = [f]
        while stack:
            group = stack.pop()
            try:
                keys = list(group.keys())
            except Exception:
                continue
            for key in keys:
                try:
                    obj = group.get(key)
                except Exception:
                    continue
                try:
                    addr = obj.id.__hash__() if obj is not None else None
                except Exception:
                    addr = None
                if obj is None or addr in seen:
                    continue
                seen.add(addr)
                if isinstance(obj, h5py.Group):
                    stack.append(obj)
                elif isinstance(obj, h5py.Dataset):
                    try:
                        nbytes = int(np.prod(obj.shape or (), dtype=np.float64)) * int(
                            obj.dtype.itemsize
                        )
                        if nbytes <= min(MAX_DATASET_BYTES, memory_limit()):
                            obj[()]
                    except Exception:
                        continue


def _limit_child_memory() -> None:  # pragma: no cover - runs in the forked child
    try:
        import resource

        with open("/proc/self/statm") as fh:
            vms = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = vms + 2 * MAX_DATASET_BYTES
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except Exception:
        pass


def _watchdog(name: str, size: int) -> None:
    """Stage 2: read the whole file in a forked child under a time limit."""
    if os.environ.get("LOIHI_SLAYER_HDF5_WATCHDOG", "1") == "0" or not hasattr(os, "fork"):
        return
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            os.close(read_fd)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            faulthandler.disable()  # a crash here is expected and reported by the parent
            _limit_child_memory()
            _walk(name)
            os.write(write_fd, b"ok")
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    timeout = _timeout(size)
    deadline = time.monotonic() + timeout
    status = None
    reply = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([read_fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(read_fd, 16)
                if not chunk:
                    break
                reply += chunk
        _, status = _reap(pid, wait=reply == b"ok" or time.monotonic() < deadline)
    finally:
        os.close(read_fd)
        if status is None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
    if status is None:
        raise FormatError(
            f"reading the HDF5 structure did not finish within {timeout:.0f} s; the file is "
            "corrupt (its internal structure loops or is damaged)",
            file=name,
            group="/",
        )
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        raise FormatError(
            f"the HDF5 library crashed reading this file ({signal.Signals(sig).name}); the file "
            "is corrupt",
            file=name,
            group="/",
        )


def _reap(pid: int, wait: bool) -> tuple[int, int | None]:
    """Collect the child if it has ended (waiting briefly when it said ok)."""
    end = time.monotonic() + (2.0 if wait else 0.0)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return done, status
        if time.monotonic() >= end:
            return 0, None
        time.sleep(0.005)


def check_hdf5_file(path: str | os.PathLike[str]) -> None:
    """Refuse an HDF5 file that could hang or crash h5py.

    Parameters
    ----------
    path
        An existing regular file.

    Raises
    ------
    FormatError
        The file is not HDF5, is truncated, or reading its structure loops or
        crashes the HDF5 library (the message names the file).
    """
    name = os.fspath(path)
    if os.path.isdir(name):
        raise FormatError("is a directory, not an HDF5 file", file=name, group="/")
    try:
        st = os.stat(name)
    except OSError as exc:
        raise FormatError(f"cannot read: {exc.strerror}", file=name, group="/") from None
    key = (os.path.realpath(name), st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _CHECKED:
        return
    _superblock(name, st.st_size)
    _watchdog(name, st.st_size)
    if len(_CHECKED) >= 256:
        _CHECKED.clear()
    _CHECKED.add(key)


#: Files that passed both stages, by (path, inode, size, mtime): not re-read.
_CHECKED: set[tuple[str, int, int, int]] = set()

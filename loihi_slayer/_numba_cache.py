"""Numba cache files of this package compiled against sources that have changed since.

numba's on-disk cache (``cache=True``) checks only the time stamp of the file that holds
a kernel, not of the modules whose functions the kernel inlines: after an edit of
``fixed/dynamics.py`` a kernel of ``autograd/_cpu.py`` would still be loaded as compiled
against the old step. A pip install or upgrade writes every file anew (new stamps,
nothing stale), but an editable checkout keeps serving the old machine code, and a test
run then checks code that no longer exists. :func:`clear_stale` deletes the cache files
(``__pycache__/<module>.*.nbi``, ``.nbc``) of every module whose *import closure* (itself
and every package module it imports, directly or not: a superset of what it can inline)
changed since the last call, whose hashes it keeps in ``__pycache__`` of the package
root. The test suite calls it once per run (``tests/conftest.py``). Generated kernels
(:mod:`loihi_slayer.fixed.codegen`), which live in the user's cache across upgrades,
carry :func:`package_fingerprint` in their file names instead.

numba writes a kernel's cache file after compiling it and raises when that write fails
(a full disk, a file size limit, a quota): the kernel, compiled and working, would be
lost with the call that needed it, and the error would surface far from its cause (the
CLI reported it against its input files). :func:`guard_cache_writes` makes the write of
this package's kernels best effort: a warning in the log, and the kernel compiles again
in the next process. Every module that imports numba calls it at import, itself or in
its package's ``__init__`` (a test checks), as does the loader of generated kernels.
(numba's ``numba_extensions`` entry point would run it with no call site, but in every
program that uses numba, importing this package there, with its side effects.)

The same call makes the first compile of this package's kernels in a process say so in
the log (:class:`CompileNotice`): on a new machine or after an upgrade a network's first
training step compiles for up to a minute (41-50 s for the N-MNIST example's on the
2-core VMs) and would otherwise look like a hang.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)

#: the package whose modules' caches are checked
PACKAGE_ROOT = Path(__file__).resolve().parent
#: where the closure hashes of the last check are kept (under the root's ``__pycache__``)
STAMPS = "loihi_slayer_closures.json"


def source_fingerprint(root: Path = PACKAGE_ROOT) -> str:
    """A hash of every ``.py`` file under ``root`` (paths and contents): any change of
    the package's source changes it."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


@functools.cache
def package_fingerprint() -> str:
    """:func:`source_fingerprint` of this package, computed once per process (15 ms)."""
    return source_fingerprint()


def _module_file(root: Path, parts: list[str]) -> Path | None:
    """The file of module ``parts`` (relative to ``root``): ``a/b.py`` or
    ``a/b/__init__.py``, or None outside the package."""
    base = root.joinpath(*parts) if parts else root
    if base.with_suffix(".py").is_file() and parts:
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imports(root: Path, path: Path) -> set[Path]:
    """Package files that ``path`` imports: for ``from X import y``, the submodule
    ``X.y`` where there is one, else ``X`` itself (``y`` is then a name in it);
    relative imports, and absolute ones of the package by its directory name."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return set()
    here = list(path.relative_to(root).parent.parts)
    found: set[Path] = set()

    def add(parts: list[str], names: list[str]) -> None:
        for name in names:
            sub = _module_file(root, [*parts, name])
            hit = sub if sub is not None else _module_file(root, parts)
            if hit is not None:
                found.add(hit)

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module.split(".") if node.module else []
            if node.level:
                parts = [*here[: len(here) - node.level + 1], *mod]
            elif mod and mod[0] == root.name:
                parts = mod[1:]
            else:
                continue
            add(parts, [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                head, *rest = alias.name.split(".")
                if head == root.name and rest:
                    add(rest[:-1], rest[-1:])
    found.discard(path)
    return found


def closure_hashes(root: Path = PACKAGE_ROOT) -> dict[str, str]:
    """For every ``.py`` file under ``root`` (relative POSIX path), a hash of the sources
    of its import closure within the package."""
    files = sorted(root.rglob("*.py"))
    graph = {path: _imports(root, path) for path in files}
    source = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in files}
    out = {}
    for path in files:
        seen, todo = {path}, [path]
        while todo:
            for dep in graph.get(todo.pop(), ()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        h = hashlib.sha256()
        for dep in sorted(seen):
            h.update(dep.relative_to(root).as_posix().encode() + b"\0" + source[dep].encode())
        out[path.relative_to(root).as_posix()] = h.hexdigest()[:16]
    return out


def _cache_files(path: Path) -> list[Path]:
    """numba's cache files of the module at ``path`` (index and object code)."""
    cache = path.parent / "__pycache__"
    if not cache.is_dir():
        return []
    return [*cache.glob(f"{path.stem}.*.nbi"), *cache.glob(f"{path.stem}.*.nbc")]


def clear_stale(root: Path = PACKAGE_ROOT) -> list[Path]:
    """Delete the numba cache files of every module under ``root`` whose import closure
    changed since the last call (all of them on the first); returns those deleted.

    Best effort: a file that cannot be read or removed is left; without a writable
    ``__pycache__`` at ``root`` nothing is kept and nothing deleted."""
    stamp_dir = root / "__pycache__"
    stamp_file = stamp_dir / STAMPS
    try:
        old = json.loads(stamp_file.read_text())
    except (OSError, ValueError):
        old = {}
    new = closure_hashes(root)
    removed = []
    for rel, digest in new.items():
        if old.get(rel) == digest:
            continue
        for path in _cache_files(root / rel):
            try:
                path.unlink()
            except OSError:
                continue
            removed.append(path)
    try:
        stamp_dir.mkdir(exist_ok=True)
        tmp = stamp_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(new, sort_keys=True))
        os.replace(tmp, stamp_file)
    except OSError:
        pass
    return removed


#: module names of this package's kernels: its own modules and the generated ones
#: (:mod:`loihi_slayer.fixed.codegen`)
_OWN_MODULES = ("loihi_slayer.", "_loihi_slayer_gen_")
_guarded = False


def _own_kernel(data: dict) -> str | None:
    """The qualified name of the function a ``numba:compile`` event compiles where it is
    one of this package's kernels (its module in :data:`_OWN_MODULES`), else None."""
    func = getattr(data.get("dispatcher"), "py_func", None)
    module = getattr(func, "__module__", None) or ""
    if not module.startswith(_OWN_MODULES):
        return None
    return f"{module}.{getattr(func, '__qualname__', '?')}"


class CompileNotice:
    """A listener of numba's ``numba:compile`` events (numba sends them for real
    compiles only, not for kernels loaded from its cache) that logs this package's:

    * at the first compile in the process, one ``INFO`` line saying what is happening
      and that it happens once;
    * at the end of each compile not nested in another of ours (a kernel compiles the
      kernels it calls inside its own compile), a ``DEBUG`` line with its time.

    numba compiles under one process-wide lock, so the events of nested compiles come
    in order (a stack). Other packages' compiles are ignored. A ``numba.core.event``
    listener is built from this by :func:`_listener` (numba is imported late).
    """

    def __init__(self) -> None:
        self.announced = False
        self._open: list[tuple[str, float]] = []

    def start(self, data: dict) -> None:
        name = _own_kernel(data)
        if name is None:
            return
        self._open.append((name, time.perf_counter()))
        if not self.announced:
            self.announced = True
            logger.info(
                "compiling loihi_slayer's kernels for this CPU, starting with %s: each "
                "compiles at its first use (up to a minute in all for a new network's "
                "first training step); numba caches them on disk for later processes",
                name,
            )

    def end(self, data: dict) -> None:
        name = _own_kernel(data)
        if name is None or not self._open:
            return
        opened, t0 = self._open.pop()
        if not self._open:
            logger.debug("compiled %s in %.1f s", opened, time.perf_counter() - t0)


def _listener(notice: CompileNotice):
    """``notice`` as a ``numba.core.event.Listener`` (imports numba)."""
    from numba.core import event

    class _Listener(event.Listener):
        def on_start(self, ev) -> None:
            notice.start(ev.data or {})

        def on_end(self, ev) -> None:
            notice.end(ev.data or {})

    return _Listener()


#: the process's :class:`CompileNotice`, registered by :func:`guard_cache_writes`
COMPILE_NOTICE = CompileNotice()


def guard_cache_writes() -> None:
    """Make numba's cache writes of this package's kernels best effort (an ``OSError``
    is logged as a warning, the compiled kernel kept); other packages' kernels keep
    numba's behaviour. Also registers :data:`COMPILE_NOTICE` for numba's compile events.
    Idempotent; imports numba."""
    global _guarded
    if _guarded:
        return
    from numba.core import caching, event

    event.register("numba:compile", _listener(COMPILE_NOTICE))

    save = caching.Cache.save_overload

    def save_overload(cache: caching.Cache, sig, data) -> None:
        try:
            save(cache, sig, data)
        except OSError as exc:
            module = getattr(cache._py_func, "__module__", None) or ""
            if not module.startswith(_OWN_MODULES):
                raise
            logger.warning(
                "numba could not write the cache of %s (%s); it compiles again in the next process",
                module,
                exc,
            )

    caching.Cache.save_overload = save_overload
    _guarded = True

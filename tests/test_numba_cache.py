"""Stale numba cache files of the package's own kernels are found by import closure.

numba checks only the time stamp of a kernel's own file; a kernel that inlines a
function of another module must lose its cache when that module changes
(:mod:`loihi_slayer._numba_cache`, called by the test suite on every run).
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import run_python

from loihi_slayer import _numba_cache

ROOT = Path(__file__).resolve().parents[1]

MODULES = {
    "__init__.py": "",
    "a.py": "from .b import f\n",
    "ab.py": "y = 2\n",
    "b.py": "def f():\n    return 1\n",
    "c.py": "x = 1\n",
    "sub/__init__.py": "",
    "sub/d.py": "from ..b import f\nfrom pkg.c import x\n",
    "sub/e.py": "from .. import c\nimport pkg.ab\n",
}
#: module -> the modules whose change must drop its cache (itself included)
DEPENDS = {
    "a.py": {"a.py", "b.py"},
    "ab.py": {"ab.py"},
    "b.py": {"b.py"},
    "c.py": {"c.py"},
    "sub/d.py": {"sub/d.py", "b.py", "c.py"},
    "sub/e.py": {"sub/e.py", "c.py", "ab.py"},
}


def _cache_files(root: Path, rel: str) -> list[Path]:
    path = root / rel
    cache = path.parent / "__pycache__"
    return [
        cache / f"{path.stem}.f-1.py311.nbi",
        cache / f"{path.stem}.f-1.py311.1.nbc",
    ]


def _fill_caches(root: Path) -> None:
    for rel in DEPENDS:
        for path in _cache_files(root, rel):
            path.parent.mkdir(exist_ok=True)
            path.write_text("")
        pyc = (root / rel).parent / "__pycache__" / f"{Path(rel).stem}.cpython-311.pyc"
        pyc.write_text("")


@pytest.fixture
def package(tmp_path: Path) -> Path:
    root = tmp_path / "pkg"
    for rel, text in MODULES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _alive(root: Path) -> set[str]:
    return {rel for rel in DEPENDS if all(p.exists() for p in _cache_files(root, rel))}


def test_first_check_drops_every_cache_then_none(package):
    _fill_caches(package)
    removed = _numba_cache.clear_stale(package)
    assert len(removed) == 2 * len(DEPENDS) and not _alive(package)
    assert all(p.exists() for p in package.rglob("*.pyc"))  # Python's own caches stay
    _fill_caches(package)
    assert _numba_cache.clear_stale(package) == []
    assert _alive(package) == set(DEPENDS)


@pytest.mark.parametrize("changed", sorted(DEPENDS))
def test_a_change_drops_the_caches_of_its_importers(package, changed):
    _numba_cache.clear_stale(package)
    _fill_caches(package)
    path = package / changed
    path.write_text(path.read_text() + "\n# edited\n")
    _numba_cache.clear_stale(package)
    dropped = {rel for rel, deps in DEPENDS.items() if changed in deps}
    assert _alive(package) == set(DEPENDS) - dropped


def test_the_package_kernels_see_their_inlined_helpers():
    """The closure of the CUBA training kernels' module holds the modules they inline."""
    root = _numba_cache.PACKAGE_ROOT
    imports = {
        p.relative_to(root).as_posix()
        for p in _numba_cache._imports(root, root / "autograd" / "_cpu.py")
    }
    assert {"fixed/dynamics.py", "autograd/_convert.py"} <= imports
    hashes = _numba_cache.closure_hashes(root)
    assert "autograd/_cpu.py" in hashes and "fixed/dynamics.py" in hashes


# ------------------------------------------------------------ failed cache writes


def _limited_run(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``python -c code`` with an empty numba cache and files limited to 1 KB: every
    cache file numba writes (several KB) fails with EFBIG."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    env = {
        **os.environ,
        "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    return run_python(code, env=env, preexec_fn=limit, cwd=tmp_path)


def test_failed_cache_write_of_our_kernel_is_a_warning(tmp_path):
    w = [0.1, -0.5, 3.99, -4.2, 0.0155]
    code = (
        "import torch\n"
        "from loihi_slayer.quantize import quantize_8bit\n"
        f"print(quantize_8bit(torch.tensor({w}, dtype=torch.float64)).tolist())\n"
    )
    r = _limited_run(code, tmp_path)
    assert r.returncode == 0, r.stderr
    # the 8-bit grid by hand: 2/64 steps, half to even, [-256/64, 254/64]
    want = np.clip(np.round(np.array(w) * 32) / 32, -4.0, 254 / 64)
    assert np.array_equal(np.array(json.loads(r.stdout)), want)
    assert "could not write the cache of loihi_slayer.quantize" in r.stderr
    assert "File too large" in r.stderr


def test_failed_cache_write_of_other_kernels_still_raises(tmp_path):
    (tmp_path / "foreign_kernels.py").write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef f(x):\n    return x + 1\n"
    )
    code = "import loihi_slayer.autograd\nimport foreign_kernels\nforeign_kernels.f(1)\n"
    r = _limited_run(code, tmp_path)
    assert r.returncode != 0
    assert "File too large" in r.stderr and "could not write the cache" not in r.stderr


def _imports_numba(path: Path) -> bool:
    return any(
        line.startswith(("from numba import", "import numba", "from numba."))
        for line in path.read_text().splitlines()
    )


def test_every_module_that_imports_numba_guards_its_cache_writes():
    """A module importing numba, or its package's ``__init__`` (run before it), calls
    ``guard_cache_writes()`` at import: kernels compiled before the guard would raise on a
    failed cache write."""
    root = ROOT / "loihi_slayer"
    unguarded = []
    for path in sorted(root.rglob("*.py")):
        if not _imports_numba(path):
            continue
        places = [path, *(p / "__init__.py" for p in path.parents if p.is_relative_to(root))]
        if not any(p.is_file() and "\nguard_cache_writes()" in p.read_text() for p in places):
            unguarded.append(str(path.relative_to(ROOT)))
    assert unguarded == []


def _jit_in(module: str, source: str, name: str, env: dict):
    """``njit`` (no cache) of function ``name`` defined by ``source`` as if in ``module``."""
    from numba import njit

    exec(source, env)
    func = env[name]
    func.__module__ = module
    env[name] = njit(func)
    return env[name]


def test_compile_notice_logs_our_first_compile_once(caplog, monkeypatch):
    """The listener logs the first compile of this package's kernels at INFO (once), the
    time of each outermost compile at DEBUG (a callee compiled inside its caller's compile
    is not reported apart), also after a compile that failed, and nothing of others'."""
    from numba.core import event

    importlib.import_module("loihi_slayer.quantize")  # registers the process's notice

    for hook in ("start", "end"):  # the process's own notice stays out of this test's log
        monkeypatch.setattr(_numba_cache.COMPILE_NOTICE, hook, lambda data: None)
    notice = _numba_cache.CompileNotice()
    env: dict = {}
    _jit_in("loihi_slayer._probe", "def inner(x):\n    return x * 3\n", "inner", env)
    outer = _jit_in("loihi_slayer._probe", "def outer(x):\n    return inner(x) + 1\n", "outer", env)
    other = _jit_in("loihi_slayer._probe", "def other(x):\n    return x - 1\n", "other", env)
    broken = _jit_in("loihi_slayer._probe", "def broken(x):\n    return x.nope\n", "broken", env)
    foreign = _jit_in("someone_else.kernels", "def foreign(x):\n    return x + 2\n", "foreign", env)
    with caplog.at_level("DEBUG", logger=_numba_cache.logger.name):
        with event.install_listener("numba:compile", _numba_cache._listener(notice)):
            assert foreign(1) == 3
            assert not caplog.records and not notice.announced
            assert outer(2) == 7
            with pytest.raises(Exception, match="nope"):
                broken(1)
            assert other(5) == 4
    got = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in got] == ["INFO", "DEBUG", "DEBUG", "DEBUG"]
    assert got[0][1].startswith(
        "compiling loihi_slayer's kernels for this CPU, starting with loihi_slayer._probe.outer:"
    )
    assert got[1][1].startswith("compiled loihi_slayer._probe.outer in ")
    assert got[2][1].startswith("compiled loihi_slayer._probe.broken in ")
    assert got[3][1].startswith("compiled loihi_slayer._probe.other in ")
    assert not any("foreign" in message or "inner" in message for _, message in got)


def test_first_compile_is_announced_and_a_cache_load_is_not(tmp_path):
    """End to end: importing a kernel module registers the notice; a process with an
    empty numba cache logs that it compiles, the next one loads the kernel silently."""
    code = (
        "import logging, torch\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from loihi_slayer.quantize import quantize_8bit\n"
        "print(quantize_8bit(torch.tensor([0.1, -0.5], dtype=torch.float64)).tolist())\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    first, second = (run_python(code, env=env, cwd=tmp_path) for _ in range(2))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout) == [0.09375, -0.5]
    assert "starting with loihi_slayer.quantize._quantize_pass:" in first.stderr
    assert "compiling" not in second.stderr

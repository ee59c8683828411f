"""Stale numba cache files of the package's own kernels are found by import closure.

numba checks only the time stamp of a kernel's own file; a kernel that inlines a
function of another module must lose its cache when that module changes
(:mod:`loihi_slayer._numba_cache`, called by the test suite on every run).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loihi_slayer import _numba_cache

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

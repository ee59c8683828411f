"""Generated kernel files are named by everything their compiled code depends on.

numba's cache checks only the time stamp of the file that holds a function, not of
the modules whose functions it inlines. A generated kernel inlines the package's
helpers (the recurrence's feedback sum, the input conversion, the step's own
helpers), so its file name carries a fingerprint of the package's source: a changed
helper must give a new file (compiled afresh), never the old machine code. (A
changed helper signature once passed the whole suite on a warm cache and failed
53 tests on a cold one.)
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from loihi_slayer import _numba_cache, models
from loihi_slayer.fixed import codegen

PACKAGE = Path(codegen.__file__).resolve().parents[1]


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """The package's ``.py`` files, copied."""
    root = tmp_path / "pkg"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def test_fingerprint_is_the_same_for_the_same_sources(package_copy):
    assert _numba_cache.source_fingerprint(package_copy) == _numba_cache.source_fingerprint(PACKAGE)


@pytest.mark.parametrize(
    "module", ["autograd/_recurrent_cpu.py", "autograd/_convert.py", "fixed/dynamics.py"]
)
def test_fingerprint_changes_with_any_inlined_helper(package_copy, module):
    before = _numba_cache.source_fingerprint(package_copy)
    path = package_copy / module
    assert path.is_file(), module
    path.write_text(path.read_text() + "\n# changed\n")
    assert _numba_cache.source_fingerprint(package_copy) != before


def test_fingerprint_changes_with_a_renamed_module(package_copy):
    before = _numba_cache.source_fingerprint(package_copy)
    (package_copy / "errors.py").rename(package_copy / "errors2.py")
    assert _numba_cache.source_fingerprint(package_copy) != before


@pytest.mark.parametrize("target", ["cpu", "recurrent"])
def test_generated_file_name_carries_the_fingerprint(monkeypatch, target):
    model = models.get("rf")
    name = codegen._digest(model, target)
    monkeypatch.setattr(codegen, "package_fingerprint", lambda: "0" * 16)
    assert codegen._digest(model, target) != name


def test_kernel_module_of_a_changed_package_is_a_new_file(monkeypatch, tmp_path):
    """Another fingerprint: a new file next to the old one, imported afresh."""
    monkeypatch.setenv("LOIHI_SLAYER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(codegen, "_loaded", {})
    model = models.get("cuba")
    first = Path(codegen.kernel_module(model, "cpu").__file__)
    monkeypatch.setattr(codegen, "_loaded", {})
    monkeypatch.setattr(codegen, "package_fingerprint", lambda: "f" * 16)
    second = Path(codegen.kernel_module(model, "cpu").__file__)
    assert first.parent == second.parent == tmp_path / "kernels"
    assert first != second and first.exists() and second.exists()


def _fake_generated(directory: Path, prefix: str, digest: str, mtime: float) -> Path:
    """A generated file and numba cache files of it, dated ``mtime``."""
    path = directory / f"{prefix}{digest}.py"
    path.write_text("# old\n")
    cache = directory / "__pycache__"
    cache.mkdir(exist_ok=True)
    for suffix in (".kernel-20.py311.nbi", ".kernel-20.py311.1.nbc", ".cpython-311.pyc"):
        (cache / f"{path.stem}{suffix}").write_text("")
    os.utime(path, (mtime, mtime))
    return path


def test_old_generated_files_are_pruned_with_their_numba_cache(monkeypatch, tmp_path):
    """A new file of a model and target leaves the newest KEPT_VERSIONS of them (itself
    included); other models' and targets' files stay, and so does anything else."""
    monkeypatch.setenv("LOIHI_SLAYER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(codegen, "_loaded", {})
    kernels = codegen.cache_dir()
    prefix = "_loihi_slayer_gen_cuba_cpu_"
    now = time.time()
    old = [_fake_generated(kernels, prefix, f"{k:016x}", now - 1000 * (k + 1)) for k in range(6)]
    others = [
        _fake_generated(kernels, "_loihi_slayer_gen_cuba_cuda_", f"{k:016x}", now - 9e5)
        for k in range(6)
    ]
    others += [_fake_generated(kernels, "_loihi_slayer_gen_cuba_iz_cpu_", "0" * 16, now - 9e5)]
    unrelated = kernels / f"{prefix}notadigest.py"
    unrelated.write_text("")
    new = Path(codegen.kernel_module(models.get("cuba"), "cpu").__file__)
    kept = sorted(p.name for p in kernels.glob(f"{prefix}*.py") if p != unrelated)
    assert kept == sorted([new.name] + [p.name for p in old[: codegen.KEPT_VERSIONS - 1]])
    for path in old[codegen.KEPT_VERSIONS - 1 :]:
        assert not list((kernels / "__pycache__").glob(f"{path.stem}.*"))
    for path in old[: codegen.KEPT_VERSIONS - 1] + others:
        assert path.exists()
        assert len(list((kernels / "__pycache__").glob(f"{path.stem}.*"))) == 3
    assert unrelated.exists()


def test_an_existing_file_prunes_nothing(monkeypatch, tmp_path):
    """Reusing a generated file (the common case) deletes no other version."""
    monkeypatch.setenv("LOIHI_SLAYER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(codegen, "_loaded", {})
    kernels = codegen.cache_dir()
    model = models.get("cuba")
    name = f"_loihi_slayer_gen_cuba_cpu_{codegen._digest(model, 'cpu')}.py"
    (kernels / name).write_text(codegen.render(model, "cpu"))
    old = [
        _fake_generated(kernels, "_loihi_slayer_gen_cuba_cpu_", f"{k:016x}", 1e9 + k)
        for k in range(6)
    ]
    codegen.kernel_module(model, "cpu")
    assert all(p.exists() for p in old)

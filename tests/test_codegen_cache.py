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

import shutil
from pathlib import Path

import pytest

from loihi_slayer import models
from loihi_slayer.fixed import codegen

PACKAGE = Path(codegen.__file__).resolve().parents[1]


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """The package's ``.py`` files, copied."""
    root = tmp_path / "pkg"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def test_fingerprint_is_the_same_for_the_same_sources(package_copy):
    assert codegen.source_fingerprint(package_copy) == codegen.source_fingerprint(PACKAGE)


@pytest.mark.parametrize(
    "module", ["autograd/_recurrent_cpu.py", "autograd/_convert.py", "fixed/dynamics.py"]
)
def test_fingerprint_changes_with_any_inlined_helper(package_copy, module):
    before = codegen.source_fingerprint(package_copy)
    path = package_copy / module
    assert path.is_file(), module
    path.write_text(path.read_text() + "\n# changed\n")
    assert codegen.source_fingerprint(package_copy) != before


def test_fingerprint_changes_with_a_renamed_module(package_copy):
    before = codegen.source_fingerprint(package_copy)
    (package_copy / "errors.py").rename(package_copy / "errors2.py")
    assert codegen.source_fingerprint(package_copy) != before


@pytest.mark.parametrize("target", ["cpu", "recurrent"])
def test_generated_file_name_carries_the_fingerprint(monkeypatch, target):
    model = models.get("rf")
    name = codegen._digest(model, target)
    monkeypatch.setattr(codegen, "_package_fingerprint", lambda: "0" * 16)
    assert codegen._digest(model, target) != name


def test_kernel_module_of_a_changed_package_is_a_new_file(monkeypatch, tmp_path):
    """Another fingerprint: a new file next to the old one, imported afresh."""
    monkeypatch.setenv("LOIHI_SLAYER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(codegen, "_loaded", {})
    model = models.get("cuba")
    first = Path(codegen.kernel_module(model, "cpu").__file__)
    monkeypatch.setattr(codegen, "_loaded", {})
    monkeypatch.setattr(codegen, "_package_fingerprint", lambda: "f" * 16)
    second = Path(codegen.kernel_module(model, "cpu").__file__)
    assert first.parent == second.parent == tmp_path / "kernels"
    assert first != second and first.exists() and second.exists()

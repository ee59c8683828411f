"""doctor, --version, python -m loihi_slayer, packaging metadata."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import loihi_slayer
from loihi_slayer import doctor
from loihi_slayer.cli import main

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).parent.parent


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_doctor_report_and_self_test(capsys):
    diag = doctor.diagnose()
    # every kernel checked bit for bit against the reference, on cpu (and cuda when the
    # simulator or a GPU is present), and all agree
    assert {c.kernel for c in diag.checks} == set(doctor.SELF_TESTS)
    assert {c.backend for c in diag.checks} >= {"cpu"}
    assert diag.ok, [c for c in diag.checks if not c.ok]
    assert diag.threads >= 1 and diag.cache_dir
    assert main(["doctor", "--no-self-test"]) == 0
    out = capsys.readouterr().out
    for word in (
        "numba threads",
        "threading layer",
        "numba cache",
        "int8 dot products",
        "GEMM (LOIHI_SLAYER_INT8_GEMM=",
        "weight grad   events up to input density 0.20 at 64",  # the suite's pinned limit
        "cuda",
        "numba",
        loihi_slayer.__version__,
    ):
        assert word in out
    assert "self-test" not in out


def test_doctor_flags_a_kernel_that_differs(monkeypatch, capsys):
    def broken(rng, backend):
        x = np.zeros(4, np.int64)
        if backend != "reference":
            x[0] = 1
        return x

    monkeypatch.setattr(doctor, "SELF_TESTS", {"broken": broken})
    (check,) = doctor.self_test()
    assert not check.ok
    assert main(["doctor"]) == 1
    assert "broken" in capsys.readouterr().out


def test_cache_writable_check(tmp_path, monkeypatch):
    # a directory that does not exist yet is judged by the parent numba would create it in
    assert doctor._writable(str(tmp_path / "new" / "dir"))
    seen = []

    def no_write(path, mode):
        seen.append(path)
        return False

    monkeypatch.setattr(doctor.os, "access", no_write)  # root ignores permission bits
    assert not doctor._writable(str(tmp_path / "new" / "dir"))
    assert seen == [str(tmp_path)]


def test_version_from_one_place():
    ns: dict = {}
    exec((ROOT / "loihi_slayer" / "_version.py").read_text(), ns)
    assert loihi_slayer.__version__ == ns["__version__"]
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in meta["project"]["dynamic"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"]["attr"] == (
        "loihi_slayer._version.__version__"
    )


def test_version_flag_and_python_m():
    for cmd in ([sys.executable, "-m", "loihi_slayer", "--version"],):
        out = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"loihi-slayer {loihi_slayer.__version__}"
    out = subprocess.run(
        [sys.executable, "-m", "loihi_slayer", "--help"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0 and "doctor" in out.stdout


def test_project_metadata():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(meta["optional-dependencies"]) >= {"cuda", "plot", "nir", "data", "docs", "test"}
    assert meta["license"] == "BSD-3-Clause" and meta["license-files"] == ["LICENSE"]
    assert meta["keywords"] and meta["classifiers"] and meta["urls"]
    lic = (ROOT / "LICENSE").read_text()
    assert "BSD 3-Clause" in lic and "loihi_slayer developers" in lic
    assert (ROOT / "loihi_slayer" / "py.typed").exists()
    assert f"## [{loihi_slayer.__version__}]" in (ROOT / "CHANGELOG.md").read_text()


@pytest.mark.slow
def test_wheel_contains_license_and_py_typed(tmp_path):
    pytest.importorskip("setuptools", minversion="77")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (whl,) = tmp_path.glob("loihi_slayer-*.whl")
    assert whl.name.startswith(f"loihi_slayer-{loihi_slayer.__version__}-")
    names = zipfile.ZipFile(whl).namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "loihi_slayer/py.typed" in names and "loihi_slayer/__main__.py" in names

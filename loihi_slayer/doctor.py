"""``loihi-slayer doctor``: what this installation runs on, and a quick kernel self-test.

:func:`diagnose` collects versions, numba's threading layer and thread count,
numba's cache directory (and whether it is writable), the CPU's vector features and
which GEMM the exact int8 paths take on it, up to which input density the weight
gradient goes by events (:mod:`~loihi_slayer.synapse._grad_calibration`; reported,
never measured here), CUDA availability (driver,
numba-cuda, device), and runs each integer kernel of :mod:`loihi_slayer.fixed`
on small random inputs with the ``cpu`` backend (and ``cuda`` when a GPU or the
simulator is active), comparing bit for bit with the NumPy reference. Nothing is
written: the cache check uses :func:`os.access`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Diagnosis", "KernelCheck", "SELF_TESTS", "diagnose", "self_test"]

#: Distributions whose versions are reported (optional ones say "not installed").
PACKAGES = (
    "loihi_slayer",
    "numpy",
    "numba",
    "llvmlite",
    "torch",
    "h5py",
    "numba-cuda",
    "nir",
    "nirtorch",
    "tonic",
    "matplotlib",
)


@dataclass
class KernelCheck:
    """One kernel compared with the reference: ``ok`` is bit-exact equality."""

    kernel: str
    backend: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class Diagnosis:
    """Everything :func:`diagnose` found; :meth:`lines` renders it for the terminal."""

    versions: dict[str, str]
    python: str
    threading_layer: str
    threads: int
    cache_dir: str
    cache_writable: bool
    cuda: dict[str, str]
    cpu: str = ""
    event_grad: str = ""
    checks: list[KernelCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every self-test matched the reference."""
        return all(c.ok for c in self.checks)

    def lines(self) -> list[str]:
        """Human-readable report lines."""
        out = [f"python        {self.python}"]
        out += [f"{k:<13} {v}" for k, v in self.versions.items()]
        out.append(f"numba threads {self.threads} (threading layer: {self.threading_layer})")
        state = "writable" if self.cache_writable else "NOT writable (kernels recompile each run)"
        out.append(f"numba cache   {self.cache_dir} ({state})")
        if self.cpu:
            out.append(f"cpu           {self.cpu}")
        if self.event_grad:
            out.append(f"weight grad   {self.event_grad}")
        out += [f"cuda          {k}: {v}" for k, v in self.cuda.items()]
        for c in self.checks:
            verdict = "ok" if c.ok else "MISMATCH"
            extra = f" ({c.detail})" if c.detail else ""
            out.append(
                f"self-test     {c.kernel:<16} {c.backend:<5} {verdict} "
                f"{c.seconds * 1e3:.0f} ms{extra}"
            )
        return out


def _version(dist: str) -> str:
    if dist == "loihi_slayer":  # the code actually imported, wherever it lives
        from ._version import __version__

        return f"{__version__} ({os.path.dirname(os.path.abspath(__file__))})"
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cache_dir() -> str:
    """numba's cache directory for this package's kernels (NUMBA_CACHE_DIR or __pycache__)."""
    import numba

    if numba.config.CACHE_DIR:
        return str(numba.config.CACHE_DIR)
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixed", "__pycache__")


def _writable(path: str) -> bool:
    """Whether ``path`` (or the nearest existing parent numba would create it in) is writable."""
    p = os.path.abspath(path)
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            return False
        p = parent
    return os.access(p, os.W_OK)


def _cuda_info() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        import torch

        info["torch"] = (
            f"available ({torch.cuda.get_device_name(0)})"
            if torch.cuda.is_available()
            else "no GPU visible to torch"
        )
    except Exception as exc:  # any torch/CUDA failure is a finding, not a crash
        info["torch"] = f"error: {exc}"
    try:
        from numba import cuda
    except ImportError:
        info["numba-cuda"] = "not installed (pip install loihi_slayer[cuda])"
        return info
    sim = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"
    try:
        if not cuda.is_available():
            info["numba-cuda"] = "installed; no CUDA driver/GPU found"
            return info
        info["numba-cuda"] = "simulator (NUMBA_ENABLE_CUDASIM=1)" if sim else "available"
        if not sim:
            drv = cuda.cudadrv.driver.driver.get_version()
            info["driver"] = ".".join(str(v) for v in drv)
        info["device"] = str(cuda.get_current_device().name)
    except Exception as exc:  # driver problems are reported, not raised
        info["numba-cuda"] = f"error: {exc}"
    return info


# ----------------------------------------------------------------------------- self-test


def _spikes(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.random(shape) < 0.3).astype(np.int64)


def _t_cuba(rng: np.random.Generator, backend: str) -> Any:
    from . import fixed

    a = rng.integers(-300, 300, (16, 40))
    p = fixed.CubaParams(
        i_decay=int(rng.integers(0, 4097)),
        v_decay=int(rng.integers(0, 4097)),
        v_th_mant=int(rng.integers(1, 200)),
        bias_mant=int(rng.integers(-50, 50)),
        ref_delay=int(rng.integers(1, 4)),
    )
    return fixed.cuba(a, p, record=("s", "u", "v"), backend=backend)[0]


def _t_sigma_delta(rng: np.random.Generator, backend: str) -> Any:
    from . import fixed

    x = rng.integers(-5000, 5000, (16, 40))
    p = fixed.SigmaDeltaParams(v_th_mant=int(rng.integers(0, 20)))
    return fixed.sigma_delta(x, p, record=("s", "sigma", "act", "residue"), backend=backend)[0]


def _t_dense(rng: np.random.Generator, backend: str) -> Any:
    from . import fixed

    w = rng.integers(-256, 256, (12, 20))
    return fixed.dense(_spikes(rng, (2, 20, 30)), w, weight_exp=-1, backend=backend)


def _t_conv(rng: np.random.Generator, backend: str) -> Any:
    from . import fixed

    w = rng.integers(-256, 256, (4, 2, 3, 3))
    return fixed.conv2d(_spikes(rng, (2, 8, 8, 10)), w, padding=1, stride=2, backend=backend)


def _t_conv_t(rng: np.random.Generator, backend: str) -> Any:
    from . import fixed

    w = rng.integers(-256, 256, (2, 3, 3, 3))
    return fixed.conv_transpose2d(_spikes(rng, (2, 5, 5, 10)), w, stride=2, backend=backend)


def _t_pool(rng: np.random.Generator, backend: str) -> Any:
    from . import fixed

    w = np.full((1, 1, 2, 2), int(rng.integers(1, 256)))
    return fixed.pool2d(_spikes(rng, (3, 8, 8, 10)), w, backend=backend)


def _t_unpool(rng: np.random.Generator, backend: str) -> Any:
    from . import fixed

    w = np.full((1, 1, 2, 2), int(rng.integers(1, 256)))
    return fixed.unpool2d(_spikes(rng, (3, 4, 4, 10)), w, backend=backend)


#: kernel name -> ``(rng, backend) -> result``; every entry is checked against 'reference'
SELF_TESTS: dict[str, Callable[[np.random.Generator, str], Any]] = {
    "cuba": _t_cuba,
    "sigma_delta": _t_sigma_delta,
    "dense": _t_dense,
    "conv2d": _t_conv,
    "conv_transpose2d": _t_conv_t,
    "pool2d": _t_pool,
    "unpool2d": _t_unpool,
}


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return set(a) == set(b) and all(_equal(a[k], b[k]) for k in a)
    if hasattr(a, "copy_to_host"):
        a = a.copy_to_host()
    if hasattr(b, "copy_to_host"):
        b = b.copy_to_host()
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def self_test(backends: tuple[str, ...] = ("cpu",), seed: int = 0) -> list[KernelCheck]:
    """Run every :data:`SELF_TESTS` kernel on ``backends`` and compare with the reference.

    The first run of a kernel compiles it (numba caches it to disk); later runs
    take milliseconds.
    """
    checks = []
    for name, fn in SELF_TESTS.items():
        for backend in backends:
            t0 = time.perf_counter()
            try:
                ref = fn(np.random.default_rng(seed), "reference")
                got = fn(np.random.default_rng(seed), backend)
                ok, detail = _equal(got, ref), ""
            except Exception as exc:  # a failing kernel is the finding being reported
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            checks.append(KernelCheck(name, backend, ok, time.perf_counter() - t0, detail))
    return checks


def _cpu_info() -> str:
    """PyTorch's vector level, the GEMM of the exact int8 paths and the neuron kernels'
    vector width (:mod:`~loihi_slayer.fixed._vector_width`) on this CPU."""
    import torch

    from .fixed._vector_width import wide_vectors_wanted
    from .fixed.synapse_fast import INT8_DOT_FEATURES, INT8_GEMM_ENV, int8_gemm_pays

    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    name = caps.get("cpu_name", platform.processor() or "unknown")
    level = torch.backends.cpu.get_cpu_capability()
    dots = [f for f in INT8_DOT_FEATURES if caps.get(f, False)]
    try:
        gemm = "int8 GEMM" if int8_gemm_pays() else "float GEMM"
    except ValueError as exc:  # a bad LOIHI_SLAYER_INT8_GEMM: report it, keep going
        gemm = str(exc)
    setting = os.environ.get(INT8_GEMM_ENV, "auto")
    return (
        f"{name}, {level}; int8 dot products: {', '.join(dots) or 'none'}; exact spike "
        f"products use the {gemm} ({INT8_GEMM_ENV}={setting}); neuron kernels: "
        f"{'512-bit vectors (a listed CPU)' if wide_vectors_wanted() else 'LLVM-chosen vectors'}"
    )


def _event_grad_info() -> str:
    """Up to which input density the dense synapse's weight gradient goes by events here:
    the override, or the machine's calibration where one is kept (none is measured)."""
    from .synapse._grad_calibration import EVENT_GRAD_ENV, grad_max_density, kept_calibration

    setting = os.environ.get(EVENT_GRAD_ENV, "auto")
    if setting.strip().lower() == "auto" and kept_calibration() is None:
        return (
            f"not calibrated on this machine yet: measured once, at the first sparse "
            f"weight gradient ({EVENT_GRAD_ENV}={setting})"
        )
    try:
        limits = ", ".join(f"{grad_max_density(n):.2f} at {n}" for n in (64, 128, 512))
    except ValueError as exc:  # a bad LOIHI_SLAYER_EVENT_GRAD: report it, keep going
        return str(exc)
    return f"events up to input density {limits} outputs ({EVENT_GRAD_ENV}={setting})"


def _threading_layer() -> str:
    import numba

    try:
        return str(numba.threading_layer())
    except ValueError:  # no parallel kernel has run in this process yet
        return f"not initialized (configured: {numba.config.THREADING_LAYER})"


def diagnose(run_self_test: bool = True) -> Diagnosis:
    """Collect the installation report (and run the kernel self-test).

    Parameters
    ----------
    run_self_test
        Run :func:`self_test` on ``cpu`` (and ``cuda`` when numba-cuda finds a
        GPU or the simulator is on).
    """
    import numba

    cuda = _cuda_info()
    diag = Diagnosis(
        versions={d: _version(d) for d in PACKAGES},
        python=f"{platform.python_version()} ({platform.platform()})",
        threading_layer="",
        threads=int(numba.get_num_threads()),
        cache_dir=_cache_dir(),
        cache_writable=_writable(_cache_dir()),
        cuda=cuda,
        cpu=_cpu_info(),
        event_grad=_event_grad_info(),
    )
    if run_self_test:
        backends = ("cpu",)
        if cuda.get("numba-cuda", "").startswith(("available", "simulator")):
            backends += ("cuda",)
        diag.checks = self_test(backends)
    diag.threading_layer = _threading_layer()
    return diag

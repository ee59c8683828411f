r"""Where the event weight gradient beats the float32 GEMM on this machine.

The event weight gradient (:func:`~loihi_slayer.synapse._event_product.weight_grad_events`)
reads every input value once and adds one gradient row of :math:`O` values per
non-zero input; the GEMM it replaces does :math:`O` multiply-adds per input value
whatever its value. Their time ratio grows about linearly with the input density
:math:`d`, from a floor :math:`b_O` (the scan, the gradient rows' set-up and write-out)
at a slope :math:`k_O` (one event's row), both depending on the gradient's width
:math:`O`:

.. math::

    \frac{t_{events}}{t_{GEMM}} \approx b_O + k_O\,d,
    \qquad
    d_{max}(O) = m\,\frac{1 - b_O}{k_O}

with the margin :math:`m` (:data:`MARGIN`) keeping the choice where the events clearly
win. :math:`b_O` and :math:`k_O` are properties of the machine and of the BLAS torch
uses, not of the network: the float32 GEMM ran 3x faster on an Intel AVX-512 VM than on
an AMD Zen 5 VM of the same width, and the event kernel's break-even moved from 0.2 to
beyond 0.5 with it. Nor do they follow one formula in :math:`O`: on an Ice Lake VM the
floor was 0.38 of the GEMM's time at 128 outputs, 0.33 at 256 and 0.25 at 512, where a
floor fitted at 256 outputs and scaled as :math:`1/O` had put 128 outputs at 0.61 and
kept the N-MNIST dense-1 gradient (11 % density, break-even 19 %) on the GEMM, 0.6-1.3
ms of a 12 ms step. So each width of :data:`WIDTHS` is measured once per machine
(:func:`measure`, 0.4-0.9 s there: both paths on one synthetic product per width at two
densities, alternating), :math:`d_{max}` is interpolated between them in
:math:`\log_2 O` (the last width's beyond it; below the first, the GEMM) and the
measurement is kept in the cache directory as JSON, so that every later process chooses
the same paths: the two paths sum the gradient in different orders, and a choice timed
afresh in each process would change its rounding from run to run.

``LOIHI_SLAYER_EVENT_GRAD`` overrides: ``auto`` (the default: the measurement), ``off``
(the GEMM always), or a density in ``[0, 1]`` (events up to it, e.g. for runs that must
take the same paths on every machine).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import platform
import time
import types
from pathlib import Path

import numba
import torch

from ..fixed.codegen import cache_dir

__all__ = [
    "EVENT_GRAD_ENV",
    "GradCalibration",
    "calibration",
    "grad_max_density",
    "kept_calibration",
    "machine_key",
    "measure",
]

log = logging.getLogger(__name__)

#: environment variable overriding the choice: ``auto``, ``off`` or a density
EVENT_GRAD_ENV = "LOIHI_SLAYER_EVENT_GRAD"
#: fraction of the break-even density the events are taken up to
MARGIN = 0.8
#: the events are never taken beyond this density (the measured model's range)
MAX_DENSITY = 0.5
#: the measured product: inputs, (time, batch) columns (a gradient of 0.4 to 6.6 MB,
#: large enough that fixed costs do not pass for the scan's)
SHAPE = (512, 100, 32)
#: the gradient widths (outputs per input) measured
WIDTHS = (32, 64, 128, 256, 512)
#: the two densities measured, and the timing repetitions of each path per density
DENSITIES = (0.05, 0.25)
REPEATS = 5
#: format of the file kept on disk (a file of another version is measured anew)
VERSION = 3


def _floats(name: str, values: object, positive: bool) -> tuple[float, ...]:
    """``values`` as a tuple of finite floats (``> 0`` where ``positive``, else
    ``>= 0``), or ValueError naming the field."""
    ok = isinstance(values, (tuple, list)) and all(
        isinstance(v, float) and math.isfinite(v) and (v > 0 if positive else v >= 0)
        for v in values
    )
    if not ok:
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"GradCalibration.{name}={values!r}: expected {kind} floats")
    return tuple(values)


@dataclasses.dataclass(frozen=True)
class GradCalibration:
    r"""The event weight gradient's time relative to the float32 GEMM's (module), per
    gradient width ``widths`` (increasing): ``base`` (:math:`b_O`, the ratio at density
    0) and ``slope`` (:math:`k_O`, its growth per unit density)."""

    widths: tuple[int, ...]
    base: tuple[float, ...]
    slope: tuple[float, ...]

    def __post_init__(self) -> None:
        widths = self.widths
        ok = (
            isinstance(widths, (tuple, list))
            and len(widths) > 0
            and all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths)
            and all(a < b for a, b in zip(widths, widths[1:], strict=False))
        )
        if not ok:
            raise ValueError(
                f"GradCalibration.widths={widths!r}: expected increasing positive integers"
            )
        base = _floats("base", self.base, positive=False)
        slope = _floats("slope", self.slope, positive=True)
        for name, values in (("base", base), ("slope", slope)):
            if len(values) != len(widths):
                raise ValueError(
                    f"GradCalibration.{name}: {len(values)} values for {len(widths)} widths"
                )
        # kept as tuples whatever came in (a JSON file gives lists)
        object.__setattr__(self, "widths", tuple(widths))
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "slope", slope)

    def _limit(self, k: int) -> float:
        """:math:`d_{max}` at the ``k``-th width, in ``[0, MAX_DENSITY]``."""
        d = MARGIN * (1.0 - self.base[k]) / self.slope[k]
        return min(max(d, 0.0), MAX_DENSITY)

    def max_density(self, n_out: int) -> float:
        r""":math:`d_{max}` for a gradient of ``n_out`` outputs per input (module): 0
        below the first width (not measured: the GEMM), the last width's beyond it,
        linear in :math:`\log_2 O` between two."""
        widths = self.widths
        if n_out < widths[0]:
            return 0.0
        k = bisect.bisect_right(widths, n_out) - 1
        if k == len(widths) - 1:
            return self._limit(k)
        lo, hi = math.log2(widths[k]), math.log2(widths[k + 1])
        frac = (math.log2(n_out) - lo) / (hi - lo)
        return (1.0 - frac) * self._limit(k) + frac * self._limit(k + 1)


def machine_key() -> str:
    """What the costs depend on: the CPU (model and features as the OS reports them),
    its core count and the versions of torch (its BLAS) and numba (the kernel's code)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith(("model name", "flags", "Features")):
                cpu += "|" + line.split(":", 1)[-1].strip()
                if line.startswith(("flags", "Features")):
                    break
    except OSError:
        pass
    return "|".join((cpu, str(os.cpu_count()), torch.__version__, numba.__version__))


def _path() -> Path:
    digest = hashlib.sha256(machine_key().encode()).hexdigest()[:16]
    return cache_dir("calibration") / f"event-grad-{digest}.json"


def _fastest_pair(events, gemm) -> tuple[float, float]:
    """The shortest of :data:`REPEATS` timings of each path, alternating (after one of
    each): the least disturbed by other work on the machine."""
    events(), gemm()
    te, tg = [], []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        events()
        t1 = time.perf_counter()
        gemm()
        t2 = time.perf_counter()
        te.append(t1 - t0)
        tg.append(t2 - t1)
    return min(te), min(tg)


def measure() -> GradCalibration:
    """Time the event weight gradient and the float32 GEMM (as the product runs them:
    time-major operand and gradient, the GEMM on the operand's float copy) on the
    product :data:`SHAPE` at each width of :data:`WIDTHS` and the two
    :data:`DENSITIES`, and fit the module's model per width."""
    from ._event_product import events_weight_grad

    n_in, steps, n_b = SHAPE
    gen = torch.Generator().manual_seed(0)
    ctx = types.SimpleNamespace(operand_time_major=True)
    q_float = torch.empty(n_in, steps * n_b)
    operands = []
    for density in DENSITIES:
        # the time-major int8 operand ``(I, T·B)`` of this 0/1 input, by torch: the
        # compiled operand pass (``int8_operand(x, time_major=True)``, the same values)
        # took 3.2 s of a new process's first N-MNIST training step to compile, for this
        # measurement alone (the step's own operands come from its kernels)
        x = torch.rand(n_b, n_in, steps, generator=gen) < density
        q = x.permute(1, 2, 0).to(torch.int8).reshape(n_in, steps * n_b)
        operands.append((float((q != 0).sum()) / q.numel(), q))
    base, slope = [], []
    for n_out in WIDTHS:
        g_rows = torch.randn(steps * n_b, n_out, generator=gen)
        g = g_rows.view(steps, n_b, n_out).permute(1, 2, 0)
        ratios = []
        for real, q in operands:
            t_ev, t_gemm = _fastest_pair(
                lambda q=q, g=g: events_weight_grad(ctx, q, g),
                lambda q=q, g_rows=g_rows: torch.mm(g_rows.t(), q_float.copy_(q).t()),
            )
            ratios.append((real, t_ev / t_gemm))
        (d0, r0), (d1, r1) = ratios
        k = max((r1 - r0) / (d1 - d0), 1e-3)
        base.append(float(max(r0 - k * d0, 0.0)))
        slope.append(float(k))
    result = GradCalibration(widths=WIDTHS, base=tuple(base), slope=tuple(slope))
    log.info(
        "event weight gradient against the float32 GEMM here: events up to density %s",
        ", ".join(f"{result.max_density(n):.3f} at {n} outputs" for n in WIDTHS),
    )
    return result


def _read(path: Path, key: str) -> GradCalibration | None:
    """The calibration kept in ``path`` for ``key``, or None (absent, of another machine
    or version, or not a valid calibration: said in the log, then measured anew)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        log.warning("%s: cannot read the event-gradient calibration (%s); measuring", path, err)
        return None
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        missing = [name for name in ("version", "key") if name not in data]
        if not missing and (data["version"] != VERSION or data["key"] != key):
            return None  # kept by another install or version: not an error
        missing += [name for name in ("widths", "base", "slope") if name not in data]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        return GradCalibration(widths=data["widths"], base=data["base"], slope=data["slope"])
    except (ValueError, TypeError) as err:
        log.warning("%s: not a valid event-gradient calibration (%s); measuring anew", path, err)
        return None


def _write(path: Path, key: str, cal: GradCalibration) -> None:
    """Keep ``cal`` in ``path`` (written whole, then renamed: a reader never sees half)."""
    data = {"version": VERSION, "key": key, **dataclasses.asdict(cal)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError as err:
        log.warning("%s: cannot keep the event-gradient calibration (%s)", path, err)
        tmp.unlink(missing_ok=True)


def kept_calibration() -> GradCalibration | None:
    """This machine's calibration where one is already kept (in this process or on
    disk), else None: nothing measured, nothing written (for reports)."""
    if calibration.cache_info().currsize:
        return calibration()
    return _read(_path(), machine_key())


@functools.cache
def calibration() -> GradCalibration:
    """This machine's calibration: read from the cache directory, else measured
    (:func:`measure`) and kept there; once per process."""
    key, path = machine_key(), _path()
    cal = _read(path, key)
    if cal is None:
        cal = measure()
        _write(path, key, cal)
    return cal


def grad_max_density(n_out: int) -> float:
    """The largest input density at which the event weight gradient replaces the float32
    GEMM, for ``n_out`` outputs per input: ``LOIHI_SLAYER_EVENT_GRAD`` (``off``: 0; a
    density in ``[0, 1]``), else this machine's :func:`calibration`."""
    raw = os.environ.get(EVENT_GRAD_ENV, "auto")
    key = raw.strip().lower()
    if key == "auto":
        return calibration().max_density(n_out)
    if key == "off":
        return 0.0
    try:
        value = float(key)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"{EVENT_GRAD_ENV}={raw!r}: expected auto, off or a density in [0, 1] "
            "(the largest input density at which the weight gradient goes by events)"
        )
    return value

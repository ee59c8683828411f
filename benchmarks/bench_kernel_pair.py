"""One training kernel of this checkout against the same kernel of an older commit, paired.

The machines these benchmarks run on are shared and drift by up to 2x within minutes,
so two benchmark runs a few minutes apart cannot tell a 5 % change. Here both versions
of a case's kernel file (``loihi_slayer/autograd/_cpu.py`` for the forward kernels) are
compiled into one process: the older one from ``git show REV:FILE``, imported as a
module of its own (its relative imports made absolute, so it uses this checkout's other
modules: the comparison is of that one file). Each case captures the arguments of
one real call of the kernel (a training neuron's forward, the N-MNIST pool block's, a
block's backward),
checks that both versions write the same outputs bit for bit, then times them in turn,
``--rounds`` rounds of ``--calls`` calls each (the order flipped every round), and
prints the medians and the median of the per-round ratios with its quartiles.

Cases:

* ``cuba``: ``neuron.cuba.Neuron`` forward at (32, 512, 200), input as in
  ``bench_training_neuron.py`` (voltage and current recorded for the backward);
* ``cuba-spikes``: the same under ``torch.no_grad()`` (spikes alone);
* ``pool``: the N-MNIST example's pool block on the shipped data (batch 32, T = 60);
* ``sigma-delta``: ``neuron.sigma_delta.Neuron`` forward at (32, 512, 200);
* ``cuba-backward``: the CUBA training neuron's backward (``cuba_backward_fast``) at
  (32, 512, 200), the ``cuba`` case's input, a gradient of ones;
* ``nmnist-backward``: the neuron-last CUBA backward (``cuba_backward_fast_nl``) of the
  N-MNIST example's dense-1 block in one training step (batch 32, T = 60);
* ``nl-backward``: the same kernel called directly at (32, 512, 200) on random values;
* ``sigma-delta-backward``: its backward (``sdnn_backward``, ReLU mask recorded), a
  gradient of ones;
* ``rf-backward``: the resonator row backward (``_resonator_bwd.backward``) of an
  ``rf.Dense`` 512 -> 512 block's training step (batch 32, T = 200, 20 % input spikes);
* ``rf-surrogate``: the surrogate pass of an ``rf.Recurrent`` block's fused recurrence
  (``_resonator_bwd.surrogate_steps``), the same sizes;
* ``alif-backward``: the ALIF scan (``_li_scan.cpu``) of an ``alif.Dense`` block's step,
  the same sizes.

Usage::

    python benchmarks/bench_kernel_pair.py --against d2250c1 [--cases cuba,pool]
        [--rounds 30] [--calls 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from loihi_slayer.autograd import _li_scan, _resonator_bwd, recurrent_complex
from loihi_slayer.autograd import cuba as acuba
from loihi_slayer.autograd import sigma_delta as asd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # bench_training (the pool case), bench_recurrent (blocks)

#: the forward kernels' file
KERNELS = "loihi_slayer/autograd/_cpu.py"


def absolute_imports(source: str, package: str) -> str:
    """``source`` with its relative ``from`` imports made absolute within ``package``."""

    def resolve(m: re.Match) -> str:
        dots, rest = m.group(1), m.group(2)
        parts = package.split(".")
        base = parts[: len(parts) - (len(dots) - 1)]
        return f"from {'.'.join(base + ([rest] if rest else []))} import"

    return re.sub(r"^from (\.+)([\w.]*) import", resolve, source, flags=re.M)


def older_kernels(rev: str, file: str, folder: Path) -> ModuleType:
    """The module ``file`` of commit ``rev`` (see the module docstring)."""
    try:
        source = subprocess.run(
            ["git", "show", f"{rev}:{file}"], cwd=ROOT, check=True, capture_output=True
        ).stdout.decode()
    except subprocess.CalledProcessError as err:
        raise SystemExit(f"git show {rev}:{file} failed: {err.stderr.decode().strip()}") from None
    package = ".".join(Path(file).parent.parts)
    name = Path(file).stem + "_" + re.sub(r"\W", "_", rev)
    path = folder / f"{name}.py"
    path.write_text(absolute_imports(source, package))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cuba_input() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    shape = (32, 512, 200)
    a = torch.randint(0, 41, shape, generator=g) * (torch.rand(shape, generator=g) < 0.2)
    return a.float()


def _run_cuba(grad: bool, backward: bool = False) -> Callable[[], None]:
    def run() -> None:
        from loihi_slayer.neuron import cuba

        n = cuba.Neuron(threshold=1.25, current_decay=0.25, voltage_decay=0.03)
        x = (_cuba_input() / 64).requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            y = n(x)
        if backward:
            y.backward(torch.ones_like(y))

    return run


def _run_pool() -> None:
    from bench_training import nmnist_case

    case = nmnist_case(32)
    with torch.no_grad():
        case["ours"][0](case["x"])


def _run_sigma_delta(backward: bool = False) -> None:
    from loihi_slayer.neuron import sigma_delta

    n = sigma_delta.Neuron(threshold=1 / 64, activation=torch.nn.functional.relu)
    x = (_cuba_input() * 256 / 2**18).requires_grad_(backward)
    with torch.set_grad_enabled(backward):
        y = n(x)
    if backward:
        y.backward(torch.ones_like(y))


def _run_nmnist_step() -> None:
    """One training step of the N-MNIST example (batch 32, T = 60): its dense-1 neuron
    gets its spike gradient neuron-last from the dense-2 synapse."""
    from bench_training import nmnist_case

    case = nmnist_case(32)
    case["loss"](case["ours"](case["x"]), case["target"]).backward()


def _run_nl_kernel() -> None:
    """The neuron-last CUBA backward called directly at (32, 512, 200): random spike
    gradients and voltages (normal), threshold 0.5, surrogate width 2, decays 1024."""
    rng = np.random.default_rng(0)
    b, n, t = 32, 512, 200
    g = rng.standard_normal((b, t, n)).astype(np.float32)
    vp = rng.standard_normal((b * n, t)).astype(np.float32)
    one = np.ones(1, np.float32)
    dec = np.array([1024], np.int64)
    acuba._CPU_BACKWARD_NL[True](g, vp, 0.5 * one, one / 2, 0.1, False, dec, dec, 0 * g, 0)


def _run_block_step(family: str, kind: str = "Dense") -> Callable[[], None]:
    """One training step (forward, backward of the spike sum) of a 512 -> 512 block
    ``kind`` of ``family`` at batch 32, T = 200, 20 % input spikes."""

    def run() -> None:
        from bench_recurrent import FAMILIES

        torch.manual_seed(0)
        mod, params = FAMILIES[family]
        blk = getattr(mod, kind)(params, 512, 512, weight_scale=2)
        x = (torch.rand(32, 512, 200) < 0.2).float()
        blk(x).sum().backward()

    return run


@dataclass(frozen=True)
class Case:
    """Where a case's kernel lives and how a real call of it is made."""

    file: str  # the kernel's file, compared against the older commit's
    slot: Any  # what holds the kernel the run calls: a dict or a module
    key: Any  # its key in the dict, or its attribute name in the module
    name: str  # the kernel's name in ``file``
    run: Callable[[], None]

    def get(self) -> Callable:
        return self.slot[self.key] if isinstance(self.slot, dict) else getattr(self.slot, self.key)

    def put(self, kernel: Callable) -> None:
        if isinstance(self.slot, dict):
            self.slot[self.key] = kernel
        else:
            setattr(self.slot, self.key, kernel)


_PARALLEL_CUBA = (acuba._CPU_FORWARD, (False, True))
CASES = {
    "cuba": Case(KERNELS, *_PARALLEL_CUBA, "cuba_forward", _run_cuba(True)),
    "cuba-spikes": Case(KERNELS, *_PARALLEL_CUBA, "cuba_forward", _run_cuba(False)),
    "pool": Case(KERNELS, *_PARALLEL_CUBA, "cuba_forward", _run_pool),
    "sigma-delta": Case(KERNELS, asd._CPU_FORWARD, True, "sdnn_forward", _run_sigma_delta),
    "cuba-backward": Case(
        KERNELS, acuba._CPU_BACKWARD, (True, True), "cuba_backward_fast", _run_cuba(True, True)
    ),
    "nmnist-backward": Case(
        KERNELS, acuba._CPU_BACKWARD_NL, True, "cuba_backward_fast_nl", _run_nmnist_step
    ),
    "nl-backward": Case(
        KERNELS, acuba._CPU_BACKWARD_NL, True, "cuba_backward_fast_nl", _run_nl_kernel
    ),
    "sigma-delta-backward": Case(
        KERNELS, asd._CPU_BACKWARD, True, "sdnn_backward", lambda: _run_sigma_delta(True)
    ),
    "rf-backward": Case(
        "loihi_slayer/autograd/_resonator_bwd.py",
        _resonator_bwd,
        "backward",
        "backward",
        _run_block_step("rf"),
    ),
    "rf-surrogate": Case(
        "loihi_slayer/autograd/_resonator_bwd.py",
        recurrent_complex,
        "surrogate_steps",
        "surrogate_steps",
        _run_block_step("rf", "Recurrent"),
    ),
    "alif-backward": Case(
        "loihi_slayer/autograd/_li_scan.py", _li_scan, "cpu", "cpu", _run_block_step("alif")
    ),
}


def captured_call(case: str) -> tuple[Callable, str, tuple]:
    """The current kernel, its name and the arguments of one real call of it."""
    spec = CASES[case]
    kernel = spec.get()
    calls: list[tuple] = []

    def spy(*args):
        calls.append(args)
        return kernel(*args)

    spec.put(spy)
    try:
        spec.run()
    finally:
        spec.put(kernel)
    if not calls:
        raise SystemExit(f"{case}: the run never called {spec.name}")
    return kernel, spec.name, calls[-1]


def _copies(args: tuple) -> list:
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def max_relative(arrays: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The largest ``|p - q| / max|q|`` over pairs of float arrays (0 for integer ones)."""
    worst = 0.0
    for p, q in arrays:
        if p.dtype.kind == "f" and p.size:
            worst = max(worst, float(np.abs(p - q).max() / max(np.abs(q).max(), 1e-300)))
    return worst


def pair(case: str, old_mod: ModuleType, rounds: int, calls: int) -> None:
    new, name, args = captured_call(case)
    old = getattr(old_mod, name)
    outs = []
    for kernel in (new, old):
        a = _copies(args)
        kernel(*a)
        outs.append(a)
    arrays = [(p, q) for p, q in zip(*outs, strict=True) if isinstance(p, np.ndarray)]
    same = all(np.array_equal(p, q) for p, q in arrays)
    if not same:  # a change of float rounding (say, another exp): how far apart
        same = f"False (largest relative difference {max_relative(arrays):.1e})"
    work = {"new": _copies(args), "old": _copies(args)}
    kernels = {"new": new, "old": old}
    times: dict[str, list[float]] = {"new": [], "old": []}
    for r in range(rounds):
        for k in ("new", "old") if r % 2 else ("old", "new"):
            t0 = time.perf_counter()
            for _ in range(calls):
                kernels[k](*work[k])
            times[k].append((time.perf_counter() - t0) / calls * 1e3)
    ratios = [n / o for n, o in zip(times["new"], times["old"], strict=True)]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    print(
        f"{case:12s} {name}: older {statistics.median(times['old']):8.3f} ms, this checkout "
        f"{statistics.median(times['new']):8.3f} ms; this / older, median of {rounds} rounds "
        f"{statistics.median(ratios):.3f} (quartiles {q1:.3f}-{q3:.3f}); outputs equal: {same}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", required=True, help="the older commit (any git revision)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"of {', '.join(CASES)}")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--calls", type=int, default=5)
    args = ap.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}: choose from {', '.join(CASES)}")
    with tempfile.TemporaryDirectory() as folder:
        older: dict[str, ModuleType] = {}
        for case in cases:
            file = CASES[case].file
            if file not in older:
                older[file] = older_kernels(args.against, file, Path(folder))
            pair(case, older[file], args.rounds, args.calls)


if __name__ == "__main__":
    main()

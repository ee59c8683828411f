"""Start-up costs, each measured in fresh Python processes (issue 8, item 7).

Run: ``python benchmarks/bench_startup.py [--reps 3] [--skip-cold]``

1. ``import loihi_slayer`` (and, for reference, ``import torch`` alone): seconds
   inside the process, median of ``--reps`` processes. Target < 1 s.
2. First kernel result with a warm numba cache: one process runs ``fixed.cuba`` on a
   small array (filling the caches), then fresh processes time interpreter start ->
   result (wall, measured from outside). Target < 2 s.
3. Cold-cache CLI path: with empty temporary ``NUMBA_CACHE_DIR`` and
   ``LOIHI_SLAYER_CACHE_DIR``, ``loihi-slayer emulate`` of a small exported CUBA network
   (pool -> dense -> dense, N-MNIST shape), then ``verify`` of the golden case it wrote
   and ``inspect``; the sum is the cold compile cost (target < 30 s). The same commands
   are then timed again on the now-warm caches.
4. Cold-cache first training step: with empty caches again, a fresh process builds the
   N-MNIST example's network (``examples/nmnist.py``: pool -> dense 578 -> 128 -> dense
   10) and times its first training step (batch 32, T = 60, random input spikes,
   ``SpikeRate`` loss, Adam): the kernels a user's first training step compiles. Then a
   second process on the warm caches.

Set ``--numba-report`` to list, for the cold ``emulate`` and the cold training step, the
numba functions compiled and the seconds each took (numba's compile events).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

_IMPORT = "import time; t0 = time.perf_counter(); {stmt}; print(time.perf_counter() - t0)"
#: what a user's script imports: the package, and the package with its training and
#: kernel modules (which bring in torch and numba)
_IMPORTS = {
    "import torch": "import torch",
    "import loihi_slayer": "import loihi_slayer",
    "+ block, fixed, neuron": "import loihi_slayer; from loihi_slayer import block, fixed, neuron",
}
_FIRST = (
    "import numpy as np\n"
    "from loihi_slayer import fixed\n"
    "a = (np.arange(64 * 50).reshape(64, 50) % 7).astype(np.int32)\n"
    "out, _ = fixed.cuba(a, fixed.CubaParams(i_decay=411, v_decay=205, v_th_mant=20))\n"
    "assert out['s'].shape == (64, 50)\n"
)
_EXPORT = """
import sys, numpy as np, torch
from loihi_slayer.block import cuba, export_network, init_shapes
p = {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03}
torch.manual_seed(0)
net = torch.nn.Sequential(cuba.Pool(p, kernel_size=2, weight_scale=1), cuba.Flatten(),
                          cuba.Dense(p, 2 * 17 * 17, 128), cuba.Dense(p, 128, 10))
init_shapes(net, (2, 34, 34))
export_network(net, sys.argv[1])
rng = np.random.default_rng(0)
np.save(sys.argv[2], (rng.random((2 * 34 * 34, 300)) < 0.05).astype(np.int32))
"""
# the first training step of the N-MNIST example's network (argv[1]: the examples folder)
_TRAIN = """
import sys, time
t0 = time.perf_counter()
import torch
from loihi_slayer import loss
sys.path.insert(0, sys.argv[1])
import nmnist
torch.manual_seed(0)
net = nmnist.build(128)
x = (torch.rand(32, 2, 34, 34, 60) < 0.05).float()
y = torch.randint(0, 10, (32,))
error = loss.SpikeRate(true_rate=0.2, false_rate=0.03, reduction="sum")
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
t1 = time.perf_counter()
opt.zero_grad()
error(net(x), y).backward()
opt.step()
print(t1 - t0, time.perf_counter() - t1)
"""
# numba's compile events (numba >= 0.57): print every compiled function and its time
_LISTEN = """
import sys, time
from numba.core.event import install_listener, Listener
class L(Listener):  # exclusive seconds per compiled signature (nested compiles subtracted)
    def __init__(self): self.stack = []; self.rows = []
    def on_start(self, ev): self.stack.append([time.perf_counter(), 0.0])
    def on_end(self, ev):
        t0, inner = self.stack.pop()
        incl = time.perf_counter() - t0
        if self.stack:
            self.stack[-1][1] += incl
        f = ev.data['dispatcher'].py_func
        self.rows.append((incl - inner, f.__module__ + '.' + f.__qualname__))
lis = L()
def report():
    for sec, name in sorted(lis.rows, reverse=True)[:25]:
        print(f'  {sec:6.2f} s  {name}', file=sys.stderr)
    print(f'  {len(lis.rows)} compiles, {sum(r[0] for r in lis.rows):.1f} s', file=sys.stderr)
"""
_REPORT = (
    _LISTEN
    + """
with install_listener('numba:compile', lis):
    from loihi_slayer import cli
    code = cli.main(sys.argv[1:], supervise=False)  # in this process, not a forked child
report()
sys.exit(code)
"""
)
_TRAIN_REPORT = (
    _LISTEN
    + "with install_listener('numba:compile', lis):\n"
    + "".join("    " + line + "\n" for line in _TRAIN.strip().splitlines())
    + "report()\n"
)


def _env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _run(args: list[str], env: dict, check: bool = True) -> tuple[float, str]:
    """Run a command; return (wall seconds, stdout)."""
    t0 = time.perf_counter()
    p = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if check and p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    if p.stderr.strip() and "--numba-report" in sys.argv:
        print(p.stderr.rstrip())
    return wall, p.stdout


def _fmt(vals: list[float]) -> str:
    return f"{np.median(vals):6.2f} s (min {min(vals):.2f}, max {max(vals):.2f})"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-cold", action="store_true", help="skip the cold-cache CLI part")
    ap.add_argument(
        "--numba-report",
        action="store_true",
        help="list the functions numba compiles in the cold emulate",
    )
    args = ap.parse_args(argv)
    py = sys.executable
    print(
        f"python {sys.version.split()[0]}, load avg {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    env = _env()

    for label, stmt in _IMPORTS.items():
        code = _IMPORT.format(stmt=stmt)
        ts = [float(_run([py, "-c", code], env)[1]) for _ in range(args.reps)]
        print(f"{label:24s}{_fmt(ts)}")

    _run([py, "-c", _FIRST], env)  # fill the caches
    ts = [_run([py, "-c", _FIRST], env)[0] for _ in range(args.reps)]
    print(f"first fixed.cuba result {_fmt(ts)}   (process wall, warm cache; target < 2 s)")
    ts = [_run([py, "-c", "pass"], env)[0] for _ in range(args.reps)]
    print(f"  (bare interpreter      {_fmt(ts)})")

    if args.skip_cold:
        return
    with tempfile.TemporaryDirectory(prefix="ls-startup-") as tmp:
        tmp = Path(tmp)
        cold = _env(NUMBA_CACHE_DIR=str(tmp / "numba"), LOIHI_SLAYER_CACHE_DIR=str(tmp / "ls"))
        net, inp, gold = tmp / "net.net", tmp / "input.npy", tmp / "golden.h5"
        _run([py, "-c", _EXPORT, str(net), str(inp)], cold)
        cli = [py, "-m", "loihi_slayer.cli"]
        steps = {
            "emulate": [
                "emulate",
                str(net),
                str(inp),
                "-o",
                str(gold),
                "--record",
                "s,u,v",
                "--input-shape",
                "2,34,34",
            ],
            "verify": ["verify", str(gold)],
            "inspect": ["inspect", str(net)],
        }
        for label in ("cold", "warm"):
            total = 0.0
            for name, cmd in steps.items():
                report = args.numba_report and label == "cold" and name == "emulate"
                run = [py, "-c", _REPORT, *cmd] if report else [*cli, *cmd]
                wall, _ = _run(run, cold)
                total += wall
                print(f"{label} CLI {name:8s}        {wall:6.2f} s")
            target = "   target < 30 s" if label == "cold" else ""
            print(f"{label} CLI path total      {total:6.2f} s{target}")

    with tempfile.TemporaryDirectory(prefix="ls-startup-") as tmp:
        cold = _env(
            NUMBA_CACHE_DIR=str(Path(tmp) / "numba"), LOIHI_SLAYER_CACHE_DIR=str(Path(tmp) / "ls")
        )
        for label in ("cold", "warm"):
            code = _TRAIN_REPORT if args.numba_report and label == "cold" else _TRAIN
            wall, out = _run([py, "-c", code, str(ROOT / "examples")], cold)
            setup, step = (float(v) for v in out.split()[-2:])
            print(
                f"{label} first N-MNIST training step {step:6.2f} s"
                f"   (imports and network {setup:.2f} s, process wall {wall:.2f} s)"
            )


if __name__ == "__main__":
    main()

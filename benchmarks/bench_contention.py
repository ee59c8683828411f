"""Training speed when other processes share the CPUs (issue 8, item 6).

Run: ``python benchmarks/bench_contention.py [--epochs 20] [--configs default,import-first]``

Times, in a fresh child process each:

* the demo's training epoch (``loihi_slayer.demo``: Oxford network, 200 -> 256 -> 200
  CUBA, 2000 steps, one Adam step per epoch) with the machine otherwise idle, beside one
  busy-looping process and beside two;
* an N-MNIST training step (``examples/nmnist.py`` network, batch 32) fed by a
  ``torch.utils.data.DataLoader`` with ``num_workers=2`` that reads and bins the
  ``.bs2`` files, against the same steps on preloaded tensors, and the loader alone
  (each batch taken and read once, as the step reads it, no training): a step fed by
  the loader cannot beat the slower of the two, so beside the slowdown against the
  preloaded step the script prints the one against that bound, the part that sharing
  the cores with the workers costs (on a machine where the step is fast the loader
  alone sets the pace: 16 ms a batch against a 3.6 ms step here);
* an emulator run of ``bench_emulator.py``'s PilotNet-size CUBA network (T = 32, every
  layer recorded) idle, beside one busy process and beside two.

and prints the median seconds per epoch / step and the slowdowns against idle (issue 8
target: <= 2x beside one busy process on a 2-core machine; the fair figure is about the
share of CPU left: 2 cores / 1.5 busy-equivalents). Other load on the machine distorts
the figures: the script prints the load average; run it on a quiet machine.

``--configs`` compares thread settings (each a set of environment variables for the
child, see :data:`CONFIGS`), e.g. ``--configs default,serial,passive`` to find what
causes a collapse.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: thread settings to compare: name -> environment of the measured child process
CONFIGS: dict[str, dict[str, str]] = {
    # torch imported first, as most scripts do: its OpenMP runtime starts spinning
    "default": {},
    # loihi_slayer imported first: it sets OMP_WAIT_POLICY=PASSIVE (loihi_slayer._threads)
    "import-first": {"BENCH_IMPORT_FIRST": "1"},
    # the numba threading layer without OpenMP
    "workqueue": {"NUMBA_THREADING_LAYER": "workqueue"},
    # OpenMP workers sleep at once instead of spinning after each parallel region
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    # no parallel regions at all: one numba and one torch thread
    "serial": {"LOIHI_SLAYER_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    # one side at a time: torch single-threaded; numba single-threaded
    "torch1": {"BENCH_TORCH_THREADS": "1"},
    "numba1": {"NUMBA_NUM_THREADS": "1"},
    # passive waiting for numba's OpenMP runtime only (set after torch's has started)
    "numba-passive": {"BENCH_LATE_ENV": "OMP_WAIT_POLICY=PASSIVE"},
    # numba on its own thread pool; torch single-threaded / numba single-threaded
    "workqueue-torch1": {"NUMBA_THREADING_LAYER": "workqueue", "BENCH_TORCH_THREADS": "1"},
    "workqueue-numba1": {"NUMBA_THREADING_LAYER": "workqueue", "NUMBA_NUM_THREADS": "1"},
    # OpenMP workers spin a bounded while after each region, then sleep (GOMP_SPINCOUNT:
    # libgomp's default without a policy is 300000, "about 3 ms"; passive is 0)
    "spin300": {"GOMP_SPINCOUNT": "300"},
    "spin1k": {"GOMP_SPINCOUNT": "1000"},
    "spin3k": {"GOMP_SPINCOUNT": "3000"},
    "spin10k": {"GOMP_SPINCOUNT": "10000"},
}

BUSY = "while True:\n    pass\n"


# ------------------------------------------------------------------ child workloads
def _oxford(epochs: int, budget: float) -> list[float]:
    import torch

    from loihi_slayer import demo
    from loihi_slayer.loss import SpikeTime

    torch.manual_seed(0)
    x, target = demo.oxford_data()
    net = demo.Network()
    error = SpikeTime(time_constant=2, filter_order=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def epoch() -> None:
        opt.zero_grad()
        error(net(x), target).backward()
        opt.step()

    return _repeat(epoch, epochs, budget)


def _nmnist(epochs: int, budget: float, workers: int, train: bool = True) -> list[float]:
    import importlib.util

    import torch

    from loihi_slayer import loss

    spec = importlib.util.spec_from_file_location("ex_nmnist", ROOT / "examples" / "nmnist.py")
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    rows = ex.read_list(ex.DEFAULT_DATA / "train1K.txt")

    class Samples(torch.utils.data.Dataset):
        """One N-MNIST sample per item, read and binned on access (the worker's job)."""

        def __len__(self) -> int:
            return len(rows)

        def __getitem__(self, i: int):
            sample, label = rows[i]
            ev = ex.read_2d_spikes(ex.DEFAULT_DATA / f"{sample}.bs2")
            x = ev.to_tensor(sampling_time=5.0, dim=(*ex.SENSOR, 60)) > 0
            return torch.as_tensor(x, dtype=torch.float32), label

    torch.manual_seed(0)
    net = ex.build(128)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    error = loss.SpikeRate(true_rate=0.2, false_rate=0.03, reduction="sum")
    data = Samples()
    if workers:
        loader = torch.utils.data.DataLoader(
            data, batch_size=32, shuffle=True, num_workers=workers, persistent_workers=True
        )
        batches = iter(_cycle(loader))
    else:  # preloaded: the same batches, read before timing
        fixed = [next(iter(torch.utils.data.DataLoader(data, batch_size=32)))] * 2
        batches = iter(_cycle(fixed))

    def step() -> None:
        x, label = next(batches)
        if not train:  # the loader alone: the batch read once, as the pool block reads it
            x.sum()
            return
        opt.zero_grad()
        error(net(x), label).backward()
        opt.step()

    return _repeat(step, epochs, budget)


def _emulator(epochs: int, budget: float) -> list[float]:
    """One emulator run of ``bench_emulator.py``'s PilotNet-size CUBA network (T = 32,
    every layer's spikes recorded): tile threads, parallel neuron kernels, GEMMs."""
    import tempfile

    sys.path.insert(0, str(HERE))
    import bench_emulator as be

    from loihi_slayer.block import export_network
    from loihi_slayer.emulate import Emulator

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "pilotnet-cuba.net")
        export_network(be.pilotnet_blocks("cuba"), path)
        emu = Emulator(path)
    x, graded = be.make_input("pilotnet-cuba", emu, 32, np.random.default_rng(0))
    return _repeat(lambda: emu.run(x, 32, graded_input=graded), epochs, budget)


def _cycle(iterable):
    while True:
        yield from iterable


def _repeat(fn, n: int, budget: float) -> list[float]:
    fn()  # warm caches (numba loads, allocator)
    fn()
    ts: list[float] = []
    start = time.perf_counter()
    while len(ts) < n and (len(ts) < 3 or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return ts


def child(args: argparse.Namespace) -> None:
    if os.environ.get("BENCH_IMPORT_FIRST"):
        importlib.import_module("loihi_slayer")  # sets the OpenMP wait policy before torch
    import torch  # its OpenMP runtime starts here

    if os.environ.get("BENCH_TORCH_THREADS"):
        torch.set_num_threads(int(os.environ["BENCH_TORCH_THREADS"]))
    for item in filter(None, os.environ.get("BENCH_LATE_ENV", "").split(",")):
        key, value = item.split("=", 1)
        os.environ[key] = value
    if args.child == "oxford":
        ts = _oxford(args.epochs, args.budget)
    elif args.child == "emulator":
        ts = _emulator(args.epochs, args.budget)
    else:
        workers = 0 if args.child == "nmnist" else 2
        ts = _nmnist(args.epochs, args.budget, workers, train=args.child != "nmnist-feed")
    info = {"times": ts}
    try:
        import numba

        info["numba_layer"] = numba.threading_layer()
        info["numba_threads"] = numba.get_num_threads()
    except (ImportError, ValueError):  # no parallel region ran
        info["numba_layer"] = "none"
    info["torch_threads"] = torch.get_num_threads()
    info["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "-")
    print(json.dumps(info))


# ------------------------------------------------------------------ parent
def measure(workload: str, busy: int, env: dict, args: argparse.Namespace) -> dict:
    """Run ``workload`` in a child beside ``busy`` busy-looping processes."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
    try:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                workload,
                "--epochs",
                str(args.epochs),
                "--budget",
                str(args.budget),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        for p in procs:
            p.kill()
            p.wait()
    if out.returncode != 0:
        raise SystemExit(f"{workload} child failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20, help="timed epochs / steps per case")
    ap.add_argument("--budget", type=float, default=15.0, help="seconds per case at most")
    ap.add_argument(
        "--configs",
        default="default,import-first",
        help=f"comma-separated, from {', '.join(CONFIGS)}",
    )
    ap.add_argument("--only", choices=("oxford", "nmnist", "emulator"), help="one workload only")
    ap.add_argument(
        "--child",
        choices=("oxford", "nmnist", "nmnist-feed", "nmnist-loader", "emulator"),
        help=argparse.SUPPRESS,
    )
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return
    cases = [
        ("demo epoch (Oxford)", "oxford", 0),
        ("demo epoch, 1 busy process", "oxford", 1),
        ("demo epoch, 2 busy processes", "oxford", 2),
        ("N-MNIST step, preloaded", "nmnist", 0),
        ("N-MNIST DataLoader alone, 2 workers", "nmnist-feed", 0),
        ("N-MNIST step, DataLoader 2 workers", "nmnist-loader", 0),
        ("emulator run (PilotNet-CUBA)", "emulator", 0),
        ("emulator run, 1 busy process", "emulator", 1),
        ("emulator run, 2 busy processes", "emulator", 2),
    ]
    print(f"{os.cpu_count()} CPUs, load avg {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for name in args.configs.split(","):
        if name not in CONFIGS:
            raise SystemExit(f"--configs: unknown {name!r}; choose from {', '.join(CONFIGS)}")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.update(CONFIGS[name])
        base: dict[str, float] = {}
        medians: dict[str, float] = {}
        for label, workload, busy in cases:
            if args.only and not workload.startswith(args.only):
                continue
            info = measure(workload, busy, env, args)
            med = medians[workload] = float(np.median(info["times"]))
            base.setdefault(workload.split("-")[0], med)
            ref = base[workload.split("-")[0]]
            # the loader alone is a pace, not a slowdown; a step fed by it is also set
            # against the slower of it and the preloaded step
            if workload == "nmnist-feed":
                versus = "(the loader's pace)"
            else:
                versus = f"slowdown x{med / ref:5.2f}"
            if workload == "nmnist-loader":
                bound = max(medians["nmnist"], medians["nmnist-feed"])
                versus += f", x{med / bound:5.2f} the slower stage alone"
            print(
                f"[{name}] {label:36s} {med * 1e3:8.1f} ms (min {min(info['times']) * 1e3:7.1f},"
                f" n {len(info['times']):2d})  {versus}   "
                f"numba {info['numba_layer']}/{info.get('numba_threads', '-')}, "
                f"torch {info['torch_threads']}, OMP {info['omp_wait_policy']}",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""Emulator throughput on exported networks: integer kernels ("today") vs exact float GEMM.

Builds, with loihi_slayer's own blocks, and exports to netx HDF5:

- ``nmnist``: CUBA pool(2) -> dense(578, 512) -> dense(512, 10) on 2x34x34 spikes
  (as ``examples/nmnist.py``);
- ``pilotnet-cuba``: PilotNet-size CUBA network on 3x66x200 frames: a CUBA input
  layer, 5 convolutions (3 -> 24 -> 36 -> 64 -> 64 -> 64, 3x3, strides 2, 2,
  (2, 1), 1, 2), flatten, 4 dense layers (2816 -> 100 -> 50 -> 10 -> 1);
- ``pilotnet-sdnn``: the same geometry with sigma-delta blocks (graded spikes).

Each file is run end to end by :class:`loihi_slayer.emulate.Emulator` with
``fast_synapse=False`` (the integer kernels that the emulator used before
the float path: commit e816652's synapse code) and ``fast_synapse=True``,
alternately, ``--repeat`` times; medians are printed. The outputs of every
layer are compared bit for bit first.

Figures, for the whole network:

- neuron-steps/s = (neurons of all layers with a neuron) x steps / time;
- synaptic-ops/s = (fan-in connections evaluated per step) x steps / time, where
  the connections of a layer are the (output neuron, input neuron) pairs its
  weights join: ``N_out * N_in`` for dense; for a convolution, per output
  neuron, the kernel taps that land inside the input (padding taps excluded)
  times ``C_in / groups``. Zero weights count: the kernels evaluate them;
- ms per time step, and per layer the synapse and neuron time (ms per step).

``--against REV`` also times the emulator of an older commit (``git archive REV``
unpacked into a temporary folder, run in a separate Python process) on the same file
and input, alternately with the others: its spikes must have the same per-layer
checksums, and its ms/step and the ratio are printed. The issue-8 baseline is
``--against e816652`` (the code before the fast synapses).

Usage::

    python benchmarks/bench_emulator.py [--nets nmnist,pilotnet-cuba,pilotnet-sdnn]
        [--steps-nmnist 300] [--steps-pilotnet 32] [--repeat 5] [--record all|last]
        [--threads N] [--against REV]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _revision import RevisionProcess, unpack_commit

from loihi_slayer.block import cuba, export_network, init_shapes, sigma_delta
from loihi_slayer.emulate import Emulator
from loihi_slayer.fixed import conv_output_size, conv_transpose_output_size
from loihi_slayer.hdf5 import ConvTransposeLayer, DenseLayer, PoolLayer, UnpoolLayer

NMNIST_SHAPE = (2, 34, 34)
PILOTNET_SHAPE = (3, 66, 200)
CUBA = {
    "threshold": 0.25,
    "current_decay": 0.5,
    "voltage_decay": 0.1,
    "tau_grad": 1,
    "scale_grad": 1,
    "requires_grad": False,
}
SDNN = {
    "threshold": 1 / 32,
    "tau_grad": 0.5,
    "scale_grad": 1,
    "requires_grad": False,
    "shared_param": True,
    "activation": torch.nn.functional.relu,
}
# (C_in, C_out, stride, padding) of the five 3x3 convolutions
PILOTNET_CONVS = (
    (3, 24, 2, 0),
    (24, 36, 2, 0),
    (36, 64, (2, 1), (1, 0)),
    (64, 64, 1, 0),
    (64, 64, 2, 0),
)
PILOTNET_DENSE = (64 * 2 * 22, 100, 50, 10, 1)


def nmnist_blocks() -> torch.nn.Sequential:
    neuron = {**CUBA, "threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03}
    net = torch.nn.Sequential(
        cuba.Pool(neuron, kernel_size=2, weight_scale=1),
        cuba.Flatten(),
        cuba.Dense(neuron, 2 * 17 * 17, 512, weight_norm=True, weight_scale=4),
        cuba.Dense(neuron, 512, 10, weight_norm=True, weight_scale=4),
    )
    init_shapes(net, NMNIST_SHAPE)
    return net


def pilotnet_blocks(kind: str) -> torch.nn.Sequential:
    mod, neuron = (cuba, CUBA) if kind == "cuba" else (sigma_delta, SDNN)
    blocks = [mod.Input({**neuron, "threshold": 1.0} if kind == "cuba" else neuron)]
    for c_in, c_out, stride, padding in PILOTNET_CONVS:
        blocks.append(
            mod.Conv(
                neuron,
                c_in,
                c_out,
                3,
                stride=stride,
                padding=padding,
                weight_scale=2,
                weight_norm=True,
            )
        )
    blocks.append(mod.Flatten())
    dims = PILOTNET_DENSE
    for k, (n_in, n_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        last = k == len(dims) - 2
        block = mod.Output if last and kind == "sdnn" else mod.Dense
        blocks.append(block(neuron, n_in, n_out, weight_scale=2, weight_norm=True))
    net = torch.nn.Sequential(*blocks)
    init_shapes(net, PILOTNET_SHAPE)
    return net


def connections(emu: Emulator) -> list[int]:
    """Fan-in connections per step of each layer (0 for layers without a synapse)."""
    out, prev = [], emu.input_shape
    for layer, shape in zip(emu.network.layers, emu.shapes, strict=True):
        if isinstance(layer, DenseLayer):
            out.append(int(layer.weight.shape[0]) * int(layer.weight.shape[1]))
        elif hasattr(layer, "stride") and len(shape) == 3:
            transpose = isinstance(layer, (ConvTransposeLayer, UnpoolLayer))
            depthwise = isinstance(layer, (PoolLayer, UnpoolLayer))
            kh, kw = layer.weight.shape[2:]
            taps = [
                _valid_taps(
                    prev[1 + a],
                    shape[1 + a],
                    (kh, kw)[a],
                    layer.stride[a],
                    layer.padding[a],
                    layer.dilation[a],
                    transpose,
                )
                for a in (0, 1)
            ]
            per_group = 1 if depthwise else prev[0] // int(layer.groups)
            out.append(shape[0] * per_group * taps[0] * taps[1])
        else:
            out.append(0)
        prev = shape
    return out


def _valid_taps(n_in: int, n_out: int, k: int, s: int, p: int, d: int, transpose: bool) -> int:
    """Sum over outputs of the kernel taps that read an input inside ``[0, n_in)``."""
    size = conv_transpose_output_size if transpose else conv_output_size
    assert size(n_in, k, s, p, d) == n_out
    total = 0
    for o in range(n_out):
        for j in range(k):
            if transpose:
                m = o + p - j * d
                total += m >= 0 and m % s == 0 and m // s < n_in
            else:
                total += 0 <= o * s - p + j * d < n_in
    return total


def neuron_counts(emu: Emulator) -> list[int]:
    return [
        math.prod(shape) if emu._neuron_model(i, layer) is not None else 0
        for i, (layer, shape) in enumerate(zip(emu.network.layers, emu.shapes, strict=True))
    ]


def make_input(name: str, emu: Emulator, steps: int, rng: np.random.Generator):
    """(input, graded) for a network: 20 % N-MNIST-like spikes, or graded frames."""
    shape = emu.input_shape + (steps,)
    if name == "nmnist":
        return (rng.random(shape) < 0.2).astype(np.int8), False
    frames = rng.integers(0, 96 if name == "pilotnet-cuba" else 256, shape)
    if name == "pilotnet-sdnn":  # slowly changing frames: sparse deltas, as video
        frames = np.cumsum(rng.integers(-2, 3, shape), axis=-1) + frames[..., :1]
    return frames.astype(np.int64), True


#: the older commit's side of ``--against``: emulate the file, print per-layer spike
#: checksums, then time one run per line read from stdin
_BASELINE = """
import json, sys, time
import numpy as np
from loihi_slayer.emulate import Emulator
path, x_path, steps, graded, last, shape = sys.argv[1:7]
shape = json.loads(shape)
emu = Emulator(path, input_shape=None if shape is None else tuple(shape))
x, steps = np.load(x_path), int(steps)
kw = {"graded_input": graded == "1", "record": ("s",) if last == "-1" else {int(last): ("s",)}}
out = emu.run(x, steps, graded_input=graded == "1")
print(json.dumps({int(i): int(np.asarray(out[i, "s"]).astype(np.int64).sum()) for i in out.layers}),
      flush=True)
for _ in sys.stdin:
    t0 = time.perf_counter()
    emu.run(x, steps, **kw)
    print(time.perf_counter() - t0, flush=True)
"""


class Baseline(RevisionProcess):
    """The older commit's emulator in its own process, on one file and input."""

    def __init__(
        self,
        root: str,
        path: str,
        x: np.ndarray,
        steps: int,
        graded: bool,
        last: int | None,
        input_shape: tuple | None,
    ) -> None:
        x_path = path + ".input.npy"
        np.save(x_path, x)
        args = [
            path,
            x_path,
            str(steps),
            str(int(graded)),
            str(-1 if last is None else last),
            json.dumps(input_shape),
        ]
        super().__init__(root, _BASELINE, args)
        self.checksums = {int(k): v for k, v in self.first.items()}


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(
    name: str,
    blocks: torch.nn.Sequential,
    steps: int,
    repeat: int,
    folder: str,
    input_shape: tuple | None,
    record_all: bool,
    against: str | None,
) -> None:
    path = os.path.join(folder, f"{name}.net")
    export_network(blocks, path)
    emus = {
        "today": Emulator(path, fast_synapse=False, input_shape=input_shape),
        "new": Emulator(path, fast_synapse=True, input_shape=input_shape),
    }
    emu = emus["new"]
    rng = np.random.default_rng(0)
    x, graded = make_input(name, emu, steps, rng)
    last = len(emu.network.layers) - 1
    kw = {"graded_input": graded, "record": ("s",) if record_all else {last: ("s",)}}
    ref = emus["today"].run(x, steps, graded_input=graded)  # every layer's spikes
    got = emu.run(x, steps, graded_input=graded)  # compiles the kernels on a first run
    for i in ref.layers:
        assert np.array_equal(ref[i, "s"], got[i, "s"]), f"{name}: layer {i} differs"
    base = None
    if against is not None:
        base = Baseline(against, path, x, steps, graded, None if record_all else last, input_shape)
        mine = {i: int(np.asarray(got[i, "s"]).astype(np.int64).sum()) for i in got.layers}
        assert base.checksums == mine, f"{name}: the older commit's spikes differ"
    times: dict[str, list[float]] = {k: [] for k in emus}
    layer_t: dict[str, list[dict]] = {k: [] for k in emus}
    base_t: list[float] = []
    for _ in range(repeat):
        for key, e in emus.items():
            tm: dict[int, dict[str, float]] = {}
            times[key].append(timed(lambda e=e, tm=tm: e.run(x, steps, **kw, timings=tm)))
            layer_t[key].append(tm)
        if base is not None:
            base_t.append(base.run())
    if base is not None:
        base.close()

    neurons = sum(neuron_counts(emu))
    synops = sum(connections(emu))
    print(
        f"\n== {name}: {len(emu.network.layers)} layers, {neurons} neurons, "
        f"{synops / 1e6:.2f} M connections/step, T = {steps}, median of {repeat}"
    )
    rates = {}
    for key in emus:
        t = statistics.median(times[key])
        rates[key] = neurons * steps / t
        print(
            f"  {key:5s}: {t / steps * 1e3:8.2f} ms/step  {neurons * steps / t:10.3e} "
            f"neuron-steps/s  {synops * steps / t:10.3e} synaptic-ops/s"
        )
    print(f"  speed-up new/today: {rates['new'] / rates['today']:.2f}x")
    if base_t:
        tb, tn = statistics.median(base_t), statistics.median(times["new"])
        lo, hi = min(base_t) / steps * 1e3, max(base_t) / steps * 1e3
        print(
            f"  older commit: {tb / steps * 1e3:8.2f} ms/step (min {lo:.2f}, max {hi:.2f}), "
            f"same spikes; speed-up new/older commit: {tb / tn:.2f}x"
        )
    for key in emus:
        parts = {}
        for part in ("synapse", "neuron"):
            sums = [sum(t.get(part, 0.0) for t in tm.values()) for tm in layer_t[key]]
            parts[part] = statistics.median(sums)
        other = statistics.median(times[key]) - parts["synapse"] - parts["neuron"]
        print(
            f"  {key:5s} ms/step: synapses {parts['synapse'] / steps * 1e3:6.2f}, neurons "
            f"{parts['neuron'] / steps * 1e3:6.2f}, other (input, delays, int64 traces) "
            f"{other / steps * 1e3:6.2f}"
        )
    print(
        "  per layer, ms/step (median)      today: synapse  neuron |   new: synapse  neuron"
        "   spike rate"
    )
    for i, layer in enumerate(emu.network.layers):
        cells = []
        for key in emus:
            for part in ("synapse", "neuron"):
                vals = [tm.get(i, {}).get(part) for tm in layer_t[key]]
                vals = [v for v in vals if v is not None]
                cells.append(f"{statistics.median(vals) / steps * 1e3:7.3f}" if vals else "      -")
        rate = got.layers[i].data["s"].astype(bool).mean() if i in got.layers else float("nan")
        print(
            f"  {i:2d} {layer.type_name:8s} {str(emu.shapes[i]):16s}      {cells[0]} {cells[1]} |"
            f"       {cells[2]} {cells[3]}   {rate:6.3f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="nmnist,pilotnet-cuba,pilotnet-sdnn")
    ap.add_argument("--steps-nmnist", type=int, default=300)
    ap.add_argument("--steps-pilotnet", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--record",
        choices=("all", "last"),
        default="all",
        help="record the spikes of every layer (default) or of the last only",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the float GEMM (default: torch's)",
    )
    ap.add_argument(
        "--against",
        metavar="REV",
        default=None,
        help="also time this commit's emulator (e.g. e816652) on the same input",
    )
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(
        f"recording spikes of {args.record} layers; torch threads "
        f"{torch.get_num_threads()}, load average "
        f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    builders = {
        "nmnist": (nmnist_blocks, args.steps_nmnist, NMNIST_SHAPE),
        "pilotnet-cuba": (lambda: pilotnet_blocks("cuba"), args.steps_pilotnet, None),
        "pilotnet-sdnn": (lambda: pilotnet_blocks("sdnn"), args.steps_pilotnet, None),
    }
    with tempfile.TemporaryDirectory() as folder:
        against = None if args.against is None else unpack_commit(args.against, folder)
        for name in args.nets.split(","):
            build, steps, shape = builders[name]
            torch.manual_seed(0)  # the same weights whichever networks run before
            bench(name, build(), steps, args.repeat, folder, shape, args.record == "all", against)


if __name__ == "__main__":
    main()

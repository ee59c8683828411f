"""Fused recurrence against the step-by-step loop: Recurrent and KWTA forward + backward.

``block.cuba.Recurrent(512 -> 512)`` and ``block.cuba.KWTA(512 -> 512)`` at batch 32,
T = 200 (issue 8, item 4; target >= 10x): one training step (forward, backward of a
sum-of-spikes loss) with the fused kernel and with the step-by-step loop, timed
alternately in the same run, median of ``--repeat`` runs. The two results are
checked equal first (spikes bit for bit, gradients to float tolerance). Also printed:
the feed-forward synapse's own forward + backward (the same in both paths), to show
what is left of the fused step besides the recurrence. ``--alif`` adds the ALIF blocks,
``--family NAME ...`` chooses families (``--family all``: CUBA, ALIF and the four
resonators, whose feed-forward synapse is complex).

``--against REV`` also times the same block (the same weights and input) as the code of
commit ``REV`` runs it, in its own process (``_revision``), alternately with the other
two; its spikes must equal the fused ones. The issue names the target against the code
of its day, ``--against e816652`` (the commit the other benchmarks' ``--against`` use:
step by step, before the fused kernel); the step-by-step loop of today runs on today's
kernels and is the stricter baseline.

Run: ``PYTHONPATH=$PWD python3 benchmarks/bench_recurrent.py [--repeat 5] [--batch 32]
[--steps 200] [--neurons 512] [--alif] [--family cuba rf ...] [--against REV]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _revision import RevisionProcess, unpack_commit

from loihi_slayer.block import adrf, adrf_iz, alif, cuba, rf, rf_iz
from loihi_slayer.block import recurrent as rec

PARAMS = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03}
ADAPT = {"threshold_step": 0.1, "threshold_decay": 0.1, "refractory_decay": 0.2}
RES = {"threshold": 0.5, "period": 10, "decay": 0.1}
FAMILIES = {
    "cuba": (cuba, PARAMS),
    "alif": (alif, dict(PARAMS, **ADAPT)),
    # RF's phase surrogate (lava-dl's multipliers: scale 10, width threshold / 2) grows
    # through 512 recurrent inputs by more than 1 per step: at scale_grad 1 its gradient
    # overflows to NaN within 200 steps (in the step-by-step loop too); 0.01 keeps it finite
    "rf": (rf, dict(RES, scale_grad=0.01)),
    "rf_iz": (rf_iz, RES),
    "adrf": (adrf, dict(RES, **ADAPT)),
    "adrf_iz": (adrf_iz, dict(RES, **ADAPT)),
}


def block_kwargs(kind: str, n: int) -> dict:
    """The keyword arguments of a ``kind`` block of ``n -> n`` besides the neuron's."""
    if kind == "Recurrent":
        return {"weight_scale": 2}
    return {"num_winners": n // 8, "weight_scale": 2}


def make(family: str, kind: str, n: int) -> torch.nn.Module:
    torch.manual_seed(0)
    mod, params = FAMILIES[family]
    return getattr(mod, kind)(params, n, n, **block_kwargs(kind, n))


def spikes_digest(y: torch.Tensor) -> str:
    return hashlib.sha1(y.numpy().tobytes()).hexdigest()


#: the older commit's side of ``--against``: the block built by its code with the weights
#: given, one step (forward, backward of the sum of spikes) whose spikes' digest it
#: prints, then one timed step per line read from stdin
_AGAINST = """
import hashlib, json, os, sys, time
from importlib import import_module
from importlib.util import find_spec
import torch
family, kind, n, kwargs, params, state_path, x_path = sys.argv[1:8]
name = "loihi_slayer.block." + family
try:  # each level found here first: an editable install's finder would serve a module
    # this commit lacks from today's tree
    for level in ("loihi_slayer.block", name):
        spec = find_spec(level)
        if spec is None or not os.path.abspath(spec.origin).startswith(os.getcwd() + os.sep):
            raise ImportError(f"{level} is not in this commit")
    block = getattr(import_module(name), kind)
except (ImportError, AttributeError) as err:
    print(json.dumps({"missing": str(err)}), flush=True)
    sys.exit(0)
net = block(json.loads(params), int(n), int(n), **json.loads(kwargs))
net.load_state_dict(torch.load(state_path))
x = torch.load(x_path)
def step():
    net.zero_grad(set_to_none=True)
    y = net(x)
    y.sum().backward()
    return y.detach()
y = step()
print(json.dumps({"spikes": hashlib.sha1(y.numpy().tobytes()).hexdigest()}), flush=True)
for _ in sys.stdin:
    t0 = time.perf_counter()
    step()
    print(time.perf_counter() - t0, flush=True)
"""


def against_process(
    root: str, folder: str, family: str, kind: str, net: torch.nn.Module, x: torch.Tensor
) -> RevisionProcess:
    """The block as the code unpacked at ``root`` runs it, with ``net``'s weights."""
    n = x.shape[1]
    state_path, x_path = f"{folder}/state.pt", f"{folder}/x.pt"
    torch.save(net.state_dict(), state_path)
    torch.save(x, x_path)
    params = json.dumps(FAMILIES[family][1])
    kwargs = json.dumps(block_kwargs(kind, n))
    args = [family, kind, str(n), kwargs, params, state_path, x_path]
    return RevisionProcess(root, _AGAINST, args)


def step(net: torch.nn.Module, x: torch.Tensor, fused: bool):
    rec.FUSED = fused
    net.zero_grad(set_to_none=True)
    y = net(x)
    y.sum().backward()
    return y.detach(), [p.grad.clone() for p in net.parameters() if p.grad is not None]


def grads_close(ga: list[torch.Tensor], gb: list[torch.Tensor]) -> bool:
    """Equal to float rounding, as the tests compare: elementwise ``rtol`` 1e-4 plus an
    absolute slack of 1e-5 of the tensor's largest value or 1e-7 of the largest gradient
    (long sums cancel to values far below their terms' rounding)."""
    scale = max((float(b.abs().max()) for b in gb), default=0.0)
    return all(
        bool(
            ((a - b).abs() <= max(1e-5 * float(b.abs().max()), 1e-7 * scale) + 1e-4 * b.abs()).all()
        )
        for a, b in zip(ga, gb, strict=True)
    )


def timed(net, x, fused) -> float:
    t0 = time.perf_counter()
    step(net, x, fused)
    return time.perf_counter() - t0


def timed_synapse(net, x) -> float:
    """Forward + backward of the feed-forward synapse alone."""
    t0 = time.perf_counter()
    z = net.synapse(x)
    parts = z if isinstance(z, tuple) else (z,)  # a resonator's complex synapse: (re, im)
    torch.autograd.backward(parts, [torch.ones_like(p) for p in parts])
    return time.perf_counter() - t0


def bench(family: str, kind: str, args, root: str | None, folder: str) -> None:
    """Time one block's training step fused, step by step and (``root``) as the older
    code runs it, alternately, and print the medians."""
    n = args.neurons
    net = make(family, kind, n)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(args.batch, n, args.steps, generator=g) < 0.2).float()
    y_f, g_f = step(net, x, True)  # also compiles the kernels
    y_s, g_s = step(net, x, False)
    same = torch.equal(y_f, y_s)
    finite = all(bool(torch.isfinite(g).all()) for g in g_f + g_s)
    close = finite and len(g_f) == len(g_s) and grads_close(g_f, g_s)
    old = None if root is None else against_process(root, folder, family, kind, net, x)
    if old is not None and "missing" in old.first:
        print(f"{family} {kind}: {args.against} has no such block ({old.first['missing']})")
        old.close()
        old = None
    fused, loop, syn, then = [], [], [], []
    for _ in range(args.repeat):
        fused.append(timed(net, x, True))
        loop.append(timed(net, x, False))
        syn.append(timed_synapse(net, x))
        if old is not None:
            then.append(old.run())
    tf, ts = statistics.median(fused), statistics.median(loop)
    rate = float(y_f.mean())
    print(
        f"{family} {kind:9s} {n} -> {n}, batch {args.batch}, T {args.steps}, spike rate "
        f"{rate:.3f}: fused {tf * 1e3:8.1f} ms  step-by-step {ts * 1e3:8.1f} ms  "
        f"ratio {ts / tf:5.1f}x  (spikes equal: {same}, gradients finite: {finite}, "
        f"close: {close}; "
        f"feed-forward synapse fwd+bwd alone {statistics.median(syn) * 1e3:.1f} ms)"
    )
    if old is not None:
        old.close()
        tt = statistics.median(then)
        print(
            f"{family} {kind:9s} as {args.against} runs it: {tt * 1e3:8.1f} ms, fused ratio "
            f"{tt / tf:5.1f}x (spikes equal: {old.first['spikes'] == spikes_digest(y_f)})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--neurons", type=int, default=512)
    ap.add_argument("--alif", action="store_true", help="also the ALIF blocks")
    ap.add_argument(
        "--against",
        metavar="REV",
        default=None,
        help="also time the blocks as commit REV's code runs them (e.g. e816652)",
    )
    ap.add_argument(
        "--family",
        nargs="+",
        default=["cuba"],
        choices=[*FAMILIES, "all"],
        help="neuron families to time (default cuba; 'all': every family)",
    )
    args = ap.parse_args()
    families = list(FAMILIES) if "all" in args.family else list(args.family)
    if args.alif and "alif" not in families:
        families.append("alif")
    with tempfile.TemporaryDirectory() as folder:
        root = None if args.against is None else unpack_commit(args.against, folder)
        for family, kind in ((f, k) for f in families for k in ("Recurrent", "KWTA")):
            bench(family, kind, args, root, folder)
    rec.FUSED = True


if __name__ == "__main__":
    main()

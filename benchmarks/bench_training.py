"""Time whole training steps of the example networks against plain PyTorch.

Run: ``python benchmarks/bench_training.py [--reps 7] [--only nmnist|oxford] [--profile]
[--parts] [--phases] [--kernels] [--consecutive K] [--optimizer fused|foreach]``

One training step is ``zero_grad``, forward, loss, backward and ``optimizer.step``.
Two networks, each built by its example script:

* **N-MNIST** (``examples/nmnist.py``): CUBA 2x2 pool -> dense 578 -> 128 -> dense 10,
  batch 32, 60 steps of 5 ms from the shipped N-MNIST subset (read with the example's
  loader), ``SpikeRate`` loss, Adam (fused, as the example);
* **Oxford** (``examples/oxford.py``): CUBA dense 200 -> 256 -> 200 with learnt decays,
  batch 1, 2000 steps, ``SpikeTime`` loss, Adam (fused, as the example).

Both examples, and so every variant here, take PyTorch's fused Adam (one pass per
parameter); ``--optimizer foreach`` times PyTorch's default instead (a multi-tensor op
per term of the update), which took 0.23 ms of the N-MNIST step against 0.07 on the
2-core Zen 4 VM (stop 55, scratch ``adam.py``).

The baseline is the same network in plain PyTorch: float weights (weight norm, no
quantization), the synapse applied to the whole time-last tensor at once, the CUBA
neuron as :func:`bench_neurons.plain_cuba` (float dynamics, lava-dl's surrogate,
autograd through the loop over time) with the same surrogate width and scale, and the
same one-step output shift, loss and optimizer. Both are timed alternately in the same
run; the script prints medians, the spread (min-max) and the ratio plain / ours
(issue 8 target: >= 10x; ``--consecutive K``: each variant's ``K`` steps in a row per
round, the steady state of a training loop; by default 10 for N-MNIST, 1 for Oxford),
and each variant's minor page faults per
step (fresh memory touched: where glibc hands freed heap memory back between steps, our
large tensors fault again every step; ``MALLOC_MMAP_THRESHOLD_=33554432
MALLOC_TRIM_THRESHOLD_=268435456`` in the environment stop that for the whole process).
``--profile`` adds a ``torch.profiler`` table of our step; ``--parts`` times the N-MNIST
step's kernels and GEMMs each alone (their sum: the step with no other
cost) beside the time 10x needs; ``--phases`` times the N-MNIST step phase by phase as it
runs (each block's forward, the loss, backward, the optimizer), its first step after the
plain loop's apart from the later ones; ``--kernels`` times each compiled kernel and int8
GEMM call inside the running step beside the same call alone (what the step's memory
traffic costs each).

Why ``K`` steps a round: on the 2-core VM a step that follows a pause of 20 ms or more
(another variant's turn, but equally a ``time.sleep`` or a Python loop touching nothing)
runs slower, the first by 1.3-1.5 ms and the next four by 0.1-0.4 ms each (scratch
``pen3.py``, ``pen5.py`` of stop 54); a numba compute loop shows it only in its first
call. At one step a round the N-MNIST figure (3 ms steps) is that first step's; the
Oxford step (10-20 ms, the plain one a second) hardly feels it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_neurons import plain_cuba

from loihi_slayer import loss
from loihi_slayer.demo import oxford_data
from loihi_slayer.fixed.synapse_fast import int8_gemm_pays
from loihi_slayer.synapse._int_product import int_product, weight_grid
from loihi_slayer.synapse._narrow_product import narrow_product


def load_example(name: str):
    """Import ``examples/<name>.py`` as a module (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", ROOT / "examples" / f"{name}.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------- plain PyTorch network
class PlainCubaDense(torch.nn.Module):
    """Float dense synapse (weight norm) -> :func:`plain_cuba` -> one-step shift."""

    def __init__(self, neuron, n_in: int, n_out: int, learn_decay: bool) -> None:
        super().__init__()
        lin = torch.nn.Linear(n_in, n_out, bias=False)
        self.lin = torch.nn.utils.parametrizations.weight_norm(lin, name="weight", dim=0)
        self.neuron = PlainCuba(neuron, learn_decay)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        return self.neuron(torch.matmul(self.lin.weight, x))


class PlainCuba(torch.nn.Module):
    """:func:`plain_cuba` with the surrogate and decays of one of our neurons, then shift."""

    def __init__(self, neuron, learn_decay: bool) -> None:
        super().__init__()
        spec = neuron._spec
        self.theta = spec.v_th_mant / spec.scale
        self.tau, self.rho = spec.tau_rho, spec.scale_rho
        di = neuron.current_decay.detach() / neuron.p_scale
        dv = neuron.voltage_decay.detach() / neuron.p_scale
        self.di = torch.nn.Parameter(di.clone(), requires_grad=learn_decay)
        self.dv = torch.nn.Parameter(dv.clone(), requires_grad=learn_decay)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = plain_cuba(z, self.di, self.dv, self.theta, self.tau, self.rho)
        return F.pad(s[..., :-1], (1, 0))  # delay_shift


class PlainPool(torch.nn.Module):
    """2x2 sum pool per channel (weight 1) -> :class:`PlainCuba`."""

    def __init__(self, neuron) -> None:
        super().__init__()
        self.neuron = PlainCuba(neuron, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(4 * F.avg_pool3d(x, (2, 2, 1)))


class StepCuba(torch.nn.Module):
    """One time step of :class:`PlainCuba` for a network stepped through time (snnTorch
    style): the same update as :func:`plain_cuba`, state carried by the caller."""

    def __init__(self, plain: PlainCuba) -> None:
        super().__init__()
        self.p = plain

    def forward(self, z: torch.Tensor, state: list) -> torch.Tensor:
        p = self.p
        u, v = state if state else (torch.zeros_like(z), torch.zeros_like(z))
        u = (1 - p.di) * u + z
        v = (1 - p.dv) * v + u
        d = v - p.theta
        anti = p.rho / 2 * torch.sign(d) * (1 - torch.exp(-torch.abs(d) / p.tau))
        s = (d > 0).to(z.dtype)
        state[:] = [u, v - (v * s).detach()]
        return s + anti - anti.detach()


class SteppedNet(torch.nn.Module):
    """A plain network (of :class:`PlainPool` / :class:`PlainCubaDense`) run one time step at
    a time through all layers, the one-step shifts kept as per-layer previous outputs."""

    def __init__(self, plain: torch.nn.Sequential) -> None:
        super().__init__()
        self.plain = plain
        self.steps = torch.nn.ModuleList(StepCuba(m.neuron) for m in plain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [[] for _ in self.plain]
        prev = [None] * len(self.plain)
        out = []
        for t in range(x.shape[-1]):
            h = x[..., t]
            for k, (m, step) in enumerate(zip(self.plain, self.steps, strict=True)):
                if isinstance(m, PlainPool):
                    z = 4 * F.avg_pool2d(h, 2)
                else:
                    z = h.reshape(h.shape[0], -1) @ m.lin.weight.t()
                s = step(z, states[k])
                h = prev[k] if prev[k] is not None else torch.zeros_like(s)  # delay_shift
                prev[k] = s
            out.append(h)
        return torch.stack(out, -1)


class NoLoop(torch.nn.Module):
    """Lower bound: the plain network with each neuron's time loop replaced by one
    element-wise surrogate spike of its input (everything but the recurrence)."""

    def __init__(self, plain: torch.nn.Sequential) -> None:
        super().__init__()
        self.plain = plain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for m in self.plain:
            n = m.neuron
            z = (
                4 * F.avg_pool3d(x, (2, 2, 1))
                if isinstance(m, PlainPool)
                else torch.matmul(m.lin.weight, x.reshape(x.shape[0], -1, x.shape[-1]))
            )
            d = z - n.theta
            anti = n.rho / 2 * torch.sign(d) * (1 - torch.exp(-torch.abs(d) / n.tau))
            x = F.pad(((d > 0).to(z.dtype) + anti - anti.detach())[..., :-1], (1, 0))
        return x


def plain_nmnist(ours: torch.nn.Sequential) -> torch.nn.Sequential:
    pool, _, d1, d2 = ours
    return torch.nn.Sequential(
        PlainPool(pool.neuron),
        PlainCubaDense(d1.neuron, d1.in_neurons, d1.neuron.shape[0], False),
        PlainCubaDense(d2.neuron, d2.in_neurons, d2.neuron.shape[0], False),
    )


def plain_oxford(ours: torch.nn.Module) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        *(PlainCubaDense(b.neuron, b.in_neurons, b.neuron.shape[0], True) for b in ours.blocks)
    )


# ---------------------------------------------------------------- cases
def nmnist_case(batch: int) -> dict:
    ex = load_example("nmnist")
    x, y = ex.load_split(ex.DEFAULT_DATA, "train1K.txt", 60, 5.0, batch)
    x, y = torch.from_numpy(x).float(), torch.from_numpy(y)
    torch.manual_seed(0)
    ours = ex.build(128)
    error = loss.SpikeRate(true_rate=0.2, false_rate=0.03, reduction="sum")
    return {
        "name": f"N-MNIST pool->dense->dense, batch {batch}, T=60",
        "consecutive": 10,
        "adam": "fused",
        "x": x,
        "target": y,
        "ours": ours,
        "plain": plain_nmnist(ours),
        "loss": error,
    }


def oxford_case() -> dict:
    ex = load_example("oxford")
    x, target = oxford_data()
    torch.manual_seed(0)
    ours = ex.Network()
    error = loss.SpikeTime(time_constant=2, length=100, filter_order=2, reduction="sum")
    return {
        "name": "Oxford dense 200->256->200, batch 1, T=2000",
        "consecutive": 1,
        "adam": "fused",
        "x": x,
        "target": target,
        "ours": ours,
        "plain": plain_oxford(ours),
        "loss": error,
    }


#: Adam's implementations (``--optimizer``): the examples' fused one (one pass per
#: parameter) and PyTorch's default, a multi-tensor op per formula term
ADAM = {"fused": {"fused": True}, "foreach": {"foreach": True}}


def make_step(
    net: torch.nn.Module,
    x,
    target,
    error,
    tick: Callable[[], None] | None = None,
    adam: str = "fused",
) -> Callable[[], float]:
    """One training step (``zero_grad``, forward, loss, backward, Adam) as a function
    returning the loss. With ``tick`` (``net`` a ``Sequential``) its children run one by
    one and ``tick()`` is called after ``zero_grad``, each child, the loss, backward and
    the optimizer step (:func:`phased_step`). ``adam``: a key of :data:`ADAM`."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, **ADAM[adam])
    mark = tick if tick is not None else (lambda: None)

    def forward(h: torch.Tensor) -> torch.Tensor:
        if tick is None:
            return net(h)
        for module in net:
            h = module(h)
            tick()
        return h

    def step() -> float:
        opt.zero_grad()
        mark()
        err = error(forward(x), target)
        mark()
        err.backward()
        mark()
        opt.step()
        mark()
        return float(err.detach())

    return step


def minor_faults() -> int:
    """This process's minor page faults so far: first touches of fresh memory, which
    cost about 1-2 us each on this VM (glibc returns freed heap memory to the system
    once more than its trim threshold is free, so large tensors can fault every step)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed(fn: Callable[[], float]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


#: the timed variants: label -> network builder from the case
VARIANTS = {
    "ours (loihi_slayer blocks)": lambda c: c["ours"],
    "plain: neuron loop over time": lambda c: c["plain"],
    "plain: network stepped in time": lambda c: SteppedNet(c["plain"]),
    "bound: plain without time loop": lambda c: NoLoop(c["plain"]),
}


def run_case(case: dict, reps: int, profile: bool, consecutive: int = 1) -> dict[str, float]:
    """Time every variant's training step, round-robin; print medians and ratios. With
    ``consecutive = K`` each variant runs ``K`` steps in a row per round and a step's time
    is their mean: a training loop's steady state (a step right after another variant's
    runs with caches holding that variant's memory)."""
    steps = {
        k: make_step(f(case), case["x"], case["target"], case["loss"], adam=case["adam"])
        for k, f in VARIANTS.items()
    }
    for fn in steps.values():  # compile / warm caches
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in steps}
    faults = dict.fromkeys(steps, 0)
    for _ in range(reps):  # alternate: all see the same machine state
        for k, fn in steps.items():
            before = minor_faults()
            times[k].append(timed(lambda fn=fn: [fn() for _ in range(consecutive)]) / consecutive)
            faults[k] += (minor_faults() - before) / consecutive
    med = {k: float(np.median(v)) for k, v in times.items()}
    ours_ms = med[next(iter(med))]
    steps_in_a_row = f", {consecutive} steps in a row per round" if consecutive > 1 else ""
    print(case["name"] + steps_in_a_row, flush=True)
    for k, v in times.items():
        print(
            f"  {k:32s} {med[k]:9.2f} ms/step (min {min(v):8.2f}, max {max(v):8.2f})"
            f"   / ours x{med[k] / ours_ms:6.1f}   {faults[k] / reps:6.0f} page faults/step"
        )
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as tprofile

        with tprofile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                steps[next(iter(steps))]()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
    return med


def _median_ms(fn: Callable[[], object], reps: int) -> float:
    fn()
    return float(np.median([timed(fn) for _ in range(reps)]))


def nmnist_parts(case: dict, reps: int) -> None:
    """Our N-MNIST step's irreducible work, each part timed alone: the pool block (its
    sums, neuron and shift are one kernel pass), the dense neurons' kernels (forward +
    backward), and the step's products (the dense synapse's forward product and weight
    gradient as the layer runs them: on CPUs with int8 dot products the int8 GEMM forward
    and, on sparse spikes, the weight gradient event by event; elsewhere both event by
    event on sparse spikes, else sgemm on the operand; the dense-2 synapse's product of
    few outputs, :mod:`loihi_slayer.synapse._narrow_product`, forward and both
    gradients). Their sum is what the step would take with no
    other cost (copies, checks, autograd, optimizer). The gradients come in the layouts
    the step hands over: neuron-last ``(B, T, N)`` memory into the dense-1 neuron and its
    product's weight gradient (the input gradient of the dense-2 synapse's float
    product), time-last into the dense-2 neuron. Also printed, outside the sum: the
    time of one read of the input (``x.sum()``), the least the pool block can take, and
    our whole step at batch 2, a sixteenth of the data: mostly the step's per-call costs
    (Python, small torch ops, autograd, the optimizer), which batch 32 pays as well."""
    pool, flat, d1, d2 = case["ours"]
    x = case["x"]
    with torch.no_grad():
        h1 = flat(pool(x))
        z1 = d1.synapse(h1)
        s1 = d1(h1)
        z2 = d2.synapse(s1)
    b, t = x.shape[0], x.shape[-1]
    n_in, n1, n2 = h1.shape[1], z1.shape[1], z2.shape[1]
    with torch.no_grad():
        w1 = d1.synapse.pre_hook_weight.reshape(n1, n_in)
    # the dense synapse's product as the layer runs it, forward and weight gradient (see
    # the docstring)
    w1g = w1.detach().clone().requires_grad_(True)
    z_probe = int_product(h1, w1g, d1.synapse)
    if z_probe is None:
        raise SystemExit("the dense 578->128 product did not take an exact integer path")
    # the gradient as the dense-1 neuron's backward returns it: neuron-last memory
    g1 = torch.ones(b, t, n1).transpose(1, 2)
    if type(z_probe.grad_fn).__name__ == "EventDenseProductBackward":
        kind = "events"
    else:
        kind = "int8 GEMM" if int8_gemm_pays() else "sgemm"
        if getattr(z_probe.grad_fn, "counts", None) is not None:
            kind += " + event grad"
    product = (
        f"{kind} {n1}x{n_in}x{b * t} (fwd + weight grad)",
        lambda: int_product(h1, w1g, d1.synapse).backward(g1),
    )

    def fwd_bwd(neuron, z, g):
        def run() -> None:
            zz = z.detach().requires_grad_(True)
            neuron(zz).backward(g)

        return run

    def no_grad(fn):
        def run() -> None:
            with torch.no_grad():
                fn()

        return run

    # the dense-2 product as the layer runs it: few outputs, on the time-last spikes
    with torch.no_grad():
        w2 = d2.synapse.pre_hook_weight.reshape(n2, n1)
    w2g = w2.detach().clone().requires_grad_(True)
    s1g = s1.detach().clone().requires_grad_(True)
    grid2 = weight_grid(w2)
    if narrow_product(s1g, w2g, grid2) is None:
        raise SystemExit(f"the dense {n1}->{n2} product did not take the narrow path")
    g2 = torch.ones_like(z2)

    parts = {
        "pool block: sums, neuron, shift in one pass": no_grad(lambda: pool(x)),
        f"dense {n_in}->{n1} neuron (fwd+bwd)": fwd_bwd(d1.neuron, z1, g1),
        f"dense {n1}->{n2} neuron (fwd+bwd)": fwd_bwd(d2.neuron, z2, torch.ones_like(z2)),
        product[0]: product[1],
        f"narrow {n2}x{n1}x{b * t} (fwd + both grads)": (
            lambda: narrow_product(s1g, w2g, grid2).backward(g2)
        ),
    }
    total = 0.0
    print("  our step's parts, each alone (median):")
    for name, fn in parts.items():
        ms = _median_ms(fn, reps)
        total += ms
        print(f"    {name:42s} {ms:7.2f} ms")
    print(f"    {'sum: the step without any other cost':42s} {total:7.2f} ms")
    # the pool block's floor: it reads every input value at least once
    mb = x.numel() * x.element_size() / 1e6
    read = _median_ms(lambda: x.sum(), reps)
    print(f"    {f'(pool floor: one read of the {mb:.1f} MB input)':42s} {read:7.2f} ms")
    # the step's per-call costs: the same network and step at batch 2, a sixteenth of the
    # data (the first two samples are 13 % spikes after the pool, over the event product's
    # 12 %: the dense-1 product runs as a GEMM there, about 1 ms of this time)
    small = nmnist_case(2)
    step2 = make_step(small["ours"], small["x"], small["target"], small["loss"], adam=case["adam"])
    fixed = _median_ms(step2, 3 * reps)
    print(f"    {'(per-call costs: our whole step at batch 2)':42s} {fixed:7.2f} ms")


def phased_step(
    net: torch.nn.Sequential, x, target, error, adam: str = "fused"
) -> tuple[list[str], Callable[[], np.ndarray]]:
    """The training step of :func:`make_step` on a ``Sequential``, with a clock read
    between its phases: ``zero_grad``, each child's forward, the loss, backward and the
    optimizer step. Returns the phase names and the step, which returns each phase's
    time in ms."""
    names = ["zero_grad"]
    names += [f"forward [{i}] {type(m).__name__}" for i, m in enumerate(net)]
    names += ["loss", "backward", "optimizer step"]
    clock: list[float] = []
    inner = make_step(
        net, x, target, error, tick=lambda: clock.append(time.perf_counter()), adam=adam
    )

    def step() -> np.ndarray:
        clock[:] = [time.perf_counter()]
        inner()
        return np.diff(clock) * 1e3

    return names, step


def nmnist_phases(case: dict, reps: int, consecutive: int) -> None:
    """Where our N-MNIST step's own time goes, phase by phase, in the rounds of
    :func:`run_case`: each round runs the plain loop's ``K = max(consecutive, 2)`` steps,
    then ours; the first of ours after the plain loop (its memory out of the caches) and
    the later ones (a training loop's steady state) are reported apart. Unlike
    ``--parts`` (each kernel alone, its memory hot), these are the step's phases as it
    runs: kernels, the Python and autograd around them, and the optimizer."""
    k = max(consecutive, 2)
    plain = make_step(case["plain"], case["x"], case["target"], case["loss"], adam=case["adam"])
    names, ours = phased_step(
        case["ours"], case["x"], case["target"], case["loss"], adam=case["adam"]
    )
    for _ in range(2):
        plain()
        ours()
    first, later = [], []
    for _ in range(reps):
        for _ in range(k):
            plain()
        first.append(ours())
        later.extend(ours() for _ in range(k - 1))
    cold, warm = np.median(first, axis=0), np.median(later, axis=0)
    print(
        f"  our step's phases as it runs (median of {reps} rounds of {k} steps after the "
        "plain loop's; ms):"
    )
    print(f"    {'phase':42s} {'first':>7s} {'later':>7s}")
    for name, a, b in zip(names, cold, warm, strict=True):
        print(f"    {name:42s} {a:7.2f} {b:7.2f}")
    print(f"    {'sum':42s} {cold.sum():7.2f} {warm.sum():7.2f}")


def _call(call: tuple) -> object:
    """Run a recorded call ``(function, args, kwargs)``."""
    fn, args, kwargs = call
    return fn(*args, **kwargs)


def _kernel_key(kernel: object, args: tuple) -> str:
    """A kernel call's label: the function's name and its first array argument's shape."""
    name = getattr(getattr(kernel, "py_func", kernel), "__qualname__", str(kernel))
    shape = next((tuple(a.shape) for a in args if hasattr(a, "shape")), ())
    return f"{name}{shape}"


def nmnist_kernels(case: dict, reps: int) -> None:
    """Each compiled kernel (numba's CPU dispatchers) and int8 GEMM (``torch._int_mm``)
    call of our N-MNIST step, timed inside the running step (``10 * reps`` steps in a
    row) and then alone, repeated on the arguments of its last call in the step, its
    memory hot. The difference is what the step's own memory traffic and pauses cost
    each kernel: the data a kernel reads was written by another kernel, on another core,
    or pushed out of the caches since. Last, the int8 GEMM right after the pool block's
    kernel (which streams the whole input) against right after another GEMM, in
    alternating rounds."""
    from numba.core.registry import CPUDispatcher

    step = make_step(case["ours"], case["x"], case["target"], case["loss"], adam=case["adam"])
    for _ in range(3):
        step()
    inside: dict[str, list[float]] = {}
    last: dict[str, tuple] = {}
    dispatch, int_mm = CPUDispatcher.__call__, torch._int_mm

    def record(key: str, run: Callable[[], object], call: tuple) -> object:
        t0 = time.perf_counter()
        out = run()
        inside.setdefault(key, []).append((time.perf_counter() - t0) * 1e3)
        last[key] = call
        return out

    def timed_dispatch(self, *args, **kwargs):
        key = _kernel_key(self, args)
        return record(key, lambda: dispatch(self, *args, **kwargs), (self, args, kwargs))

    def timed_mm(a, b, *args, **kwargs):
        key = _kernel_key("torch._int_mm", (a, b))
        return record(key, lambda: int_mm(a, b, *args, **kwargs), (int_mm, (a, b), kwargs))

    n_steps = 10 * reps
    CPUDispatcher.__call__, torch._int_mm = timed_dispatch, timed_mm
    try:
        for _ in range(n_steps):
            step()
    finally:
        CPUDispatcher.__call__, torch._int_mm = dispatch, int_mm
    print(f"  our step's kernels inside the step ({n_steps} steps) and alone (ms, medians):")
    print(f"    {'kernel (first array argument)':52s} {'calls':>5s} {'inside':>7s} {'alone':>7s}")
    total_in = total_alone = 0.0
    for key in sorted(inside, key=lambda k: -sum(inside[k])):
        calls = len(inside[key]) / n_steps
        alone = float(np.median([timed(partial(_call, last[key])) for _ in range(5 * reps)]))
        here = float(np.median(inside[key]))
        total_in += calls * here
        total_alone += calls * alone
        print(f"    {key[:52]:52s} {calls:5.1f} {here:7.3f} {alone:7.3f}")
    print(f"    {'sum (the calls of a step)':52s} {'':5s} {total_in:7.3f} {total_alone:7.3f}")
    pools = [k for k in last if k.startswith("cuba_forward(") and len(inside[k]) == n_steps]
    gemms = [k for k in last if k.startswith("torch._int_mm")]
    if not (pools and gemms):
        return
    pool = max(pools, key=lambda k: float(np.median(inside[k])))  # the pool block's pass
    gemm = partial(_call, last[gemms[0]])
    after = {"after the pool kernel": partial(_call, last[pool]), "after another GEMM": gemm}
    times: dict[str, list[float]] = {label: [] for label in after}
    for _ in range(5 * reps):
        for label, before in after.items():
            before()
            times[label].append(timed(gemm))
    for label, ms in times.items():
        print(f"    {'int8 GEMM ' + label:52s} {'':5s} {float(np.median(ms)):7.3f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32, help="N-MNIST batch")
    ap.add_argument("--only", choices=("nmnist", "oxford"))
    ap.add_argument(
        "--consecutive",
        type=int,
        default=None,
        help="steps each variant runs in a row per round (a step's time: their mean); "
        "default 10 for N-MNIST, 1 for Oxford",
    )
    ap.add_argument(
        "--optimizer",
        choices=tuple(ADAM),
        default="fused",
        help="Adam's implementation, for every variant: fused (the examples') or foreach "
        "(PyTorch's default)",
    )
    ap.add_argument("--profile", action="store_true")
    ap.add_argument(
        "--phases",
        action="store_true",
        help="also time the N-MNIST step phase by phase as it runs (first step after the "
        "plain loop, later steps)",
    )
    ap.add_argument(
        "--parts", action="store_true", help="also time the N-MNIST step's kernels and GEMMs alone"
    )
    ap.add_argument(
        "--kernels",
        action="store_true",
        help="also time each compiled kernel and int8 GEMM call of the N-MNIST step inside "
        "the running step and alone",
    )
    args = ap.parse_args(argv)
    print(
        f"Adam {args.optimizer}, torch threads {torch.get_num_threads()}, OMP_WAIT_POLICY "
        f"{os.environ.get('OMP_WAIT_POLICY', '-')}, load avg "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    cases = []
    if args.only in (None, "nmnist"):
        cases.append(nmnist_case(args.batch))
    if args.only in (None, "oxford"):
        cases.append(oxford_case())
    for case in cases:
        case["adam"] = args.optimizer
        consecutive = case["consecutive"] if args.consecutive is None else args.consecutive
        med = run_case(case, args.reps, args.profile, max(1, consecutive))
        if args.parts and case is cases[0] and args.only != "oxford":
            nmnist_parts(case, args.reps)
            plain = med["plain: neuron loop over time"]
            print(f"  10x the plain neuron loop needs <= {plain / 10:.2f} ms per step")
        if args.phases and case is cases[0] and args.only != "oxford":
            nmnist_phases(case, args.reps, consecutive)
        if args.kernels and case is cases[0] and args.only != "oxford":
            nmnist_kernels(case, args.reps)


if __name__ == "__main__":
    main()

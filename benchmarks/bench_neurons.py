"""Time the training neurons against plain-PyTorch loop-over-time baselines.

Run: ``python benchmarks/bench_neurons.py [--batch 32 --neurons 512 --steps 200 --reps 10]``
Prints milliseconds and ratios (baseline / ours) measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from loihi_slayer.neuron import cuba, sigma_delta


def timeit(fn, reps: int) -> float:
    fn()
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts) * 1e3)


def plain_cuba(x, di, dv, theta, tau, rho):
    """Float loop-over-time CUBA with lava-dl's surrogate (autograd through the loop)."""
    u = torch.zeros_like(x[..., 0])
    v = torch.zeros_like(u)
    out = []
    for t in range(x.shape[-1]):
        u = (1 - di) * u + x[..., t]
        v = (1 - dv) * v + u
        z = v - theta
        anti = rho / 2 * torch.sign(z) * (1 - torch.exp(-torch.abs(z) / tau))
        s = (z > 0).to(x.dtype)
        out.append(s + anti - anti.detach())
        v = v - (v * s).detach()
    return torch.stack(out, -1)


def plain_sdnn(x, theta):
    sig = torch.cumsum(x, -1)
    act = F.relu(sig)
    prev = torch.zeros_like(act[..., 0])
    res = torch.zeros_like(prev)
    out = []
    for t in range(x.shape[-1]):
        d = act[..., t] - prev + res
        o = d * (d.abs() >= theta).to(d.dtype)
        res = (d - o).detach()
        prev = act[..., t]
        out.append(o)
    return torch.stack(out, -1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--neurons", type=int, default=512)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    shape = (args.batch, args.neurons, args.steps)
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.integers(-3, 8, shape) * 2 / 64, dtype=torch.float32)
    print(
        f"input {shape} float32, torch threads {torch.get_num_threads()}, "
        f"load avg {os.getloadavg()[0]:.2f}"
    )

    n = cuba.Neuron(1.25, 0.25, 0.03)
    theta, tau, rho = n.threshold, 100 * n.threshold, 0.1
    g = torch.ones(shape)

    def ours_fwd():
        with torch.no_grad():
            n(x)

    def ours_fb():
        xi = x.detach().requires_grad_(True)
        n(xi).backward(g)

    def base_fwd():
        with torch.no_grad():
            plain_cuba(x, 0.25, 0.03, theta, tau, rho)

    def base_fb():
        xi = x.detach().requires_grad_(True)
        plain_cuba(xi, 0.25, 0.03, theta, tau, rho).backward(g)

    rows = []
    for name, ours, base in (
        ("cuba forward", ours_fwd, base_fwd),
        ("cuba forward+backward", ours_fb, base_fb),
    ):
        a, b = timeit(ours, args.reps), timeit(base, max(3, args.reps // 3))
        rows.append((name, a, b))

    sd = sigma_delta.Neuron(0.05, F.relu)
    xs = torch.tensor(rng.integers(-300, 400, shape) / 2.0**18 * 64, dtype=torch.float64)

    def sd_fwd():
        with torch.no_grad():
            sd(xs)

    def sd_fb():
        xi = xs.detach().requires_grad_(True)
        sd(xi).backward(torch.ones(shape, dtype=torch.float64))

    def sdb_fwd():
        with torch.no_grad():
            plain_sdnn(xs, 0.05)

    def sdb_fb():
        xi = xs.detach().requires_grad_(True)
        plain_sdnn(xi, 0.05).backward(torch.ones(shape, dtype=torch.float64))

    for name, ours, base in (
        ("sigma-delta forward (float64 in)", sd_fwd, sdb_fwd),
        ("sigma-delta forward+backward", sd_fb, sdb_fb),
    ):
        a, b = timeit(ours, args.reps), timeit(base, max(3, args.reps // 3))
        rows.append((name, a, b))
    steps = args.batch * args.neurons * args.steps
    for name, a, b in rows:
        print(
            f"{name:36s} ours {a:8.2f} ms   plain-torch {b:9.2f} ms   "
            f"speed-up x{b / a:6.1f}   {steps / a / 1e3:8.1f} Mneuron-steps/s"
        )


if __name__ == "__main__":
    main()

"""Where the emulator's time goes on the PilotNet-size CUBA network, against what this
machine can do (issue 8, item 5: "the note shows with measurements exactly what stands
in the way").

For every convolution of ``bench_emulator.py``'s PilotNet-CUBA network (T = 32 steps,
the same file and input) it prints, in ms per time step, medians of ``--repeat``:

- ``synapse``: the emulator's measured synapse time of the layer (im2col, exact GEMM,
  store, on the tile threads);
- ``im2col``: the whole layer's im2col on one thread as the emulator runs it (the
  stream delayed and cast to the GEMM's type once, :func:`~loihi_slayer.fixed.
  synapse_fast._gemm_stream`, then :func:`~loihi_slayer.fixed.synapse_fast._im2col`
  copying machine words), and the bytes it writes per second;
- ``GEMM``: the layer's whole product alone in the emulator's GEMM (``torch._int_mm``
  where the CPU has int8 dot products, else float32 ``torch.mm``; see
  :func:`~loihi_slayer.fixed.synapse_fast.int8_gemm_pays`), in the emulator's
  orientation ``(C_out x K) @ (K x pixels*T)`` and transposed
  ``(pixels*T x K) @ (K x C_out)``, on torch's threads;

then the machine's int8 and float32 GEMM rates on a square product (the library's best case),
a plain memory copy rate, and, from the generated CUBA neuron kernel's assembly
(``numba`` ``inspect_asm``), how many of its instructions work on 512-bit (``zmm``),
256-bit (``ymm``) or 128-bit (``xmm``) vector registers.

Usage: ``PYTHONPATH=$PWD python3 benchmarks/emulator_limits.py [--repeat 5]``
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_emulator import make_input, pilotnet_blocks

from loihi_slayer import models
from loihi_slayer.block import export_network
from loihi_slayer.emulate import Emulator
from loihi_slayer.fixed import codegen, synapse_fast
from loihi_slayer.hdf5 import ConvLayer

#: the emulator's GEMM for spikes on this CPU (see synapse_fast.int8_gemm_pays)
GEMM_DTYPE = np.int8 if synapse_fast.int8_gemm_pays() else np.float32
GEMM = torch._int_mm if GEMM_DTYPE is np.int8 else torch.mm


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def conv_rows(emu: Emulator, x_in: np.ndarray, steps: int, repeat: int) -> list[tuple]:
    """Per convolution: (index, C_out, K, pixels, im2col s, bytes, GEMM s, GEMM^T s)."""
    traces = emu.run(x_in, steps, graded_input=True)
    rows = []
    for i, layer in enumerate(emu.network.layers):
        if not isinstance(layer, ConvLayer):
            continue
        x = (
            np.ascontiguousarray(traces[i - 1, "s"])
            .astype(np.int8)
            .reshape(emu.shapes[i - 1] + (steps,))
        )
        c_out, h_out, w_out = emu.shapes[i]
        c_in, kh, kw = x.shape[0], *layer.weight.shape[2:]
        fan_in, npix = c_in * kh * kw, h_out * w_out
        cols = np.empty((fan_in, npix * steps), GEMM_DTYPE)
        geometry = (kh, kw, *layer.stride, *layer.padding, *layer.dilation, False, w_out)

        def im2col(x=x, cols=cols, geometry=geometry):
            src, lag, word = synapse_fast._gemm_stream(
                x, 1, False, cols.dtype, synapse_fast.new_array
            )
            dst = cols if word is None else cols.view(word)
            synapse_fast._im2col(src, 0, *geometry, 0, lag, word is None, dst)

        im2col()  # compiled already by the run; one warm call
        t_col = median_time(im2col, repeat)
        c = torch.from_numpy(cols)
        w = torch.randint(-64, 64, (c_out, fan_in), dtype=torch.int8).to(c.dtype)
        c_t, w_t = c.t().contiguous(), w.t().contiguous()
        t_mm = median_time(lambda w=w, c=c: GEMM(w, c), repeat)
        t_mt = median_time(lambda c_t=c_t, w_t=w_t: GEMM(c_t, w_t), repeat)
        rows.append((i, c_out, fan_in, npix, t_col, cols.nbytes, t_mm, t_mt))
    return rows


def asm_vector_share() -> dict[str, int]:
    """Instruction counts of the generated CUBA CPU kernel (serial), by widest register."""
    mod = codegen.kernel_module(models.get("cuba"), "cpu")
    n = 64
    x = np.zeros((n, 8), np.int32)
    p = np.array([[411], [205], [200 * 64], [1], [0], [0]], np.int64)
    outs = [np.zeros((n, 8), np.int8)] + [np.zeros((n, 0), np.int32)] * 3
    fresh = numba.njit(mod.kernel_serial.py_func)  # a cached kernel cannot be inspected
    fresh(x, p, 0, 8, np.zeros((3, n), np.int64), *outs)
    asm = "\n".join(fresh.inspect_asm().values())
    lines = [ln.strip() for ln in asm.splitlines()]
    instr = [ln for ln in lines if ln and not ln.startswith((".", "#", "_")) and ":" not in ln]
    counts = {"all": len(instr)}
    for reg in ("zmm", "ymm", "xmm"):
        counts[reg] = sum(1 for ln in instr if re.search(rf"%{reg}\d", ln))
    counts["vpmullq"] = sum(1 for ln in instr if ln.startswith("vpmullq"))
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    steps = 32
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "pilotnet-cuba.net")
        export_network(pilotnet_blocks("cuba"), path)
        emu = Emulator(path, fast_synapse=True)
        x, _ = make_input("pilotnet-cuba", emu, steps, np.random.default_rng(0))
        layer_t: list[dict] = []
        for _ in range(args.repeat):
            tm: dict[int, dict[str, float]] = {}
            emu.run(x, steps, graded_input=True, timings=tm)
            layer_t.append(tm)
        rows = conv_rows(emu, x, steps, args.repeat)
    print(
        f"PilotNet-CUBA convolutions, T = {steps}, torch threads {torch.get_num_threads()}, "
        f"ms per step (median of {args.repeat})"
    )
    print(
        f"  layer  C_out    K  pixels   synapse |  im2col (1 thread, GB/s) |  GEMM  GEMM^T"
        f"  ({GEMM_DTYPE.__name__})"
    )
    tot = [0.0, 0.0, 0.0, 0.0]
    for i, c_out, k, npix, t_col, nbytes, t_mm, t_mt in rows:
        syn = statistics.median(tm[i]["synapse"] for tm in layer_t)
        vals = (syn, t_col, t_mm, t_mt)
        tot = [a + b for a, b in zip(tot, vals, strict=True)]
        ms = [v / steps * 1e3 for v in vals]
        print(
            f"  {i:5d} {c_out:6d} {k:4d} {npix:7d}   {ms[0]:7.3f} |  {ms[1]:6.3f} "
            f"({nbytes / t_col / 1e9:5.2f} GB/s)    | {ms[2]:6.3f} {ms[3]:6.3f}"
        )
    ms = [v / steps * 1e3 for v in tot]
    print(
        f"  all convolutions         {ms[0]:7.3f} |  {ms[1]:6.3f}                   | "
        f"{ms[2]:6.3f} {ms[3]:6.3f}"
    )
    a = torch.randint(-128, 128, (1024, 1024), dtype=torch.int8)
    af = a.float()
    t_sq = median_time(lambda: torch._int_mm(a, a), args.repeat)
    t_sf = median_time(lambda: torch.mm(af, af), args.repeat)
    src = np.ones(1 << 26, np.int8)
    dst = np.empty_like(src)
    t_cp = median_time(lambda: np.copyto(dst, src), args.repeat)
    print(
        f"GEMM 1024^3: int8 (torch._int_mm) {1024**3 / t_sq:.2e}, float32 (torch.mm) "
        f"{1024**3 / t_sf:.2e} multiply-adds/s (the emulator's: {GEMM_DTYPE.__name__}); "
        f"np.copyto of 64 MiB: {src.nbytes / t_cp / 1e9:.1f} GB/s"
    )
    c = asm_vector_share()
    print(
        f"generated CUBA kernel (serial) assembly: {c['all']} instructions, {c['zmm']} on zmm, "
        f"{c['ymm']} on ymm, {c['xmm']} on xmm registers; vpmullq (8 x int64 multiply): "
        f"{c['vpmullq']}"
    )


if __name__ == "__main__":
    main()

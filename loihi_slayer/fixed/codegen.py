"""Kernels generated from a neuron model's scalar step function.

A :class:`~loihi_slayer.models.base.NeuronModel` declares its integer step once.
This module writes, for each model, a small Python module holding an ``njit``
kernel and ``numba.cuda`` kernels (tiled: a warp per 32 neurons, time tiles through
shared memory; and one thread per neuron on the global arrays) that call that step,
then imports it. The CPU kernel steps ``LANES`` neurons together (lane blocks,
time inside; shares of the blocks run on :mod:`.workers`' threads in an emulator run,
else in one ``prange`` region): the lane loop
over a branch-free step is vectorised by LLVM, and the time-last input reaches it
through small transposed tiles, so every memory access is contiguous. The source
is generated because numba cannot cache a kernel that receives its step as a
closure or argument; a real file can be cached (``cache=True``), so a second
process reuses the compiled code.

Generated files live in the user's cache directory
(``$LOIHI_SLAYER_CACHE_DIR``, else ``$XDG_CACHE_HOME/loihi_slayer``, else
``~/.cache/loihi_slayer``; a temporary directory if none is writable), named
by a hash of the template, the step's source and the whole package's source
(:func:`~loihi_slayer._numba_cache.package_fingerprint`), so a changed step, or a
changed helper that a kernel inlines, gets a new file; the :data:`KEPT_VERSIONS`
newest of a model and target stay. Nothing is compiled or written before a kernel is first used.

Kernel signature (CPU and CUDA alike)::

    kernel(x_0, ..., x_{I-1}, p, t_start, t_stop, st, o_0, ..., o_{K-1})

(the CPU kernel takes two more, ``blk0, blk1``: it steps the neurons
``LANES * blk0`` to ``LANES * blk1``, the last block clipped to ``N``). ``x_i``
are the ``(N, T)`` integer inputs, ``p`` the ``(P, M)`` int64 parameter table
(column ``n % M``), ``st`` the ``(S, N)`` int64 state (updated in place),
``o_k`` the ``(N, T)`` trace outputs, or ``(N, 0)`` for traces not recorded.

The ``'recurrent'`` target is the training-side fused recurrence of a
Recurrent/KWTA block (:mod:`loihi_slayer.autograd.recurrent_complex`): the whole
time loop with the spike feedback inside, for any model with a spike trace ``s``::

    kernel(z_0, ..., z_{I-1}, m_0, ..., m_{I-1}, fb_bias, grid, in_scale, p, st,
           o_0, ..., o_{K-1}, pre, bad)

``z_i`` ``(T, B, n)`` float feed-forward input of model input ``i``, ``m_i`` its
int32 feedback mantissas (``(n, n)``, ``m_i[j, o]`` from neuron ``j`` to ``o``, or
the compact KWTA form), ``fb_bias`` ``(I,)`` int64, ``grid = 2**-k``,
``in_scale`` the weight scale, ``p`` ``(P, n)``, ``st`` ``(S, B * n)``, ``o_k``
``(T, B, n)`` int32 traces (all recorded), ``pre`` ``(Q, T | 0, B, n)`` int32, the
first ``Q`` states before each step, ``bad`` ``(B,)`` int8 (input out of range).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol

from .._numba_cache import guard_cache_writes, package_fingerprint

__all__ = ["KernelSpec", "cache_dir", "kernel_module", "render"]


class _Stepped(Protocol):
    """What the generator reads of a model: a :class:`NeuronModel` or a :class:`KernelSpec`."""

    name: str
    step: Callable[..., tuple]
    states: tuple[str, ...]
    inputs: tuple[str, ...]
    traces: tuple[str, ...]
    state_traces: tuple[str, ...]

    @property
    def params(self) -> tuple: ...
    @property
    def step_traces(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class KernelSpec:
    """A step that is not a registered model's, for the kernel generator.

    Same conventions as :class:`~loihi_slayer.models.base.NeuronModel` (the step
    returns the new states, then the ``traces`` not in ``state_traces``), except
    that ``step_args`` orders the step's arguments freely, naming states, inputs
    and ``params`` (names here, rows of the kernel's parameter table).
    """

    name: str
    step: Callable[..., tuple]
    states: tuple[str, ...]
    inputs: tuple[str, ...]
    params: tuple[str, ...]
    traces: tuple[str, ...]
    state_traces: tuple[str, ...]
    step_args: tuple[str, ...]

    def __post_init__(self) -> None:
        names = self.states + self.inputs + self.params
        if len(set(names)) != len(names) or sorted(self.step_args) != sorted(names):
            raise ValueError(f"kernel {self.name!r}: step_args must order the distinct {names}")

    @property
    def step_traces(self) -> tuple[str, ...]:
        """Traces the step returns after the states."""
        return tuple(t for t in self.traces if t not in self.state_traces)


def _call(
    model: _Stepped,
    state: Callable[[int], str],
    inp: Callable[[int], str],
    par: Callable[[int], str],
) -> str:
    """The step's argument list: states, inputs, parameters (a model's order), or
    the order a :class:`KernelSpec` names."""
    exprs = [state(i) for i in range(len(model.states))]
    exprs += [inp(i) for i in range(len(model.inputs))]
    exprs += [par(i) for i in range(len(model.params))]
    if isinstance(model, KernelSpec):
        where = dict(zip(model.states + model.inputs + model.params, exprs, strict=True))
        exprs = [where[name] for name in model.step_args]
    return ", ".join(exprs)


def _step_lines(
    model: _Stepped,
    state: Callable[[int], str],
    inp: Callable[[int], str],
    par: Callable[[int], str],
    trace: Callable[[int], str],
    guarded: bool = False,
) -> list[str]:
    """One neuron's step: the call, the new states stored at ``state(i)`` (nothing to
    store when that is the local ``s<i>`` itself), and every trace written to
    ``trace(k)`` (a state's new value, or the step's extra output); ``guarded``: only
    where ``rec<k>`` (the trace is recorded)."""
    s_out = [f"s{i}" for i in range(len(model.states))]
    r_out = [f"r{i}" for i in range(len(model.step_traces))]
    lines = [f"{', '.join(s_out + r_out)} = _step({_call(model, state, inp, par)})"]
    lines += [f"{state(i)} = s{i}" for i in range(len(model.states)) if state(i) != f"s{i}"]
    for i, name in enumerate(model.traces):
        src = (
            f"s{model.states.index(name)}"
            if name in model.state_traces
            else f"r{model.step_traces.index(name)}"
        )
        write = f"{trace(i)} = {src}"
        lines += [f"if rec{i}:", f"    {write}"] if guarded else [write]
    return lines


def _guarded_step(
    model: _Stepped, inp: Callable[[int], str], trace: Callable[[int], str], indent: str
) -> list[str]:
    """:func:`_step_lines` on local states ``s<i>`` and parameters ``p<i>``, recording
    only the traces asked for."""
    step = _step_lines(model, lambda i: f"s{i}", inp, lambda i: f"p{i}", trace, guarded=True)
    return [indent + line for line in step]


_TEMPLATE_VERSION = "16"
#: generated files kept per model and target, the newest first (:func:`_prune`)
KEPT_VERSIONS = 4
_lock = threading.Lock()
_loaded: dict[tuple[str, str], ModuleType] = {}


def cache_dir(kind: str = "kernels") -> Path:
    """The directory holding generated kernel modules, or other files kept per machine
    under ``kind`` (e.g. measurements), created on demand."""
    env = os.environ.get("LOIHI_SLAYER_CACHE_DIR")
    if env:
        base = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "loihi_slayer"
    path = base / kind
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError:
        path = Path(tempfile.gettempdir()) / f"loihi_slayer-{os.getuid()}" / kind
        path.mkdir(parents=True, exist_ok=True)
    return path


def _names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def _loop_body(model: _Stepped, indent: str) -> list[str]:
    """The body stepping neuron ``n`` through ``[t_start, t_stop)`` (one CUDA thread)."""
    ns, npar = len(model.states), len(model.params)
    lines = ["k = n % p.shape[1]"]
    lines += [f"p{i} = p[{i}, k]" for i in range(npar)]
    lines += [f"s{i} = st[{i}, n]" for i in range(ns)]
    lines.append("for t in range(t_start, t_stop):")
    lines += _guarded_step(model, lambda i: f"x{i}[n, t]", lambda i: f"o{i}[n, t]", "    ")
    lines += [f"st[{i}, n] = s{i}" for i in range(ns)]
    return [indent + line for line in lines]


#: neurons per block of the tiled CUDA kernel (one warp: a thread per neuron)
CUDA_ROWS = 32
#: time steps per shared-memory tile of the tiled CUDA kernel
CUDA_TILE = 16


def _tiled_cuda_body(model: _Stepped) -> list[str]:
    """The tiled CUDA kernel ``kernel``: a block of :data:`CUDA_ROWS` neurons steps
    through time in tiles of :data:`CUDA_TILE` steps. The warp loads each input tile
    with coalesced reads (consecutive threads, consecutive time steps of a row) into
    shared memory, each thread steps its neuron through the tile reading its row of
    it, and the recorded traces leave through shared tiles the same way. One padding
    column keeps a thread's row in other banks than its neighbours'.
    """
    ns, npar, ni = len(model.states), len(model.params), len(model.inputs)
    nk = len(model.traces)
    rows, tile = CUDA_ROWS, CUDA_TILE
    lines = [
        "    tid = cuda.threadIdx.x",
        f"    n0 = cuda.blockIdx.x * {rows}",
        "    n = n0 + tid",
        "    n_all = x0.shape[0]",
        "    if n_all == 0:",
        "        return",
        "    live = n < n_all",
        "    nl = n if live else n_all - 1",
        "    k = nl % p.shape[1]",
    ]
    lines += [f"    xs{i} = cuda.shared.array(({rows}, {tile + 1}), int64)" for i in range(ni)]
    lines += [f"    os{i} = cuda.shared.array(({rows}, {tile + 1}), int64)" for i in range(nk)]
    lines += [f"    p{i} = p[{i}, k]" for i in range(npar)]
    lines += [f"    s{i} = st[{i}, nl]" for i in range(ns)]
    lines += [
        f"    for t0 in range(t_start, t_stop, {tile}):",
        f"        tl = min({tile}, t_stop - t0)",
        f"        for e in range(tid, {rows * tile}, {rows}):",
        f"            r = e // {tile}",
        f"            c = e % {tile}",
        "            if n0 + r < n_all and c < tl:",
    ]
    lines += [f"                xs{i}[r, c] = x{i}[n0 + r, t0 + c]" for i in range(ni)]
    lines += ["        cuda.syncthreads()", "        if live:", "            for tt in range(tl):"]
    lines += _guarded_step(
        model, lambda i: f"xs{i}[tid, tt]", lambda i: f"os{i}[tid, tt]", " " * 16
    )
    lines += [
        "        cuda.syncthreads()",
        f"        for e in range(tid, {rows * tile}, {rows}):",
        f"            r = e // {tile}",
        f"            c = e % {tile}",
        "            if n0 + r < n_all and c < tl:",
    ]
    for i in range(nk):
        lines += [
            f"                if rec{i}:",
            f"                    o{i}[n0 + r, t0 + c] = os{i}[r, c]",
        ]
    lines += ["        cuda.syncthreads()  # the next tile overwrites the shared arrays"]
    lines += ["    if live:"] + [f"        st[{i}, n] = s{i}" for i in range(ns)]
    return lines


#: neurons stepped together in the CPU kernel's lane loop (vector width of the step)
LANES = 16
#: time steps per tile: each lane's input and outputs pass through (TILE, LANES) buffers
TILE = 64
#: rows ahead of its own whose lines a block prefetches (two blocks: far enough for the
#: lines to arrive while a 32-step tile steps, near enough to stay in L2)
AHEAD = 2 * LANES


def _cpu_block(model: _Stepped, args: str) -> list[str]:
    """The inlined function stepping neurons ``blk * LANES ...`` through ``[t_start, t_stop)``.

    Neurons are stepped ``LANES`` at a time: the inner loop runs the (branch-free)
    step over the lanes, which LLVM vectorises. The time-last input is transposed
    tile by tile into a ``(TILE, LANES)`` buffer so the lane loop reads contiguous
    memory, and recorded traces go back the same way. Lanes past the last neuron
    copy lane 0's parameters and state and are never written out.

    The lanes' states and parameters share one flat int64 array, each a row of
    ``LANES`` at a constant offset, and so do the input tiles (in the input's own dtype
    where there is one input: the transposes then move int32 sums unconverted, and the
    step widens them) and the trace tiles (every trace is an integer; the copy-out
    casts to the trace's dtype, as a store into it would): three arrays whose rows LLVM
    proves disjoint. Separate 2-D arrays, with
    row strides known only at run time, made it compare every pair of rows' address
    ranges before each time step's lane loop (about 60 compares on 16 lanes). The three
    live on the kernel's stack (:mod:`._stack`), where nothing else can alias them: the
    states and parameters then stay in vector registers through the time loop. Only
    the recorded traces are written to the trace tile.
    """
    ns, npar, ni, nk = len(model.states), len(model.params), len(model.inputs), len(model.traces)
    tile = TILE * LANES
    lines = [
        '@njit(inline="always", cache=True)',
        "def _buffers(x0):",
        f"    lane = stack_empty_i64({max(ns + npar, 1) * LANES})",
        # one input: its tile in its own dtype (the transposes move half the bytes of
        # int32 sums, no conversion; the step widens); several: int64 holds any of them
        f"    xb = stack_empty_like(x0, {tile})"
        if ni == 1
        else f"    xb = stack_empty_i64({max(ni, 1) * tile})",
        f"    ob = stack_empty_i64({max(nk, 1) * tile})",
        "    return lane, xb, ob",
        "",
        "",
        '@njit(inline="always", cache=True)',
        f"def _block(lane, xb, ob, blk, {args}):",
        f"    n0 = blk * {LANES}",
        f"    m = min({LANES}, x0.shape[0] - n0)",
    ]
    # a whole block's states (and per-neuron parameters) are contiguous runs of each
    # row, read through slices indexed by the loop counter (vector loads); a shared
    # parameter table (one column) is in the lanes already (:func:`_shared_params`).
    # Lane by lane with the column ``n % M`` (an integer division per lane) and strided
    # rows, this setup took ~0.2 us a block, most of a one-step call (sigma-delta, one
    # share of 38 016 neurons: T = 1 0.71-0.83x, T = 32 0.91x shared, 1.01x per neuron)
    whole = [f"        st{i} = st[{i}, n0 : n0 + {LANES}]" for i in range(ns)]
    if ns:
        whole += [f"        for j in range({LANES}):"]
        whole += [f"            lane[{i * LANES} + j] = st{i}[j]" for i in range(ns)]
    if npar:
        whole += ["        if per_neuron:"]
        whole += [f"            pv{i} = p[{i}, n0 : n0 + {LANES}]" for i in range(npar)]
        whole += [f"            for j in range({LANES}):"]
        whole += [f"                lane[{(ns + i) * LANES} + j] = pv{i}[j]" for i in range(npar)]
    part = [
        f"        for j in range({LANES}):",
        "            jj = n0 + (j if j < m else 0)",
        *[f"            lane[{i * LANES} + j] = st[{i}, jj]" for i in range(ns)],
    ]
    if npar:
        part += [
            "            if p.shape[1] > 1:",
            "                k = jj if per_neuron else jj % p.shape[1]",
            *[f"                lane[{(ns + i) * LANES} + j] = p[{i}, k]" for i in range(npar)],
        ]
    lines += [
        "    per_neuron = p.shape[1] == x0.shape[0] and p.shape[1] > 1",
        f"    if m == {LANES} and (per_neuron or p.shape[1] == 1):",
        *(whole or ["        pass"]),
        "    else:",
        *part,
    ]
    # with all lanes in use, a tile's whole 16-step blocks move 16 x 16 at a time,
    # transposed in vector registers (:mod:`loihi_slayer.fixed._transpose`, converted to
    # int64 on the way; every block of a 32-step emulator run, not only 64-step tiles);
    # the last T % 16 steps, or fewer lanes, through per-lane slices indexed by the
    # loop counter: LLVM then proves
    # the indices non-negative, drops numba's wrap-around checks and vectorises the
    # copies (``x[jj, t0 + q]`` kept them scalar; unsigned flat offsets vectorise too but
    # tripled the compile time)
    lines += [
        f"    for t0 in range(t_start, t_stop, {TILE}):",
        f"        tt = min({TILE}, t_stop - t0)",
        f"        full = tt - tt % BLOCK if m == {LANES} else 0",
        "        for q0 in range(0, full, BLOCK):",
        f"            for j0 in range(0, {LANES}, BLOCK):",
    ]
    lines += [
        f"                block_in(x{i}, n0, j0, t0 + q0, xb, {i * tile} + q0 * {LANES} + j0,"
        f" {LANES})"
        for i in range(ni)
    ]
    lines += [
        "        if full < tt:",
        f"            for j in range({LANES}):",
        "                jj = n0 + (j if j < m else 0)",
    ]
    lines += [f"                src{i} = x{i}[jj, t0 + full : t0 + tt]" for i in range(ni)]
    lines.append("                for q in range(tt - full):")
    lines += [
        f"                    xb[{i * tile} + (full + q) * {LANES} + j] = src{i}[q]"
        for i in range(ni)
    ]
    # while this tile steps, the lines of the next one (this block's next tile, or the
    # first tile of the block AHEAD lanes on) come in (:mod:`._prefetch`); not for
    # one-step tiles, whose rows are one sequential run that the hardware prefetcher
    # follows (there the explicit lines only cost: the sigma-delta kernel at 76 032
    # neurons, T = 1, 0.75x serial, 0.81x on two threads without them; T = 2..32 the same)
    lines += [
        f"        if t0 + {TILE} < t_stop:",
        f"            ahead, at = n0, t0 + {TILE}",
        "        else:",
        f"            ahead, at = n0 + {AHEAD}, t_start",
        f"        cols = min({TILE}, t_stop - at)",
        "        if cols > 1:",
    ]
    lines += [f"            fetch_rows(x{i}, ahead, at, cols)" for i in range(ni)]
    for i in range(nk):
        lines += [
            f"            if rec{i}:",
            f"                fetch_rows_for_write(o{i}, ahead, at, cols)",
        ]
    if not ni + nk:
        lines.append("            pass")
    lines += [
        "        for q in range(tt):",
        f"            row = q * {LANES}",
        f"            for j in range({LANES}):",
    ]
    step = _step_lines(
        model,
        lambda i: f"lane[{i * LANES} + j]",
        lambda i: f"xb[{i * tile} + row + j]",
        lambda i: f"lane[{(ns + i) * LANES} + j]",
        lambda i: f"ob[{i * tile} + row + j]",
        guarded=True,
    )
    lines += ["                " + line for line in step]
    for i in range(nk):
        lines += [
            f"        if rec{i}:",
            "            for q0 in range(0, full, BLOCK):",
            f"                for j0 in range(0, {LANES}, BLOCK):",
            f"                    block_out(ob, {i * tile} + q0 * {LANES} + j0, {LANES}, o{i}, n0,"
            " j0, t0 + q0)",
            "            if full < tt:",
            "                for j in range(m):",
            f"                    dst = o{i}[n0 + j, t0 + full : t0 + tt]",
            "                    for q in range(tt - full):",
            f"                        dst[q] = ob[{i * tile} + (full + q) * {LANES} + j]",
        ]
    lines += [f"    so{i} = st[{i}, n0 : n0 + m]" for i in range(ns)]
    lines += ["    for j in range(m):"]
    lines += [f"        so{i}[j] = lane[{i * LANES} + j]" for i in range(ns)]
    if not ns:
        lines.append("        pass")
    return lines


def _shared_params(model: _Stepped) -> list[str]:
    """Kernel lines filling the lanes' parameter rows once per call where the table is
    shared (one column): :func:`_cpu_block` then loads none per block."""
    ns, npar = len(model.states), len(model.params)
    lines = ["    if p.shape[1] == 1:", f"        for j in range({LANES}):"]
    lines += [f"            lane[{(ns + i) * LANES} + j] = p[{i}, 0]" for i in range(npar)]
    return lines if npar else []


def _recurrent_item(model: _Stepped) -> list[str]:
    """The inlined function running batch item ``b`` of the fused recurrence (see the
    module docstring): per step, the feedback of the last step's spikes for each input
    (:func:`loihi_slayer.autograd._recurrent_cpu._feedback`), the sum with the
    feed-forward input in its dtype and its chip integer (``chip_int``, as the training
    neuron converts), the step over the neurons, the list of this step's spikes.

    The neurons step :data:`LANES` at a time through one flat lane array on the stack
    (inputs, states, parameters and traces, each a row of ``LANES``), as the ``'cpu'``
    target's blocks do: a loop over the arrays themselves, each of which LLVM must assume
    may alias the others, stayed scalar (the RF kernel's assembly: one neuron's
    ``imulq`` and ``cmov`` at a time, 47 of a 245 ms ``rf.Recurrent`` training step).
    On the Ice Lake VM (stop 70, scratch ``abgen.py``: the kernel before and after in
    one process on a training step's arguments, 15 alternating rounds, the same outputs)
    paired 0.94 for ``rf``, 0.93 ``adrf``, 0.97 ``adrf_iz``, 1.03 ``rf_iz`` (0.99-1.07):
    the feedback sums and the memory traffic hold most of the time (without the
    feedback the ``rf`` kernel took 26.6 of 37.2 ms).
    """
    ni, nk, ns, npar = len(model.inputs), len(model.traces), len(model.states), len(model.params)
    zs, ms, outs = _names("z", ni), _names("m", ni), _names("o", nk)
    spike = model.traces.index("s")
    # the lane array's rows: inputs, states, parameters, traces
    row_x, row_s, row_p, row_o = 0, ni, ni + ns, ni + ns + npar
    rows = row_o + nk
    lines = [
        '@njit(inline="always", cache=True)',
        f"def _item(b, {', '.join(zs + ms)}, fb_bias, grid, in_scale, p, st, "
        f"{', '.join(outs)}, pre, bad):",
        "    prefer_wide_vectors()  # marks the caller (fixed._vector_width)",
        "    steps, n = z0.shape[0], z0.shape[2]",
        "    acc = np.empty(n, np.int32)",
        "    part = np.empty(n, np.int16)",
        "    idx = np.empty(n, np.int64)",
        f"    lane = stack_empty_i64({rows * LANES})",
    ]
    lines += [f"    fb{i} = np.empty(n, z0.dtype)" for i in range(ni)]
    lines += [
        "    nspk = 0",
        "    flag = 0",
        "    sb = st[:, b * n : (b + 1) * n]",
        "    rec_p = pre.shape[1] > 0",
        "    for t in range(steps):",
    ]
    lines += [
        f"        _feedback(fb{i}, acc, part, m{i}, idx, nspk, fb_bias[{i}], grid)"
        for i in range(ni)
    ]
    lines += [
        "        if rec_p:",
        "            for q in range(pre.shape[0]):",
        "                for j in range(n):",
        "                    pre[q, t, b, j] = sb[q, j]",
    ]
    lines += [f"        zr{i} = z{i}[t, b]" for i in range(ni)]
    lines += [f"        or{i} = o{i}[t, b]" for i in range(nk)]

    def lanes_in(at: Callable[[str], str]) -> list[str]:
        """Lines filling the lanes of neuron ``at(j)`` (an index expression)."""
        out = []
        for i in range(ni):
            out += [
                f"x{i}, e{i} = chip_int(zr{i}[{at('j')}] + fb{i}[{at('j')}], in_scale, "
                "INPUT_LIMIT)",
                f"flag |= e{i}",
                f"lane[{(row_x + i) * LANES} + j] = x{i}",
            ]
        out += [f"lane[{(row_s + i) * LANES} + j] = sb[{i}, {at('j')}]" for i in range(ns)]
        out += [f"lane[{(row_p + i) * LANES} + j] = p[{i}, {at('j')}]" for i in range(npar)]
        return out

    lines += [
        f"        for j0 in range(0, n, {LANES}):",
        f"            m = min({LANES}, n - j0)",
        f"            if m == {LANES}:",
        f"                for j in range({LANES}):",
        *["                    " + x for x in lanes_in(lambda j: f"j0 + {j}")],
        "            else:  # the last neurons: the lanes past them repeat the last one",
        f"                for j in range({LANES}):",
        "                    jj = j0 + min(j, m - 1)",
        *["                    " + x for x in lanes_in(lambda j: "jj")],
        f"            for j in range({LANES}):",
    ]
    step = _step_lines(
        model,
        lambda i: f"lane[{(row_s + i) * LANES} + j]",
        lambda i: f"lane[{(row_x + i) * LANES} + j]",
        lambda i: f"lane[{(row_p + i) * LANES} + j]",
        lambda i: f"lane[{(row_o + i) * LANES} + j]",
    )
    lines += ["                " + line for line in step]
    # out through slices of LANES values where the block is whole (a constant count: the
    # copies vectorise), else value by value
    lines += [f"            if m == {LANES}:"]
    lines += [f"                ss{i} = sb[{i}, j0 : j0 + {LANES}]" for i in range(ns)]
    lines += [f"                os{k} = or{k}[j0 : j0 + {LANES}]" for k in range(nk)]
    lines += [f"                for j in range({LANES}):"]
    lines += [f"                    ss{i}[j] = lane[{(row_s + i) * LANES} + j]" for i in range(ns)]
    lines += [f"                    os{k}[j] = lane[{(row_o + k) * LANES} + j]" for k in range(nk)]
    lines += ["            else:", "                for j in range(m):"]
    lines += [
        f"                    sb[{i}, j0 + j] = lane[{(row_s + i) * LANES} + j]" for i in range(ns)
    ]
    lines += [
        f"                    or{k}[j0 + j] = lane[{(row_o + k) * LANES} + j]" for k in range(nk)
    ]
    lines += [
        f"        nspk = _spike_list(idx, or{spike})",
        "    if flag:",
        "        bad[b] = 1",
    ]
    return lines


def _render_recurrent(model: _Stepped) -> list[str]:
    """Body of the ``'recurrent'`` module: ``kernel`` (batch items on threads) and
    ``kernel_serial``."""
    ni, nk = len(model.inputs), len(model.traces)
    args = ", ".join(
        _names("z", ni)
        + _names("m", ni)
        + ["fb_bias", "grid", "in_scale", "p", "st"]
        + _names("o", nk)
        + ["pre", "bad"]
    )
    body = [
        "import numpy as np",
        "from numba import njit, prange",
        "",
        "from loihi_slayer.autograd._convert import INPUT_LIMIT, chip_int",
        "from loihi_slayer.autograd._recurrent_cpu import _feedback, _spike_list",
        "from loihi_slayer.fixed._stack import stack_empty_i64",
        "from loihi_slayer.fixed._vector_width import prefer_wide_vectors",
        "",
        '_step = njit(inline="always", cache=True)(_py_step)',
        "",
        "",
    ]
    body += _recurrent_item(model) + ["", ""]
    for name, deco, loop in (
        ("kernel", "@njit(parallel=True, cache=True)", "prange"),
        ("kernel_serial", "@njit(cache=True)", "range"),
    ):
        body += [
            deco,
            f"def {name}({args}):",
            f"    for b in {loop}(z0.shape[1]):",
            f"        _item(b, {args})",
            "",
            "",
        ]
    return body


#: generated module targets
TARGETS = ("cpu", "cuda", "recurrent")


def render(model: _Stepped, target: str) -> str:
    """Source text of the ``'cpu'``, ``'cuda'`` or ``'recurrent'`` kernel module of
    ``model``."""
    step = model.step
    nk = len(model.traces)
    xs = _names("x", len(model.inputs))
    outs = _names("o", nk)
    recs = _names("rec", nk)
    args = ", ".join(xs + ["p", "t_start", "t_stop", "st"] + outs)
    rec = [f"    rec{i} = o{i}.shape[1] > 0" for i in range(nk)]
    head = [
        f'"""Generated by loihi_slayer.fixed.codegen for model {model.name!r} ({target}).',
        "",
        f"Step: {step.__module__}.{step.__qualname__}. Do not edit: regenerated on change.",
        '"""',
        "",
        f"from {step.__module__} import {step.__name__} as _py_step",
    ]
    if target == "cpu":
        block_args = ", ".join([args] + recs)
        body = [
            "import numpy as np",
            "from numba import njit, prange",
            "",
            "from loihi_slayer.fixed._prefetch import fetch_rows, fetch_rows_for_write",
            "from loihi_slayer.fixed._stack import stack_empty_i64, stack_empty_like",
            "from loihi_slayer.fixed._transpose import BLOCK, block_in, block_out",
            "from loihi_slayer.fixed._vector_width import prefer_wide_vectors",
            "",
            '_step = njit(inline="always", cache=True)(_py_step)',
            "",
            "",
        ]
        body += _cpu_block(model, block_args)
        body += ["", ""]
        # one share of the lane blocks, the GIL released: the shares run on
        # fixed.workers' threads in an emulator run, else as one prange region
        # (kernel_parallel, beside torch's ops: see workers.run_shared); one set of
        # buffers each
        body += ["@njit(nogil=True, cache=True)", f"def kernel({args}, blk0, blk1):"] + rec
        body += ["    prefer_wide_vectors()  # 512-bit lanes where they pay (fixed._vector_width)"]
        body += ["    lane, xb, ob = _buffers(x0)", *_shared_params(model)]
        body += [
            "    for blk in range(blk0, blk1):",
            f"        _block(lane, xb, ob, blk, {block_args})",
            "",
            "",
            "@njit(parallel=True, cache=True)",
            f"def kernel_parallel({args}, parts):",
            "    for k in prange(parts.shape[0]):",
            f"        kernel({args}, parts[k, 0], parts[k, 1])",
            "",
            "",
        ]
    elif target == "recurrent":
        body = _render_recurrent(model)
    elif target == "cuda":
        body = [
            "from numba import cuda, int64",
            "",
            "_step = cuda.jit(device=True)(_py_step)",
            "",
            "",
            "@cuda.jit",
            f"def kernel({args}):",
        ]
        body += rec + _tiled_cuda_body(model) + ["", ""]
        body += ["@cuda.jit", f"def kernel_per_thread({args}):"]
        body += rec
        body += ["    n = cuda.grid(1)", "    if n < x0.shape[0]:"]
        body += _loop_body(model, "        ")
        body += [""]
    else:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    return "\n".join(head + body).rstrip() + "\n"


def _digest(model: _Stepped, target: str) -> str:
    h = hashlib.sha256()
    for part in (
        _TEMPLATE_VERSION,
        target,
        render(model, target),
        inspect.getsource(model.step),
        package_fingerprint(),
    ):
        h.update(part.encode())
    return h.hexdigest()[:16]


def _prune(path: Path, prefix: str) -> None:
    """Delete all but the :data:`KEPT_VERSIONS` newest generated files named ``prefix``
    plus a digest (``path``, just written, among them), with their numba cache files.

    Every change of the package's source names new files (:func:`_digest`);
    without this an upgraded or edited package would leave the old ones forever.
    Keeping a few serves processes of other installed versions without recompiling.
    Best effort: a file another process removed first, or cannot remove, is left."""
    pattern = re.compile(re.escape(prefix) + r"[0-9a-f]{16}\.py")
    found = []
    for other in path.parent.iterdir():
        if other != path and pattern.fullmatch(other.name):
            try:
                found.append((other.stat().st_mtime, other))
            except OSError:
                continue
    found.sort(reverse=True)
    for _, old in found[KEPT_VERSIONS - 1 :]:
        for stale in [old, *(path.parent / "__pycache__").glob(f"{old.stem}.*")]:
            try:
                stale.unlink()
            except OSError:
                pass


def kernel_module(model: _Stepped, target: str = "cpu") -> ModuleType:
    """The generated kernel module of ``model`` for ``target`` (written and imported once).

    The module has ``kernel`` (on CPU: the lane blocks ``[blk0, blk1)``, and
    ``kernel_parallel`` running ranges of them in a ``prange``; on the ``'recurrent'``
    target also ``kernel_serial``).
    """
    key = (model.name, target)
    mod = _loaded.get(key)
    if mod is not None:
        return mod
    with _lock:
        mod = _loaded.get(key)
        if mod is not None:
            return mod
        name = f"_loihi_slayer_gen_{model.name}_{target}_{_digest(model, target)}"
        path = cache_dir() / f"{name}.py"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(render(model, target))
            os.replace(tmp, path)  # atomic: concurrent processes see a whole file
            _prune(path, f"_loihi_slayer_gen_{model.name}_{target}_")
        guard_cache_writes()  # the generated module's kernels are cached by numba too
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        _loaded[key] = mod
        return mod

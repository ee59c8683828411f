"""Shared test utilities (imported as ``helpers``; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = ROOT / "golden"
SHARED_GOLDEN = ROOT.parent / "shared" / "golden-ext"


def run_python(code: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """``python -c code *args`` in a fresh process, its output captured as text, within
    300 s unless ``timeout`` says otherwise; other keyword arguments (``env``, ``check``,
    ``cwd``, ``preexec_fn``) go to :func:`subprocess.run`."""
    kwargs.setdefault("timeout", 300)
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, **kwargs
    )


def cuda_available() -> bool:
    """True if numba.cuda (real GPU or the simulator) can run kernels."""
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:
        return False


def train_steps(net, x, steps: int = 3, seed: int = 0) -> None:
    """A few Adam steps on random targets (moves weights, delays, norm means, decays), so
    that a gap test checks trained, not freshly initialised, parameters."""
    import torch

    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(steps):
        y = net(x)
        loss = ((y - torch.rand_like(y)) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()


def in_both_paths(fn):
    """``[fn() with the fused recurrence switched on, fn() with it off]``
    (``block.recurrent.FUSED``, restored to True afterwards)."""
    from loihi_slayer.block import recurrent as rec

    out = []
    for fused in (True, False):
        rec.FUSED = fused
        try:
            out.append(fn())
        finally:
            rec.FUSED = True
    return out


def refused_in_both_paths(fn, error, match: str) -> None:
    """``fn()`` raises ``error`` (message matching ``match``) with the fused recurrence on
    and with it off."""
    import pytest

    def refused():
        with pytest.raises(error, match=match):
            fn()

    in_both_paths(refused)


def spy(monkeypatch, owner, name: str) -> list:
    """Replace ``owner.name`` (a module or object attribute) by a wrapper that calls it and
    records each call's positional arguments; returns the record (a list)."""
    calls = []
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def conv_reference(x, w, stride, padding, dilation, groups, exp, graded, latency, transpose):
    """The NumPy reference's (transposed) convolution sums: the independent result the
    fast synapse paths are checked against."""
    from loihi_slayer import fixed

    op = fixed.conv_transpose2d if transpose else fixed.conv2d
    return op(
        x,
        w,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        weight_exp=exp,
        graded=graded,
        latency=latency,
        backend="reference",
    )


def cuba_forward_kernels() -> dict:
    """The training CUBA forward kernels by ``(refractory period, parallel)``."""
    from loihi_slayer.autograd import _cpu

    return {
        (False, True): _cpu.cuba_forward,
        (False, False): _cpu.cuba_forward_serial,
        (True, True): _cpu.cuba_forward_refractory,
        (True, False): _cpu.cuba_forward_refractory_serial,
    }


def run_cuba_kernel(
    kernel, x, in_scale, out_scale, i_dec, v_dec, v_th, ref, bias, u0, v0, rc0, graded, **opts
):
    """Call a training CUBA forward kernel on NumPy arrays with fresh outputs (NaN / 7
    filled, so unwritten entries show) and the ``(3, rows)`` state; returns
    ``(s, v_pre, u, refractory, state, bad)``. ``opts`` may give ``records=False`` (the
    spikes alone: ``v_pre`` and ``u`` then ``(rows, 0)``, as the layers pass them when
    nothing needs them), ``pool`` (the ``(kH, kW, H', W')`` geometry; the rows are then
    ``u0``'s), ``pool_w``, ``shift`` and ``operand`` (the int8 operand's ``(q, counts)``
    arrays the kernel fills)."""
    import numpy as np

    from loihi_slayer.autograd import _cpu

    rows, steps = len(u0), x.shape[1]
    dtype = np.float32 if opts.get("pool") is not None else x.dtype
    s, vp, u = (np.full((rows, steps), np.nan, dtype) for _ in range(3))
    if not opts.get("records", True):
        vp, u = (np.empty((rows, 0), dtype) for _ in range(2))
    r = np.full((rows, steps), 7, np.uint8)
    state = np.stack([u0, v0, rc0]).astype(np.int64)
    bad = np.zeros(rows, np.int8)
    pool = opts.get("pool")
    _cpu.run_cuba_forward(
        kernel,
        x,
        in_scale,
        out_scale,
        i_dec,
        v_dec,
        v_th,
        ref,
        bias,
        state[0],
        state[1],
        state[2],
        graded,
        s,
        vp,
        u,
        r,
        bad,
        _cpu.NO_POOL if pool is None else np.asarray(pool, np.int64),
        np.float32(opts.get("pool_w", 1.0)),
        int(opts.get("shift", 0)),
        *opts.get("operand", (_cpu.NO_OPERAND, _cpu.NO_COUNTS)),
    )
    return s, vp, u, r, state, bad


@contextlib.contextmanager
def root_console_handler(fmt: str | None = None):
    """A ``StreamHandler`` on ``sys.stderr`` (with format ``fmt``) on the root logger for
    the block, removed after; yields it."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt is not None:
        handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def bar_pieces(text: str) -> list[str]:
    """The pieces a terminal draws of ``text``: split at newlines and at the carriage
    returns with which progress bars redraw themselves."""
    return [part for line in text.split("\n") for part in line.split("\r")]


def own_lines(text: str, message: str) -> int | None:
    """How many times ``message`` stands on a line of its own in the terminal output
    ``text``, or None where it once shares a line (glued to a progress bar's text)."""
    hits = [part for part in bar_pieces(text) if message in part]
    return len(hits) if all(part.strip() == message for part in hits) else None

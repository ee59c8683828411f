"""Fuzz harness: run one input in a forked child under time and memory limits.

Each input runs in a child process (``os.fork``: the library is imported once,
in the test process) with ``RLIMIT_AS`` (memory) and ``RLIMIT_CPU`` set, and a
wall-clock limit enforced by the parent. The outcome is classified:

``ok``
    The target returned and its own correctness check passed.
``clean``
    The target raised one of our exception classes (or ``FileNotFoundError``)
    whose message names the file, or the parameter, as the target requires.
``raw``
    Any other exception, or one of ours whose message lacks the file or
    parameter name: a failure.
``hang``, ``crash``, ``memory``
    Killed after the time limit; died of a signal; ``MemoryError`` or killed by
    the memory limit: failures.

Bounded runs are part of the default ``pytest`` run. A long run::

    LOIHI_SLAYER_FUZZ=long python3 -m pytest -q tests/fuzz -p no:cacheprovider

prints the inputs tried per target and their outcomes at the end (also written
to ``$LOIHI_SLAYER_FUZZ_REPORT`` as JSON when that is set).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import pickle
import resource
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings

from loihi_slayer.errors import LoihiSlayerError

#: Examples per target: bounded CI run / long run (``LOIHI_SLAYER_FUZZ=long``).
LONG = os.environ.get("LOIHI_SLAYER_FUZZ", "") == "long"
SCALE = int(os.environ.get("LOIHI_SLAYER_FUZZ_SCALE", "20")) if LONG else 1
#: Wall-clock limit of one input (seconds) and its address-space headroom.
TIME_LIMIT = 120.0
MEMORY_HEADROOM = 3 << 30
#: The HDF5 watchdog's own limit inside the children (a hang must be caught by it).
os.environ.setdefault("LOIHI_SLAYER_HDF5_TIMEOUT", "5")
#: Allocations the library makes on a user's behalf stay well under the child's limit.
os.environ.setdefault("LOIHI_SLAYER_MAX_BYTES", str(1 << 30))

#: The training blocks the parameter fuzz builds (``block.cuba``): the neuron, and per
#: block its constructor keywords and input shape (time steps appended). The session's
#: warm-up runs them too, so no forked input compiles their kernels against the limit.
BLOCK_NEURON = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03}
BLOCK_CASES = {
    "Dense": ({"in_neurons": 6, "out_neurons": 4}, (1, 6)),
    "Conv": ({"in_features": 2, "out_features": 4, "kernel_size": 3}, (1, 2, 6, 6)),
    "Pool": ({"kernel_size": 2}, (1, 2, 6, 6)),
}
#: The time steps the block inputs have.
BLOCK_STEPS = (5, 0)

FAILURES = ("raw", "hang", "crash", "memory")
#: target -> outcome -> count, over the whole session (printed by conftest).
TALLY: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings of a fuzz target: ``examples`` inputs (times SCALE)."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        derandomize=not LONG,  # the CI run is reproducible; the long run explores
        database=None,
        suppress_health_check=list(HealthCheck),
    )


@dataclass
class Outcome:
    """What happened to one input."""

    kind: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.kind in FAILURES


class CheckFailed(AssertionError):
    """A target's own correctness check failed (counts as ``raw``)."""


class Refused(Exception):
    """A target refused its input as the contract says (counts as ``clean``),
    e.g. a CLI exit status 2 or 3 with the file named on stderr."""


def _named(name: str | tuple[str, ...], msg: str) -> bool:
    """``name`` (or, for a tuple, any of its alternatives) appears in ``msg``."""
    return any(a in msg for a in name) if isinstance(name, tuple) else name in msg


def _child(fn: Callable[[], Any], names: tuple, write_fd: int) -> None:
    kind, detail = "ok", ""
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        with open("/proc/self/statm") as fh:
            vms = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (vms + MEMORY_HEADROOM,) * 2)
        cpu = int(TIME_LIMIT) + 5
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        if "torch" in sys.modules:  # only when already imported (importing costs seconds)
            sys.modules["torch"].set_num_threads(1)
        fn()
    except MemoryError:
        kind, detail = "memory", traceback.format_exc(limit=-3)
    except CheckFailed as exc:
        kind, detail = "raw", f"wrong result: {exc}"
    except Refused as exc:
        kind, detail = "clean", str(exc)
    except (LoihiSlayerError, FileNotFoundError) as exc:
        msg = str(exc)
        missing = [n for n in names if not _named(n, msg)]
        if missing:
            kind, detail = "raw", f"{type(exc).__name__} does not name {missing}: {msg}"
        else:
            kind, detail = "clean", f"{type(exc).__name__}: {msg}"
    except BaseException:
        kind, detail = "raw", traceback.format_exc(limit=-4)
    with contextlib.suppress(Exception):
        os.write(write_fd, pickle.dumps((kind, detail[:4000])))
    os._exit(0)


def _check_fork_safe() -> None:
    """Skip when numba's OpenMP layer already ran here (children could not use it)."""
    import numba
    from numba.np.ufunc import parallel

    if getattr(parallel, "_is_initialized", False) and numba.threading_layer() == "omp":
        import pytest

        pytest.skip("numba's OpenMP threading layer was started before forking the fuzz inputs")


def run_isolated(fn: Callable[[], Any], names: tuple = ()) -> Outcome:
    """Run ``fn()`` in a forked child; classify the outcome.

    Parameters
    ----------
    fn
        The input's target call (raises :class:`CheckFailed` on a wrong result).
    names
        Strings a clean error message must contain (file name, parameter); a
        tuple entry is satisfied by any one of its strings.
    """
    _check_fork_safe()
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(read_fd)
        _child(fn, names, write_fd)
    os.close(write_fd)
    data = b""
    deadline = time.monotonic() + TIME_LIMIT
    status = None
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read_fd], [], [], 0.2)
            if ready:
                chunk = os.read(read_fd, 1 << 16)
                if not chunk:
                    break
                data += chunk
        else:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(read_fd)
    if data:
        kind, detail = pickle.loads(data)
        return Outcome(kind, detail)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGKILL and time.monotonic() >= deadline:
            return Outcome("hang", f"no result within {TIME_LIMIT} s")
        if sig in (signal.SIGKILL, signal.SIGXCPU):
            return Outcome("memory" if sig == signal.SIGKILL else "hang", signal.Signals(sig).name)
        return Outcome("crash", signal.Signals(sig).name)
    return Outcome("crash", f"child ended without a result (status {status})")


def record(target: str, outcome: Outcome) -> Outcome:
    """Count ``outcome`` for ``target`` and fail the test on a failure."""
    TALLY[target][outcome.kind] += 1
    TALLY[target]["inputs"] += 1
    if outcome.failed:
        raise AssertionError(f"{target}: {outcome.kind}: {outcome.detail}")
    return outcome


def report_lines() -> list[str]:
    """The tally as a table: target, inputs, outcomes."""
    kinds = ("ok", "clean", *FAILURES)
    lines = [f"{'target':28s} {'inputs':>7s} " + " ".join(f"{k:>6s}" for k in kinds)]
    for target in sorted(TALLY):
        c = TALLY[target]
        lines.append(f"{target:28s} {c['inputs']:7d} " + " ".join(f"{c[k]:6d}" for k in kinds))
    path = os.environ.get("LOIHI_SLAYER_FUZZ_REPORT")
    if path:
        with open(path, "w") as fh:
            json.dump({t: dict(c) for t, c in TALLY.items()}, fh, indent=1, sort_keys=True)
    return lines

"""The emulator's kept stream memory: a layer whose traces a run does not return writes
its output stream into the memory of the previous run's (``Emulator._kept_stream``).

Expected values come from emulators that keep nothing (``KEPT_STREAM_BYTES = 0``), which
the rest of the suite checks against the NumPy reference; here: the same traces, run
after run, in any order, from two threads at once, and memory really reused.
"""

from __future__ import annotations

import inspect
import threading

import numpy as np
import pytest
from test_emulator_fast import _mixed_network

from loihi_slayer.emulate import Emulator
from loihi_slayer.emulate import emulator as emulator_module
from loihi_slayer.fixed import api

STEPS = 12


def _inputs(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 40, (2, 8, 8, 10)) for _ in range(n)]


def _run(emu: Emulator, x: np.ndarray, record) -> dict:
    traces = emu.run(x, STEPS, graded_input=True, record=record)
    return {(i, v): traces[i, v] for i, lt in traces.layers.items() for v in lt.data}


def _expected(kind: str, xs: list[np.ndarray], record, monkeypatch) -> list[dict]:
    with monkeypatch.context() as m:
        m.setattr(emulator_module, "KEPT_STREAM_BYTES", 0)
        emu = Emulator(_mixed_network(kind, False))
        return [_run(emu, x, record) for x in xs]


@pytest.fixture
def out_pointers(monkeypatch) -> list[list[int | None]]:
    """Per neuron-kernel call of each run: the address of the ``out`` stream it was
    given (None: the kernel allocated). A new list starts at each ``Emulator.run``."""
    calls: list[list[int | None]] = []
    real_kernels, real_run = api._run_kernels, Emulator.run
    signature = inspect.signature(real_kernels)

    def kernels(*args, **kwargs):
        out = signature.bind(*args, **kwargs).arguments.get("out")
        calls[-1].append(None if not out else out["s"].ctypes.data)
        return real_kernels(*args, **kwargs)

    def run(self, *args, **kwargs):
        calls.append([])
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(api, "_run_kernels", kernels)
    monkeypatch.setattr(Emulator, "run", run)
    return calls


@pytest.mark.parametrize("kind", ["cuba", "sdnn"])
def test_unrecorded_streams_reuse_their_memory(kind, out_pointers):
    """Only the last layer recorded: every other neuron layer writes into the memory of
    the last run's stream (the same address every run); the recorded layer gets none."""
    emu = Emulator(_mixed_network(kind, False))
    for x in _inputs(1, 3):
        _run(emu, x, {6: ("s",)})
    first, *later = out_pointers
    assert len(first) == 6  # the six neuron layers (flatten has none)
    assert all(p is not None for p in first[:-1])
    assert first[-1] is None  # layer 6 is returned: new memory
    assert len(set(first[:-1])) == 5  # each layer its own memory
    for run in later:
        assert run == first


@pytest.mark.parametrize("kind", ["cuba", "sdnn"])
def test_kept_streams_change_no_result(kind, monkeypatch):
    """Runs on inputs A, B, A with kept memory give, run by run, what an emulator that
    keeps nothing gives, and a run leaves the traces returned by earlier runs as they
    were."""
    xs = _inputs(2, 2)
    xs.append(xs[0])
    for record in ({6: ("s",)}, {2: ("s",), 6: ("s",)}):
        want = _expected(kind, xs, record, monkeypatch)
        emu = Emulator(_mixed_network(kind, False))
        got, copies = [], []
        for x in xs:
            got.append(_run(emu, x, record))
            copies.append({k: v.copy() for k, v in got[-1].items()})
        for run, kept, expected in zip(got, copies, want, strict=True):
            assert run.keys() == expected.keys()
            for key, value in run.items():
                np.testing.assert_array_equal(value, expected[key])
                np.testing.assert_array_equal(value, kept[key])


def test_recorded_layers_and_other_backends_keep_nothing(out_pointers):
    """Every layer recorded: no kernel call gets kept memory; nor on the reference
    backend, which allocates its own traces."""
    emu = Emulator(_mixed_network("sdnn", False))
    _run(emu, _inputs(3, 1)[0], ("s",))
    assert out_pointers[-1] == [None] * 6
    ref = Emulator(_mixed_network("sdnn", False), backend="reference")
    assert (
        ref._kept_stream(1, emu._neuron_model(1, emu.network.layers[1]), np.zeros((4, 4, 4, 9)))
        is None
    )


def test_streams_over_the_limit_are_allocated_per_run(monkeypatch, out_pointers):
    """A stream larger than KEPT_STREAM_BYTES is not kept: the layers' streams here are
    4*4*4*12 = 768 values (int64 payloads: 6144 bytes) and 2*8*8*12 = 1536 (12288)."""
    monkeypatch.setattr(emulator_module, "KEPT_STREAM_BYTES", 8192)
    emu = Emulator(_mixed_network("sdnn", False))
    _run(emu, _inputs(4, 1)[0], {6: ("s",)})
    kept = out_pointers[-1]
    assert kept[0] is None  # input layer (2, 8, 8): 12288 bytes
    assert kept[1] is not None  # conv (4, 4, 4): 6144 bytes
    assert kept[3] is not None and kept[4] is None  # convT (4, 4, 4), unpool (4, 8, 8)


def test_two_threads_running_one_emulator(monkeypatch):
    """Two threads run the same emulator at once, each on its own inputs, several times:
    every result is what a serial emulator that keeps nothing gives (while one thread's
    run holds the kept memory, the other's run gets new memory)."""
    xs = _inputs(5, 4)
    record = {6: ("s",)}
    want = _expected("sdnn", xs, record, monkeypatch)
    emu = Emulator(_mixed_network("sdnn", False))
    results: dict[tuple[int, int], dict] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(t: int) -> None:
        try:
            start.wait()
            for rep in range(6):
                k = (t + 2 * rep) % len(xs)
                results[t, rep] = (k, _run(emu, xs[k], record))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert len(results) == 12
    for k, got in results.values():
        for key, value in got.items():
            np.testing.assert_array_equal(value, want[k][key])

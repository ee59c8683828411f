"""The emulator's kept stream memory: a layer writes its output stream, and its returned
spike trace, into the memory of the previous run's (``Emulator._kept_spikes``), a
returned trace's only once the caller has let go of it.

Expected values come from emulators that keep nothing (``KEPT_BYTES = 0``), which
the rest of the suite checks against the NumPy reference; here: the same traces, run
after run, in any order, from two threads at once, and memory really reused.
"""

from __future__ import annotations

import inspect
import pickle
import threading

import numpy as np
import pytest
import torch
from test_emulator_fast import _mixed_network

from loihi_slayer import _recycle, block
from loihi_slayer.emulate import Emulator
from loihi_slayer.emulate import emulator as emulator_module
from loihi_slayer.fixed import api, synapse_fast

STEPS = 12


def _inputs(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 40, (2, 8, 8, 10)) for _ in range(n)]


def _run(emu: Emulator, x: np.ndarray, record) -> dict:
    traces = emu.run(x, STEPS, graded_input=True, record=record)
    return {(i, v): traces[i, v] for i, lt in traces.layers.items() for v in lt.data}


def _expected(kind: str, xs: list[np.ndarray], record, monkeypatch) -> list[dict]:
    with monkeypatch.context() as m:
        m.setattr(emulator_module, "KEPT_BYTES", 0)
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
    """Only the last layer recorded: every neuron layer writes into the memory of the
    last run's stream (the same address every run), the recorded one too once its last
    trace is let go (int8 spikes: the stream, widened into kept memory; graded payloads:
    the trace itself)."""
    emu = Emulator(_mixed_network(kind, False))
    for x in _inputs(1, 3):
        _run(emu, x, {6: ("s",)})  # the traces are dropped at once
    first, *later = out_pointers
    assert len(first) == 6  # the six neuron layers (flatten has none)
    assert all(p is not None for p in first)
    assert len(set(first)) == 6  # each layer its own memory
    for run in later:
        assert run == first


@pytest.mark.parametrize("kind", ["cuba", "sdnn"])
def test_returned_traces_reuse_memory_only_once_let_go(kind, out_pointers):
    """Every layer recorded: a run whose caller still holds the last run's traces gets
    new memory for them and leaves them as they were; once they are let go, the next
    run writes into their memory."""
    emu = Emulator(_mixed_network(kind, False))
    x1, x2 = _inputs(7, 2)
    held = emu.run(x1, STEPS, graded_input=True, record=("s",))
    copies = {i: held[i, "s"].copy() for i in held.layers}
    addresses = {i: held[i, "s"].ctypes.data for i in held.layers}
    again = emu.run(x2, STEPS, graded_input=True, record=("s",))
    for i in held.layers:
        np.testing.assert_array_equal(held[i, "s"], copies[i])  # untouched
        assert again[i, "s"].ctypes.data != addresses[i]
    assert any(not np.array_equal(again[i, "s"], copies[i]) for i in held.layers)
    reused = {i: again[i, "s"].ctypes.data for i in again.layers}
    del held, again
    third = emu.run(x1, STEPS, graded_input=True, record=("s",))
    neuron_layers = [i for i in third.layers if third.layers[i].neuron_type is not None]
    assert neuron_layers and all(third[i, "s"].ctypes.data == reused[i] for i in neuron_layers)
    for i in third.layers:
        np.testing.assert_array_equal(third[i, "s"], copies[i])


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


def test_other_backends_keep_nothing(out_pointers):
    """On the reference backend, which allocates its own traces, no kernel call gets
    kept memory."""
    emu = Emulator(_mixed_network("sdnn", False))
    ref = Emulator(_mixed_network("sdnn", False), backend="reference")
    layer = emu._neuron_model(1, emu.network.layers[1])
    assert ref._kept_spikes(1, layer, np.zeros((4, 4, 4, 9)), False) is None
    assert ref._kept_spikes(1, layer, np.zeros((4, 4, 4, 9)), True) is None


def _held(emu: Emulator) -> int:
    """Bytes of the memory the emulator's recycled arrays hold."""
    roles = _recycle._OWNED.get(emu, {})
    return sum(st.nbytes() for r in roles.values() for st in r.kept)


def test_kept_memory_stays_within_its_budget(monkeypatch, out_pointers):
    """With a budget of 20 kB the first arrays are kept and the rest allocated per run
    (the input layer's stream, 2*8*8*12 int64 payloads = 12 kB, and the unpool's take
    most of it); longer runs (larger arrays) let kept memory go; the results are those
    of an emulator that keeps nothing."""
    budget = 20_000
    monkeypatch.setattr(emulator_module, "KEPT_BYTES", budget)
    xs = _inputs(4, 2)
    want = _expected("sdnn", xs, {6: ("s",)}, monkeypatch)
    emu = Emulator(_mixed_network("sdnn", False))
    got = _run(emu, xs[0], {6: ("s",)})
    for key, value in got.items():
        np.testing.assert_array_equal(value, want[0][key])
    run = out_pointers[-1]
    assert run[0] is not None  # the input layer's stream fits
    assert None in run[1:-1]  # some later stream does not
    assert 0 < _held(emu) == sum(emu._kept_sizes.values()) <= budget
    small = _held(emu)
    long_run = emu.run(xs[1], 200, graded_input=True, record={6: ("s",)})
    assert long_run[6, "s"].shape == (10, 200)
    assert _held(emu) == sum(emu._kept_sizes.values()) <= budget
    assert "stream 0" not in emu._kept_sizes  # 2*8*8*200*8 bytes: over the budget, let go
    assert _held(emu) <= small
    got = _run(emu, xs[1], {6: ("s",)})
    for key, value in got.items():
        np.testing.assert_array_equal(value, want[1][key])


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


@pytest.mark.parametrize("kind", ["cuba", "sdnn"])
def test_synapse_arrays_reuse_their_memory(kind, monkeypatch):
    """Every synapse array of a layer (its sums, the converted operand, the tile buffers)
    comes from kept memory, at the same address every run. The int8 GEMM is forced where
    torch's is exact (on CPUs without VNNI it would not pay, and the spikes' float32
    sums would go pixel by pixel as the graded payloads do)."""
    monkeypatch.setenv(synapse_fast.INT8_GEMM_ENV, "1")
    int8 = synapse_fast.int8_gemm_works()
    seen: list[dict[str, int]] = []
    real_kept = Emulator._kept

    def kept(self, key, shape, dtype):
        arr = real_kept(self, key, shape, dtype)
        if key.startswith("synapse"):
            assert arr is not None
            seen[-1][key] = arr.ctypes.data
        return arr

    monkeypatch.setattr(Emulator, "_kept", kept)
    emu = Emulator(_mixed_network(kind, False))
    for x in _inputs(6, 3):
        seen.append({})
        _run(emu, x, {6: ("s",)})
    roles = {key.split(" ", 3)[-1] for key in seen[0]}
    if kind == "cuba" and int8:
        # T = 12: int8 spikes fill words, so the stream is converted for im2col
        assert {"out", "operand", "cols 0", "sums 0"} <= roles
    else:  # float32 payloads into small fan-ins: pixel by pixel (the dense layer: GEMM)
        assert {"out", "pixel input", "pixel taps 0 x", "pixel sums 0", "operand"} <= roles
    assert seen[1] == seen[0] and seen[2] == seen[0]


_RESONATOR = {"threshold": 0.05, "period": 7.0, "decay": 0.05}
_ADAPTIVE = {"threshold_step": 2 / 64, "threshold_decay": 0.25, "refractory_decay": 0.5}
FAMILY_PARAMS = {
    "cuba": {"threshold": 0.1, "current_decay": 0.25, "voltage_decay": 0.1},
    "alif": {
        "threshold": 0.1,
        "current_decay": 0.25,
        "voltage_decay": 0.1,
        **_ADAPTIVE,
    },
    "rf": _RESONATOR,
    "rf_iz": _RESONATOR,
    "adrf": {**_RESONATOR, **_ADAPTIVE},
    "adrf_iz": {**_RESONATOR, **_ADAPTIVE},
    "sigma_delta": {"threshold": 1 / 32, "activation": torch.nn.functional.relu},
}


@pytest.mark.parametrize("family", sorted(FAMILY_PARAMS))
def test_every_family_with_kept_memory(family, tmp_path, monkeypatch):
    """A dense network of each neuron family exported and emulated, the last layer
    recorded, twice on other inputs: what an emulator that keeps nothing gives."""
    mod = getattr(block, family)
    torch.manual_seed(1)
    net = torch.nn.Sequential(
        mod.Dense(FAMILY_PARAMS[family], 16, 24, weight_scale=4),
        mod.Dense(FAMILY_PARAMS[family], 24, 6, weight_scale=4),
    )
    block.init_shapes(net, (16,))
    path = tmp_path / "net.net"
    block.export_network(net, path)
    rng = np.random.default_rng(8)
    graded = family == "sigma_delta"
    xs = [rng.integers(0, 300 if graded else 2, (16, 30)) for _ in range(2)]
    record = {1: ("s",)}
    with monkeypatch.context() as m:
        m.setattr(emulator_module, "KEPT_BYTES", 0)
        plain = Emulator(path)
        want = [plain.run(x, graded_input=graded, record=record)[1, "s"] for x in xs]
    emu = Emulator(path)
    for _ in range(2):
        for x, expected in zip(xs, want, strict=True):
            np.testing.assert_array_equal(
                emu.run(x, graded_input=graded, record=record)[1, "s"], expected
            )
    assert any(np.any(w != 0) for w in want)  # the network is not silent
    assert any(key.startswith("stream 0") for key in emu._kept_sizes)


def test_an_emulator_with_kept_memory_pickles(monkeypatch):
    """Kept memory lives outside the emulator's attributes: a pickled emulator (e.g. sent
    to a worker process) loads and runs to the same traces."""
    xs = _inputs(9, 2)
    want = _expected("cuba", xs, {6: ("s",)}, monkeypatch)
    emu = Emulator(_mixed_network("cuba", False))
    _run(emu, xs[0], {6: ("s",)})
    copy = pickle.loads(pickle.dumps(emu))
    for e in (copy, emu):
        for x, expected in zip(xs, want, strict=True):
            got = _run(e, x, {6: ("s",)})
            np.testing.assert_array_equal(got[6, "s"], expected[6, "s"])

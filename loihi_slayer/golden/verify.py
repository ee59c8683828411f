"""Run golden cases on the emulator, compare traces, report the first divergence."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..emulate import Emulator, Traces
from ..errors import FormatError, ParameterError, ParameterTypeError, UnsupportedLayerError
from ..safety.memory import check_run_memory
from .case import Expectation, GoldenCase, load_case


@dataclass(frozen=True)
class Divergence:
    """One differing value: where, and what was expected and obtained."""

    expectation: str
    layer: int
    variable: str
    neuron: int
    step: int
    expected: int
    got: int

    def __str__(self) -> str:
        return (
            f"layer {self.layer} variable {self.variable!r} neuron {self.neuron} step "
            f"{self.step}: expected {self.expected}, got {self.got}"
        )


@dataclass
class ExpectationResult:
    """Outcome of one expectation: values compared, mismatches, first divergence."""

    label: str
    compared: int
    mismatches: int
    first: Divergence | None = None


@dataclass
class Report:
    """Outcome of one golden case."""

    case: str
    results: list[ExpectationResult] = field(default_factory=list)
    check_failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.check_failures and all(r.mismatches == 0 for r in self.results)

    @property
    def mismatches(self) -> int:
        return sum(r.mismatches for r in self.results)

    @property
    def compared(self) -> int:
        return sum(r.compared for r in self.results)

    @property
    def first_divergence(self) -> Divergence | None:
        """The earliest differing value (by step, then layer)."""
        firsts = [r.first for r in self.results if r.first is not None]
        if not firsts:
            return None
        return min(firsts, key=lambda d: (d.step, d.layer, d.neuron))

    def summary(self) -> str:
        """One-paragraph human-readable result."""
        if self.ok:
            return (
                f"PASS {self.case}: {len(self.results)} trace(s), {self.compared} values bit-exact"
            )
        lines = [f"FAIL {self.case}:"]
        lines += [f"  check failed: {c}" for c in self.check_failures]
        first = self.first_divergence
        if first is not None:
            lines.append(f"  first divergence: {first}")
        for r in self.results:
            if r.mismatches:
                lines.append(f"  {r.label}: {r.mismatches} of {r.compared} values differ")
        return "\n".join(lines)


def run_case(case: GoldenCase, backend: str = "cpu") -> Traces:
    """Run a case's network on the emulator, recording what its expectations need."""
    emu = Emulator(
        case.network(), backend=backend, spike_exp=case.spike_exp, input_shape=case.input_shape
    )
    if case.input_shape is not None and tuple(case.input_shape) != tuple(emu.input_shape):
        raise FormatError(
            f"input_shape {case.input_shape} differs from the network's input shape "
            f"{emu.input_shape}",
            file=case.origin,
            group="network",
            field="input_shape",
        )
    record: dict[int, list[str]] = {}
    for e in case.expectations:
        if not 0 <= e.layer < len(emu.network.layers):
            raise FormatError(
                f"expectation {e.label}: layer {e.layer} does not exist "
                f"(network has {len(emu.network.layers)} layers)",
                file=case.origin,
                group="expect",
            )
        record.setdefault(e.layer, [])
        if e.variable not in record[e.layer]:
            record[e.layer].append(e.variable)
    return emu.run(
        None if case.input_mode == "none" else case.input,
        case.num_steps,
        input_mode="inject" if case.input_mode == "none" else case.input_mode,
        graded_input=case.graded_input,
        cyclic=case.cyclic,
        resets=case.resets,
        record=record,
    )


def compare_expectation(e: Expectation, traces: Traces) -> ExpectationResult:
    """Compare one expectation with recorded traces."""
    try:
        got_all = traces[e.layer, e.variable]
    except KeyError as exc:  # e.g. the layer has no neuron, so records nothing
        raise FormatError(f"expectation {e.label}: {exc.args[0]}", group="expect") from None
    lt = traces.layers[e.layer]
    rows = np.arange(got_all.shape[0]) if e.neurons is None else e.neurons
    n = len(lt.neurons)
    if e.neurons is None and e.data.shape[0] != n:
        raise FormatError(
            f"expectation {e.label}: {e.data.shape[0]} rows but layer {e.layer} has {n} neurons",
            group="expect",
        )
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise FormatError(f"expectation {e.label}: neuron index out of range [0, {n - 1}]")
    cols = slice(e.first_step - 1, e.first_step - 1 + e.data.shape[1])
    got = got_all[rows][:, cols]
    diff = got != e.data
    if e.mask is not None:
        diff &= e.mask
        compared = int(e.mask.sum())
    else:
        compared = int(e.data.size)
    count = int(diff.sum())
    first = None
    if count:
        # earliest step first, then lowest neuron
        col = int(np.flatnonzero(diff.any(axis=0))[0])
        row = int(np.flatnonzero(diff[:, col])[0])
        first = Divergence(
            e.label,
            e.layer,
            e.variable,
            int(rows[row]),
            e.first_step + col,
            int(e.data[row, col]),
            int(got[row, col]),
        )
    return ExpectationResult(e.label, compared, count, first)


def run_checks(case: GoldenCase) -> list[str]:
    """Check the expected network datasets (``checks``); return failure messages."""
    failures = []
    if not case.checks:
        return failures
    net = case.network()
    blob = case.network_bytes
    if blob is None:
        base = case.origin.parent if case.origin else Path.cwd()
        blob = (base / case.network_path).read_bytes()
    with h5py.File(io.BytesIO(blob), "r") as f:
        for key, expected in case.checks.items():
            if key == "num_layers":
                got: Any = len(net.layers)
            elif key in f and isinstance(f[key], h5py.Dataset):
                got = f[key][()]
            else:
                failures.append(f"{key}: missing in the network file")
                continue
            if not np.array_equal(np.asarray(got), np.asarray(expected)):
                failures.append(
                    f"{key}: expected {np.asarray(expected).tolist()}, got "
                    f"{np.asarray(got).tolist()}"
                )
    return failures


def verify_case(case: GoldenCase | str | os.PathLike[str], backend: str = "cpu") -> Report:
    """Load (if needed), run and compare one golden case."""
    if not isinstance(case, GoldenCase):
        case = load_case(case)
    name = str(case.origin) if case.origin is not None else "<case>"
    try:
        report = Report(name, check_failures=run_checks(case))
        traces = run_case(case, backend)
        report.results = [compare_expectation(e, traces) for e in case.expectations]
    except FormatError as exc:
        if exc.file is not None:
            raise
        raise FormatError(str(exc), file=case.origin, group=exc.group, field=exc.field) from None
    except (ParameterError, ParameterTypeError, UnsupportedLayerError) as exc:
        # the case's network, input or settings cannot run: an invalid case file
        raise FormatError(f"the case cannot run: {exc}", file=case.origin) from None
    return report


def record_case(
    network: str | os.PathLike[str],
    input: Any,
    num_steps: int | None = None,
    *,
    record: Iterable[str] | Mapping[int, Iterable[str]] = ("s",),
    num_layers: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    input_mode: str = "inject",
    graded_input: bool = False,
    cyclic: bool = True,
    resets: Mapping[int, Any] | None = None,
    reset_interval: int | None = None,
    reset_offset: int = 0,
    spike_exp: int = 6,
    backend: str = "cpu",
    description: str = "",
    source: str = "",
) -> GoldenCase:
    """Run a network and capture its traces as a new golden case (network embedded)."""
    from .case import read_network_bytes

    emu = Emulator(
        network,
        num_layers=num_layers,
        backend=backend,
        spike_exp=spike_exp,
        input_shape=input_shape,
    )
    data = None if input is None else np.asarray(input)
    if num_steps is None and (data is None or data.ndim == 0 or data.shape[-1] == 0):
        raise ParameterError(
            "the input has no time axis (or it is empty); pass num_steps or an input of "
            f"shape (*input_shape, T) with T >= 1, got {None if data is None else data.shape}"
        )
    steps = int(num_steps if num_steps is not None else data.shape[-1])
    if steps < 1:
        raise ParameterError(f"num_steps = {steps} must be >= 1")
    check_run_memory(emu, steps)
    masks = emu.reset_masks(steps, resets, reset_interval, reset_offset)
    traces = emu.run(
        data,
        steps,
        input_mode=input_mode,
        graded_input=graded_input,
        cyclic=cyclic,
        resets=masks,
        record=record,
    )
    exps = [
        Expectation(layer=i, variable=v, data=arr, first_step=1)
        for i, lt in traces.layers.items()
        for v, arr in lt.data.items()
    ]
    return GoldenCase(
        num_steps=steps,
        network_bytes=read_network_bytes(network),
        num_layers=num_layers,
        input_shape=None if input_shape is None else tuple(int(v) for v in input_shape),
        input_mode=input_mode if data is not None else "none",
        input=data,
        graded_input=graded_input,
        cyclic=cyclic,
        resets=masks,
        spike_exp=spike_exp,
        expectations=exps,
        # the layer count is part of the case: a network file that lost a layer group
        # cannot pass as a shorter network
        checks={"num_layers": np.int64(len(emu.network.layers))},
        description=description,
        source=source or f"recorded by loihi_slayer from {os.fspath(network)}",
    )


__all__ = [
    "Divergence",
    "ExpectationResult",
    "Report",
    "compare_expectation",
    "record_case",
    "run_case",
    "run_checks",
    "verify_case",
]

"""The train-to-chip gap checker: training forward against the emulator, value for value.

It lives outside :mod:`loihi_slayer.block` so that training code never imports the emulator.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from . import hdf5
from .block.core import Block
from .block.dense import AbstractAffine, AbstractOutput
from .block.input import AbstractInput
from .block.network import _blocks, network_record
from .block.reduce import AbstractAverage, AbstractFlatten, AbstractTimeDecimation
from .block.spatial import _SpatialBlock
from .errors import ParameterError

# ====================================================================== train-to-chip gap


@dataclass
class GapReport:
    """Result of :func:`compare_with_emulator`.

    Attributes
    ----------
    mismatches
        Layer index -> number of differing entries (spikes, payloads or states).
    compared
        Layer index -> number of compared entries.
    skipped
        Layer index -> why the layer was not compared.
    """

    mismatches: dict[int, int] = field(default_factory=dict)
    compared: dict[int, int] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every compared layer matches exactly (and something was compared)."""
        return bool(self.compared) and not any(self.mismatches.values())

    def summary(self) -> str:
        """One line per layer."""
        lines = []
        for i in sorted(set(self.compared) | set(self.skipped)):
            if i in self.compared:
                lines.append(
                    f"layer {i}: {self.mismatches.get(i, 0)} mismatches in "
                    f"{self.compared[i]} compared values"
                )
            else:
                lines.append(f"layer {i}: not compared ({self.skipped[i]})")
        return "\n".join(lines)


def _eval_outputs(items: list[Block], x: torch.Tensor) -> list[torch.Tensor]:
    mods = [m for b in items for m in b.modules()]
    flags = [m.training for m in mods]
    try:
        for m in mods:
            m.training = False
        outs = []
        with torch.no_grad():
            y = x
            for b in items:
                y = b(y)
                if isinstance(y, tuple):
                    y = y[0]
                outs.append(y.detach().to(torch.float64).cpu())
    finally:
        for m, f in zip(mods, flags, strict=True):
            m.training = f
    return outs


def _as_int(a: torch.Tensor | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    r = np.rint(arr)
    if not np.array_equal(r, arr):
        raise ParameterError(f"compare_with_emulator: {what} is not on the integer grid")
    return r.astype(np.int64)


def _shift_delay(pred: np.ndarray, valid: np.ndarray, shift_on: bool, d: np.ndarray | None):
    """Apply the block's one-step shift and per-channel delay to (C, ..., T) arrays."""
    steps = pred.shape[-1]
    if shift_on:
        pred = np.concatenate([np.zeros_like(pred[..., :1]), pred[..., :-1]], -1)
        valid = np.concatenate([np.ones_like(valid[..., :1]), valid[..., :-1]], -1)
    if d is not None:
        out_p, out_v = np.zeros_like(pred), np.ones_like(valid)
        for c in range(pred.shape[0]):
            k = int(d[c])
            if k < steps:
                out_p[c, ..., k:] = pred[c, ..., : steps - k]
                out_v[c, ..., k:] = valid[c, ..., : steps - k]
        pred, valid = out_p, out_v
    return pred, valid


def _aligned(emu: np.ndarray, a: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """emu (..., T_emu) columns m + a -> DL index m, with a validity mask."""
    pred = np.zeros(emu.shape[:-1] + (steps,), np.int64)
    valid = np.zeros(pred.shape, bool)
    n = max(0, min(steps, emu.shape[-1] - a))
    if a >= 0:
        pred[..., :n] = emu[..., a : a + n]
        valid[..., :n] = True
    else:  # DL index m < -a have no chip counterpart
        lo = -a
        n = max(0, min(steps, emu.shape[-1] + lo) - lo)
        pred[..., lo : lo + n] = emu[..., :n]
        valid[..., lo : lo + n] = True
    return pred, valid


def compare_with_emulator(
    blocks,
    x: torch.Tensor,
    network: hdf5.Network | str | os.PathLike | None = None,
    *,
    backend: str = "cpu",
) -> GapReport:
    """Run the training forward and the emulator and compare every layer, value for value.

    Alignment (spec §7.2/§7.4): each block's synaptic input is tracked with an
    offset ``a`` = (chip step of its input index ``n``) - ``n``. A neuron at
    training index ``m`` is emulator trace column ``m + a``; a block with
    ``delay_shift`` keeps ``a``, one without it adds 1; flatten/average keep
    it; a time decimation with exported ``latency`` L needs ``a == 1 - L`` (export
    sets L = 1 after a block with ``delay_shift``) and leaves ``a == 1`` on the
    decimated axis. The input is fed as ``x[..., 1:]``
    (``a = 0``) when the first block is a synapse and ``x[..., 0]`` is zero,
    else ``x`` (``a = 1``); an input block with a neuron gets its quantized,
    affine-transformed input injected directly. Leading chip steps (``a > 0``)
    are exact only for layers without bias. Values compared: CUBA spikes,
    sigma-delta payloads (×4096), Affine voltages (×4096), Output sigma (×2**18),
    average sums (mean × group) and decimation sums (mean × factor).

    Parameters
    ----------
    blocks
        The model (as for :func:`export_network`); it is run in eval mode
        without gradients and left as it was.
    x
        Training input ``(N, ...)``; every sample is emulated.
    network
        The exported network (record or file); default: built from ``blocks``.
    backend
        Emulator kernel backend.
    """
    from .emulate import Emulator

    items = _blocks(blocks)
    if network is None:
        network = network_record(items)
    # a network starting with a spatial block has no input layer: give the emulator
    # the shape that init_shapes recorded (netx's input_shape argument)
    first_shape = (
        getattr(items[0], "input_shape", None) if isinstance(items[0], _SpatialBlock) else None
    )
    emu = Emulator(network, backend=backend, input_shape=first_shape)
    outs = _eval_outputs(items, x)
    report = GapReport()
    first = items[0]
    xin = x.detach().to(torch.float64).cpu()
    if isinstance(first, AbstractInput) and first.neuron is not None:
        with torch.no_grad():
            data = first._transform(x.detach()).to(torch.float64).cpu() * first.neuron.w_scale
        # the input neuron rounds its input to the integer sum (half to even), as here
        data, a0, graded = np.rint(data.numpy()).astype(np.int64), 0, False
    else:
        graded = first.payload_scale != 1  # graded input, in payload units
        data = _as_int(xin * first.payload_scale, "the input")
        if isinstance(first, AbstractInput):
            a0 = 0 if first.delay_shift else 1
        elif not np.any(data[..., 0]):
            data = np.concatenate([data[..., 1:], np.zeros_like(data[..., :1])], -1)
            a0 = 0
        else:
            a0 = 1
    steps = data.shape[-1]
    record = {
        i: ("s", "v") if isinstance(b, AbstractAffine) else ("s",)
        for i, b in enumerate(items)
        if not isinstance(b, AbstractFlatten)
        and not (isinstance(b, AbstractInput) and b.neuron is None)
    }
    for n in range(data.shape[0]):
        tr = emu.run(data[n], steps, graded_input=graded, record=record)
        a, t_len = a0, steps
        for i, b in enumerate(items):
            y = outs[i][n].numpy()
            lt = tr.layers.get(i)
            if isinstance(b, AbstractInput):
                if b.neuron is not None:
                    scale = b.payload_scale
                    pred, valid = _aligned(lt.data["s"].reshape(y.shape), 0, t_len)
                    pred, valid = _shift_delay(pred, valid, b.delay_shift, None)
                    _tally(report, i, y * scale, pred, valid)
                    a = 0 if b.delay_shift else 1
                continue
            if isinstance(b, AbstractFlatten):
                continue
            if isinstance(b, (AbstractAverage, AbstractTimeDecimation)):
                factor = (
                    math.prod(outs[i - 1][n].shape[:-1]) // b.num_outputs
                    if isinstance(b, AbstractAverage)
                    else b.factor
                )
                if isinstance(b, AbstractTimeDecimation):
                    lat = getattr(emu.network.layers[i], "latency", 0)
                    if a != 1 - lat:
                        report.skipped[i] = (
                            f"decimation input offset is {a} but the exported layer has "
                            f"latency {lat}; the chip groups different steps"
                        )
                    t_len = y.shape[-1]
                    shift_a = 0
                else:
                    shift_a = a - 1
                if lt is None or "s" not in lt.data:
                    report.skipped.setdefault(i, "the emulator records no trace for this layer")
                    continue
                if i in report.skipped:
                    continue
                pred, valid = _aligned(lt.data["s"].reshape(y.shape[:-1] + (-1,)), shift_a, t_len)
                payload = b.payload_scale
                got = y * factor * payload  # mean × group size (× payload scale): the sum
                r = np.rint(got)
                got = np.where(np.abs(got - r) < 1e-3, r, got)
                _tally(report, i, got, pred, valid)
                continue
            if lt is None:
                report.skipped[i] = "the emulator records no trace for this layer"
                continue
            if isinstance(b, AbstractAffine):
                var, scale = ("v", b.neuron.s_scale) if b.dynamics else ("s", None)
                if scale is None:
                    report.skipped[i] = "Affine(dynamics=False) has no chip equivalent"
                    continue
                pred, valid = _aligned(lt.data[var].reshape(y.shape), a, t_len)
                _tally(report, i, y * scale, pred, valid)
            elif isinstance(b, AbstractOutput):
                pred, valid = _aligned(lt.data["s"].reshape(y.shape), a, t_len)
                _tally(report, i, y * (1 << 18), pred, valid)
            else:
                scale = b.payload_scale
                pred, valid = _aligned(lt.data["s"].reshape(y.shape), a, t_len)
                d = None if b.delay is None else b.delay.integer_delay.cpu().numpy().reshape(-1)
                pred, valid = _shift_delay(pred, valid, b.delay_shift, d)
                _tally(report, i, y * scale, pred, valid)
                a = a if b.delay_shift else a + 1
    return report


def _tally(report: GapReport, i: int, got: np.ndarray, pred: np.ndarray, valid: np.ndarray):
    diff = (got != pred) & valid
    report.mismatches[i] = report.mismatches.get(i, 0) + int(diff.sum())
    report.compared[i] = report.compared.get(i, 0) + int(valid.sum())

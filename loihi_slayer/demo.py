"""The ``loihi-slayer demo`` job: train, export, emulate, prove the train-to-chip gap is zero.

A two-layer CUBA network (``block.cuba.Dense`` 200 -> 256 -> 200; threshold
0.1, current decay 1, voltage decay 0.1, decays not learnt) learns the Oxford
spike-train regression of lava-dl's tutorial (``data/input.bs1`` ->
``data/output.bs1``, binned at 1 ms into 2000 steps with ``fill_tensor``) with
:class:`loihi_slayer.loss.SpikeTime`, for a short CPU budget. Then it

1. exports ``network.net`` (:func:`loihi_slayer.block.export_network`);
2. emulates it with :class:`loihi_slayer.emulate.Emulator` and compares every
   layer with the training forward (:func:`loihi_slayer.block.compare_with_emulator`);
3. saves a raster plot of target vs output (when matplotlib is installed);
4. writes a golden case of the emulated run (``golden.h5``).

Library code: no printing; :func:`run_demo` returns a :class:`DemoResult` and
the CLI reports it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import block
from ._bar_logging import showing
from .block import cuba
from .io import data_path, read_1d_spikes
from .loss import SpikeTime

log = logging.getLogger(__name__)

NEURON_PARAMS = {
    "threshold": 0.1,
    "current_decay": 1,
    "voltage_decay": 0.1,
    "requires_grad": False,
}
NUM_IN, NUM_HIDDEN, NUM_OUT, NUM_STEPS = 200, 256, 200, 2000


@dataclass
class DemoResult:
    """What the demo did and where it wrote it."""

    out_dir: Path
    network: Path
    golden: Path
    plot: Path | None
    epochs: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    gap: block.GapReport | None = None
    output_spikes: int = 0
    target_spikes: int = 0

    @property
    def ok(self) -> bool:
        """True when the training forward and the emulator agree exactly in every layer."""
        return self.gap is not None and self.gap.ok


class Network(torch.nn.Module):
    """The Oxford network: two CUBA dense blocks (lava-dl tutorial layout, ``self.blocks``)."""

    def __init__(self, neuron_params: dict | None = None) -> None:
        super().__init__()
        p = dict(NEURON_PARAMS if neuron_params is None else neuron_params)
        self.blocks = torch.nn.ModuleList(
            [
                cuba.Dense(p, NUM_IN, NUM_HIDDEN, weight_norm=True, delay=False),
                cuba.Dense(p, NUM_HIDDEN, NUM_OUT, weight_norm=True, delay=False),
            ]
        )

    def forward(self, spike: torch.Tensor) -> torch.Tensor:
        """Output spikes ``(N, 200, T)``."""
        for b in self.blocks:
            spike = b(spike)
        return spike


def oxford_data(steps: int = NUM_STEPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Input and target spike tensors ``(1, 200, steps)`` binned at 1 ms (lava-dl tutorial)."""
    x = read_1d_spikes(data_path("input.bs1")).fill_tensor(torch.zeros(1, 1, NUM_IN, steps))
    y = read_1d_spikes(data_path("output.bs1")).fill_tensor(torch.zeros(1, 1, NUM_OUT, steps))
    x = x.reshape(1, NUM_IN, steps)
    y = y.reshape(1, NUM_OUT, steps)
    if torch.any(x[..., 0] != 0):
        # the chip's first synapse delivers nothing at step 1 (spec §7.2)
        log.info("dropping %d input spike(s) at t = 0 ms", int(x[..., 0].sum()))
        x[..., 0] = 0
    return x, y


def train(
    net: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    epochs: int | None = None,
    seconds: float | None = 60.0,
    lr: float = 0.001,
    progress: bool = True,
) -> list[float]:
    """Train with SpikeTime and Adam until ``epochs`` or ``seconds`` runs out (whichever first)."""
    from tqdm import tqdm

    if epochs is None and seconds is None:
        raise ValueError("train: give epochs or seconds")
    error = SpikeTime(time_constant=2, filter_order=2)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    losses: list[float] = []
    start = time.monotonic()
    bar = tqdm(total=epochs, disable=not progress, unit="epoch", desc="training")
    epoch = 0
    net.train()
    # log records (the first epoch's compile notice) go above the bar, not into it
    with showing(bar):
        while (epochs is None or epoch < epochs) and (
            seconds is None or time.monotonic() - start < seconds
        ):
            out = net(x)
            loss = error(out, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            epoch += 1
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.1f}", spikes=int(out.detach().sum()))
    log.info("trained %d epochs in %.1f s, loss %.2f", epoch, time.monotonic() - start, losses[-1])
    return losses


def save_raster(path: Path, target: np.ndarray, output: np.ndarray) -> Path | None:
    """Raster plot of target (top) vs output (bottom); None (with a warning) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed; skipping the raster plot")
        return None
    fig, ax = plt.subplots(figsize=(10, 5))
    tn, tt = np.nonzero(target)
    on, ot = np.nonzero(output)
    ax.plot(tt, tn, ".", ms=3, color="tab:blue", label="target")
    ax.plot(ot, on, ".", ms=3, color="tab:red", alpha=0.6, label="output (emulated chip)")
    ax.set_xlabel("time step (ms)")
    ax.set_ylabel("neuron")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run_demo(
    out_dir: str | os.PathLike = "demo_out",
    *,
    epochs: int | None = None,
    seconds: float | None = 60.0,
    lr: float = 0.001,
    seed: int = 0,
    steps: int = NUM_STEPS,
    plot: bool = True,
    progress: bool = True,
) -> DemoResult:
    """Train, export, emulate, compare, plot and record a golden case.

    Parameters
    ----------
    out_dir
        Output directory (created).
    epochs, seconds
        Training budget: stop at whichever comes first (None: no limit on that one).
    lr, seed
        Adam learning rate; torch seed.
    steps
        Time steps of the sample (2000 = the full Oxford pattern).
    plot, progress
        Save the raster plot; show a tqdm progress bar.

    Returns
    -------
    DemoResult
        ``result.ok`` is True when the gap is zero in every layer.
    """
    from .golden import record_case, save_case

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    x, target = oxford_data(steps)
    net = Network()
    t0 = time.monotonic()
    losses = train(net, x, target, epochs=epochs, seconds=seconds, lr=lr, progress=progress)
    elapsed = time.monotonic() - t0

    network_path = out / "network.net"
    block.export_network(net, network_path)
    gap = block.compare_with_emulator(net, x, network_path)
    if gap.ok:
        log.info("train-to-chip gap is zero:\n%s", gap.summary())
    else:
        log.error("train-to-chip gap is NOT zero:\n%s", gap.summary())

    # the chip input: x[..., 1:] (the first synapse receives index n at step n)
    chip_in = np.concatenate([x[0, :, 1:].numpy(), np.zeros((NUM_IN, 1))], 1).astype(np.int64)
    case = record_case(
        network_path,
        chip_in,
        steps,
        record=("s", "u", "v"),
        description="loihi-slayer demo: Oxford regression, 2 CUBA dense layers",
        source="loihi_slayer.demo.run_demo",
    )
    golden_path = Path(save_case(case, out / "golden.h5"))
    chip_out = next(e.data for e in case.expectations if e.layer == 1 and e.variable == "s")
    output = np.zeros_like(chip_out)
    output[:, 1:] = chip_out[:, :-1]  # chip step n -> training index n
    tgt = target[0].numpy()
    plot_path = save_raster(out / "raster.png", tgt, output) if plot else None
    return DemoResult(
        out_dir=out,
        network=network_path,
        golden=golden_path,
        plot=plot_path,
        epochs=len(losses),
        seconds=elapsed,
        losses=losses,
        gap=gap,
        output_spikes=int(output.sum()),
        target_spikes=int(tgt.sum()),
    )

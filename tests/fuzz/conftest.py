"""Fuzz suite: warm the library up once, print the figures at the end.

The inputs run in forked children of this process, so everything imported and
compiled here (torch, numba kernels) is inherited instead of paid per input.
"""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path

import fuzzlib
import numba
import numpy as np
import pytest

# Inputs run in forked children. numba's OpenMP layer refuses to run in a child
# forked after the parent used it (SIGTERM); its workqueue layer is fork-safe.
# The layer is chosen at the first parallel launch, which comes after collection.
numba.config.THREADING_LAYER = "workqueue"


@pytest.fixture(scope="session", autouse=True)
def warm_library():
    for module in ("torch", "loihi_slayer.cli", "loihi_slayer.slayer_pytorch"):
        importlib.import_module(module)  # once here, inherited by every child
    from loihi_slayer.golden import verify_case

    for name in ("tinynet_sdnn_input.h5", "tinynet_sdnn_conv.h5", "tinynet_conv_block.h5"):
        verify_case(Path(__file__).resolve().parents[2] / "golden" / name)  # compiles kernels
    from loihi_slayer import fixed

    for dtype in ("i8", "i2", "?", "f8"):  # kernel specializations the fuzz inputs reach
        for run in (fixed.cuba, fixed.sigma_delta):
            with contextlib.suppress(Exception):
                run(np.zeros((2, 3), dtype), backend="cpu")
    _warm_blocks()


def _warm_blocks() -> None:
    """The parameter fuzz's training blocks on their zero inputs, on one torch thread as
    in the children (serial kernels, and no OpenMP pool started before the forks): a
    forked input that compiled them itself took over the 120 s limit in a loaded CI run
    (stop 57) and the retry, on a warm cache, passed (hypothesis: flaky)."""
    import torch

    from loihi_slayer.block import cuba
    from loihi_slayer.errors import LoihiSlayerError

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for cls, (kwargs, shape) in fuzzlib.BLOCK_CASES.items():
            block = getattr(cuba, cls)(dict(fuzzlib.BLOCK_NEURON), **kwargs)
            for steps in fuzzlib.BLOCK_STEPS:
                with contextlib.suppress(LoihiSlayerError):  # no steps: refused, clean
                    block(torch.zeros((*shape, steps)))
    finally:
        torch.set_num_threads(threads)


def pytest_terminal_summary(terminalreporter):
    if fuzzlib.TALLY:
        terminalreporter.section("fuzz: inputs per target and outcomes")
        for line in fuzzlib.report_lines():
            terminalreporter.write_line(line)

r"""Shared machinery of the SLAYER blocks (lava-dl ``slayer.block`` API).

A block is synapse -> neuron -> one-step shift (``delay_shift``) -> optional
axonal delay, on time-last tensors ``(N, C, T)`` or ``(N, C, H, W, T)``. The
neuron forward runs Loihi's integer kernels and the synapse sees exactly the
exported weight mantissas divided by the scale (``pre_hook_fx`` defaults to the
neuron's ``quantize_8bit``), so the trained network is the exported network.

**Shapes.** Every block knows its neuron shape before training:

* dense-type blocks (Dense, Recurrent, KWTA, Affine, Output) from
  ``out_neurons`` at construction;
* spatial blocks (Conv, ConvT, Pool, Unpool) from the keyword ``input_shape=``
  (``(H, W)`` or ``(C, H, W)``) or ONE explicit :meth:`Block.init_shapes` call
  (or :func:`init_shapes` over a whole sequence of blocks). Parameters and
  buffers (axonal delays, norm means, per-channel decays) depend only on the
  channel count, so they are all created at construction; a spatial block with
  shared neuron parameters may still learn its spatial size from its first
  input (this creates nothing, so DistributedDataParallel is unaffected). With
  ``shared_param=False`` the shape must be given explicitly.

**Export.** :meth:`Block.to_layer` builds the :mod:`loihi_slayer.hdf5` schema
record (it never modifies the block: weight norm stays enabled, no data is
touched); :meth:`Block.export_hdf5` writes that record into one ``layer/<i>``
group; :func:`export_network` writes a whole sequence of blocks atomically.
Values outside the hardware ranges raise :class:`~loihi_slayer.errors.ParameterError`
naming the block and the field.

**Time alignment with the chip** (spec ``loihi-fixed-point.md`` §7.2): with
``delay_shift=True`` on every block, block output index ``n`` equals the chip
spikes of that layer at Lava step ``n`` (emulator trace column ``n - 1``); the
input index ``n`` is what the first synapse receives at step ``n`` (index 0
must be zero), or, for an input block with a neuron, what that neuron receives
at step ``n + 1``.

The classes live in modules by concern (:mod:`.core`, :mod:`.input`,
:mod:`.reduce`, :mod:`.dense`, :mod:`.recurrent`, :mod:`.spatial`,
:mod:`.network`); this module gathers them under lava-dl's ``slayer.block.base``
names. The train-to-chip checker is :mod:`loihi_slayer.gap`: it imports the
emulator, which training code does not.
"""

from __future__ import annotations

from typing import Any

from .core import (
    AFFINE_V_TH_MANT,
    CUBA_BIAS_RANGE,
    DECAY_MAX,
    SDNN_BIAS_RANGE,
    V_TH_MANT_MAX,
    WEIGHT_MAX,
    WEIGHT_MIN,
    Block,
)
from .dense import AbstractAffine, AbstractDense, AbstractOutput
from .input import AbstractInput
from .network import export_network, init_shapes, network_record
from .recurrent import AbstractKWTA, AbstractRecurrent
from .reduce import AbstractAverage, AbstractFlatten, AbstractTimeDecimation
from .residual import AbstractResidual, step_delay
from .spatial import AbstractConv, AbstractConvT, AbstractPool, AbstractUnpool

__all__ = [
    "AFFINE_V_TH_MANT",
    "CUBA_BIAS_RANGE",
    "DECAY_MAX",
    "SDNN_BIAS_RANGE",
    "V_TH_MANT_MAX",
    "WEIGHT_MAX",
    "WEIGHT_MIN",
    "AbstractAffine",
    "AbstractAverage",
    "AbstractConv",
    "AbstractConvT",
    "AbstractDense",
    "AbstractFlatten",
    "AbstractInput",
    "AbstractKWTA",
    "AbstractOutput",
    "AbstractPool",
    "AbstractRecurrent",
    "AbstractResidual",
    "AbstractTimeDecimation",
    "AbstractUnpool",
    "Block",
    "export_network",
    "init_shapes",
    "network_record",
    "step_delay",
]

_GAP_NAMES = ("GapReport", "compare_with_emulator", "_eval_outputs")


def __getattr__(name: str) -> Any:
    # the gap checker imports the emulator: load it only when asked for
    if name in _GAP_NAMES:
        from .. import gap

        return getattr(gap, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""slayerPytorch's ``spikeFileIO`` (``snn.io``): thin adapters over :mod:`loihi_slayer.io`.

slayerPytorch's :class:`event` names the polarity/channel ``p``; the library's
:class:`loihi_slayer.io.Event` calls it ``c`` (and uses ``p`` for graded
payloads), so the two are converted at this boundary.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import io as lio
from ..errors import ParameterError, ParameterTypeError

__all__ = [
    "event",
    "spikeArrayToEvent",
    "read1Dspikes",
    "encode1Dspikes",
    "read2Dspikes",
    "encode2Dspikes",
    "read3Dspikes",
    "encode3Dspikes",
    "readNumSpikes",
    "encodeNumSpikes",
    "read1DnumSpikes",
    "encode1DnumSpikes",
    "showTD",
    "animTD",
]

PathLike = str | os.PathLike


class event:
    """Spike events (slayerPytorch ``spikeFileIO.event``).

    Parameters
    ----------
    xEvent, yEvent, pEvent, tEvent
        x index, y index (``None`` for 1-D data), polarity/channel and time (ms)
        of every event. The polarity is shifted to start at 0.

    Attributes
    ----------
    x, y, p, t : numpy.ndarray
        event fields (``y`` is ``None`` for 1-D data).
    dim : int
        1 or 2.
    """

    def __init__(self, xEvent: Any, yEvent: Any, pEvent: Any, tEvent: Any) -> None:
        self.dim = 1 if yEvent is None else 2
        self.x = np.asarray(xEvent)
        self.y = None if yEvent is None else np.asarray(yEvent)
        self.p = np.asarray(pEvent)
        self.t = np.asarray(tEvent, dtype=np.float64)
        if self.p.size:
            self.p = self.p - self.p.min()

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def toEvent(self) -> lio.Event:
        """The library :class:`loihi_slayer.io.Event` (``p`` becomes ``c``)."""
        y = None if self.y is None else np.round(self.y).astype(np.int64)
        return lio.Event(
            np.round(self.x).astype(np.int64), y, np.round(self.p).astype(np.int64), self.t
        )

    @classmethod
    def fromEvent(cls, ev: lio.Event) -> event:
        """Build from a library :class:`loihi_slayer.io.Event`."""
        return cls(ev.x, ev.y, ev.c, ev.t)

    def toSpikeArray(self, samplingTime: float = 1, dim: Any = None) -> np.ndarray:
        """Dense array ``(C, X, T)`` (1-D) or ``(C, H, W, T)`` (2-D) of ``1/samplingTime`` spikes.

        ``dim`` defaults to the extent of the events; events outside it are dropped.
        """
        if dim is None:
            if len(self) == 0:
                raise ParameterError("cannot infer dim of an empty event stream; pass dim")
            t_len = int(np.round(self.t.max() / samplingTime)) + 1
            if self.dim == 1:
                dim = (int(self.p.max()) + 1, int(self.x.max()) + 1, t_len)
            else:
                dim = (int(self.p.max()) + 1, int(self.y.max()) + 1, int(self.x.max()) + 1, t_len)
        dim = tuple(int(d) for d in dim)
        if self.dim == 1:
            if len(dim) != 3:
                raise ParameterError(f"dim for 1-D events must be (C, X, T), got {dim}")
            frame = np.zeros((dim[0], 1, dim[1], dim[2]))
        else:
            if len(dim) != 4:
                raise ParameterError(f"dim for 2-D events must be (C, H, W, T), got {dim}")
            frame = np.zeros(dim)
        return self.toSpikeTensor(frame, samplingTime).reshape(dim)

    def toSpikeTensor(
        self,
        emptyTensor: Any,
        samplingTime: float = 1,
        randomShift: bool = False,
        binningMode: str = "OR",
    ) -> Any:
        """Fill a zero ``(C, H, W, T)`` numpy array / torch tensor with the events (in place).

        1-D events use ``H = 1``. Bin index ``round(t / samplingTime)``; spikes
        have amplitude ``1 / samplingTime`` (``'OR'``) or accumulate (``'SUM'``).
        """
        return self.toEvent().fill_tensor(
            emptyTensor, samplingTime, random_shift=randomShift, binning_mode=binningMode
        )


def _lib_event(td: Any) -> lio.Event:
    if isinstance(td, event):
        return td.toEvent()
    if isinstance(td, lio.Event):
        return td
    raise ParameterTypeError(f"expected an snn.io.event, got {type(td).__name__}")


def spikeArrayToEvent(spikeMat: Any, samplingTime: float = 1) -> event:
    """Events of a ``(C, X, T)`` (1-D) or ``(C, H, W, T)`` (2-D) spike array (entries > 0)."""
    arr = spikeMat.detach().cpu().numpy() if hasattr(spikeMat, "detach") else np.asarray(spikeMat)
    idx = np.argwhere(arr > 0)
    if arr.ndim == 3:
        return event(idx[:, 1], None, idx[:, 0], idx[:, 2] * samplingTime)
    if arr.ndim == 4:
        return event(idx[:, 2], idx[:, 1], idx[:, 0], idx[:, 3] * samplingTime)
    raise ParameterTypeError(f"expected an array of 3 or 4 dimensions, got {arr.ndim}")


def read1Dspikes(filename: PathLike) -> event:
    """Read a ``.bs1`` file (neuron id 16 bit, polarity 1 bit, time 23 bit in us)."""
    return event.fromEvent(lio.read_1d_spikes(filename))


def encode1Dspikes(filename: PathLike, TD: Any) -> None:
    """Write 1-D events to a ``.bs1`` file."""
    lio.encode_1d_spikes(filename, _lib_event(TD))


def read2Dspikes(filename: PathLike) -> event:
    """Read a ``.bs2`` file (x 8 bit, y 8 bit, polarity 1 bit, time 23 bit in us)."""
    return event.fromEvent(lio.read_2d_spikes(filename))


def encode2Dspikes(filename: PathLike, TD: Any) -> None:
    """Write 2-D events to a ``.bs2`` file."""
    lio.encode_2d_spikes(filename, _lib_event(TD))


def read3Dspikes(filename: PathLike) -> event:
    """Read a ``.bs3`` file (x 12 bit, y 12 bit, channel 8 bit, time 24 bit in us)."""
    return event.fromEvent(lio.read_3d_spikes(filename))


def encode3Dspikes(filename: PathLike, TD: Any) -> None:
    """Write 2-D multi-channel events to a ``.bs3`` file."""
    lio.encode_3d_spikes(filename, _lib_event(TD))


def readNumSpikes(filename: PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read a ``.bsn`` spike-count file: ``(nID, tSt, tEn, nSp)`` with times in ms."""
    regions = lio.read_nd_spikes(filename)
    return regions.neuron_id, regions.t_start, regions.t_end, regions.num_spikes


def encodeNumSpikes(filename: PathLike, nID: Any, tSt: Any, tEn: Any, nSp: Any) -> None:
    """Write a ``.bsn`` spike-count file (times in ms)."""
    lio.encode_nd_spikes(filename, nID, tSt, tEn, nSp)


read1DnumSpikes = readNumSpikes
encode1DnumSpikes = encodeNumSpikes


def showTD(
    TD: Any,
    fig: Any = None,
    frameRate: float = 24,
    preComputeFrames: bool = True,
    repeat: bool = False,
) -> Any:
    """Show an animation of the events (``plt.show()``); returns the animation.

    ``fig`` and ``preComputeFrames`` are accepted for compatibility and ignored.
    """
    from ..io import plot

    animation = plot.anim(_lib_event(TD), frame_rate=frameRate, repeat=repeat)
    import matplotlib.pyplot as plt

    plt.show()
    return animation


def animTD(
    TD: Any,
    filename: PathLike = "animation.mp4",
    frameRate: float = 24,
    repeat: bool = False,
) -> Any:
    """Save an animation of the events to ``filename`` (``.gif`` or ffmpeg formats)."""
    from ..io import plot

    return plot.anim(_lib_event(TD), path=filename, frame_rate=frameRate, repeat=repeat)

"""Readers and writers of SLAYER binary spike files and numpy event arrays.

All formats are big-endian fixed-size records; every field is unsigned and
time stamps are stored in integer **microseconds** (``Event.t`` is in ms, so
writing rounds ``t * 1000`` to the nearest integer, half to even).

==========  =======  ==========================================================
extension   bytes    fields, most significant bit first
==========  =======  ==========================================================
``.bs1``    5        neuron id (16) | polarity (1) | time us (23)
``.bs2``    5        x (8) | y (8) | polarity (1) | time us (23)
``.bs3``    7        x (12) | y (12) | channel (8) | time us (24)
``.bsn``    10       neuron id (16) | start us (24) | end us (24) | count (16)
==========  =======  ==========================================================

Sources relied on for the layouts (semantics only, no code copied): the
docstrings of lava-dl ``slayer.io.read_1d_spikes``/``read_2d_spikes`` and of
slayerPytorch ``spikeFileIO.read3Dspikes`` and ``spikeFileIO.read1DnumSpikes``
("Number of spikes data is represented by an 80 bit number: first 16 bits
(79-64) neuronID, next 24 bits (63-40) start time in microseconds, next 24 bits
(39-16) end time in microseconds, last 16 bits (15-0) number of spikes"). The
layouts were confirmed on real files: the Oxford ``input.bs1`` decodes to the
events of lava-dl's ``input.npy`` and the N-MNIST ``Desired_10_60/0.bsn``
decodes to (neuron 0, 0 ms, 300 ms, 60 spikes) followed by 10-spike rows.

Readers are vectorized (``numpy.fromfile`` + bit operations); writers check
every field against its bit width *before* writing anything and write through
a temporary file that is atomically renamed over the target.

lava-dl compatibility: lava-dl's ``Event`` subtracts ``c.min()`` from the
channels on construction, so e.g. a ``.bs1`` file whose events all have the
polarity bit set reads back with polarity 0. The readers here do the same by
default (``normalize_channels=True``); pass ``normalize_channels=False`` to get
the raw bit values (then ``read(write(ev)) == ev`` exactly).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import FormatError, ParameterError, ParameterTypeError, describe
from ..safety.atomic import atomic_write_bytes
from ..safety.npy import load_array
from .events import Event

__all__ = [
    "read_1d_spikes",
    "encode_1d_spikes",
    "read_2d_spikes",
    "encode_2d_spikes",
    "read_3d_spikes",
    "encode_3d_spikes",
    "read_nd_spikes",
    "encode_nd_spikes",
    "read_1d_num_spikes",
    "encode_1d_num_spikes",
    "SpikeCountRegions",
    "read_np_spikes",
    "encode_np_spikes",
    "read_spikes",
    "encode_spikes",
]

PathLike = str | os.PathLike

# Record sizes in bytes.
_BS1 = 5
_BS2 = 5
_BS3 = 7
_BSN = 10

_T23_MAX = (1 << 23) - 1
_T24_MAX = (1 << 24) - 1


# ---------------------------------------------------------------- helpers
def _read_records(filename: PathLike, record_size: int) -> np.ndarray:
    """Read a file as an ``(n, record_size)`` uint8 array (checks the size)."""
    path = Path(filename)
    size = path.stat().st_size
    if size % record_size:
        raise FormatError(
            f"truncated or malformed spike file: size {size} bytes is not a multiple "
            f"of the record size {record_size} bytes ({size // record_size} whole "
            f"records + {size % record_size} trailing bytes)",
            file=path,
        )
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size != size:  # pragma: no cover - file changed while reading
        raise FormatError(f"read {raw.size} bytes but the file has {size}", file=path)
    return raw.reshape(-1, record_size)


def _pack(columns: list[tuple[np.ndarray, int]], record_size: int) -> bytes:
    """Pack unsigned integer columns of given bit widths into big-endian records.

    Columns are packed into 64-bit words in groups that end on a byte boundary,
    so records longer than 8 bytes (``.bsn``) work too.
    """
    if sum(bits for _, bits in columns) != 8 * record_size:  # pragma: no cover
        raise AssertionError("bit widths do not fill the record")
    n = columns[0][0].shape[0]
    groups: list[list[tuple[np.ndarray, int]]] = [[]]
    for values, bits in columns:
        if sum(b for _, b in groups[-1]) + bits > 64:
            groups.append([])
        groups[-1].append((values, bits))
    parts = []
    for group in groups:
        group_bits = sum(b for _, b in group)
        if group_bits % 8:  # pragma: no cover - programming error
            raise AssertionError("column group does not end on a byte boundary")
        word = np.zeros(n, dtype=np.uint64)
        for values, bits in group:
            word = (word << np.uint64(bits)) | values.astype(np.uint64)
        as_bytes = word.astype(">u8").view(np.uint8).reshape(n, 8)
        parts.append(as_bytes[:, 8 - group_bits // 8 :])
    return np.ascontiguousarray(np.hstack(parts)).tobytes()


def _unpack(records: np.ndarray) -> np.ndarray:
    """Combine each big-endian record into one uint64 word."""
    n, size = records.shape
    padded = np.zeros((n, 8), dtype=np.uint8)
    padded[:, 8 - size :] = records
    return padded.view(">u8").reshape(n).astype(np.uint64)


def _field(word: np.ndarray, shift: int, bits: int) -> np.ndarray:
    return ((word >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(np.int64)


def _check_fits(values: np.ndarray, name: str, bits: int, unit: str = "") -> None:
    """Raise ParameterError when values do not fit an unsigned ``bits`` field."""
    limit = (1 << bits) - 1
    if values.size == 0:
        return
    bad = (values < 0) | (values > limit)
    if np.any(bad):
        first = int(np.flatnonzero(bad)[0])
        raise ParameterError(
            f"field {name!r} does not fit its {bits}-bit field: got {describe(values[bad])}"
            f"{unit} (first at event {first}), allowed range [0, {limit}]{unit}"
        )


def _time_us(t_ms: np.ndarray, name: str = "t") -> np.ndarray:
    t_us = np.round(np.asarray(t_ms, dtype=np.float64) * 1000.0)
    if t_us.size and not np.all(np.isfinite(t_us) & (t_us < 2.0**53)):
        bad = ~(np.isfinite(t_us) & (t_us < 2.0**53))
        raise ParameterError(f"field {name!r} is too large or not finite: {describe(t_ms[bad])} ms")
    if t_us.size and t_us.min() < 0:
        raise ParameterError(f"field {name!r} must be >= 0, got {describe(t_ms[t_us < 0])} ms")
    return t_us.astype(np.int64)


def _require_event(td_event: Any, dim: int, func: str) -> Event:
    if not isinstance(td_event, Event):
        raise ParameterTypeError(f"{func} expects an Event, got {type(td_event).__name__}")
    if td_event.dim != dim:
        raise ParameterError(f"{func} expects {dim}-D events (dim={dim}), got dim={td_event.dim}")
    return td_event


def _finish(ev: Event, normalize_channels: bool, sensor_size: Any) -> Event:
    if normalize_channels and len(ev):
        ev.c = ev.c - ev.c.min()
    if sensor_size is not None:
        ev.sensor_size = ev._check_sensor(sensor_size)
    return ev


# ------------------------------------------------------------------- .bs1
def read_1d_spikes(
    filename: PathLike,
    *,
    normalize_channels: bool = True,
    sensor_size: Any = None,
) -> Event:
    """Read a 1-D binary spike file (``.bs1``).

    Each event is 40 bits big-endian: neuron id (bits 39-24), polarity (bit 23),
    time stamp in microseconds (bits 22-0).

    Parameters
    ----------
    filename
        path of the file.
    normalize_channels
        subtract the smallest polarity (lava-dl behaviour, default). ``False``
        returns the raw polarity bit.
    sensor_size
        optional ``(X,)``/``(X, C)`` to validate the events against.

    Returns
    -------
    Event
        1-D events with ``t`` in ms (``t_us / 1000``).

    Raises
    ------
    FormatError
        if the file size is not a multiple of 5 bytes.
    """
    word = _unpack(_read_records(filename, _BS1))
    x = _field(word, 24, 16)
    c = _field(word, 23, 1)
    t = _field(word, 0, 23) / 1000.0
    return _finish(Event(x, None, c, t), normalize_channels, sensor_size)


def encode_1d_spikes(filename: PathLike, td_event: Event) -> None:
    """Write 1-D events to a ``.bs1`` file (layout: see :func:`read_1d_spikes`).

    Raises
    ------
    ParameterError
        if a neuron id exceeds 16 bits, a polarity is not 0/1 or a time exceeds
        ``2**23 - 1`` us (about 8388.6 ms). Nothing is written then.
    """
    ev = _require_event(td_event, 1, "encode_1d_spikes")
    t_us = _time_us(ev.t)
    _check_fits(ev.x, "x (neuron id)", 16)
    _check_fits(ev.c, "c (polarity)", 1)
    _check_fits(t_us, "t", 23, " us")
    atomic_write_bytes(filename, _pack([(ev.x, 16), (ev.c, 1), (t_us, 23)], _BS1))


# ------------------------------------------------------------------- .bs2
def read_2d_spikes(
    filename: PathLike,
    *,
    normalize_channels: bool = True,
    sensor_size: Any = None,
) -> Event:
    """Read a 2-D binary spike file (``.bs2``, the N-MNIST/N-Caltech101 format).

    Each event is 40 bits big-endian: x (bits 39-32), y (bits 31-24),
    polarity (bit 23), time stamp in microseconds (bits 22-0).

    Parameters
    ----------
    filename
        path of the file.
    normalize_channels
        subtract the smallest polarity (lava-dl behaviour, default).
    sensor_size
        optional ``(W, H)`` or ``(W, H, C)``, e.g. ``(34, 34, 2)`` for N-MNIST.

    Returns
    -------
    Event
        2-D events with ``t`` in ms.
    """
    word = _unpack(_read_records(filename, _BS2))
    x = _field(word, 32, 8)
    y = _field(word, 24, 8)
    c = _field(word, 23, 1)
    t = _field(word, 0, 23) / 1000.0
    return _finish(Event(x, y, c, t), normalize_channels, sensor_size)


def encode_2d_spikes(filename: PathLike, td_event: Event) -> None:
    """Write 2-D events to a ``.bs2`` file (layout: see :func:`read_2d_spikes`).

    Raises
    ------
    ParameterError
        if x or y exceeds 8 bits, a polarity is not 0/1 or a time exceeds
        ``2**23 - 1`` us. Nothing is written then.
    """
    ev = _require_event(td_event, 2, "encode_2d_spikes")
    t_us = _time_us(ev.t)
    _check_fits(ev.x, "x", 8)
    _check_fits(ev.y, "y", 8)
    _check_fits(ev.c, "c (polarity)", 1)
    _check_fits(t_us, "t", 23, " us")
    atomic_write_bytes(filename, _pack([(ev.x, 8), (ev.y, 8), (ev.c, 1), (t_us, 23)], _BS2))


# ------------------------------------------------------------------- .bs3
def read_3d_spikes(
    filename: PathLike,
    *,
    normalize_channels: bool = True,
    sensor_size: Any = None,
) -> Event:
    """Read a ``.bs3`` file (events in height, width and channel).

    Each event is 56 bits big-endian: x (bits 55-44), y (bits 43-32),
    channel (bits 31-24), time stamp in microseconds (bits 23-0).

    Parameters
    ----------
    filename
        path of the file.
    normalize_channels
        subtract the smallest channel (lava-dl behaviour, default).
    sensor_size
        optional ``(W, H)`` or ``(W, H, C)``.

    Returns
    -------
    Event
        2-D events with ``t`` in ms.
    """
    word = _unpack(_read_records(filename, _BS3))
    x = _field(word, 44, 12)
    y = _field(word, 32, 12)
    c = _field(word, 24, 8)
    t = _field(word, 0, 24) / 1000.0
    return _finish(Event(x, y, c, t), normalize_channels, sensor_size)


def encode_3d_spikes(filename: PathLike, td_event: Event) -> None:
    """Write 2-D multi-channel events to a ``.bs3`` file.

    Raises
    ------
    ParameterError
        if x or y exceeds 12 bits, a channel exceeds 8 bits or a time exceeds
        ``2**24 - 1`` us. Nothing is written then.
    """
    ev = _require_event(td_event, 2, "encode_3d_spikes")
    t_us = _time_us(ev.t)
    _check_fits(ev.x, "x", 12)
    _check_fits(ev.y, "y", 12)
    _check_fits(ev.c, "c (channel)", 8)
    _check_fits(t_us, "t", 24, " us")
    atomic_write_bytes(filename, _pack([(ev.x, 12), (ev.y, 12), (ev.c, 8), (t_us, 24)], _BS3))


# ------------------------------------------------------------------- .bsn
class SpikeCountRegions(NamedTuple):
    """Desired spike counts per neuron and time region (content of a ``.bsn`` file).

    Attributes
    ----------
    neuron_id : numpy.ndarray
        int64 neuron ids.
    t_start, t_end : numpy.ndarray
        float64 region start / end in ms.
    num_spikes : numpy.ndarray
        int64 desired number of spikes in the region.
    """

    neuron_id: np.ndarray
    t_start: np.ndarray
    t_end: np.ndarray
    num_spikes: np.ndarray


def read_nd_spikes(filename: PathLike) -> SpikeCountRegions:
    """Read a spike-count region file (``.bsn``, slayerPytorch ``read1DnumSpikes``).

    Each record is 80 bits big-endian: neuron id (bits 79-64), region start in
    microseconds (bits 63-40), region end in microseconds (bits 39-16), number
    of spikes (bits 15-0).

    Parameters
    ----------
    filename
        path of the file.

    Returns
    -------
    SpikeCountRegions
        ``(neuron_id, t_start, t_end, num_spikes)`` with times in ms.

    Raises
    ------
    FormatError
        if the file size is not a multiple of 10 bytes.
    """
    rec = _read_records(filename, _BSN).astype(np.int64)
    neuron = (rec[:, 0] << 8) | rec[:, 1]
    t_start = (rec[:, 2] << 16) | (rec[:, 3] << 8) | rec[:, 4]
    t_end = (rec[:, 5] << 16) | (rec[:, 6] << 8) | rec[:, 7]
    count = (rec[:, 8] << 8) | rec[:, 9]
    return SpikeCountRegions(neuron, t_start / 1000.0, t_end / 1000.0, count)


def encode_nd_spikes(
    filename: PathLike,
    neuron_id: Any,
    t_start: Any = None,
    t_end: Any = None,
    num_spikes: Any = None,
) -> None:
    """Write a spike-count region file (``.bsn``).

    Parameters
    ----------
    filename
        path of the file.
    neuron_id
        neuron ids (16 bit), or a :class:`SpikeCountRegions` (then the other
        arguments must be omitted).
    t_start, t_end
        region start / end in ms (24 bit in us, ``t_end >= t_start``).
    num_spikes
        desired spike counts (16 bit).

    Raises
    ------
    ParameterError
        if a value does not fit its field or a region ends before it starts.
        Nothing is written then.
    """
    if isinstance(neuron_id, SpikeCountRegions):
        if not (t_start is None and t_end is None and num_spikes is None):
            raise ParameterTypeError("pass either a SpikeCountRegions or the four arrays, not both")
        neuron_id, t_start, t_end, num_spikes = neuron_id
    if t_start is None or t_end is None or num_spikes is None:
        raise ParameterTypeError("encode_nd_spikes needs neuron_id, t_start, t_end, num_spikes")
    arrays = [np.atleast_1d(np.asarray(a)) for a in (neuron_id, t_start, t_end, num_spikes)]
    n = arrays[0].shape[0]
    for name, a in zip(("neuron_id", "t_start", "t_end", "num_spikes"), arrays, strict=True):
        if a.ndim != 1 or a.shape[0] != n:
            raise ParameterTypeError(
                f"{name} must be 1-D with length {n} like neuron_id, got shape {a.shape}"
            )
    nid = _int_values(arrays[0], "neuron_id")
    count = _int_values(arrays[3], "num_spikes")
    t0 = _time_us(arrays[1], "t_start")
    t1 = _time_us(arrays[2], "t_end")
    _check_fits(nid, "neuron_id", 16)
    _check_fits(t0, "t_start", 24, " us")
    _check_fits(t1, "t_end", 24, " us")
    _check_fits(count, "num_spikes", 16)
    if np.any(t1 < t0):
        bad = np.flatnonzero(t1 < t0)
        raise ParameterError(
            f"t_end must be >= t_start; region {int(bad[0])} has t_start="
            f"{arrays[1][bad[0]]!r} ms, t_end={arrays[2][bad[0]]!r} ms"
        )
    atomic_write_bytes(filename, _pack([(nid, 16), (t0, 24), (t1, 24), (count, 16)], _BSN))


def _int_values(a: np.ndarray, name: str) -> np.ndarray:
    if a.size and not np.issubdtype(a.dtype, np.integer):
        a = np.asarray(a, dtype=np.float64)
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ParameterError(f"{name} must hold integers, got {describe(a)}")
    return a.astype(np.int64)


#: slayerPytorch name of :func:`read_nd_spikes`.
read_1d_num_spikes = read_nd_spikes
#: slayerPytorch name of :func:`encode_nd_spikes`.
encode_1d_num_spikes = encode_nd_spikes


# ------------------------------------------------------------------ numpy
def read_np_spikes(
    filename: PathLike,
    fmt: str = "xypt",
    time_unit: float = 1e-3,
    *,
    sensor_size: Any = None,
) -> Event:
    """Read events from a ``.npy`` array of shape ``(n, 3)`` or ``(n, 4)``.

    Rows are ``[x, c, t]`` (1-D) or ``[x, y, c, t]`` (2-D), as written by
    lava-dl's ``encode_np_spikes``.

    Parameters
    ----------
    filename
        path of the ``.npy`` file.
    fmt
        row format; only ``'xypt'`` (lava-dl's name for the layout above).
    time_unit
        seconds per unit of the stored time column (``1e-3``: ms, ``1e-6``: us).

    Returns
    -------
    Event
        events with ``t`` in ms.

    Raises
    ------
    FormatError
        if the array is not 2-D with 3 or 4 columns.
    """
    if fmt != "xypt":
        raise ParameterError(f"fmt must be 'xypt', got {fmt!r}")
    if not time_unit > 0:
        raise ParameterError(f"time_unit must be > 0 seconds, got {time_unit!r}")
    arr = load_array(filename)
    if arr.ndim != 2 or arr.shape[1] not in (3, 4):
        raise FormatError(
            f"expected an (n_events, 3) [x, c, t] or (n_events, 4) [x, y, c, t] array, "
            f"got shape {arr.shape}",
            file=filename,
        )
    if arr.dtype.kind not in "biuf":
        raise FormatError(f"expected a numeric array, got dtype {arr.dtype}", file=filename)
    t = arr[:, -1].astype(np.float64) * (time_unit * 1e3)
    try:
        if arr.shape[1] == 3:
            return Event(arr[:, 0], None, arr[:, 1], t, sensor_size=sensor_size)
        return Event(arr[:, 0], arr[:, 1], arr[:, 2], t, sensor_size=sensor_size)
    except (ParameterError, ParameterTypeError) as exc:
        raise FormatError(f"invalid events: {exc}", file=filename) from None


def encode_np_spikes(
    filename: PathLike, td_event: Event, fmt: str = "xypt", time_unit: float = 1e-3
) -> None:
    """Write events to a ``.npy`` float64 array (rows ``[x, c, t]`` / ``[x, y, c, t]``).

    Parameters
    ----------
    filename
        destination (``np.save`` appends ``.npy`` if missing).
    td_event
        the events.
    fmt
        row format; only ``'xypt'``.
    time_unit
        seconds per unit of the written time column (default ms).
    """
    if fmt != "xypt":
        raise ParameterError(f"fmt must be 'xypt', got {fmt!r}")
    if not time_unit > 0:
        raise ParameterError(f"time_unit must be > 0 seconds, got {time_unit!r}")
    if not isinstance(td_event, Event):
        raise ParameterTypeError(f"expected an Event, got {type(td_event).__name__}")
    t = td_event.t / (time_unit * 1e3)
    if td_event.dim == 1:
        arr = np.stack([td_event.x, td_event.c, t], axis=1).astype(np.float64)
    else:
        arr = np.stack([td_event.x, td_event.y, td_event.c, t], axis=1).astype(np.float64)
    path = os.fspath(filename)
    if not path.endswith(".npy"):
        path += ".npy"
    buf = io.BytesIO()
    np.save(buf, arr)
    atomic_write_bytes(path, buf.getbuffer())


# ------------------------------------------------------------- dispatching
_READERS = {
    ".bs1": read_1d_spikes,
    ".bs2": read_2d_spikes,
    ".bs3": read_3d_spikes,
    ".npy": read_np_spikes,
}
_WRITERS = {
    ".bs1": encode_1d_spikes,
    ".bs2": encode_2d_spikes,
    ".bs3": encode_3d_spikes,
    ".npy": encode_np_spikes,
}


def read_spikes(filename: PathLike, **kwargs: Any) -> Event | SpikeCountRegions:
    """Read any supported spike file, choosing the reader from the extension."""
    ext = Path(filename).suffix.lower()
    if ext == ".bsn":
        return read_nd_spikes(filename, **kwargs)
    if ext not in _READERS:
        raise ParameterError(
            f"unknown spike file extension {ext!r}; supported: {sorted([*_READERS, '.bsn'])}"
        )
    return _READERS[ext](filename, **kwargs)


def encode_spikes(filename: PathLike, td_event: Event) -> None:
    """Write events, choosing the format from the extension (.bs1/.bs2/.bs3/.npy)."""
    ext = Path(filename).suffix.lower()
    if ext not in _WRITERS:
        raise ParameterError(f"unknown spike file extension {ext!r}; supported: {sorted(_WRITERS)}")
    _WRITERS[ext](filename, td_event)

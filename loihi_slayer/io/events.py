"""Spike event container, binning to dense tensors and back.

The :class:`Event` class follows the semantics of lava-dl's ``slayer.io.Event``
(implemented independently from its documentation): events are stored as
parallel numpy arrays ``x`` (neuron / column index), ``y`` (row index, ``None``
for 1-D data), ``c`` (channel or polarity) and ``t`` (time stamp in
**milliseconds**), plus an optional graded ``payload``.

Dense tensors are *time last*:

* 1-D events bin into ``(C, X, T)`` (channels, neurons, time), the layout of
  lava-dl's ``to_tensor(dim=(C, X, T))``; ``fill_tensor`` also accepts the
  lava-dl ``(C, 1, X, T)`` layout. A 2-entry ``dim=(X, T)`` gives ``(X, T)``
  for single-channel data.
* 2-D events bin into ``(C, H, W, T)``.

Interoperability with `tonic <https://tonic.readthedocs.io>`_ style numpy
structured arrays (fields ``x``, ``y``, ``t``, ``p``) is provided by
:meth:`Event.from_structured` and :meth:`Event.to_structured`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ParameterError, ParameterTypeError, describe
from ..safety.memory import check_allocation

__all__ = ["Event", "tensor_to_event", "TIME_UNITS"]

#: Number of milliseconds in one unit of each supported time unit.
TIME_UNITS: dict[str, float] = {"s": 1e3, "ms": 1.0, "us": 1e-3, "ns": 1e-6}


def _unit_factor(t_unit: str, name: str = "t_unit") -> float:
    """Milliseconds per ``t_unit``."""
    if t_unit not in TIME_UNITS:
        raise ParameterError(f"{name} must be one of {sorted(TIME_UNITS)}, got {t_unit!r}")
    return TIME_UNITS[t_unit]


def _as_index_array(value: Any, name: str, size: int | None = None) -> np.ndarray:
    """Convert ``value`` to a 1-D int64 array of non-negative integers."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ParameterTypeError(f"{name} must be 1-D, got shape {arr.shape}")
    if size is not None and arr.shape[0] != size:
        raise ParameterTypeError(
            f"{name} must have the same length as x ({size}), got {arr.shape[0]}"
        )
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if arr.size and not (np.issubdtype(arr.dtype, np.integer)):
        if not np.issubdtype(arr.dtype, np.floating):
            raise ParameterTypeError(f"{name} must be numeric, got dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            bad = arr[~np.isfinite(arr) | (arr != np.round(arr))]
            raise ParameterError(f"{name} must hold integer values, got {describe(bad)}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ParameterError(
            f"{name} must be >= 0, got {describe(arr[arr < 0])} (allowed range [0, inf))"
        )
    return arr


class Event:
    """A stream of spike events (1-D or 2-D).

    Parameters
    ----------
    x_event
        x index (neuron id for 1-D data) of every event; non-negative integers.
    y_event
        y index of every event, or ``None`` for 1-D data.
    c_event
        channel / polarity index of every event; non-negative integers.
    t_event
        time stamp of every event in milliseconds; finite and ``>= 0``.
    payload
        graded spike value of every event, ``None`` for binary spikes.
    sensor_size
        optional declared sensor size. For 1-D data ``(X,)``, ``(X, C)`` or the
        tonic style ``(X, 1, C)``; for 2-D data ``(W, H)`` or ``(W, H, C)``.
        Events outside it raise :class:`~loihi_slayer.errors.ParameterError`.

    Attributes
    ----------
    x, y, c : numpy.ndarray
        int64 index arrays (``y`` is ``None`` for 1-D data).
    t : numpy.ndarray
        float64 time stamps in ms.
    p : numpy.ndarray or None
        graded payload (alias :attr:`payload`), ``None`` for binary events.
    dim : int
        spatial dimension, 1 or 2.
    graded : bool
        whether the events carry a payload.

    Notes
    -----
    Unlike lava-dl, the constructor does **not** subtract ``c.min()`` from the
    channels; the file readers do that by default (``normalize_channels``) to
    stay lava-dl compatible, see :mod:`loihi_slayer.io.binary`.

    Examples
    --------
    >>> ev = Event([0, 3], None, [0, 1], [0.5, 2.0])
    >>> ev.to_tensor().shape
    (2, 4, 3)
    """

    def __init__(
        self,
        x_event: Any,
        y_event: Any,
        c_event: Any,
        t_event: Any,
        payload: Any = None,
        *,
        sensor_size: Sequence[int] | None = None,
    ) -> None:
        self.x = _as_index_array(x_event, "x")
        n = self.x.shape[0]
        self.dim = 1 if y_event is None else 2
        self.y = None if y_event is None else _as_index_array(y_event, "y", n)
        self.c = _as_index_array(c_event, "c", n)
        t = np.asarray(t_event, dtype=np.float64)
        if t.ndim == 0:
            t = t.reshape(1)
        if t.shape != (n,):
            raise ParameterTypeError(
                f"t must be 1-D with the same length as x ({n}), got shape {t.shape}"
            )
        if not np.all(np.isfinite(t)):
            raise ParameterError(f"t must be finite, got {describe(t[~np.isfinite(t)])}")
        if t.size and t.min() < 0:
            raise ParameterError(
                f"t (ms) must be >= 0, got {describe(t[t < 0])} (allowed range [0, inf) ms)"
            )
        self.t = t
        if payload is None:
            self.p = None
        else:
            p = np.asarray(payload)
            if p.ndim == 0:
                p = p.reshape(1)
            if p.shape != (n,):
                raise ParameterTypeError(
                    f"payload must have the same length as x ({n}), got shape {p.shape}"
                )
            self.p = p
        self.sensor_size = None if sensor_size is None else self._check_sensor(sensor_size)

    # ------------------------------------------------------------------ basics
    def _check_sensor(self, sensor_size: Sequence[int]) -> tuple[int, ...]:
        """Validate events against a declared sensor size; return it normalized."""
        try:
            size = tuple(int(s) for s in sensor_size)
        except TypeError as exc:
            raise ParameterTypeError(
                f"sensor_size must be a sequence of ints, got {sensor_size!r}"
            ) from exc
        if any(s <= 0 for s in size):
            raise ParameterError(f"sensor_size entries must be > 0, got {size}")
        if self.dim == 1:
            if len(size) == 1:
                limits = {"x": size[0]}
            elif len(size) == 2:
                limits = {"x": size[0], "c": size[1]}
            elif len(size) == 3 and size[1] == 1:
                limits = {"x": size[0], "c": size[2]}
            else:
                raise ParameterError(
                    f"sensor_size for 1-D events must be (X,), (X, C) or (X, 1, C), got {size}"
                )
        else:
            if len(size) == 2:
                limits = {"x": size[0], "y": size[1]}
            elif len(size) == 3:
                limits = {"x": size[0], "y": size[1], "c": size[2]}
            else:
                raise ParameterError(
                    f"sensor_size for 2-D events must be (W, H) or (W, H, C), got {size}"
                )
        for name, limit in limits.items():
            arr = getattr(self, name)
            if arr.size and arr.max() >= limit:
                raise ParameterError(
                    f"event {name} outside the declared sensor_size {size}: "
                    f"got {describe(arr[arr >= limit])}, allowed range [0, {limit - 1}]"
                )
        return size

    @property
    def payload(self) -> np.ndarray | None:
        """Graded payload (``None`` for binary events)."""
        return self.p

    @property
    def polarity(self) -> np.ndarray:
        """Alias of :attr:`c`."""
        return self.c

    @property
    def graded(self) -> bool:
        """Whether the events carry a graded payload."""
        return self.p is not None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        span = f", t in [{self.t.min():g}, {self.t.max():g}] ms" if len(self) else ""
        return f"Event(dim={self.dim}, n={len(self)}{span}, graded={self.graded})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        if self.dim != other.dim or len(self) != len(other) or self.graded != other.graded:
            return False
        same = (
            np.array_equal(self.x, other.x)
            and np.array_equal(self.c, other.c)
            and np.array_equal(self.t, other.t)
        )
        if self.dim == 2:
            same = same and np.array_equal(self.y, other.y)
        if self.graded:
            same = same and np.array_equal(self.p, other.p)
        return bool(same)

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> Event:
        """Deep copy of the events."""
        return Event(
            self.x.copy(),
            None if self.y is None else self.y.copy(),
            self.c.copy(),
            self.t.copy(),
            None if self.p is None else self.p.copy(),
            sensor_size=self.sensor_size,
        )

    def normalize_channels(self) -> Event:
        """Return a copy with ``c - c.min()`` (lava-dl's channel normalization)."""
        out = self.copy()
        if len(out):
            out.c = out.c - out.c.min()
        return out

    def sorted(self) -> Event:
        """Return a copy sorted by time (stable)."""
        order = np.argsort(self.t, kind="stable")
        return Event(
            self.x[order],
            None if self.y is None else self.y[order],
            self.c[order],
            self.t[order],
            None if self.p is None else self.p[order],
            sensor_size=self.sensor_size,
        )

    # -------------------------------------------------------------- structured
    @classmethod
    def from_structured(
        cls,
        arr: np.ndarray,
        t_unit: str = "us",
        *,
        sensor_size: Sequence[int] | None = None,
    ) -> Event:
        """Build events from a tonic style numpy structured array.

        Parameters
        ----------
        arr
            structured array with fields ``x``, ``t``, ``p`` and optionally
            ``y`` (2-D data). Boolean or {-1, 1} polarities are mapped to {0, 1}.
        t_unit
            unit of the ``t`` field: ``'s'``, ``'ms'``, ``'us'`` (tonic default)
            or ``'ns'``.
        sensor_size
            optional tonic ``sensor_size`` (W, H, P) to validate against.

        Returns
        -------
        Event
            events with times in ms.
        """
        arr = np.asarray(arr)
        names = arr.dtype.names
        if names is None:
            raise ParameterTypeError(
                f"expected a numpy structured array with fields x, (y,) t, p; got dtype {arr.dtype}"
            )
        missing = [f for f in ("x", "t", "p") if f not in names]
        if missing:
            raise ParameterTypeError(
                f"structured array lacks field(s) {missing}; it has {list(names)}"
            )
        factor = _unit_factor(t_unit)
        p = np.asarray(arr["p"])
        if p.dtype == bool:
            p = p.astype(np.int64)
        elif p.size and p.min() < 0:
            if not np.all(np.isin(p, (-1, 1))):
                raise ParameterError(
                    f"field p with negative values must be in {{-1, 1}}, got {describe(p)}"
                )
            p = (p > 0).astype(np.int64)
        y = arr["y"] if "y" in names else None
        t = np.asarray(arr["t"], dtype=np.float64)
        # sub-ms units: divide by the whole number of units per ms, as the binary readers
        # do (t_us / 1000), so the same event gets the same float time either way
        t = t / round(1 / factor) if factor < 1 else t * factor
        return cls(arr["x"], y, p, t, sensor_size=sensor_size)

    def to_structured(self, t_unit: str = "us", t_dtype: Any = np.int64) -> np.ndarray:
        """Convert to a tonic style numpy structured array.

        Parameters
        ----------
        t_unit
            unit of the output ``t`` field (default ``'us'`` as in tonic).
        t_dtype
            dtype of the ``t`` field. With an integer dtype times are rounded
            to the nearest unit (half to even).

        Returns
        -------
        numpy.ndarray
            structured array with fields ``x``, ``y`` (2-D only), ``t``, ``p``
            (int64 except ``t``).
        """
        factor = _unit_factor(t_unit)
        t = self.t / factor
        t_dtype = np.dtype(t_dtype)
        if np.issubdtype(t_dtype, np.integer):
            t = np.round(t)
        fields: list[tuple[str, Any]] = [("x", np.int64)]
        if self.dim == 2:
            fields.append(("y", np.int64))
        fields += [("t", t_dtype), ("p", np.int64)]
        out = np.zeros(len(self), dtype=fields)
        out["x"] = self.x
        if self.dim == 2:
            out["y"] = self.y
        out["t"] = t
        out["p"] = self.c
        return out

    # ----------------------------------------------------------------- binning
    def to_tensor(self, sampling_time: float = 1, dim: Sequence[int] | None = None) -> np.ndarray:
        """Bin the events into a dense time-last float32 array.

        Parameters
        ----------
        sampling_time
            bin width in ms. Event ``i`` lands in bin
            ``np.round(t[i] / sampling_time)`` (round half to even).
        dim
            output shape. 1-D events: ``(C, X, T)`` or ``(X, T)`` (channel 0
            only); 2-D events: ``(C, H, W, T)``. Inferred from the data when
            ``None`` (``T = round(max(t) / sampling_time) + 1`` so that every
            event fits).

        Returns
        -------
        numpy.ndarray
            float32 array, ``1 / sampling_time`` where a spike occurred (graded
            events: the payload). Events outside ``dim`` are dropped.
        """
        _check_sampling_time(sampling_time)
        if dim is None:
            if len(self) == 0:
                raise ParameterError("cannot infer dim for an empty event stream; pass dim")
            t_len = int(np.round(self.t.max() / sampling_time)) + 1
            if self.dim == 1:
                dim = (_top(self.c), _top(self.x), t_len)
            else:
                dim = (
                    _top(self.c),
                    _top(self.y),
                    _top(self.x),
                    t_len,
                )
        dim = tuple(int(d) for d in dim)
        if any(d < 0 for d in dim):
            raise ParameterError(f"dim entries must be >= 0, got {dim}")
        check_allocation(f"Event.to_tensor dim = {dim}", [dim], np.dtype(np.float32).itemsize)
        if self.dim == 1:
            if len(dim) == 2:
                frame = np.zeros((1, 1, dim[0], dim[1]), dtype=np.float32)
            elif len(dim) == 3:
                frame = np.zeros((dim[0], 1, dim[1], dim[2]), dtype=np.float32)
            else:
                raise ParameterError(f"dim for 1-D events must be (C, X, T) or (X, T), got {dim}")
        else:
            if len(dim) != 4:
                raise ParameterError(f"dim for 2-D events must be (C, H, W, T), got {dim}")
            frame = np.zeros(dim, dtype=np.float32)
        return self.fill_tensor(frame, sampling_time).reshape(dim)

    def fill_tensor(
        self,
        tensor: Any,
        sampling_time: float = 1,
        random_shift: bool = False,
        binning_mode: str = "OR",
        rng: np.random.Generator | int | None = None,
    ) -> Any:
        """Write the events into an existing (zero) tensor, in place.

        Parameters
        ----------
        tensor
            numpy array or torch tensor, shape ``(C, H, W, T)`` (1-D events use
            ``H == 1`` as in lava-dl, or a 3-D ``(C, X, T)`` tensor).
        sampling_time
            bin width in ms; bin index is ``np.round(t / sampling_time)``.
        random_shift
            shift the sample earlier by a random number of bins (lava-dl's
            augmentation); events shifted before 0 are dropped.
        binning_mode
            ``'OR'``: a bin with one or more events holds ``1 / sampling_time``;
            ``'SUM'``: events accumulate. Graded events always use ``'SUM'`` of
            their payloads.
        rng
            random generator or seed for ``random_shift``.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            ``tensor`` itself, filled. Events whose indices fall outside the
            tensor (negative ones, and times past its end) are dropped.

        Notes
        -----
        Coordinates changed after construction (lava-dl's augmentations assign
        ``event.x = event.x * cos + ...``) may be floats or negative: they are
        rounded half to even and, outside the tensor, dropped.
        """
        _check_sampling_time(sampling_time)
        shape = tuple(tensor.shape)
        if len(shape) == 3 and self.dim == 1:
            n_c, n_h, n_w, n_t = shape[0], 1, shape[1], shape[2]
        elif len(shape) == 4:
            n_c, n_h, n_w, n_t = shape
        else:
            raise ParameterTypeError(
                f"tensor must be (C, H, W, T)"
                f"{' or (C, X, T)' if self.dim == 1 else ''}, got shape {shape}"
            )
        mode = str(binning_mode).upper()
        if mode not in ("OR", "SUM"):
            raise ParameterError(f"binning_mode must be 'OR' or 'SUM', got {binning_mode!r}")
        if self.graded:
            mode = "SUM"
        t_start = 0
        if random_shift:
            gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
            if len(self):
                t_min = int(self.t.min() / sampling_time)
                t_max = int(self.t.max() / sampling_time)
                high = max(t_min, t_max - n_t, n_t - t_max, 1)
                t_start = int(gen.integers(high))
        t_idx, ok_t = _bin_coords(np.asarray(self.t, np.float64) / sampling_time)
        t_idx = t_idx - t_start
        x, ok_x = _bin_coords(self.x)
        c, ok_c = _bin_coords(self.c)
        y, ok_y = (np.zeros_like(x), ok_x) if self.dim == 1 else _bin_coords(self.y)
        valid = ok_t & ok_x & ok_y & ok_c
        for idx, size in ((x, n_w), (y, n_h), (c, n_c), (t_idx, n_t)):
            valid &= (idx >= 0) & (idx < size)  # outside the tensor: dropped, never wrapped
        x, y, c, t_idx = x[valid], y[valid], c[valid], t_idx[valid]
        if self.graded:
            values = np.asarray(self.p[valid], dtype=np.float64)
        else:
            values = np.full(x.shape, 1.0 / sampling_time)

        is_torch = type(tensor).__module__.startswith("torch")
        arrays = (c, y, x, t_idx) if len(shape) == 4 else (c, x, t_idx)
        if is_torch:
            import torch

            idx = tuple(torch.as_tensor(a, device=tensor.device) for a in arrays)
            vals = torch.as_tensor(values, dtype=tensor.dtype, device=tensor.device)
            tensor.index_put_(idx, vals, accumulate=(mode == "SUM"))
        elif mode == "OR":
            tensor[arrays] = values
        else:
            np.add.at(tensor, arrays, values)
        return tensor

    # ---------------------------------------------------------------- plotting
    def show(
        self,
        fig: Any = None,
        frame_rate: float = 24,
        pre_compute_frames: bool = True,
        repeat: bool = False,
        *,
        path: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Raster plot (1-D) or accumulated frame (2-D) of the events (lava-dl argument order).

        Parameters
        ----------
        fig
            matplotlib figure to draw into (cleared), or None for a new one. A
            path (str or os.PathLike) here is taken as ``path`` (this
            package's earlier order).
        frame_rate, pre_compute_frames, repeat
            lava-dl's animation arguments; the plot here is static, use
            :meth:`anim` for an animation.
        path
            Keyword only: save the figure there.
        **kwargs
            passed to :func:`loihi_slayer.io.plot.raster` /
            :func:`loihi_slayer.io.plot.frame`.

        Returns
        -------
        matplotlib.figure.Figure
            the figure.
        """
        from . import plot

        fig, path = _figure_or_path(fig, path)
        if fig is not None:
            fig.clf()
            kwargs["ax"] = fig.add_subplot(1, 1, 1)
        draw = plot.raster if self.dim == 1 else plot.frame
        return draw(self, path=path, **kwargs)

    def anim(
        self,
        fig: Any = None,
        frame_rate: float = 24,
        pre_compute_frames: bool = True,
        repeat: bool = True,
        *,
        path: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Animation of the events (lava-dl argument order; see :func:`loihi_slayer.io.plot.anim`).

        ``fig`` is a matplotlib figure to draw into, or None; a path there is
        taken as ``path`` (this package's earlier order). Frames are always
        computed ahead (``pre_compute_frames`` is accepted for lava-dl).
        """
        from . import plot

        fig, path = _figure_or_path(fig, path)
        return plot.anim(self, path, fig=fig, frame_rate=frame_rate, repeat=repeat, **kwargs)


def _figure_or_path(fig: Any, path: Any) -> tuple[Any, Any]:
    """lava-dl passes a figure first; this package used to pass a save path first."""
    if isinstance(fig, str | os.PathLike):
        if path is not None:
            raise ParameterError("pass the save path once: as path=..., not also as fig")
        return None, fig
    return fig, path


def _bin_coords(value: Any) -> tuple[np.ndarray, np.ndarray]:
    """Integer indices (floats rounded half to even) and the mask of finite entries."""
    arr = np.asarray(value)
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
        return arr.astype(np.int64), np.ones(arr.shape, bool)
    arr = np.asarray(arr, np.float64)
    ok = np.isfinite(arr) & (np.abs(arr) < 2.0**62)
    return np.where(ok, np.round(arr), 0).astype(np.int64), ok


def _top(coords: Any) -> int:
    """Extent of a coordinate array: ``round(max) + 1`` (at least 1)."""
    idx, ok = _bin_coords(coords)
    return max(int(idx[ok].max()) + 1, 1) if ok.any() else 1


def _check_sampling_time(sampling_time: float) -> None:
    if not np.isfinite(sampling_time) or sampling_time <= 0:
        raise ParameterError(
            f"sampling_time must be a finite number > 0 (ms), got {sampling_time!r}"
        )


def tensor_to_event(spike_tensor: Any, sampling_time: float = 1) -> Event:
    """Convert a dense time-last spike tensor to events.

    Parameters
    ----------
    spike_tensor
        numpy array or torch tensor: ``(X, T)`` or ``(C, X, T)`` for 1-D data,
        ``(C, H, W, T)`` for 2-D data. Non-zero entries are events.
    sampling_time
        bin width in ms; event time is ``bin_index * sampling_time``.

    Returns
    -------
    Event
        binary events when every non-zero entry equals ``1 / sampling_time``,
        otherwise graded events with payload ``value * sampling_time``.
    """
    _check_sampling_time(sampling_time)
    if type(spike_tensor).__module__.startswith("torch"):
        arr = spike_tensor.detach().cpu().numpy()
    elif isinstance(spike_tensor, np.ndarray):
        arr = spike_tensor
    else:
        raise ParameterTypeError(
            f"expected a numpy array or torch tensor, got {type(spike_tensor).__name__}"
        )
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim not in (3, 4):
        raise ParameterTypeError(
            f"expected a (X, T), (C, X, T) or (C, H, W, T) tensor, got shape {arr.shape}"
        )
    idx = np.nonzero(arr)
    payload = arr[idx].astype(np.float64) * sampling_time
    t = idx[-1] * float(sampling_time)
    if arr.ndim == 3:
        x, y, c = idx[1], None, idx[0]
    else:
        x, y, c = idx[2], idx[1], idx[0]
    if np.all(np.abs(payload - 1.0) < 1e-6):
        payload = None
    ev = Event(x, y, c, t, payload)
    return ev.sorted()

"""Visualization of spike events (raster plots, frames and animations).

matplotlib is an optional dependency (``pip install loihi_slayer[plot]``); it
is imported only when a function of this module is called. When a ``path`` is
given, figures are drawn on a non-interactive Agg canvas (no display needed)
and saved; otherwise :mod:`matplotlib.pyplot` figures are returned for
interactive use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from .events import Event

__all__ = ["require_matplotlib", "raster", "frame", "anim"]

_INSTALL_HINT = "plotting needs matplotlib, an optional dependency: pip install loihi_slayer[plot]"


def require_matplotlib() -> Any:
    """Import and return :mod:`matplotlib`, or raise a helpful ImportError."""
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from exc
    return matplotlib


def new_figure(path: Any = None, figsize: Any = None) -> Any:
    """Create a figure: Agg-backed when saving to ``path``, pyplot otherwise."""
    require_matplotlib()
    if path is not None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
        FigureCanvasAgg(fig)
        return fig
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize)


def _save(fig: Any, path: Any) -> None:
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    fig.savefig(path)


def raster(
    event: Event,
    path: Any = None,
    *,
    ax: Any = None,
    figsize: Any = None,
    marker: str = ".",
    markersize: float = 2.0,
    title: str | None = None,
) -> Any:
    """Raster plot of events: time (ms) against neuron index, one colour per channel.

    For 2-D events the neuron index is ``y * W + x``.

    Parameters
    ----------
    event
        the events.
    path
        if given, save the figure there (format from the extension).
    ax
        existing matplotlib axes to draw into (then no figure is created).
    figsize, marker, markersize, title
        cosmetic options.

    Returns
    -------
    matplotlib.figure.Figure
        the figure.
    """
    require_matplotlib()
    fig = ax.figure if ax is not None else new_figure(path, figsize)
    if ax is None:
        ax = fig.add_subplot(1, 1, 1)
    if event.dim == 1:
        index = event.x
        ylabel = "neuron"
    else:
        width = int(event.x.max()) + 1 if len(event) else 1
        index = event.y * width + event.x
        ylabel = "neuron (y * W + x)"
    channels = np.unique(event.c) if len(event) else np.array([], dtype=np.int64)
    for ch in channels:
        sel = event.c == ch
        ax.plot(
            event.t[sel],
            index[sel],
            marker,
            markersize=markersize,
            linestyle="none",
            label=f"c={int(ch)}",
        )
    if len(channels) > 1:
        ax.legend(loc="upper right")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if path is not None:
        _save(fig, path)
    return fig


def _rgb_frames(event: Event, interval: float) -> tuple[np.ndarray, float]:
    """Accumulate 2-D events into RGB frames of ``interval`` ms each."""
    width = int(event.x.max()) + 1
    height = int(event.y.max()) + 1
    t0 = np.floor(event.t.min() / interval) * interval
    idx = np.floor((event.t - t0) / interval).astype(np.int64)
    n_frames = int(idx.max()) + 1
    frames = np.zeros((n_frames, height, width, 3), dtype=np.float32)
    # channel 0 -> blue, 1 -> red, 2 -> green (lava-dl's convention), others grey
    colour = np.array([2, 0, 1])
    known = event.c < 3
    frames[idx[known], event.y[known], event.x[known], colour[event.c[known]]] = 1.0
    other = ~known
    if np.any(other):
        frames[idx[other], event.y[other], event.x[other], :] = 0.5
    return frames, t0


def frame(
    event: Event,
    path: Any = None,
    *,
    ax: Any = None,
    figsize: Any = None,
    title: str | None = None,
) -> Any:
    """Image of all 2-D events accumulated over time (colour = polarity).

    Parameters
    ----------
    event
        2-D events.
    path
        if given, save the figure there.
    ax, figsize, title
        drawing options.

    Returns
    -------
    matplotlib.figure.Figure
        the figure.
    """
    require_matplotlib()
    if event.dim != 2:
        raise ParameterError(f"frame() needs 2-D events, got dim={event.dim}")
    if len(event) == 0:
        raise ParameterError("frame() needs at least one event")
    fig = ax.figure if ax is not None else new_figure(path, figsize)
    if ax is None:
        ax = fig.add_subplot(1, 1, 1)
    t_span = float(event.t.max() - event.t.min()) + 1.0
    frames, _ = _rgb_frames(event, t_span)
    ax.imshow(frames.max(axis=0), interpolation="nearest")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    if title:
        ax.set_title(title)
    if path is not None:
        _save(fig, path)
    return fig


def anim(
    event: Event,
    path: Any = None,
    *,
    fig: Any = None,
    frame_rate: float = 24,
    interval: float | None = None,
    repeat: bool = False,
    figsize: Any = None,
    writer: Any = None,
) -> Any:
    """Animate events: 2-D events as frames, 1-D events as a growing raster.

    Parameters
    ----------
    event
        the events.
    path
        if given, the animation is saved there: ``.gif`` uses Pillow, other
        extensions (e.g. ``.mp4``) use ffmpeg (must be installed).
    fig
        matplotlib figure to draw into (cleared first); a new one when None.
    frame_rate
        frames per second of the animation.
    interval
        event time (ms) per frame; defaults to ``1000 / frame_rate`` (real time).
    repeat
        whether the animation loops when shown.
    figsize
        figure size.
    writer
        explicit matplotlib writer name or object for saving.

    Returns
    -------
    matplotlib.animation.FuncAnimation
        the animation (its figure is ``anim._fig``).
    """
    require_matplotlib()
    from matplotlib import animation

    if len(event) == 0:
        raise ParameterError("anim() needs at least one event")
    if not frame_rate > 0:
        raise ParameterError(f"frame_rate must be > 0, got {frame_rate!r}")
    step = 1e3 / frame_rate if interval is None else float(interval)
    if not step > 0:
        raise ParameterError(f"interval must be > 0 ms, got {interval!r}")
    if fig is None:
        fig = new_figure(path, figsize)
    else:
        fig.clf()
    ax = fig.add_subplot(1, 1, 1)

    if event.dim == 2:
        frames, t0 = _rgb_frames(event, step)
        image = ax.imshow(frames[0], interpolation="nearest")
        title = ax.set_title("")

        def update(i: int) -> Any:
            image.set_data(frames[i])
            title.set_text(f"t = {t0 + i * step:.1f} ms")
            return (image, title)

        n_frames = frames.shape[0]
    else:
        t_min, t_max = float(event.t.min()), float(event.t.max())
        x_max = float(event.x.max()) + 1
        (points,) = ax.plot([], [], ".", markersize=2)
        (scan,) = ax.plot([], [], "-", linewidth=1)
        pad = 0.05 * max(t_max - t_min, 1.0)
        ax.set_xlim(t_min - pad, t_max + pad)
        ax.set_ylim(-0.05 * x_max, 1.05 * x_max)
        ax.set_xlabel("time (ms)")
        ax.set_ylabel("neuron")
        order = np.argsort(event.t, kind="stable")
        ts, xs = event.t[order], event.x[order]
        n_frames = int(np.floor((t_max - t_min) / step)) + 1

        def update(i: int) -> Any:
            t_end = t_min + (i + 1) * step
            n = int(np.searchsorted(ts, t_end, side="left"))
            points.set_data(ts[:n], xs[:n])
            scan.set_data([t_end, t_end], [0, x_max])
            return (points, scan)

    animation_obj = animation.FuncAnimation(
        fig, update, frames=n_frames, interval=1e3 / frame_rate, repeat=repeat, blit=False
    )
    if path is not None:
        directory = os.path.dirname(os.fspath(path))
        if directory:
            os.makedirs(directory, exist_ok=True)
        if writer is None:
            if os.fspath(path).lower().endswith(".gif"):
                writer = animation.PillowWriter(fps=frame_rate)
            else:
                writer = "ffmpeg"
        if isinstance(writer, str):
            animation_obj.save(os.fspath(path), writer=writer, fps=frame_rate)
        else:
            animation_obj.save(os.fspath(path), writer=writer)
    return animation_obj

"""Log records written above progress bars, not glued to their text.

A record that a console handler writes while a :mod:`tqdm` bar is drawn lands on the
bar's line (the first training epoch's compile notice, :mod:`._numba_cache`). tqdm's
``logging_redirect_tqdm`` is meant for scripts: it replaces the root logger's console
handlers with one of its own that drops their level (a console handler at ``WARNING``
under a root at ``DEBUG`` would print every record during the bar) and adds a console
handler where the user has none. :func:`logs_above_bars` keeps the user's handlers,
levels, filters and formatters as they are and only routes the text that their console
streams receive through ``tqdm.write``, which clears the bars, writes it and draws them
again.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO


class _AboveBars:
    """A text stream that hands each write to ``tqdm_class.write`` on ``stream``."""

    def __init__(self, stream: TextIO, tqdm_class: Any) -> None:
        self.stream = stream
        self.tqdm_class = tqdm_class

    def write(self, text: str) -> int:
        if text:
            line = text[:-1] if text.endswith("\n") else text
            self.tqdm_class.write(line, file=self.stream, end="\n" if line != text else "")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


@contextmanager
def logs_above_bars(tqdm_class: Any) -> Iterator[None]:
    """Inside the block, the root logger's console handlers (``StreamHandler`` on
    ``sys.stdout`` or ``sys.stderr``) write through ``tqdm_class.write``: above the
    bars of ``tqdm_class`` on that stream. Nothing else about the handlers changes, and
    their streams are theirs again on exit."""
    consoles = (sys.stdout, sys.stderr)
    swapped = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in consoles:
            swapped.append((handler, handler.setStream(_AboveBars(handler.stream, tqdm_class))))
    try:
        yield
    finally:
        for handler, stream in swapped:
            handler.setStream(stream)


@contextmanager
def showing(bar: Any) -> Iterator[Any]:
    """The tqdm ``bar`` for the block, closed on exit; while it is drawn (not
    ``bar.disable``) log records go above it (:func:`logs_above_bars` of its class)."""
    try:
        if bar.disable:
            yield bar
        else:
            with logs_above_bars(type(bar)):
                yield bar
    finally:
        bar.close()

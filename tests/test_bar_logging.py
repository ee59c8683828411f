"""Log records during a progress bar: above it, through the user's own handlers."""

from __future__ import annotations

import io
import logging
import sys

import pytest
from helpers import own_lines
from tqdm import tqdm

from loihi_slayer._bar_logging import logs_above_bars


@pytest.fixture
def root_at_debug():
    """The root logger at DEBUG for the test (its level and handlers restored after)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.setLevel(logging.DEBUG)
    yield root
    root.setLevel(level)
    root.handlers[:] = handlers


def test_console_handler_keeps_its_level_format_and_stream(root_at_debug, capsys):
    """A console handler at WARNING prints no INFO record during the bar (tqdm's own
    redirect would), prints the WARNING one formatted as before on a line of its own,
    and writes to its own stream again after the block."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    root_at_debug.addHandler(handler)
    log = logging.getLogger("loihi_slayer.probe")
    with logs_above_bars(tqdm):
        for i in tqdm(range(3), file=sys.stderr, mininterval=0, desc="bar"):
            if i == 1:
                log.info("quiet detail")
                log.warning("loud notice")
    assert handler.stream is sys.stderr
    assert root_at_debug.handlers[-1] is handler
    log.warning("after the bar")
    err = capsys.readouterr().err
    assert "quiet detail" not in err
    assert own_lines(err, "[WARNING] loud notice") == 1
    assert err.endswith("[WARNING] after the bar\n")


def test_other_handlers_and_a_missing_console_are_left_alone(root_at_debug, capsys):
    """A handler on another stream (a file, a buffer) gets the record as before, and
    where the user has no console handler none is added: nothing reaches the console."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    root_at_debug.addHandler(handler)
    before = list(root_at_debug.handlers)
    with logs_above_bars(tqdm):
        assert root_at_debug.handlers == before
        logging.getLogger("loihi_slayer.probe").info("to the buffer")
    assert buffer.getvalue() == "to the buffer\n"
    captured = capsys.readouterr()
    assert "to the buffer" not in captured.err + captured.out


def test_streams_come_back_after_an_error(root_at_debug):
    handler = logging.StreamHandler(sys.stdout)
    root_at_debug.addHandler(handler)
    with pytest.raises(RuntimeError), logs_above_bars(tqdm):
        assert handler.stream is not sys.stdout
        raise RuntimeError("inside the bar")
    assert handler.stream is sys.stdout

"""Fuzz suite: print the inputs tried per target and their outcomes."""

from __future__ import annotations

import fuzzlib


def pytest_terminal_summary(terminalreporter):
    if fuzzlib.TALLY:
        terminalreporter.section("fuzz: inputs per target and outcomes")
        for line in fuzzlib.report_lines():
            terminalreporter.write_line(line)

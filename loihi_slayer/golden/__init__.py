"""Golden cases: record, save, load, run and compare per-layer traces."""

from .case import FORMAT_NAME, FORMAT_VERSION, Expectation, GoldenCase, load_case, save_case
from .verify import (
    Divergence,
    ExpectationResult,
    Report,
    compare_expectation,
    record_case,
    run_case,
    run_checks,
    verify_case,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Divergence",
    "Expectation",
    "ExpectationResult",
    "GoldenCase",
    "Report",
    "compare_expectation",
    "load_case",
    "record_case",
    "run_case",
    "run_checks",
    "save_case",
    "verify_case",
]

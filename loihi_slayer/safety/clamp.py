"""Say once in the log when a value is clamped the way lava-dl's API clamps it."""

from __future__ import annotations

import logging

__all__ = ["warn_clamped"]

_SAID: set[tuple[str, str]] = set()


def warn_clamped(logger: logging.Logger, name: str, value: float, lo: float, hi: float) -> bool:
    """Log (once per logger and parameter) that ``value`` will be clamped to ``[lo, hi]``.

    Parameters
    ----------
    logger
        The caller's logger.
    name
        Parameter name.
    value, lo, hi
        The value and the range lava-dl clamps it to.

    Returns
    -------
    bool
        True when the value lies outside the range.
    """
    if lo <= value <= hi:
        return False
    key = (logger.name, name)
    if key not in _SAID:
        _SAID.add(key)
        logger.warning(
            "%s = %r lies outside [%g, %g]; clamped to %g as lava-dl does (said once)",
            name,
            value,
            lo,
            hi,
            min(max(value, lo), hi),
        )
    return True

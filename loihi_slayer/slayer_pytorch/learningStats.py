"""slayerPytorch's ``learningStats`` module."""

from .stats import learningStat, learningStats

__all__ = ["learningStat", "learningStats"]

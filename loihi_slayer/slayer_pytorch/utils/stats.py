"""``snn.utils.stats``: the learning statistics (:mod:`loihi_slayer.slayer_pytorch.stats`)."""

from ..stats import learningStat, learningStats

__all__ = ["learningStat", "learningStats"]

"""Training utilities (lava-dl ``slayer.utils``).

``filter`` (conv, corr, FIR, FIRBank), ``time`` (replicate, shift),
``recurrent`` (custom_recurrent), ``int_utils``, the misc helpers
(``staticproperty``, ``diagonal_mask``, ``dotdict``, ``event_rate``),
``quantize``, and the learning statistics and training assistant of
:mod:`loihi_slayer.stats` (``LearningStat``, ``LearningStats``, ``Assistant``).
"""

from ..stats import Assistant, LearningStat, LearningStats
from . import filter, int_utils, recurrent, time
from .quantize import MODE, quantize
from .recurrent import custom_recurrent
from .utils import diagonal_mask, dotdict, event_rate, staticproperty

__all__ = [
    "MODE",
    "Assistant",
    "LearningStat",
    "LearningStats",
    "custom_recurrent",
    "diagonal_mask",
    "dotdict",
    "event_rate",
    "filter",
    "int_utils",
    "quantize",
    "recurrent",
    "staticproperty",
    "time",
]

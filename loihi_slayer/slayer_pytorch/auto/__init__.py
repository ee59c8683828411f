"""slayerPytorch's ``snn.auto``: ``dataset`` (SlayerDataset) and ``assistant`` (Assistant).

slayerPytorch's ``auto.loihi`` (a network generated from the YAML description)
is not provided.
"""

from .assistant import Assistant as assistant
from .dataset import SlayerDataset as dataset

__all__ = ["assistant", "dataset"]

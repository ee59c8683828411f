"""``snn.utils.optim``: the optimizers (:mod:`loihi_slayer.slayer_pytorch.optimizer`)."""

from ..optimizer import Nadam

__all__ = ["Nadam"]

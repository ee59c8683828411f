"""Optimizers (``snn.optimizer``): slayerPytorch's ``Nadam`` is PyTorch's ``NAdam``."""

from __future__ import annotations

import torch

__all__ = ["Nadam"]

#: slayerPytorch's Nadam; PyTorch ships it as :class:`torch.optim.NAdam`.
Nadam = torch.optim.NAdam

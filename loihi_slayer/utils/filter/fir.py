r"""Finite impulse response filters (lava-dl ``slayer.utils.filter.fir``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ParameterError
from .conv import conv

__all__ = ["FIR", "FIRBank"]


class FIR(torch.nn.Module):
    r"""Fixed (not learnable) FIR filter :math:`y = T_s\,(h * x)` in time.

    Parameters
    ----------
    fir_response
        Impulse response :math:`h`; None gives :math:`h[k] = e^{-k/\tau}`.
    time_constant
        :math:`\tau` of the default exponential response.
    length
        Number of taps of the default response.
    sampling_time
        :math:`T_s`.

    Attributes
    ----------
    filter : torch.Tensor
        the impulse response (a buffer).
    """

    def __init__(
        self,
        fir_response=None,
        time_constant: float = 1,
        length: int = 20,
        sampling_time: float = 1,
    ) -> None:
        super().__init__()
        if fir_response is not None:
            h = torch.as_tensor(np.asarray(fir_response, np.float32)).flatten()
        else:
            if not float(time_constant) > 0 or int(length) < 1:
                raise ParameterError(
                    f"FIR: time_constant = {time_constant!r} must be > 0 and length = "
                    f"{length!r} >= 1"
                )
            h = torch.exp(-torch.arange(int(length), dtype=torch.float32) / float(time_constant))
        self.register_buffer("filter", h)
        self.sampling_time = sampling_time

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Filtered ``input`` (same shape)."""
        return conv(input, self.filter, self.sampling_time)


class FIRBank(torch.nn.Conv3d):
    r"""Bank of learnable FIR filters (lava-dl): every input row through ``F`` filters.

    Every input row is filtered by each of the ``num_filter`` learnable
    causal filters (``weight`` of shape ``(F, 1, 1, 1, L)``, time reversed).

    Parameters
    ----------
    num_filter
        Number of filters ``F``.
    filter_length
        Time length of the filters (``L = filter_length / sampling_time`` taps).
    sampling_time
        :math:`T_s`.
    scale
        Initialization scale of the weights.
    """

    def __init__(
        self, num_filter: int, filter_length: int, sampling_time: float = 1, scale: float = 1
    ) -> None:
        taps = int(filter_length / sampling_time)
        if taps < 1:
            raise ParameterError(f"FIRBank: filter_length / sampling_time = {taps} < 1")
        super().__init__(1, int(num_filter), (1, 1, taps), bias=False)
        self.sampling_time = sampling_time
        if scale != 1:
            with torch.no_grad():
                self.weight.mul_(scale)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Filtered ``input``: the channel axis holds ``F`` filters per input row."""
        shape = list(input.shape)
        shape[1] = -1
        x = input.reshape(input.shape[0], 1, 1, -1, input.shape[-1])
        x = F.pad(x, (self.kernel_size[2] - 1, 0, 0, 0, 0, 0))
        return F.conv3d(x, self.weight).reshape(shape) * self.sampling_time

    @property
    def num_filter(self) -> int:
        """Number of filters in the bank."""
        return self.out_channels

    @property
    def filter_length(self) -> int:
        """Number of taps."""
        return self.kernel_size[2]

    @property
    def impulse_response(self) -> np.ndarray:
        """Impulse responses ``(F, L)`` (time forward)."""
        return self.weight.detach().reshape(self.out_channels, -1).cpu().numpy()[:, ::-1]

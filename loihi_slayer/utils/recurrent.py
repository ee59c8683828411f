r"""Custom recurrent loop (lava-dl ``slayer.utils.recurrent``).

.. math::

    s[t] = N\big(z[t] + R\,s[t-1]\big), \qquad s[-1] = 0

``N`` is a neuron module called one step at a time (its state must persist
between calls, e.g. ``persistent_state=True``); ``R`` is the recurrent
synapse's matrix after its ``pre_hook_fx``. The gradient is plain
backpropagation through time (what lava-dl's hand-written backward computes).
"""

from __future__ import annotations

import torch

from ..errors import ParameterError

__all__ = ["custom_recurrent"]


def _matrix(recurrent_synapse: torch.nn.Module) -> torch.Tensor:
    w = recurrent_synapse.weight
    mat = w.reshape(w.shape[:2])
    hook = getattr(recurrent_synapse, "pre_hook_fx", None)
    return mat if hook is None else hook(mat)


def custom_recurrent(
    z: torch.Tensor, neuron: torch.nn.Module, recurrent_synapse: torch.nn.Module
) -> torch.Tensor:
    """Run ``neuron`` over ``z`` ``(N, C, T)`` with feedback through ``recurrent_synapse``.

    Parameters
    ----------
    z
        feed-forward dendrite input ``(N, C, T)``.
    neuron
        neuron module taking ``(N, C, 1)``.
    recurrent_synapse
        synapse with a ``(C, C, ...)`` weight and optional ``pre_hook_fx``.

    Returns
    -------
    torch.Tensor
        spikes ``(N, C, T)``.
    """
    if z.dim() != 3:
        raise ParameterError(f"custom_recurrent: expected z (N, C, T), found {tuple(z.shape)}")
    mat = _matrix(recurrent_synapse).to(z.dtype)
    if tuple(mat.shape) != (z.shape[1], z.shape[1]):
        raise ParameterError(
            f"custom_recurrent: recurrent weight {tuple(mat.shape)} does not match "
            f"{z.shape[1]} channels"
        )
    spike = z.new_zeros(z.shape[:-1])
    out = []
    for t in range(z.shape[-1]):
        spike = neuron((z[..., t] + spike @ mat.T).unsqueeze(-1))[..., 0].to(z.dtype)
        out.append(spike)
    return torch.stack(out, dim=-1)

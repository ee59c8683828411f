"""Compiled training kernels: integer forward, surrogate backward.

Forward wrappers convert float tensors to the integer hardware quantities
inline and run the shared :mod:`loihi_slayer.fixed.dynamics` step functions
(njit on CPU, numba.cuda on CUDA tensors); backward kernels compute the
surrogate gradients and reverse-time scans in three forms that the tests keep
equal: NumPy reference (:mod:`.reference`), njit (:mod:`._cpu`) and numba.cuda
(:mod:`._cuda`, imported lazily).
"""

from .cuba import CubaFunction, CubaSpec, CubaState, make_spec, surrogate_spike
from .sigma_delta import SdnnSpec, SdnnState, SigmaDeltaFunction

__all__ = [
    "CubaFunction",
    "CubaSpec",
    "CubaState",
    "SdnnSpec",
    "SdnnState",
    "SigmaDeltaFunction",
    "make_spec",
    "surrogate_spike",
]

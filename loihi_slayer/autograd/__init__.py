"""Compiled training kernels: integer forward, surrogate backward.

Forward wrappers convert float tensors to the integer hardware quantities
inline and run the shared :mod:`loihi_slayer.fixed.dynamics` step functions
(njit on CPU, numba.cuda on CUDA tensors); backward kernels compute the
surrogate gradients and reverse-time scans in three forms that the tests keep
equal: NumPy reference (:mod:`.reference`), njit (:mod:`._cpu`) and numba.cuda
(:mod:`._cuda`, imported lazily).

Each forward/backward kernel pair is registered as a ``torch.library`` custom
op (``loihi_slayer::cuba``, ``loihi_slayer::sigma_delta``,
``loihi_slayer::spike``) through :func:`.op.kernel_op`, so that networks
compile with ``torch.compile(fullgraph=True)``; new neuron families use the
same helper (its module docstring describes the pattern).
"""

from .._numba_cache import guard_cache_writes
from .cuba import CubaFunction, CubaSpec, CubaState, cuba_apply, make_spec, surrogate_spike
from .op import check_finite, kernel_op
from .sigma_delta import SdnnSpec, SdnnState, SigmaDeltaFunction, sdnn_apply

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = [
    "CubaFunction",
    "CubaSpec",
    "CubaState",
    "SdnnSpec",
    "SdnnState",
    "SigmaDeltaFunction",
    "check_finite",
    "cuba_apply",
    "kernel_op",
    "make_spec",
    "sdnn_apply",
    "surrogate_spike",
]

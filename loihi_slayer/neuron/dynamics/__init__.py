"""Neuron dynamics as functions (lava-dl ``slayer.neuron.dynamics``).

``leaky_integrator`` runs on the CUBA integer kernel; ``resonator``,
``adaptive_threshold``, ``adaptive_phase_th`` and ``adaptive_resonator`` on the
RF / RF_IZ, ALIF, ADRF (rotation off, so it takes the given resonator traces) and
ADRF_IZ steps through :func:`loihi_slayer.fixed.run`.
"""

from . import (
    adaptive_phase_th,
    adaptive_resonator,
    adaptive_threshold,
    leaky_integrator,
    resonator,
)

__all__ = [
    "adaptive_phase_th",
    "adaptive_resonator",
    "adaptive_threshold",
    "leaky_integrator",
    "resonator",
]

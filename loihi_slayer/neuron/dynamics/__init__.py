"""Neuron dynamics as functions (lava-dl ``slayer.neuron.dynamics``).

``leaky_integrator`` runs on the CUBA integer kernel; ``resonator``,
``adaptive_threshold`` and ``adaptive_resonator`` on the RF / RF_IZ, ALIF and
ADRF_IZ kernels of :func:`loihi_slayer.fixed.run`. lava-dl's
``adaptive_phase_th`` is not provided: it takes a resonator trace as input,
which the ADRF kernel (it integrates synaptic input) cannot be fed exactly.
"""

from . import adaptive_resonator, adaptive_threshold, leaky_integrator, resonator

__all__ = ["adaptive_resonator", "adaptive_threshold", "leaky_integrator", "resonator"]

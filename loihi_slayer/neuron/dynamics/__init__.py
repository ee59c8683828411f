"""Neuron dynamics as functions (lava-dl ``slayer.neuron.dynamics``).

``leaky_integrator`` runs on the CUBA integer kernel. The resonator and
adaptive dynamics (``resonator``, ``adaptive_threshold``, ``adaptive_phase_th``,
``adaptive_resonator``) need the integer kernels of the RF/ALIF/ADRF families,
which are not in this package yet.
"""

from . import leaky_integrator

__all__ = ["leaky_integrator"]

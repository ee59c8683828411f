"""Neuron dynamics as functions (lava-dl ``slayer.neuron.dynamics``).

``leaky_integrator`` runs on the CUBA integer kernel, ``resonator`` on the
RF / RF_IZ kernels and ``adaptive_threshold`` on the ALIF kernel of
:func:`loihi_slayer.fixed.run`. lava-dl's ``adaptive_phase_th`` and
``adaptive_resonator`` are not provided: ``adaptive_phase_th`` takes a
resonator trace as input, which the ADRF kernel (it integrates synaptic input)
cannot be fed exactly.
"""

from . import adaptive_threshold, leaky_integrator, resonator

__all__ = ["adaptive_threshold", "leaky_integrator", "resonator"]

"""Neuron dynamics as functions (lava-dl ``slayer.neuron.dynamics``).

``leaky_integrator`` runs on the CUBA integer kernel, ``resonator`` on the
RF / RF_IZ kernels of :func:`loihi_slayer.fixed.run`. lava-dl's
``adaptive_threshold``, ``adaptive_phase_th`` and ``adaptive_resonator``
functions are not provided yet (the ALIF/ADRF kernels exist; the functional
wrappers are to be written over them).
"""

from . import leaky_integrator, resonator

__all__ = ["leaky_integrator", "resonator"]

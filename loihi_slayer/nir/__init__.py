r"""Exchange networks with other SNN libraries through NIR.

NIR, the Neuromorphic Intermediate Representation, is the graph format snnTorch,
Norse, Sinabs, SpikingJelly, Rockpool and others read and write. This module needs
the optional ``nir`` package (``pip install loihi_slayer[nir]``), imported lazily.

:func:`export` turns a network (blocks, a :class:`~loihi_slayer.hdf5.Network`
record or a ``.net`` file) into a :class:`nir.NIRGraph`; :func:`import_` turns a
NIR graph back into a :class:`~loihi_slayer.hdf5.Network` that the emulator runs
and :func:`~loihi_slayer.hdf5.save_network` writes.

**Two views in one graph.** Every node carries the float parameters other
libraries read (``tau``, ``r``, ``v_threshold``, weights) *and*, under
``metadata["loihi_slayer"]``, the exact integer view (weight mantissas,
``iDecay``, ``vDecay``, ``vThMant``, ``refDelay``, bias mantissas, delays). A
graph written by :func:`export` therefore imports bit-exactly; a graph from
another library is quantized as below and :func:`import_` reports the error.

**Float view** (one Loihi step = ``dt`` seconds; forward-Euler NIR dynamics
with ``r = tau_mem/dt`` and ``w_in = tau_syn/dt``, the convention snnTorch uses):

.. math::

    \tau_{syn} = \frac{4096\,dt}{\mathrm{iDecay}},\quad
    \tau_{mem} = \frac{4096\,dt}{\mathrm{vDecay}},\quad
    v_{th} = \frac{\mathrm{vThMant}}{64},\quad
    W = \frac{m\,2^{\mathrm{wgtExp}}}{64},\quad
    v_{leak} = \frac{b_{mant}/64}{\mathrm{vDecay}/4096}

(a decay of 0 is written as ``tau = 65536 dt``, which rounds back to 0). One
float unit of voltage is 4096 chip units, lava-dl's float convention.

**Quantization of foreign graphs** (no metadata). Decays are
``iDecay = rint(4096 dt / tau_syn)``, ``vDecay = rint(4096 dt / tau_mem)``
(LIF/LI: ``iDecay = 4096``, IF: ``vDecay = 0``). The per-neuron input gain
``g = (dt/tau_mem) r (dt/tau_syn) w_in`` (LIF/LI: ``(dt/tau) r``; IF: ``dt r``) is
folded into the weight rows, ``W' = diag(g) W``. With the chip scale ``K`` (chip
units per float voltage unit) and weight exponent ``e``:

.. math::

    m = \operatorname{rint}\!\Big(\frac{K\,W'}{64\cdot 2^{e}}\Big),\qquad
    \mathrm{vThMant} = \operatorname{rint}\!\Big(\frac{K\,v_{th}}{64}\Big),\qquad
    b_{mant} = \operatorname{rint}\Big(\frac{K\,(dt/\tau_{mem})\,(v_{leak} + r\,w_{in}\,b)}{64}\Big)

:math:`K = 255\cdot 64\cdot 2^{e} / \max|W'|` puts the largest weight on the
8-bit limit, and ``e`` is the largest exponent in [-8, 7] that keeps
``vThMant`` at most :data:`V_TH_MANT_TARGET` (4096), so that the 24-bit
current and voltage keep 32 times the threshold as headroom before they wrap
or saturate. ``b`` is an Affine node's bias: it enters the
synaptic current, which Loihi cannot bias, so it becomes the voltage bias of
its steady-state current (exact when ``tau_syn = dt``). The per-layer
relative errors are returned in :class:`QuantizationReport`.

**Timing.** The chip delivers a spike to the next layer one step after it was
sent (one step of latency per synaptic hop); NIR's graphs have no such latency,
so chip layer ``k`` lags the float model by ``k`` steps.

Supported: CUBA-LIF (``CubaLIF``; ``LIF``, ``IF`` on import), never-spiking
CUBA (``CubaLI``; ``LI`` on import), ``Affine``/``Linear``, ``Conv2d``,
``SumPool2d``/``AvgPool2d``, ``Flatten`` and ``Delay``, in a chain. Other
layers and neuron families are refused with :class:`~loihi_slayer.errors.UnsupportedLayerError`
naming the layer; new ones are added as entries of :data:`LAYER_EXPORTERS`,
:data:`NEURON_EXPORTERS` and :data:`NEURON_IMPORTERS`.
"""

from ._common import DEFAULT_DT, META, NEVER_SPIKE_V_TH_MANT, V_TH_MANT_TARGET, W_SCALE
from .export import LAYER_EXPORTERS, NEURON_EXPORTERS, export, write
from .importer import (
    NEURON_IMPORTERS,
    ImportResult,
    LayerQuantization,
    QuantizationReport,
    import_,
    read,
)

__all__ = [
    "DEFAULT_DT",
    "LAYER_EXPORTERS",
    "META",
    "NEURON_EXPORTERS",
    "NEURON_IMPORTERS",
    "NEVER_SPIKE_V_TH_MANT",
    "V_TH_MANT_TARGET",
    "W_SCALE",
    "ImportResult",
    "LayerQuantization",
    "QuantizationReport",
    "export",
    "import_",
    "read",
    "write",
]

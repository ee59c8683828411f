"""lava-dl / netx HDF5 network files (``*.net``): records, reader and writer.

:mod:`loihi_slayer.hdf5.schema` holds the h5py-free dataclasses;
:mod:`loihi_slayer.hdf5.netx` is the only code that knows the file layout.
"""

from __future__ import annotations

from loihi_slayer.hdf5.netx import WEIGHT_RANGE, load_network, save_network
from loihi_slayer.hdf5.schema import (
    LAYER_TYPES,
    NEURON_TYPES,
    AverageLayer,
    ConvLayer,
    ConvTransposeLayer,
    CubaNeuron,
    DenseLayer,
    DenseRecurrentLayer,
    FlattenLayer,
    GenericNeuron,
    InputLayer,
    KWTALayer,
    Layer,
    Network,
    Neuron,
    PoolLayer,
    SigmaDeltaNeuron,
    Simulation,
    TimeDecimationLayer,
    UnpoolLayer,
    default_dense_neuron,
    values_equal,
)

__all__ = [
    "LAYER_TYPES",
    "NEURON_TYPES",
    "WEIGHT_RANGE",
    "AverageLayer",
    "ConvLayer",
    "ConvTransposeLayer",
    "CubaNeuron",
    "DenseLayer",
    "DenseRecurrentLayer",
    "FlattenLayer",
    "GenericNeuron",
    "InputLayer",
    "KWTALayer",
    "Layer",
    "Network",
    "Neuron",
    "PoolLayer",
    "SigmaDeltaNeuron",
    "Simulation",
    "TimeDecimationLayer",
    "UnpoolLayer",
    "default_dense_neuron",
    "load_network",
    "save_network",
    "values_equal",
]

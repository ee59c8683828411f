"""The lava-dl ``slayer`` surface exists: every public name of lava-dl's documented API
(block reference ``seeds/002``, module map ``seeds/000``/``003``) imports, and every block
and neuron constructs with lava-dl's defaults (only the required arguments given)."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from helpers import run_python

import loihi_slayer as slayer

SUBPACKAGES = [
    "neuron",
    "axon",
    "dendrite",
    "spike",
    "synapse",
    "block",
    "classifier",
    "loss",
    "io",
    "auto",
    "utils",
]

#: block classes per family, from the block API reference (seeds/002)
_COMMON = [
    "Average",
    "Conv",
    "ConvT",
    "Dense",
    "Flatten",
    "Input",
    "KWTA",
    "Pool",
    "Recurrent",
    "TimeDecimation",
    "Unpool",
]
BLOCKS = {
    "base": [
        "AbstractAffine",
        "AbstractAverage",
        "AbstractConv",
        "AbstractConvT",
        "AbstractDense",
        "AbstractFlatten",
        "AbstractInput",
        "AbstractKWTA",
        "AbstractPool",
        "AbstractRecurrent",
        "AbstractResidual",
        "AbstractTimeDecimation",
        "AbstractUnpool",
        "step_delay",
    ],
    "cuba": ["AbstractCuba", "Affine", *_COMMON],
    "rf": ["AbstractRF", "Affine", *_COMMON],
    "rf_iz": ["AbstractRFIz", "Affine", *_COMMON],
    "alif": ["AbstractALIF", *_COMMON],
    "adrf": ["AbstractADRF", *_COMMON],
    "adrf_iz": ["AbstractADRFIZ", *_COMMON],
    "sigma_delta": [
        "AbstractSDRelu",
        "Average",
        "Conv",
        "ConvT",
        "Dense",
        "Flatten",
        "Input",
        "Output",
        "Pool",
        "Unpool",
    ],
}

#: other public names of lava-dl's slayer package (module map and utilities)
NAMES = {
    "neuron": ["cuba", "sigma_delta", "norm", "dropout", "dynamics"],
    "neuron.norm": ["MeanOnlyBatchNorm", "WgtScaleBatchNorm"],
    "neuron.dropout": ["Dropout"],
    "neuron.dynamics": [
        "leaky_integrator",
        "resonator",
        "adaptive_threshold",
        "adaptive_phase_th",
        "adaptive_resonator",
    ],
    "neuron.dynamics.adaptive_phase_th": [
        "dynamics",
        "persistent_ref_state",
        "persistent_th_state",
    ],
    "neuron.dynamics.adaptive_resonator": [
        "dynamics",
        "persistent_ref_state",
        "persistent_th_state",
    ],
    "neuron.dynamics.adaptive_threshold": [
        "dynamics",
        "persistent_ref_state",
        "persistent_th_state",
    ],
    "neuron.dynamics.resonator": ["dynamics", "persistent_real_state", "persistent_imag_state"],
    "neuron.dynamics.leaky_integrator": ["dynamics", "persistent_state"],
    "neuron.cuba": ["Neuron", "neuron_params"],
    "neuron.sigma_delta": ["Neuron", "neuron_params"],
    "synapse": ["Dense", "Conv", "Pool", "ConvTranspose", "Unpool"],
    "axon": ["Delay", "Delta", "delay"],
    "dendrite": ["Sigma"],
    "spike": ["Spike", "complex"],
    "spike.complex": ["Spike"],
    "classifier": ["Rate", "MovingWindow"],
    "loss": ["SpikeTime", "SpikeRate", "SpikeMax", "SpikeMoid", "SparsityEnforcer"],
    "io": [
        "Event",
        "tensor_to_event",
        "read_1d_spikes",
        "encode_1d_spikes",
        "read_2d_spikes",
        "encode_2d_spikes",
        "read_3d_spikes",
        "encode_3d_spikes",
        "read_np_spikes",
        "encode_np_spikes",
    ],
    "auto": ["SequentialNetwork", "get_classes", "get_neuron_params"],
    "utils": [
        "filter",
        "time",
        "staticproperty",
        "diagonal_mask",
        "LearningStat",
        "LearningStats",
        "quantize",
        "Assistant",
        "recurrent",
        "int_utils",
    ],
    "utils.filter": ["conv", "corr", "FIR", "FIRBank"],
    "utils.time": ["replicate", "shift"],
    "utils.recurrent": ["custom_recurrent"],
    "utils.int_utils": ["right_shift_to_zero", "Q2Zero"],
    "utils.utils": ["dotdict", "staticproperty", "diagonal_mask", "event_rate"],
    "utils.quantize": ["quantize", "MODE"],
}


def _module(path: str):
    return importlib.import_module(f"loihi_slayer.{path}")


def test_import_is_cheap_and_lazy():
    code = "import sys, loihi_slayer; print('torch' in sys.modules, 'numba' in sys.modules)"
    out = run_python(code, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_subpackages_are_attributes(name):
    assert getattr(slayer, name) is _module(name)
    assert name in dir(slayer)


@pytest.mark.parametrize("family,name", [(f, n) for f, names in BLOCKS.items() for n in names])
def test_block_names(family, name):
    assert hasattr(getattr(slayer.block, family), name)


@pytest.mark.parametrize("path,name", [(p, n) for p, names in NAMES.items() for n in names])
def test_public_names(path, name):
    assert hasattr(_module(path), name)


CUBA = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03}
SDNN = {"threshold": 0.1, "activation": F.relu}
NEURON_PARAMS = {
    "cuba": CUBA,
    "sigma_delta": SDNN,
    "alif": {**CUBA, "threshold_step": 0.1, "refractory_decay": 0.1, "threshold_decay": 0.1},
    "rf": {"threshold": 1.0, "period": 10, "decay": 0.1},
    "rf_iz": {"threshold": 1.0, "period": 10, "decay": 0.1},
    "adrf": {
        "threshold": 1.0,
        "period": 10,
        "decay": 0.1,
        "threshold_step": 0.1,
        "refractory_decay": 0.1,
        "threshold_decay": 0.1,
    },
    "adrf_iz": {
        "threshold": 1.0,
        "period": 10,
        "decay": 0.1,
        "threshold_step": 0.1,
        "refractory_decay": 0.1,
        "threshold_decay": 0.1,
    },
}

#: required arguments of each block (seeds/002 signatures); everything else default
REQUIRED = {
    "Input": lambda p: (p,),
    "Flatten": lambda p: (),
    "Average": lambda p: (4,),
    "TimeDecimation": lambda p: (2,),
    "Dense": lambda p: (p, 8, 4),
    "Affine": lambda p: (p, 8, 4),
    "Output": lambda p: (p, 8, 4),
    "Recurrent": lambda p: (p, 8, 8),
    "KWTA": lambda p: (p, 8, 8, 2),
    "Conv": lambda p: (p, 2, 4, 3),
    "ConvT": lambda p: (p, 2, 4, 3),
    "Pool": lambda p: (p, 2),
    "Unpool": lambda p: (p, 2),
}


@pytest.mark.parametrize(
    "family,name",
    [
        (f, n)
        for f, names in BLOCKS.items()
        if f != "base"
        for n in names
        if not n.startswith("Abstract")
    ],
)
def test_blocks_construct_with_lava_dl_defaults(family, name):
    cls = getattr(getattr(slayer.block, family), name)
    blk = cls(*REQUIRED[name](NEURON_PARAMS[family]))
    assert isinstance(blk, torch.nn.Module)
    if name in ("Dense", "Conv", "Pool", "ConvT", "Unpool", "Recurrent", "KWTA", "Affine"):
        assert blk.delay is None  # delay=False by default
        assert getattr(blk, "count_log", False) is False
    if name in ("Dense", "Conv", "Pool"):
        expected = family not in ("sigma_delta",)  # lava-dl: SDNN blocks default to no shift
        assert blk.delay_shift is expected


FAMILIES = ["cuba", "sigma_delta", "alif", "rf", "rf_iz", "adrf", "adrf_iz"]


@pytest.mark.parametrize("family", FAMILIES)
def test_neurons_construct_with_lava_dl_defaults(family):
    mod = importlib.import_module(f"loihi_slayer.neuron.{family}")
    n = mod.Neuron(**NEURON_PARAMS[family])
    assert n.persistent_state is False and n.shared_param is True
    assert n.requires_grad is False
    assert n.w_scale == 64 and n.s_scale == 64 * 64

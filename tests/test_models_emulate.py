"""Registry models (beyond CUBA/sigma-delta) run from a netx file in the emulator."""

from __future__ import annotations

import numpy as np
import pytest

from loihi_slayer import fixed, models
from loihi_slayer.emulate import Emulator
from loihi_slayer.errors import FormatError
from loihi_slayer.hdf5 import (
    DenseLayer,
    GenericNeuron,
    InputLayer,
    Network,
    load_network,
    save_network,
)

ALIF_FIELDS = {
    "iDecay": 1024,
    "vDecay": 128,
    "thDecay": 64,
    "refDecay": 512,
    "vThMant": 80,
    "vThStep": 20,
    "refDelay": 1,
}


def _alif_net(fields=ALIF_FIELDS, bias=None):
    rng = np.random.default_rng(3)
    w = rng.integers(-64, 128, (5, 8)) * 2
    neuron = GenericNeuron("ALIF", {k: np.int64(v) for k, v in fields.items()})
    return Network([InputLayer((8,)), DenseLayer((5,), w, neuron=neuron, bias=bias)]), w


@pytest.mark.parametrize("bias", [None, np.array([3, -2, 0, 7, 1])])
def test_alif_layer_equals_kernel_on_synaptic_sums(tmp_path, bias):
    net, w = _alif_net(bias=bias)
    path = tmp_path / "alif.net"
    save_network(net, path)
    rng = np.random.default_rng(4)
    x = (rng.random((8, 60)) < 0.3).astype(np.int64)
    tr = Emulator(load_network(path)).run(x, 60, record=("s", "v", "th", "r"))
    # layer 1 receives W @ x one step later (the synaptic hop), plus its bias
    a = np.zeros((5, 60), np.int64)
    a[:, 1:] = (w @ x)[:, :-1]
    if bias is not None:
        a += bias[:, None]
    p = {p.name: ALIF_FIELDS[p.field] for p in models.get("alif").params}
    ref, _ = fixed.run("alif", a, p, record=("s", "v", "th", "r"), backend="reference")
    for k in ("s", "v", "th", "r"):
        np.testing.assert_array_equal(tr[1, k], ref[k])
    assert ref["s"].sum() > 0


def test_missing_field_names_group_and_field():
    fields = dict(ALIF_FIELDS)
    del fields["vThStep"]
    net, _ = _alif_net(fields)
    with pytest.raises(FormatError, match=r"layer/1/neuron.*vThStep"):
        Emulator(net)


def test_real_neuron_refuses_complex_synapse():
    net, w = _alif_net()
    layer = net.layers[1]
    net.layers[1] = DenseLayer((5,), w, neuron=layer.neuron, weight_imag=w)
    with pytest.raises(FormatError, match="ALIF neurons take"):
        Emulator(net)

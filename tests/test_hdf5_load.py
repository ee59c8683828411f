"""Loading the real netx files; expected values come from the spec and catalog text."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from loihi_slayer.hdf5 import (
    ConvLayer,
    CubaNeuron,
    DenseLayer,
    InputLayer,
    Network,
    Simulation,
    default_dense_neuron,
    load_network,
)

DATA = Path(__file__).parent / "data"
TINY = DATA / "tiny.net"
OXFORD = DATA / "network.net"
GOLDEN = Path("/work/shared/golden-ext")


def _legacy_neuron_ok(neuron: CubaNeuron) -> None:
    assert isinstance(neuron, CubaNeuron)
    assert neuron.type == "LOIHI"
    assert neuron.v_th_mant == 25
    assert neuron.i_decay == 4096
    assert neuron.v_decay == 1024
    assert neuron.ref_delay == 1
    # legacy extras are kept verbatim (theta = vThMant << 6)
    assert int(neuron.extra["theta"]) == 25 << 6
    assert set(neuron.extra) == {"theta", "tauRho", "scaleRho"}


def test_tiny_net_layers() -> None:
    net = load_network(TINY)
    assert isinstance(net, Network)
    assert len(net.layers) == 3
    inp, conv1, conv2 = net.layers

    assert isinstance(inp, InputLayer)
    assert inp.shape == (3, 16, 16)
    assert inp.weight == 36 and inp.bias == 34
    assert isinstance(inp.weight, int) and isinstance(inp.bias, int)
    _legacy_neuron_ok(inp.neuron)

    assert type(conv1) is ConvLayer
    assert conv1.weight.dtype == np.int64
    assert conv1.weight.shape == (24, 3, 5, 5)  # trailing singleton 5th axis dropped
    assert conv1.stride == (2, 2) and conv1.padding == (0, 0) and conv1.dilation == (1, 1)
    assert conv1.groups == 1
    assert conv1.shape == (24, 6, 6)
    assert np.all(conv1.weight % 2 == 0)
    assert conv1.weight.min() >= -10 and conv1.weight.max() <= 10
    assert conv1.bias is not None and conv1.bias.shape == (24,)
    _legacy_neuron_ok(conv1.neuron)

    assert type(conv2) is ConvLayer
    assert conv2.weight.shape == (36, 24, 5, 5)
    assert conv2.shape == (36, 1, 1)
    _legacy_neuron_ok(conv2.neuron)

    # info fields are derived, not kept as extras
    assert conv1.extra == {} and conv2.extra == {} and inp.extra == {}
    assert net.simulation == Simulation(ts=1, t_sample=64)


def test_tiny_net_num_layers() -> None:
    assert len(load_network(TINY, num_layers=1).layers) == 1
    two = load_network(TINY, num_layers=2)
    assert len(two.layers) == 2
    assert two.layers == load_network(TINY).layers[:2]
    assert len(load_network(TINY, num_layers=10).layers) == 3


@pytest.mark.skipif(not (GOLDEN / "tinynet/layer1_kernel.npy").exists(), reason="no golden")
def test_tiny_net_conv_matches_lava_kernel() -> None:
    # catalog: layer1_kernel.npy = flip both spatial axes, then (out, kW, kH, in)
    kernel = np.load(GOLDEN / "tinynet/layer1_kernel.npy")
    w = load_network(TINY).layers[1].weight
    assert np.array_equal(w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1), kernel)
    bias = np.load(GOLDEN / "tinynet/layer1_bias.npy")
    assert np.array_equal(load_network(TINY).layers[1].bias, bias)


def test_oxford_network() -> None:
    net = load_network(OXFORD)
    assert len(net.layers) == 2
    assert net.simulation is None
    with h5py.File(OXFORD, "r") as f:
        raw = [f[f"layer/{i}/weight"][()] for i in range(2)]
    for i, (layer, v_decay) in enumerate(zip(net.layers, (415, 409), strict=True)):
        assert type(layer) is DenseLayer
        assert isinstance(layer.neuron, CubaNeuron)
        assert layer.neuron.type == "CUBA"
        assert layer.neuron.v_decay == v_decay
        assert layer.neuron.v_th_mant == 6
        assert layer.neuron.i_decay == 4096
        assert layer.neuron.ref_delay == 1 and layer.neuron.graded_spike is False
        assert layer.bias is None and layer.delay is None and layer.weight_imag is None
        assert layer.weight.dtype == np.int64
        assert raw[i].dtype == np.float32
        assert np.array_equal(layer.weight, raw[i].astype(int))
    assert net.layers[0].shape == (256,) and net.layers[0].weight.shape == (256, 200)
    assert net.layers[1].shape == (200,) and net.layers[1].weight.shape == (200, 256)


@pytest.mark.skipif(not (GOLDEN / "dense/weight.npy").exists(), reason="no golden")
def test_oxford_layer0_matches_dense_golden() -> None:
    weight = np.load(GOLDEN / "dense/weight.npy")
    assert np.array_equal(load_network(OXFORD).layers[0].weight, weight)


def test_default_dense_neuron() -> None:
    n = default_dense_neuron()
    assert (n.i_decay, n.v_decay, n.v_th_mant, n.ref_delay) == (0, 4096, 131072, 1)
    assert n.type == "CUBA" and n.graded_spike is False
    assert n == default_dense_neuron()

"""Chip resource report: counts from the network, refusals naming layer, quantity and limit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from loihi_slayer import hdf5
from loihi_slayer.block import cuba
from loihi_slayer.cli import main
from loihi_slayer.resources import CHIP_LIMITS, ResourceError, resource_report


def cuba_neuron():
    return hdf5.CubaNeuron(i_decay=1024, v_decay=128, v_th_mant=80)


def test_counts_of_a_dense_network():
    w = np.zeros((5, 7), np.int64)
    w[0, :] = 3  # neuron 0 has fan-in 7
    w[:, 2] = -4  # input 2 reaches all 5 neurons
    net = hdf5.Network([hdf5.DenseLayer((5,), w, neuron=cuba_neuron(), delay=np.arange(5))])
    (layer,) = resource_report(net).layers
    assert layer.neurons == 5
    assert layer.synapses == 7 + 4  # nonzero entries: row 0 plus column 2 below it
    assert layer.fan_in == 7 and layer.fan_out == 5
    assert layer.weight_bits == 3  # -4 .. 3 in two's complement
    assert layer.delay_range == (0, 4)
    assert layer.cores == {"loihi1": 1, "loihi2": 1}


def test_conv_counts_from_blocks():
    net = torch.nn.Sequential(
        cuba.Conv(
            {"threshold": 0.5, "current_decay": 0.2, "voltage_decay": 0.1},
            2,
            4,
            3,
            padding=1,
            input_shape=(8, 8),
        )
    )
    (layer,) = resource_report(net).layers
    assert layer.neurons == 4 * 8 * 8
    assert layer.fan_in <= 2 * 3 * 3
    assert layer.synapses == layer.neurons * layer.fan_in  # every output uses every tap


def test_neuron_count_refused_on_loihi1_fits_loihi2():
    n = 200_000  # > 128 cores x 1024 neurons, < 128 x 8192
    net = hdf5.Network([hdf5.DenseLayer((n,), np.ones((n, 1), np.int64), neuron=cuba_neuron())])
    rep = resource_report(net)
    assert rep.layers[0].cores["loihi1"] == math.ceil(n / 1024) == 196
    assert rep.layers[0].cores["loihi2"] == math.ceil(n / 8192) == 25
    assert not rep.fits("loihi1") and rep.fits("loihi2")
    (refusal,) = rep.refusals
    assert (refusal.chip, refusal.layer, refusal.quantity, refusal.value, refusal.limit) == (
        "loihi1",
        None,
        "cores",
        196,
        128,
    )
    with pytest.raises(ResourceError, match="Loihi 1: network: cores = 196 exceeds the limit 128"):
        rep.check("loihi1")
    rep.check("loihi2")


@pytest.mark.parametrize(
    "layer, quantity, value, limit",
    [
        (
            hdf5.DenseLayer((2,), np.ones((2, 5000), np.int64), neuron=cuba_neuron()),
            "fan-in",
            5000,
            4096,
        ),
        (hdf5.DenseLayer((2,), np.full((2, 3), 1000), neuron=cuba_neuron()), "weight bits", 11, 9),
        (
            hdf5.DenseLayer(
                (2,), np.ones((2, 3), np.int64), neuron=cuba_neuron(), delay=np.array([0, 63])
            ),
            "axonal delay",
            63,
            62,
        ),
    ],
)
def test_layer_refusals_name_layer_quantity_and_limit(layer, quantity, value, limit):
    net = hdf5.Network([hdf5.InputLayer(tuple([layer.weight.shape[1]])), layer])
    rep = resource_report(net)
    assert {r.chip for r in rep.refusals} == set(CHIP_LIMITS)
    for r in rep.refusals:
        assert r.layer == 1 and r.quantity.startswith(quantity)
        assert (r.value, r.limit) == (value, limit)
        assert f"layer 1: {quantity}" in str(r) and str(limit) in str(r)


def test_cli_inspect_resources(tmp_path, capsys):
    ok = tmp_path / "ok.net"
    hdf5.save_network(
        hdf5.Network([hdf5.DenseLayer((3,), np.ones((3, 4), np.int64), neuron=cuba_neuron())]), ok
    )
    assert main(["inspect", "--resources", str(ok)]) == 0
    out = capsys.readouterr().out
    assert "Loihi 2: 1 of 128 cores" in out and "fits" in out
    bad = tmp_path / "bad.net"
    hdf5.save_network(
        hdf5.Network([hdf5.DenseLayer((3,), np.ones((3, 5000), np.int64), neuron=cuba_neuron())]),
        bad,
    )
    assert main(["inspect", "--resources", str(bad)]) == 1
    out = capsys.readouterr().out
    assert (
        "refused: Loihi 2: layer 0: fan-in (inputs of one neuron) = 5000 exceeds the limit "
        "4096" in out
    )


def test_limits_table_matches_docs():
    """Every figure in the code table appears in docs/resources.md with its source."""
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "resources.md").read_text()
    assert "Davies" in doc and "Loihi 2" in doc
    for lim in CHIP_LIMITS.values():
        for v in (lim.cores, lim.neurons_per_core, lim.fan_in_axons, lim.max_delay):
            assert str(v) in doc


def test_export_logs_the_resource_report(tmp_path, caplog):
    from loihi_slayer import block

    net = torch.nn.Sequential(
        cuba.Dense({"threshold": 0.5, "current_decay": 0.2, "voltage_decay": 0.1}, 4, 3)
    )
    with caplog.at_level("INFO", logger="loihi_slayer.block"):
        block.export_network(net, tmp_path / "n.net")
    assert "Loihi 2: 1 of 128 cores (lower bound): fits" in caplog.text


def test_spatial_counts_follow_the_geometry():
    """Fan-in/out of conv, convT, pool and unpool from kernel and stride (independent
    arithmetic: an input pixel reaches ceil(k/s) outputs per axis)."""
    neuron = cuba_neuron()
    w = np.ones((4, 2, 3, 3), np.int64)  # conv: (out, in, kH, kW)
    conv = hdf5.ConvLayer((4, 4, 4), w, stride=2, padding=1, dilation=1, groups=1, neuron=neuron)
    wt = np.ones((2, 4, 3, 3), np.int64)  # convT: (in, out, kH, kW)
    conv_t = hdf5.ConvTransposeLayer(
        (4, 9, 9), wt, stride=2, padding=0, dilation=1, groups=1, neuron=neuron
    )
    pool = hdf5.PoolLayer(
        (2, 4, 4),
        np.ones((1, 1, 2, 2), np.int64),
        kernel_size=2,
        stride=2,
        padding=0,
        dilation=1,
        neuron=neuron,
    )
    net = hdf5.Network([hdf5.InputLayer((2, 8, 8)), conv])
    c = resource_report(net).layers[1]
    assert (c.fan_in, c.fan_out, c.synapses) == (2 * 9, 4 * 2 * 2, 4 * 4 * 4 * 18)
    net = hdf5.Network([hdf5.InputLayer((2, 4, 4)), conv_t])
    t = resource_report(net).layers[1]
    assert (t.fan_in, t.fan_out, t.synapses) == (2 * 2 * 2, 4 * 9, 2 * 4 * 4 * 36)
    net = hdf5.Network([hdf5.InputLayer((2, 8, 8)), pool])
    p = resource_report(net).layers[1]
    assert (p.fan_in, p.fan_out, p.synapses, p.weight_bits) == (4, 1, 2 * 4 * 4 * 4, 2)


def test_output_axons_split_the_source_layer():
    """A neuron needs one output axon per core of the next layer it reaches: 1024 conv
    neurons feeding a layer spread over 16 Loihi 1 cores need 1024 * 16 / 4096 = 4 cores."""
    neuron = cuba_neuron()
    a = hdf5.ConvLayer(
        (4, 16, 16),
        np.ones((4, 2, 3, 3), np.int64),
        stride=1,
        padding=1,
        dilation=1,
        groups=1,
        neuron=neuron,
    )
    b = hdf5.ConvLayer(
        (64, 16, 16),
        np.ones((64, 4, 3, 3), np.int64),
        stride=1,
        padding=1,
        dilation=1,
        groups=1,
        neuron=neuron,
    )
    rep = resource_report(hdf5.Network([hdf5.InputLayer((2, 16, 16)), a, b]))
    la, lb = rep.layers[1], rep.layers[2]
    assert lb.fan_out == 64 * 9 and lb.neurons == 16384
    assert lb.cores == {"loihi1": 16, "loihi2": 2}  # by neurons: 16384 / 1024, / 8192
    assert la.cores == {"loihi1": 1024 * 16 // 4096, "loihi2": 1}  # 2048 axons fit one core

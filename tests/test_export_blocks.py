"""Export of every block type: schema records, file layout, atomicity, range errors, no mutation."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import torch

from loihi_slayer import block, hdf5
from loihi_slayer.block import cuba
from loihi_slayer.block import sigma_delta as sd
from loihi_slayer.errors import ParameterError
from loihi_slayer.hdf5.layer_io import read_layer, write_layer
from loihi_slayer.neuron.norm import MeanOnlyBatchNorm

P = {"threshold": 0.5, "current_decay": 0.25, "voltage_decay": 0.03}
SP = {"threshold": 0.1, "activation": torch.nn.functional.relu}


def cuba_blocks():
    return [
        cuba.Input(P, shape=(2, 8, 8)),
        cuba.Conv(
            dict(P, norm=MeanOnlyBatchNorm), 2, 4, 3, padding=1, input_shape=(8, 8), delay=True
        ),
        cuba.Pool(P, 2, input_shape=(4, 8, 8)),
        cuba.ConvT(P, 4, 3, 3, stride=2, input_shape=(4, 4)),
        cuba.Unpool(P, 2, input_shape=(3, 9, 9)),
        cuba.Flatten(input_shape=(3, 18, 18)),
        cuba.Dense(P, 972, 12, delay=True),
        cuba.Recurrent(P, 12, 10),
        cuba.KWTA(P, 10, 8, num_winners=2),
        cuba.Average(4),
    ]


EXPECTED = [
    (hdf5.InputLayer, (2, 8, 8)),
    (hdf5.ConvLayer, (4, 8, 8)),
    (hdf5.PoolLayer, (4, 4, 4)),
    (hdf5.ConvTransposeLayer, (3, 9, 9)),
    (hdf5.UnpoolLayer, (3, 18, 18)),
    (hdf5.FlattenLayer, (972, 1, 1)),
    (hdf5.DenseLayer, (12,)),
    (hdf5.DenseRecurrentLayer, (10,)),
    (hdf5.KWTALayer, (8,)),
    (hdf5.AverageLayer, (4, 1, 1)),
]


def test_every_cuba_block_round_trips(tmp_path):
    blocks = cuba_blocks()
    path = tmp_path / "net.net"
    net = block.export_network(blocks, path)
    back = hdf5.load_network(path)
    assert back == net
    for layer, (cls, shape) in zip(back.layers, EXPECTED, strict=True):
        assert type(layer) is cls
        assert tuple(layer.shape) == shape
    conv, pool, dense, rec, kwta = (back.layers[i] for i in (1, 2, 6, 7, 8))
    assert conv.weight.shape == (4, 2, 3, 3) and conv.padding == (1, 1)
    assert conv.bias.shape == (4,) and conv.delay.shape == (4,)
    assert np.array_equal(pool.weight, np.full((1, 1, 2, 2), 64))  # Q(1) * 64
    assert back.layers[3].weight.shape == (4, 3, 3, 3)  # convT (in, out, kH, kW)
    assert dense.weight.shape == (12, 972) and np.all(dense.weight % 2 == 0)
    assert rec.weight_rec.shape == (10, 10)
    # KWTA: R = (1 + a) I - 1 with a = 0.5 -> diagonal 0.5*64, off-diagonal -64
    assert np.array_equal(kwta.weight_rec, np.where(np.eye(8, dtype=bool), 32, -64))
    assert kwta.input_bias.shape == (8,)
    assert dense.neuron == hdf5.CubaNeuron(i_decay=1024, v_decay=123, v_th_mant=32)
    with h5py.File(path, "r") as f:
        assert f["layer/8/type"][0] == b"kwta"
        assert f["layer/9/type"][0] == b"average"


def test_time_decimation_and_sdnn_blocks(tmp_path):
    blocks = [
        sd.Input(SP, shape=(6,)),
        sd.Dense(SP, 6, 5),
        sd.Output(SP, 5, 3),
    ]
    blocks[1].neuron.set_bias(0.25)
    net = block.network_record(blocks)
    assert net.layers[0].neuron == hdf5.SigmaDeltaNeuron(v_th_mant=6, activation="relu")
    assert np.array_equal(net.layers[1].bias, np.full(5, 16))
    assert net.layers[2].neuron.sigma_output and net.layers[2].neuron.v_th_mant is None
    td = cuba.TimeDecimation(4)
    td.init_shapes((7,))
    rec = td.to_layer()
    assert isinstance(rec, hdf5.TimeDecimationLayer) and rec.factor == 4 and rec.shape == (7,)
    with h5py.File(tmp_path / "one.h5", "w") as f:
        td.export_hdf5(f.create_group("layer/0"))
        assert f["layer/0/factor"][()] == 4 and f["layer/0/factor"].dtype == np.int64
        assert read_layer(f["layer/0"]) == rec


def test_export_hdf5_writes_one_layer_group(tmp_path):
    b = cuba.Dense(P, 4, 3)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        g = f.create_group("layer/0")
        b.export_hdf5(g)
        assert g["type"].dtype == np.dtype("S10") and g["type"][0] == b"dense"
        assert g["weight"].dtype == np.float32 and g["weight"].shape == (3, 4)
        assert isinstance(g["neuron/type"][()], bytes | str)
        with pytest.raises(ParameterError, match="already exists"):
            write_layer(g, b.to_layer())


def test_export_does_not_mutate_weight_norm_model(tmp_path):
    b = cuba.Dense(P, 4, 3, weight_norm=True)
    before = {k: v.clone() for k, v in b.state_dict().items()}
    block.export_network([b], tmp_path / "a.net")
    assert b.synapse._weight_norm
    assert set(b.state_dict()) == set(before)
    for k, v in b.state_dict().items():
        assert torch.equal(v, before[k])


def test_out_of_range_parameters_name_layer_and_field(tmp_path):
    b = cuba.Dense(P, 4, 3, pre_hook_fx=lambda w: w)  # no quantizer
    with torch.no_grad():
        b.synapse.weight.fill_(10.0)
    path = tmp_path / "bad.net"
    with pytest.raises(ParameterError, match=r"layer 0: block.cuba.Dense: field 'weight'"):
        block.export_network([b], path)
    assert not path.exists() and os.listdir(tmp_path) == []
    # a threshold above the 17-bit mantissa is refused at construction (issue 11), not export
    with pytest.raises(ParameterError, match=r"threshold = 3000.0 .* \[0, 131071\]"):
        cuba.Dense(dict(P, threshold=3000.0), 4, 3)


def test_atomic_export_and_unwritable_path(tmp_path):
    path = tmp_path / "n.net"
    path.write_bytes(b"old")
    bad = cuba.Dense(P, 4, 3, pre_hook_fx=lambda w: w * 1000)
    with pytest.raises(ParameterError):
        block.export_network([bad], path)
    assert path.read_bytes() == b"old"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        block.export_network([cuba.Dense(P, 4, 3)], tmp_path / "missing" / "n.net")
    with pytest.raises(IsADirectoryError):
        block.export_network([cuba.Dense(P, 4, 3)], tmp_path)
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(PermissionError, match="not writable"):
            block.export_network([cuba.Dense(P, 4, 3)], ro / "n.net")


def test_shape_unknown_is_a_clear_error():
    b = cuba.Conv(dict(P, shared_param=False), 2, 3, 3)
    with pytest.raises(ParameterError, match="block.cuba.Conv: the neuron shape is unknown"):
        b.to_layer()
    with pytest.raises(ParameterError, match="shared_param=False"):
        b(torch.zeros(1, 2, 5, 5, 4))

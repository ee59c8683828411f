"""Emulator tests: upstream lava-dl goldens, catalog figures, independent references."""

from __future__ import annotations

import numpy as np
import pytest

from loihi_slayer import fixed
from loihi_slayer.emulate import Emulator, netx_reset_masks
from loihi_slayer.errors import FormatError, ParameterError, UnsupportedLayerError
from loihi_slayer.hdf5 import (
    AverageLayer,
    CubaNeuron,
    DenseLayer,
    DenseRecurrentLayer,
    FlattenLayer,
    InputLayer,
    Network,
    PoolLayer,
    load_network,
)


def test_oxford_network_matches_catalog_figures(shared_golden):
    """CATALOG.md: a bit-accurate emulation of oxford/network.net on the round-binned
    input.npy gives 9632 spikes vs 10178 in ground_truth.npy, differing in 3014 bins,
    first at t = 2."""
    d = shared_golden / "oxford"
    ev = np.load(d / "input.npy")
    x = np.zeros((200, 2000), np.int64)
    t = np.round(ev[:, 2]).astype(int)
    keep = t < 2000
    x[ev[keep, 0].astype(int), t[keep]] = 1
    out = Emulator(d / "network.net").run(x, 2000)[1, "s"]
    gt = np.load(d / "ground_truth.npy")
    y = np.zeros((200, 2000), np.int64)
    y[gt[:, 0].astype(int), gt[:, 2].astype(int)] = 1
    assert int(out.sum()) == 9632
    assert int(y.sum()) == 10178
    assert int((out != y).sum()) == 3014
    assert int(np.flatnonzero((out != y).any(axis=0))[0]) == 2


def test_tinynet_without_resets_gives_46_mismatches(shared_golden):
    """CATALOG.md: without the resets after steps 1 and 2 there are 46 mismatches."""
    d = shared_golden / "tinynet"
    bias = np.load(d / "input_bias.npy").transpose(2, 1, 0).astype(np.int64)
    out = Emulator(d / "tiny.net").run(bias, 20, input_mode="bias").shaped(2, "s")
    gt = np.load(d / "output.npy")[0]
    assert int(np.abs(out[..., 2:17] - gt[..., 1:16]).sum()) == 46


def test_netx_reset_offsets():
    net = Network(
        [
            InputLayer((2,), neuron=CubaNeuron(4096, 4096, 1)),
            DenseLayer((2,), np.eye(2, dtype=np.int64) * 2, neuron=CubaNeuron(4096, 4096, 1)),
        ]
    )
    masks = netx_reset_masks(net, 40, 16)
    # block k resets at the start of step t with t % 16 == 1 + k
    assert np.flatnonzero(masks[0]).tolist() == [0, 16, 32]  # steps 1, 17, 33
    assert np.flatnonzero(masks[1]).tolist() == [1, 17, 33]


def recurrent_reference(x, w, w_rec, params):
    """Independent step loop: dense_rec with one step of latency on both synapses."""
    n, steps = w.shape[0], x.shape[1]
    s_prev_in = np.zeros(x.shape[0], np.int64)
    s_prev = np.zeros(n, np.int64)
    state = None
    out = np.zeros((n, steps), np.int64)
    for t in range(steps):
        a = w @ s_prev_in + w_rec @ s_prev
        tr, state = fixed.cuba(a[:, None], params, state=state, backend="reference")
        out[:, t] = tr["s"][:, 0]
        s_prev_in, s_prev = x[:, t], out[:, t]
    return out


def test_recurrent_layer_matches_step_loop():
    rng = np.random.default_rng(3)
    w = rng.integers(-60, 120, (6, 5)) * 2
    w_rec = rng.integers(-100, 100, (6, 6)) * 2
    neuron = CubaNeuron(i_decay=1024, v_decay=512, v_th_mant=40)
    net = Network([DenseRecurrentLayer((6,), w, neuron=neuron, weight_rec=w_rec)])
    x = rng.integers(0, 2, (5, 60))
    got = Emulator(net).run(x, 60)[0, "s"]
    params = fixed.CubaParams(i_decay=1024, v_decay=512, v_th_mant=40)
    np.testing.assert_array_equal(got, recurrent_reference(x, w, w_rec, params))
    assert got.sum() > 0


def test_dense_without_neuron_is_default_integrator():
    """netx default: iDecay 0, vDecay 4096 -> v = u = running sum, never spikes."""
    w = np.array([[100, -50]], np.int64)
    net = Network([DenseLayer((1,), w, neuron=None)])
    x = np.ones((2, 30), np.int64)
    tr = Emulator(net).run(x, 30, record=("s", "u", "v"))
    steps = np.arange(30)  # input arrives one step later
    expected_u = np.clip(steps * 50 * 64, None, 2**23)
    np.testing.assert_array_equal(tr[0, "u"][0], expected_u)
    assert tr[0, "s"].sum() == 0


def test_output_delay_shifts_next_layer_input():
    eye = np.eye(3, dtype=np.int64) * 254
    n1 = CubaNeuron(4096, 4096, 1)
    base = [InputLayer((3,)), DenseLayer((3,), eye, neuron=n1)]
    delayed = [InputLayer((3,)), DenseLayer((3,), eye, neuron=n1, delay=np.array([0, 2, 5]))]
    tail = DenseLayer((3,), eye, neuron=n1)
    x = np.zeros((3, 20), np.int64)
    x[:, 1] = 1
    a = Emulator(Network(base + [tail])).run(x, 20)
    b = Emulator(Network(delayed + [tail])).run(x, 20)
    np.testing.assert_array_equal(a[1, "s"], b[1, "s"])  # the layer itself is unchanged
    for c, d in enumerate([0, 2, 5]):
        assert np.flatnonzero(b[2, "s"][c]).tolist() == [
            t + d for t in np.flatnonzero(a[2, "s"][c])
        ]


def test_record_subset_and_flatten(shared_golden):
    d = shared_golden / "tinynet"
    tiny = load_network(d / "tiny.net")
    net = Network(list(tiny.layers) + [FlattenLayer((36, 1, 1))])
    bias = np.load(d / "input_bias.npy").transpose(2, 1, 0).astype(np.int64)
    emu = Emulator(net)
    full = emu.run(bias, 10, input_mode="bias", record=("s", "v"))
    sub = emu.run(bias, 10, input_mode="bias", record={1: ("v",)}, neurons={1: [5, 0, 863]})
    np.testing.assert_array_equal(sub[1, "v"], full[1, "v"][[5, 0, 863]])
    assert 0 not in sub.layers and 2 not in sub.layers


def test_unsupported_layer_types_name_type_and_index():
    from loihi_slayer.hdf5 import GenericNeuron

    odd = GenericNeuron("HH_NEURON", {"gNa": np.int64(10)})
    net = Network([InputLayer((4,)), DenseLayer((2,), np.ones((2, 4), np.int64), neuron=odd)])
    with pytest.raises(UnsupportedLayerError, match="not supported: neuron type 'HH_NEURON'"):
        Emulator(net)
    net = Network(
        [
            InputLayer((4,)),
            DenseLayer((2,), np.ones((2, 4), np.int64), weight_imag=np.ones((2, 4), np.int64)),
        ]
    )
    with pytest.raises(FormatError, match="CUBA neurons take .* complex synapse"):
        Emulator(net)


def test_bad_inputs_are_reported():
    net = Network([DenseLayer((1,), np.array([[2, 4]]), neuron=CubaNeuron(0, 0, 1))])
    emu = Emulator(net)
    with pytest.raises(ParameterError, match="input has shape"):
        emu.run(np.zeros((3, 5), np.int64))
    with pytest.raises(ParameterError, match="integers"):
        emu.run(np.full((2, 5), 0.5))
    with pytest.raises(ParameterError, match="variable"):
        emu.run(np.zeros((2, 5), np.int64), record={0: ("sigma",)})
    with pytest.raises(FormatError, match="weight expects 3 inputs"):
        Emulator(Network([InputLayer((2,)), DenseLayer((2,), np.ones((2, 3), np.int64) * 2)]))
    bad = Network([DenseLayer((1,), np.array([[2]]), neuron=CubaNeuron(5000, 0, 1))])
    with pytest.raises(ParameterError, match="layer 0.*i_decay = 5000.*\\[0, 4096\\]"):
        Emulator(bad).run(np.zeros((1, 3), np.int64))


def test_backends_agree_on_golden_network(shared_golden):
    d = shared_golden / "tinynet"
    bias = np.load(d / "input_bias.npy").transpose(2, 1, 0).astype(np.int64)
    cpu = Emulator(d / "tiny.net").run(bias, 6, input_mode="bias", record=("s", "u", "v"))
    ref = Emulator(d / "tiny.net", backend="reference").run(
        bias, 6, input_mode="bias", record=("s", "u", "v")
    )
    for i in cpu.layers:
        for v in ("s", "u", "v"):
            np.testing.assert_array_equal(cpu[i, v], ref[i, v])


# ----------------------------------------------------------------- layers beyond netx


def run_neuron_ref(a, params):
    return fixed.cuba(a, params, backend="reference")[0]["s"]


def shift1(x):
    """One step of synaptic latency (zero fill)."""
    out = np.zeros_like(x)
    out[..., 1:] = x[..., :-1]
    return out


def test_pool_convt_unpool_layers_match_reference_pipeline():
    from loihi_slayer.hdf5 import ConvTransposeLayer, UnpoolLayer

    rng = np.random.default_rng(8)
    n = CubaNeuron(2048, 1024, 3)
    params = fixed.CubaParams(i_decay=2048, v_decay=1024, v_th_mant=3)
    k = rng.integers(1, 6, (1, 1, 2, 2)) * 2
    wt = rng.integers(-40, 80, (4, 3, 3, 3)) * 2  # convT (in, out, kH, kW)
    net = Network(
        [
            InputLayer((4, 6, 6)),
            PoolLayer((4, 3, 3), k, (2, 2), (2, 2), (0, 0), (1, 1), neuron=n),
            ConvTransposeLayer((3, 5, 5), wt, (1, 1), (1, 1), (2, 2), 1, neuron=n),
            UnpoolLayer((3, 10, 10), k, (2, 2), (2, 2), (0, 0), (1, 1), neuron=n),
        ]
    )
    x = (rng.random((4, 6, 6, 12)) < 0.4).astype(np.int64)
    tr = Emulator(net).run(x, 12, record=("s",))
    ref = fixed.reference
    s1 = run_neuron_ref(
        shift1(ref.conv2d(x, np.repeat(k, 4, 0), (2, 2), (0, 0), (1, 1), 4)), params
    )
    s2 = run_neuron_ref(shift1(ref.conv_transpose2d(s1, wt, (1, 1), (1, 1), (2, 2), 1)), params)
    s3 = run_neuron_ref(
        shift1(ref.conv_transpose2d(s2, np.repeat(k, 3, 0), (2, 2), (0, 0), (1, 1), 3)), params
    )
    for i, s in ((1, s1), (2, s2), (3, s3)):
        np.testing.assert_array_equal(tr.shaped(i, "s"), s)
    assert s3.sum() > 0


def test_average_and_decimate_are_integer_sums():
    from loihi_slayer.hdf5 import TimeDecimationLayer

    rng = np.random.default_rng(9)
    w = rng.integers(20, 120, (6, 4)) * 2
    net = Network(
        [
            InputLayer((4,)),
            DenseLayer((6,), w, neuron=CubaNeuron(4096, 4096, 2)),
            AverageLayer((3, 1, 1)),
            TimeDecimationLayer((3, 1, 1), factor=4),
        ]
    )
    x = (rng.random((4, 22)) < 0.5).astype(np.int64)
    tr = Emulator(net).run(x, 22, record=("s",))
    s = tr[1, "s"]
    avg = s.reshape(3, 2, 22).sum(1)  # groups of 2 neurons
    np.testing.assert_array_equal(tr[2, "s"], avg)
    padded = np.zeros((3, 24), np.int64)
    padded[:, :22] = avg
    np.testing.assert_array_equal(tr[3, "s"], padded.reshape(3, 6, 4).sum(2))
    assert tr.layers[3].num_steps == 6


def test_kwta_is_recurrent_dense_with_constant_input():
    from loihi_slayer.hdf5 import KWTALayer

    rng = np.random.default_rng(10)
    w = rng.integers(0, 100, (5, 4)) * 2
    r = np.full((5, 5), -64) + np.eye(5, dtype=np.int64) * 96  # a = 0.5 on the diagonal
    ib = np.full(5, 38)
    neuron = CubaNeuron(i_decay=4096, v_decay=1024, v_th_mant=60)
    net = Network([KWTALayer((5,), w, neuron=neuron, weight_rec=r, input_bias=ib)])
    x = (rng.random((4, 40)) < 0.6).astype(np.int64)
    got = Emulator(net).run(x, 40)[0, "s"]
    params = fixed.CubaParams(i_decay=4096, v_decay=1024, v_th_mant=60)
    s_prev_in, s_prev, state = np.zeros(4, np.int64), np.zeros(5, np.int64), None
    want = np.zeros((5, 40), np.int64)
    for t in range(40):
        a = w @ s_prev_in + r @ s_prev + ib
        tr, state = fixed.cuba(a[:, None], params, state=state, backend="reference")
        want[:, t] = tr["s"][:, 0]
        s_prev_in, s_prev = x[:, t], want[:, t]
    np.testing.assert_array_equal(got, want)
    assert 0 < want.sum() < want.size


def test_new_layer_types_round_trip_through_a_file(tmp_path):
    from loihi_slayer.hdf5 import KWTALayer, TimeDecimationLayer, save_network

    net = Network(
        [
            InputLayer((4,)),
            KWTALayer(
                (3,),
                np.ones((3, 4), np.int64) * 2,
                neuron=CubaNeuron(4096, 0, 1),
                weight_rec=np.eye(3, dtype=np.int64),
                input_bias=np.array([4, 4, 4]),
            ),
            TimeDecimationLayer((3,), factor=2),
        ]
    )
    save_network(net, tmp_path / "n.net")
    x = np.ones((4, 8), np.int64)
    a = Emulator(net).run(x, record="s")
    b = Emulator(tmp_path / "n.net").run(x, record="s")
    for i in a.layers:
        np.testing.assert_array_equal(a[i, "s"], b[i, "s"])


def test_threshold_beyond_17_bits_in_a_file_never_fires(tmp_path):
    """lava-dl's Affine writes vThMant 262143: vThMant << 6 >= 2**23 lies above every
    saturated voltage, so the neuron integrates and never fires (netx passes it on)."""
    from loihi_slayer.hdf5 import save_network

    w = np.full((2, 3), 254, np.int64)
    net = Network([InputLayer((3,)), DenseLayer((2,), w, neuron=CubaNeuron(0, 0, 262143))])
    save_network(net, tmp_path / "affine.net")
    tr = Emulator(tmp_path / "affine.net").run(np.ones((3, 50), np.int64), record=("s", "v"))
    assert tr[1, "s"].sum() == 0
    assert tr[1, "v"].max() == 2**23 - 1  # saturated, still no spike

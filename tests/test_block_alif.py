"""ALIF blocks: lava-dl's block list, export -> netx file -> load -> Emulator with a zero
train-to-chip gap after training steps (bias, delays, refractory delay, every block type,
random networks with ties and saturation), inspect, and export refusals.

The alignment rule is the one of ``tests/test_zero_gap.py`` (spec §7.2/§7.4).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import train_steps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loihi_slayer import block, gap, hdf5
from loihi_slayer.block import alif, cuba
from loihi_slayer.cli import main
from loihi_slayer.errors import ParameterError
from loihi_slayer.neuron.norm import MeanOnlyBatchNorm

T = 24


def params(th=0.5, step=0.1, di=0.25, dv=0.03, dth=0.05, dref=0.2, norm=False, **kw):
    p = {
        "threshold": th,
        "threshold_step": step,
        "current_decay": di,
        "voltage_decay": dv,
        "threshold_decay": dth,
        "refractory_decay": dref,
        **kw,
    }
    return dict(p, norm=MeanOnlyBatchNorm) if norm else p


def spikes(shape, p=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).float()


def randomize_delays(net, hi=5.0):
    with torch.no_grad():
        for b in net:
            if getattr(b, "delay", None) is not None:
                b.delay.delay.uniform_(0, hi)


def assert_zero_gap_via_file(net, x, path, min_events):
    """Export to a netx file, load it back, emulate, compare every layer."""
    block.export_network(net, path)
    loaded = hdf5.load_network(path)
    types = {
        getattr(layer.neuron, "type", None)
        for layer in loaded.layers
        if getattr(layer, "neuron", None) is not None
    }
    assert types == {"ALIF"}, types
    rep = gap.compare_with_emulator(net, x, path)
    assert rep.compared and rep.ok and not rep.skipped, rep.summary()
    outs = gap._eval_outputs(list(net), x)
    assert sum(int((o != 0).sum()) for o in outs) >= min_events
    return rep


def test_block_types_are_lava_dls_alif_list():
    # lava-dl's block reference lists these for alif (no Affine, no Output)
    assert sorted(alif.__all__) == sorted(
        [
            "AbstractALIF",
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
    )
    b = alif.Dense(params(), 4, 3)
    assert b.block_name == "block.alif.Dense" and b.neuron.shape == (3,)


def test_dense_chain_bias_delays_refractory(tmp_path):
    x = spikes((2, 12, T), p=0.4)
    x[..., 0] = 0
    net = torch.nn.Sequential(
        alif.Dense(params(norm=True, requires_grad=True), 12, 10, weight_scale=3, delay=True),
        alif.Dense(params(ref_delay=3), 10, 8, weight_scale=3),
        alif.Dense(params(norm=True, ref_delay=2), 8, 6, weight_scale=3, delay=True),
    )
    randomize_delays(net)
    train_steps(net, x)
    n0 = net[0].neuron
    assert n0.current_decay.grad.abs().sum() > 0 and n0.voltage_decay.grad.abs().sum() > 0
    with torch.no_grad():  # learnt decays away from their start (Adam moves them slowly)
        n0.current_decay += 100.4
        n0.voltage_decay += 7.6
    rep = assert_zero_gap_via_file(net, x, tmp_path / "dense.net", min_events=40)
    assert all(rep.compared[i] > 0 for i in range(3))
    rec = hdf5.load_network(tmp_path / "dense.net")
    assert rec.layers[0].bias is not None and np.any(rec.layers[0].bias != 0)
    assert int(rec.layers[1].neuron.params["refDelay"]) == 3


def test_conv_flatten_dense_recurrent(tmp_path):
    x = spikes((2, 3, 8, 8, T))
    net = torch.nn.Sequential(
        alif.Input(None),
        alif.Conv(params(norm=True), 3, 4, 3, padding=1, weight_scale=2, delay=True),
        alif.Conv(params(ref_delay=2), 4, 5, 3, stride=2, weight_scale=2),
        alif.Flatten(),
        alif.Dense(params(norm=True), 45, 10, weight_scale=3),
        alif.Recurrent(params(ref_delay=3), 10, 6, weight_scale=3),
    )
    assert block.init_shapes(net, (3, 8, 8)) == (6,)
    randomize_delays(net)
    train_steps(net, x)
    assert_zero_gap_via_file(net, x, tmp_path / "conv.net", min_events=100)


def test_pool_convt_unpool_average(tmp_path):
    x = spikes((2, 2, 8, 8, T))
    net = torch.nn.Sequential(
        alif.Input(None),
        alif.Pool(params(), 2, weight_scale=0.5, input_shape=(2, 8, 8)),
        alif.ConvT(params(), 2, 3, 3, stride=2, weight_scale=2, input_shape=(4, 4)),
        alif.Unpool(params(), 2, weight_scale=0.6, input_shape=(3, 9, 9)),
        alif.Flatten(),
        alif.Average(9),
    )
    train_steps(net, x)
    assert_zero_gap_via_file(net, x, tmp_path / "pool.net", min_events=100)


def test_input_neuron_kwta_and_decimation(tmp_path):
    x = torch.rand(2, 12, T, generator=torch.Generator().manual_seed(3)) * 2
    net = torch.nn.Sequential(
        alif.Input(params(th=0.3), weight=1.5, bias=0.25),
        alif.Dense(params(), 12, 10, weight_scale=3),
        alif.KWTA(params(), 10, 6, num_winners=2, weight_scale=3, delay_shift=False),
        alif.TimeDecimation(4),
    )
    train_steps(net, x)
    assert_zero_gap_via_file(net, x, tmp_path / "kwta.net", min_events=20)


@pytest.mark.parametrize("family", [cuba, alif])
def test_input_layer_affine_transform_is_not_applied_twice(family, tmp_path):
    """The input neuron receives Q(x)·Q(w) + Q(b) once: netx stores the input layer's
    weight/bias but never applies them (a large bias makes a double count obvious)."""
    p = (
        {"threshold": 1.0, "current_decay": 1.0, "voltage_decay": 1.0}
        if family is cuba
        else params(th=1.0, step=0.0, di=1.0, dv=1.0, dth=1.0, dref=1.0)
    )
    # no memory: the input neuron spikes when Q(x)·Q(w) + Q(b) (+ a second Q(b)) > 1
    net = torch.nn.Sequential(
        family.Input(p, weight=1.0, bias=0.5, shape=(12,)), family.Dense(p, 12, 4, weight_scale=3)
    )
    x = torch.rand(2, 12, T, generator=torch.Generator().manual_seed(4))
    rep = gap.compare_with_emulator(net, x)
    assert rep.ok and rep.compared[0] > 0, rep.summary()


def test_gap_detector_sees_alif_fields():
    """The comparison is sensitive to the ALIF-only fields of the file."""
    x = spikes((1, 12, T), p=0.5)
    x[..., 0] = 0
    net = torch.nn.Sequential(alif.Dense(params(step=0.3, dth=0.01), 12, 10, weight_scale=3))
    rec = block.network_record(net)
    assert gap.compare_with_emulator(net, x, rec).ok
    rec.layers[0].neuron.params["vThStep"] = np.int64(0)
    rep = gap.compare_with_emulator(net, x, rec)
    assert not rep.ok and rep.mismatches[0] > 0


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_in=st.integers(1, 6),
    hidden=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    th=st.sampled_from([0.0, 2 / 64, 0.5, 60.0]),
    step=st.sampled_from([0.0, 2 / 64, 1.0]),
    decays=st.sampled_from([(0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0), (0.25, 0.03, 0.05, 0.2)]),
    norm=st.booleans(),
    delay=st.booleans(),
    ref_delay=st.sampled_from([1, 1, 4]),
    scale=st.sampled_from([1.0, 4.0, 100.0]),
    seed=st.integers(0, 2**16),
)
def test_random_dense_networks(n_in, hidden, th, step, decays, norm, delay, ref_delay, scale, seed):
    """Random sizes and parameters: ties (zero/small thresholds, no-memory decays with
    integer-valued weights) and saturation (weight scale 100 with no decay)."""
    torch.manual_seed(seed)
    x = spikes((2, n_in, T), p=0.6, seed=seed)
    x[..., 0] = 0
    di, dv, dth, dref = decays
    blocks, prev = [], n_in
    for k, h in enumerate(hidden):
        p = params(th, step, di, dv, dth, dref, norm=norm and k % 2 == 0, ref_delay=ref_delay)
        blocks.append(alif.Dense(p, prev, h, weight_scale=scale, delay=delay))
        prev = h
    net = torch.nn.Sequential(*blocks)
    randomize_delays(net, 3.0)
    train_steps(net, x, steps=2, seed=seed)
    try:
        rec = block.network_record(net)
    except ParameterError as exc:  # the one netx sign-mode edge case the export refuses
        assert "inhibitory sign mode" in str(exc)
        return
    rep = gap.compare_with_emulator(net, x, rec)
    assert rep.ok, rep.summary()


def test_inspect_shows_alif_fields(tmp_path, capsys):
    net = torch.nn.Sequential(
        alif.Dense(params(), 12, 10), alif.Dense(params(step=0.5, ref_delay=3), 10, 4)
    )
    block.export_network(net, tmp_path / "a.net")
    assert main(["inspect", str(tmp_path / "a.net")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "other neuron fields" in lines[1]
    row = lines[3].split()
    # #, type, shape, neuron, iDecay, vDecay, vThMant, refDelay
    assert row[:8] == ["1", "dense", "4", "ALIF", "1024", "123", "32", "3"]
    assert "vThStep=32" in lines[3] and "thDecay=205" in lines[3] and "refDecay=819" in lines[3]


def test_export_refusals_and_block_errors():
    b = alif.Dense(params(graded_spike=True), 4, 3)
    with pytest.raises(ParameterError, match="gradedSpike.*binary spikes"):
        b.to_layer()
    with pytest.raises(ParameterError) as err:
        alif.Dense(params(dth=2.0), 4, 3)
    msg = str(err.value)
    assert "block.alif.Dense" in msg and "threshold_decay" in msg and "[0, 4096]" in msg
    with pytest.raises(ParameterError, match="block.alif.Conv: .*ref_delay.*\\[1, 63\\]"):
        alif.Conv(params(ref_delay=99), 2, 2, 3)


def test_bad_alif_files_are_refused(tmp_path):
    import h5py

    from loihi_slayer.emulate import Emulator
    from loihi_slayer.errors import FormatError

    path = tmp_path / "bad.net"
    block.export_network(torch.nn.Sequential(alif.Dense(params(), 12, 10)), path)
    with h5py.File(path, "a") as f:
        del f["layer/0/neuron/vThStep"]
    with pytest.raises(FormatError, match="layer/0/neuron.*vThStep"):
        Emulator(path)
    with h5py.File(path, "a") as f:
        f["layer/0/neuron/vThStep"] = 200000
    with pytest.raises(ParameterError, match="layer 0.*v_th_step = 200000.*\\[0, 131071\\]"):
        Emulator(path)


@pytest.mark.parametrize("family", [cuba, alif])
def test_input_block_norm_is_refused_at_export(family):
    """A netx input layer has no neuron bias: exporting an input norm would be a silent gap."""
    p = (
        {"threshold": 0.5, "current_decay": 0.25, "voltage_decay": 0.03}
        if family is cuba
        else params()
    )
    b = family.Input(dict(p, norm=MeanOnlyBatchNorm), shape=(12,))
    with pytest.raises(ParameterError, match=f"block.{family.__name__.split('.')[-1]}.Input.*norm"):
        b.to_layer()

"""Zero train-to-chip gap for the resonator blocks (``block.{rf, rf_iz, adrf, adrf_iz}``).

Random networks are exported to a ``.net`` file, loaded back
(:func:`loihi_slayer.hdf5.load_network`), emulated and compared value for value
with the training forward by :func:`loihi_slayer.gap.compare_with_emulator`
(alignment: spec ``loihi-fixed-point.md`` §7.2). The parameter regimes make the
networks reach every phase quadrant of the resonator state, exact ties of the
spike condition (``re == θ`` at an upward zero crossing of ``im`` for the phase
models, ``im == θ`` for the Izhikevich models; ``θ`` includes ``th + r`` for the
adaptive ones) and 24-bit saturation; the test checks that they did, from the
neuron traces. With and without axonal delays, with an input block with a
neuron. Trained complex ``Conv -> Pool`` and ``ConvT -> Unpool`` chains (``weight/real``,
``weight/imag``) keep a zero gap, and a changed imaginary weight in the file is detected;
complex ``Recurrent``, ``KWTA`` and ``Affine`` are refused at export.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from loihi_slayer import block, gap, hdf5
from loihi_slayer.block import adrf, adrf_iz, rf, rf_iz
from loihi_slayer.errors import ParameterError, UnsupportedLayerError

STATE_MAX = (1 << 23) - 1
MODULES = {"rf": rf, "rf_iz": rf_iz, "adrf": adrf, "adrf_iz": adrf_iz}
PHASE = {"rf", "adrf"}

#: (threshold, period, decay, weight mantissa bound): memoryless ties, mid, saturating
REGIMES = {
    "ties": (2 / 64, 8.0, 1.0, 6),
    "mid": (0.25, 7.0, 0.05, 60),
    "saturate": (2000.0, 1000.0, 0.0, 254),
}


def neuron_params(name, threshold, period, decay):
    p = {"threshold": threshold, "period": period, "decay": decay}
    if name.startswith("adrf"):
        p.update(threshold_step=2 / 64, threshold_decay=0.25, refractory_decay=0.5)
    return p


def random_weights(syn, bound, gen, drive=False):
    """Even mantissas in [-bound, bound] (the 8-bit grid) in both parts of a complex synapse;
    ``drive``: real part in [0, bound], imaginary part in [-bound, 0] (drives the state
    into saturation, ``re`` up and ``im`` down)."""
    with torch.no_grad():
        for sign, part in ((1, syn.real), (-1, syn.imag)):
            lo = 0 if drive else -bound // 2
            m = torch.randint(lo, bound // 2 + 1, part.weight.shape, generator=gen) * 2
            part.weight.copy_((m if not drive else sign * m).float() / 64)


def network(name, regime, delay, seed, input_block=False):
    th, period, decay, bound = REGIMES[regime]
    p = neuron_params(name, th, period, decay)
    mod = MODULES[name]
    gen = torch.Generator().manual_seed(seed)
    blocks = [mod.Input(p, shape=(16,))] if input_block else []
    blocks += [mod.Dense(p, 16, 12), mod.Dense(p, 12, 8, delay=delay)]
    for b in blocks[-2:]:
        random_weights(b.synapse, bound, gen, drive=regime == "saturate")
    if delay:
        with torch.no_grad():
            blocks[-1].delay.delay.copy_(torch.randint(0, 5, (8,), generator=gen).float())
    return torch.nn.Sequential(*blocks)


def spikes(shape, rate, seed, first_zero=True):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=g) < rate).float()
    if first_zero:
        x[..., 0] = 0
    return x


def coverage(name, net, x):
    """Quadrants, decisive ties and saturation reached by the neurons of ``net`` on ``x``."""
    quadrants, ties, saturated = set(), 0, False
    y = x
    with torch.no_grad():
        for b in net:
            if isinstance(b, block.base.AbstractInput):
                y = b(y)
                continue
            z = b.synapse(y)
            tr = b.neuron.dynamics(z)
            re = np.rint(tr[0].double().numpy() * 4096).astype(np.int64)
            im = np.rint(tr[1].double().numpy() * 4096).astype(np.int64)
            th = np.full_like(re, b.neuron.v_th_mant * 64)
            if name.startswith("adrf"):
                th = np.rint((tr[2] + tr[3]).double().numpy() * 4096).astype(np.int64)
            # quadrant index: bit 0 = re >= 0, bit 1 = im >= 0
            quadrants |= set(np.unique((re >= 0).astype(int) + 2 * (im >= 0)).tolist())
            im_prev = np.concatenate([np.zeros_like(im[..., :1]), im[..., :-1]], -1)
            if name in PHASE:
                ties += int(np.sum((re == th) & (im >= 0) & (im_prev < 0)))
            else:
                ties += int(np.sum(im == th))
            saturated |= bool(np.any(np.abs(re) == STATE_MAX) or np.any(np.abs(im) == STATE_MAX))
            y = b(y)
    return quadrants, ties, saturated


def assert_zero_gap(net, x, tmp_path, min_events=1):
    path = tmp_path / "net.net"
    block.export_network(net, path)
    loaded = hdf5.load_network(path)
    rep = gap.compare_with_emulator(net, x, network=loaded)
    assert rep.compared and not rep.skipped, rep.summary()
    assert rep.ok, rep.summary()
    outs = gap._eval_outputs(list(net), x)
    assert sum(int((o != 0).sum()) for o in outs) >= min_events
    return path


@pytest.mark.parametrize("name", list(MODULES))
def test_zero_gap_every_regime_with_and_without_delay(name, tmp_path):
    quadrants, ties, saturated = set(), 0, False
    for i, regime in enumerate(REGIMES):
        for delay in (False, True):
            seed = 10 * i + int(delay)
            net = network(name, regime, delay, seed)
            rate, steps = (0.9, 80) if regime == "saturate" else (0.3, 40)
            x = spikes((2, 16, steps), rate, seed)
            # a saturated phase resonator may never cross zero again: no spikes required
            assert_zero_gap(net, x, tmp_path, min_events=0 if regime == "saturate" else 1)
            q, t, s = coverage(name, net, x)
            quadrants |= q
            ties += t
            saturated |= s
    assert quadrants == {0, 1, 2, 3}, "not every phase quadrant was reached"
    assert ties > 0, "no exact tie of the spike condition was reached"
    assert saturated, "no state reached 24-bit saturation"


@pytest.mark.parametrize("name", list(MODULES))
def test_zero_gap_with_input_neuron(name, tmp_path):
    net = network(name, "mid", delay=True, seed=3, input_block=True)
    x = spikes((2, 16, 30), 0.4, 4, first_zero=False) * 0.5
    assert_zero_gap(net, x, tmp_path)


@pytest.mark.parametrize("name", ["rf", "adrf_iz"])
def test_zero_gap_per_channel_parameters(name, tmp_path):
    p = neuron_params(name, 0.25, (5.0, 30.0), (0.0, 0.1))
    if name.startswith("adrf"):
        p.update(threshold_decay=(0.0, 0.5), refractory_decay=(0.1, 0.9))
    p["shared_param"] = False
    mod = MODULES[name]
    net = torch.nn.Sequential(mod.Dense(p, 16, 12), mod.Dense(p, 12, 8, delay=True))
    gen = torch.Generator().manual_seed(9)
    for b in net:
        random_weights(b.synapse, 60, gen)
    assert np.unique(np.asarray(net[0].neuron.cx_sin_decay)).size > 1
    assert_zero_gap(net, spikes((2, 16, 40), 0.3, 10), tmp_path)


def _text(v) -> str:
    v = np.asarray(v).reshape(-1)[0] if np.ndim(v) else v
    return v.decode() if isinstance(v, bytes) else str(v)


def test_exported_fields(tmp_path):
    net = network("adrf", "mid", delay=True, seed=5)
    path = assert_zero_gap(net, spikes((1, 16, 20), 0.3, 6), tmp_path)
    syn = net[1].synapse
    with h5py.File(path, "r") as f:
        layer = f["layer/1"]
        assert _text(layer["type"][()]) == "dense"
        re = layer["weight/real"][()]
        im = layer["weight/imag"][()]
        for got, part in ((re, syn.real), (im, syn.imag)):
            want = np.rint(part.weight[..., 0, 0, 0].detach().numpy() * 64)
            np.testing.assert_array_equal(got, want)
        neuron = layer["neuron"]
        assert _text(neuron["type"][()]) == "ADRF_PHASE"
        dev = net[1].neuron.device_params
        for field in ("sinDecay", "cosDecay", "thDecay", "refDecay", "vThMant", "vThStep"):
            assert int(np.asarray(neuron[field][()]).reshape(-1)[0]) == dev[field], field
        assert "delay" in layer


P = {"threshold": 0.25, "period": 8.0, "decay": 0.1}
PA = dict(P, threshold_step=0.1, threshold_decay=0.1, refractory_decay=0.1)


def family_params(name):
    return PA if name.startswith("adrf") else P


@pytest.mark.parametrize("name", list(MODULES))
def test_every_block_type_runs_and_recurrent_export_is_refused(name):
    mod = MODULES[name]
    p = family_params(name)
    expected = {
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
    }
    if name in ("rf", "rf_iz"):
        expected.add("Affine")
    abstract = {
        "rf": "AbstractRF",
        "rf_iz": "AbstractRFIz",
        "adrf": "AbstractADRF",
        "adrf_iz": "AbstractADRFIZ",
    }
    expected.add(abstract[name])
    assert set(mod.__all__) == expected  # lava-dl's block reference lists exactly these
    img = torch.rand(2, 2, 6, 6, 6)
    vec = torch.rand(2, 4, 6)
    cases = {
        "Conv": (mod.Conv(p, 2, 3, 3, padding=1), img),
        "ConvT": (mod.ConvT(p, 2, 3, 3, stride=2), img),
        "Pool": (mod.Pool(p, 2), img),
        "Unpool": (mod.Unpool(p, 2), img),
        "Recurrent": (mod.Recurrent(p, 4, 5), vec),
        "KWTA": (mod.KWTA(p, 4, 5, 2), vec),
    }
    for kind, (b, x) in cases.items():
        y = b(x)
        assert y.shape[0] == 2 and y.shape[-1] == 6
        learnable = [p for p in b.synapse.parameters() if p.requires_grad]
        if kind in ("Pool", "Unpool"):  # a fixed kernel, as lava-dl
            assert not learnable
        else:  # trains: a gradient reaches both weight parts
            (y * torch.rand_like(y)).sum().backward()
            assert len(learnable) == 2 and all(p.grad is not None for p in learnable), kind
        if kind in ("Recurrent", "KWTA"):  # no netx record for complex feedback
            with pytest.raises(
                UnsupportedLayerError, match=rf"block\.{name}\.{kind}: cannot be exported"
            ):
                b.to_layer()
        else:  # the spatial blocks export weight/real and weight/imag
            layer = b.to_layer()
            assert layer.weight_imag is not None and layer.weight_imag.shape == layer.weight.shape
    y = mod.Flatten()(img)
    assert mod.Average(2)(mod.Dense(p, 4, 4)(vec)).shape == (2, 2, 6)
    assert mod.TimeDecimation(2)(vec).shape == (2, 4, 3)
    assert y.shape == (2, 72, 6)
    if "Affine" in expected:
        b = mod.Affine(p, 4, 3)
        re, im = b(vec)
        assert re.shape == im.shape == (2, 3, 6)
        with pytest.raises(UnsupportedLayerError, match=rf"block\.{name}\.Affine: cannot be"):
            b.to_layer()


@pytest.mark.parametrize(
    "name, bad, match",
    [
        ("rf", {"period": 3.5}, r"block\.rf\.Dense: .*period = 3.5 is outside .*\[4, inf\)"),
        ("rf_iz", {"decay": 1.25}, r"block\.rf_iz\.Dense: .*decay = 1.25 .*\[0, 1\]"),
        ("adrf", {"threshold": 3000.0}, r"block\.adrf\.Dense: .*vThMant = 192000.*131071"),
        ("adrf_iz", {"threshold_step": -1.0}, r"block\.adrf_iz\.Dense: .*vThStep = -64"),
    ],
)
def test_block_construction_errors_name_the_block(name, bad, match):
    with pytest.raises(ParameterError, match=match):
        MODULES[name].Dense(dict(family_params(name), **bad), 4, 3)


def test_graded_export_refused():
    net = torch.nn.Sequential(rf.Dense(dict(P, graded_spike=True), 4, 3))
    net(torch.rand(1, 4, 5))
    with pytest.raises(ParameterError, match="gradedSpike"):
        net[0].to_layer()


def test_training_moves_weights_and_keeps_zero_gap(tmp_path):
    net = network("rf_iz", "mid", delay=False, seed=7)
    x = spikes((2, 16, 30), 0.3, 8)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    before = net[0].synapse.real.weight.detach().clone()
    for _ in range(3):
        loss = ((net(x) - 0.5) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(before, net[0].synapse.real.weight)
    assert_zero_gap(net, x, tmp_path)


# ------------------------------------------------------ complex conv, convT, pool, unpool


def spatial_network(name, transpose=False, seed=0):
    """``Conv -> Pool -> Flatten -> Dense`` (``transpose``: ``ConvT -> Unpool -> ...``) on a
    (2, 6, 6) input, weights on the 8-bit grid (mid regime, bound 60)."""
    th, period, decay, bound = REGIMES["mid"]
    p = neuron_params(name, th, period, decay)
    mod = MODULES[name]
    if transpose:  # (2, 6, 6) -> (3, 8, 8) -> (3, 16, 16)
        conv, pool = mod.ConvT(p, 2, 3, 3, stride=1, padding=1, dilation=2), mod.Unpool(p, 2)
        n = 3 * 16 * 16
    else:  # (2, 6, 6) -> (4, 6, 6) -> (4, 3, 3)
        conv, pool = mod.Conv(p, 2, 4, 3, padding=1, delay=True), mod.Pool(p, 2)
        n = 4 * 3 * 3
    net = torch.nn.Sequential(conv, pool, mod.Flatten(), mod.Dense(p, n, 5))
    gen = torch.Generator().manual_seed(seed)
    for b in (conv, net[3]):
        random_weights(b.synapse, bound, gen)
    if not transpose:
        with torch.no_grad():
            conv.delay.delay.copy_(torch.randint(0, 4, (4,), generator=gen).float())
    return net


def train(net, x, steps=3):
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    before = [p.detach().clone() for p in net.parameters()]
    for _ in range(steps):
        loss = ((net(x) - 0.5) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def layer_events(net, x):
    return [int((o != 0).sum()) for o in gap._eval_outputs(list(net), x)]


@pytest.mark.parametrize("name", list(MODULES))
def test_zero_gap_trained_conv_pool_dense(name, tmp_path):
    net = spatial_network(name, seed=11)
    x = spikes((2, 2, 6, 6, 30), 0.3, 12)
    train(net, x)
    path = assert_zero_gap(net, x, tmp_path)
    assert all(e > 0 for e in layer_events(net, x)), layer_events(net, x)
    with h5py.File(path, "r") as f:
        assert [_text(f[f"layer/{i}/type"][()]) for i in range(4)] == [
            "conv",
            "pool",
            "flatten",
            "dense",
        ]


@pytest.mark.parametrize("name", ["rf", "adrf_iz"])
def test_zero_gap_trained_convT_unpool_dense(name, tmp_path):
    net = spatial_network(name, transpose=True, seed=13)
    x = spikes((2, 2, 6, 6, 30), 0.3, 14)
    train(net, x)
    path = assert_zero_gap(net, x, tmp_path)
    assert all(e > 0 for e in layer_events(net, x)), layer_events(net, x)
    with h5py.File(path, "r") as f:
        assert _text(f["layer/0/type"][()]) == "convT"
        assert _text(f["layer/1/type"][()]) == "unpool"


def test_exported_conv_pool_fields(tmp_path):
    # independent reference: the grid weights set above, times 64 (quantize_8bit is exact there)
    net = spatial_network("rf", seed=15)
    x = spikes((1, 2, 6, 6, 20), 0.3, 16)
    net(x)  # sets the spatial shapes
    path = assert_zero_gap(net, x, tmp_path)
    with h5py.File(path, "r") as f:
        for i, blk in ((0, net[0]), (1, net[1])):
            for part_name, part in (("real", blk.synapse.real), ("imag", blk.synapse.imag)):
                got = f[f"layer/{i}/weight/{part_name}"][()]
                want = np.rint(part.weight[..., 0].detach().double().numpy() * 64)
                if i == 1:  # fixed pool kernel: weight_scale 1 -> mantissa 64
                    want = np.full_like(want, 64)
                np.testing.assert_array_equal(got, want, err_msg=f"layer {i} {part_name}")


@pytest.mark.parametrize("layer_index", [0, 1])
def test_changed_imag_weight_fails_the_checker(layer_index, tmp_path):
    net = spatial_network("adrf", seed=17)
    x = spikes((2, 2, 6, 6, 30), 0.3, 18)
    net(x)
    path = assert_zero_gap(net, x, tmp_path)
    with h5py.File(path, "r+") as f:
        imag = f[f"layer/{layer_index}/weight/imag"]
        w = imag[()]
        w.reshape(-1)[0] = 254 if w.reshape(-1)[0] < 0 else -254
        imag[...] = w
    rep = gap.compare_with_emulator(net, x, network=hdf5.load_network(path))
    assert rep.compared and not rep.ok, rep.summary()

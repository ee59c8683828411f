"""NIR export/import: bit-exact round trip through a NIR file, foreign float graphs, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import train_steps

from loihi_slayer import block, hdf5
from loihi_slayer.block import cuba, sigma_delta
from loihi_slayer.emulate import Emulator
from loihi_slayer.errors import ParameterError, UnsupportedLayerError

nir = pytest.importorskip("nir", reason="needs the [nir] extra")
lnir = pytest.importorskip("loihi_slayer.nir")

T = 20


def params(th=0.5, di=0.25, dv=0.03, norm=False):
    from loihi_slayer.neuron.norm import MeanOnlyBatchNorm

    p = {"threshold": th, "current_decay": di, "voltage_decay": dv}
    return dict(p, norm=MeanOnlyBatchNorm) if norm else p


def spikes(shape, p=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).float()


def roundtrip(net, tmp_path, **kw):
    path = tmp_path / "net.nir"
    lnir.write(path, net, **kw)
    return lnir.read(path)


def test_dense_roundtrip_through_file_is_bit_exact(tmp_path):
    x = spikes((2, 12, T))
    x[..., 0] = 0
    net = torch.nn.Sequential(
        cuba.Dense(params(norm=True), 12, 10, weight_scale=3, delay=True),
        cuba.Dense(params(), 10, 8, weight_scale=3),
        cuba.Affine(params(), 8, 4, weight_scale=3),
    )
    with torch.no_grad():
        net[0].delay.delay.uniform_(0, 4)
    train_steps(net, x)
    res = roundtrip(net, tmp_path)
    assert res.report.exact
    # the imported record is the exported one, field for field
    assert res.network == block.network_record(net)
    rep = block.compare_with_emulator(net, x, res.network)
    assert rep.ok and not rep.skipped, rep.summary()
    assert sum(rep.compared.values()) > 0


def test_conv_pool_flatten_roundtrip_is_bit_exact(tmp_path):
    x = spikes((2, 2, 8, 8, T))
    net = torch.nn.Sequential(
        cuba.Input(None),
        cuba.Pool(params(), 2, weight_scale=0.5, input_shape=(2, 8, 8)),
        cuba.Conv(
            params(norm=True), 2, 4, 3, padding=1, weight_scale=2, delay=True, input_shape=(4, 4)
        ),
        cuba.Flatten(),
        cuba.Dense(params(), 64, 6, weight_scale=3),
    )
    block.init_shapes(net, (2, 8, 8))
    train_steps(net, x)
    exported = block.network_record(net)
    res = roundtrip(net, tmp_path)
    assert res.report.exact and res.network == exported
    assert res.input_shape == (2, 8, 8)
    # the HDF5 files written from both records are byte-for-byte the same network
    hdf5.save_network(exported, tmp_path / "a.net")
    hdf5.save_network(res.network, tmp_path / "b.net")
    assert hdf5.load_network(tmp_path / "a.net") == hdf5.load_network(tmp_path / "b.net")
    rep = block.compare_with_emulator(net, x, res.network)
    assert rep.ok and not rep.skipped, rep.summary()


def test_input_neuron_roundtrip(tmp_path):
    x = torch.rand(2, 6, T) * 2
    net = torch.nn.Sequential(
        cuba.Input(params(th=0.3), weight=1.5, bias=0.1, shape=(6,)),
        cuba.Dense(params(), 6, 5, weight_scale=3),
    )
    train_steps(net, x)
    res = roundtrip(net, tmp_path)
    assert res.network == block.network_record(net)
    assert block.compare_with_emulator(net, x, res.network).ok


def test_float_view_follows_the_documented_mapping():
    net = torch.nn.Sequential(cuba.Dense(params(th=0.5, di=0.25, dv=0.125), 4, 3))
    rec = block.network_record(net)
    g = lnir.export(net, dt=1e-3)
    lif = g.nodes["0_neuron"]
    assert isinstance(lif, nir.CubaLIF)
    n = rec.layers[0].neuron
    # spec: tau = 4096 dt / decay, v_th = vThMant / 64, W = m / 64
    np.testing.assert_allclose(lif.tau_syn, 4096e-3 / n.i_decay)
    np.testing.assert_allclose(lif.tau_mem, 4096e-3 / n.v_decay)
    np.testing.assert_allclose(lif.v_threshold, n.v_th_mant / 64)
    np.testing.assert_allclose(g.nodes["0_linear"].weight, rec.layers[0].weight / 64)
    # Euler with r = tau_mem/dt, w_in = tau_syn/dt: unit gain from input to current to voltage
    np.testing.assert_allclose(lif.r * 1e-3 / lif.tau_mem, 1)
    np.testing.assert_allclose(lif.w_in * 1e-3 / lif.tau_syn, 1)


def _float_sim(w, tau_syn, tau_mem, r, w_in, v_th, x, dt):
    """Forward-Euler NIR CubaLIF (the float dynamics the NIR docs define), spikes out."""
    i = np.zeros(w.shape[0])
    v = np.zeros(w.shape[0])
    out = []
    for t in range(x.shape[1]):
        i = i + dt / tau_syn * (-i + w_in * (w @ x[:, t]))
        v = v + dt / tau_mem * (-v + r * i)
        s = v > v_th
        v = np.where(s, 0.0, v)
        out.append(s)
    return np.array(out).T


def test_foreign_cubalif_graph_quantizes_within_report():
    """A graph written the snnTorch way (float taus, r = tau/dt, w_in = tau_syn/dt)."""
    dt = 1e-4
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1.0, (6, 10))
    tau_syn, tau_mem = np.full(6, 4e-4), np.full(6, 8e-4)
    v_th = np.full(6, 1.5)
    lif = nir.CubaLIF(
        tau_syn=tau_syn,
        tau_mem=tau_mem,
        r=tau_mem / dt,
        v_leak=np.zeros(6),
        v_threshold=v_th,
        w_in=tau_syn / dt,
    )
    graph = nir.NIRGraph.from_list(nir.Linear(weight=w), lif)
    res = lnir.import_(graph, dt=dt)
    (layer,) = res.network.layers
    n = layer.neuron
    # decays from the documented mapping: 4096 dt / tau
    assert n.i_decay == 1024 and n.v_decay == 512
    q = res.report.layers[0]
    assert not q.exact and q.weight_error <= 0.5 / 255 + 1e-12
    assert q.threshold_error < 1e-3 and q.decay_error == 0
    # chip weights/threshold reproduce the float ratios within the reported error
    scale = layer.weight.astype(float) * 2.0**n.wgt_exp / (n.v_th_mant)
    np.testing.assert_allclose(scale, w / v_th[:, None], atol=3 * q.weight_error * abs(w).max())
    # emulated spikes agree with the float model on almost every bin, one step later (the
    # chip's synaptic hop); quantization and rounding toward zero flip a few
    x = (rng.random((10, 200)) < 0.3).astype(np.int64)
    tr = Emulator(res.network).run(x, 200, record={0: ("s",)})
    chip = tr.layers[0].data["s"] != 0
    ref = _float_sim(w, tau_syn, tau_mem, tau_mem / dt, tau_syn / dt, v_th, x, dt)
    assert ref.sum() > 20
    assert np.mean(chip[:, 1:] == ref[:, :-1]) > 0.98


def test_foreign_conv_lif_sumpool_graph():
    dt = 1e-3
    rng = np.random.default_rng(1)
    conv = nir.Conv2d(
        input_shape=(6, 6),
        weight=rng.normal(0, 1, (3, 2, 3, 3)),
        stride=1,
        padding=1,
        dilation=1,
        groups=1,
        bias=np.zeros(3),
    )
    shp = (3, 6, 6)
    lif = nir.LIF(
        tau=np.full(shp, 4e-3), r=np.full(shp, 4.0), v_leak=np.zeros(shp), v_threshold=np.ones(shp)
    )
    pool = nir.SumPool2d(
        kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
    )
    shp2 = (3, 3, 3)
    lif2 = nir.LIF(
        tau=np.full(shp2, 2e-3),
        r=np.full(shp2, 2.0),
        v_leak=np.zeros(shp2),
        v_threshold=np.full(shp2, 0.5),
    )
    li = nir.LI(tau=np.full(4, 1e-2), r=np.full(4, 10.0), v_leak=np.zeros(4))
    graph = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type={"input": np.array([2, 6, 6])}),
            "conv": conv,
            "lif": lif,
            "pool": pool,
            "lif2": lif2,
            "flat": nir.Flatten(input_type={"input": np.array(shp2)}, start_dim=0),
            "fc": nir.Affine(weight=rng.normal(0, 1, (4, 27)), bias=np.zeros(4)),
            "li": li,
            "out": nir.Output(output_type={"output": np.array([4])}),
        },
        edges=[
            ("in", "conv"),
            ("conv", "lif"),
            ("lif", "pool"),
            ("pool", "lif2"),
            ("lif2", "flat"),
            ("flat", "fc"),
            ("fc", "li"),
            ("li", "out"),
        ],
        type_check=False,
    )
    res = lnir.import_(graph, dt=dt)
    types = [type(layer).__name__ for layer in res.network.layers]
    assert types == ["InputLayer", "ConvLayer", "PoolLayer", "FlattenLayer", "DenseLayer"]
    conv_n = res.network.layers[1].neuron
    assert conv_n.i_decay == 4096 and conv_n.v_decay == 1024  # LIF: no current memory
    assert res.network.layers[4].neuron.v_th_mant == lnir.NEVER_SPIKE_V_TH_MANT
    assert len(res.report.layers) == 3
    x = (rng.random((2, 6, 6, 30)) < 0.4).astype(np.int64)
    tr = res.emulator().run(x, 30)
    assert tr.layers  # runs on the integer kernels


def test_unsupported_layers_are_refused_by_name():
    kw = cuba.KWTA(params(), 6, 4, num_winners=1)
    with pytest.raises(UnsupportedLayerError, match=r"layer 0 \(kwta\)"):
        lnir.export(torch.nn.Sequential(kw))
    sd = sigma_delta.Dense({"threshold": 0.1, "activation": torch.nn.functional.relu}, 6, 4)
    with pytest.raises(UnsupportedLayerError, match="layer 0 .*SDNN"):
        lnir.export(torch.nn.Sequential(sd))
    # neuron families without a converter yet (adaptive, resonators) are refused by name
    for kind in ("ALIF", "RF_IZHIKEVICH"):
        rec = hdf5.Network(
            [hdf5.DenseLayer((2,), np.ones((2, 3), np.int64), neuron=hdf5.GenericNeuron(kind))]
        )
        with pytest.raises(UnsupportedLayerError, match=f"layer 0 .*{kind}"):
            lnir.export(rec)
    # a neuron family NIR import does not know (e.g. a Threshold node after a synapse)
    graph = nir.NIRGraph.from_list(
        nir.Linear(weight=np.ones((2, 3))), nir.Threshold(threshold=np.ones(2))
    )
    with pytest.raises(UnsupportedLayerError, match="must be followed by a neuron"):
        lnir.import_(graph)


def test_import_refuses_bad_graphs():
    lif = nir.LIF(
        tau=np.ones(2),
        r=np.ones(2),
        v_leak=np.zeros(2),
        v_threshold=np.ones(2),
        v_reset=np.full(2, 0.5),
    )
    with pytest.raises(UnsupportedLayerError, match="v_reset"):
        lnir.import_(nir.NIRGraph.from_list(nir.Linear(weight=np.ones((2, 3))), lif))
    with pytest.raises(ParameterError, match="dt"):
        lnir.import_(nir.NIRGraph.from_list(nir.Linear(weight=np.ones((2, 3))), lif), dt=0)
    with pytest.raises(ParameterError, match="NIRGraph"):
        lnir.import_({"nodes": 1})


def test_foreign_input_neuron_uses_the_input_gain():
    """Input -> LIF: injected integers x add x << 6 to the current, so the threshold mantissa
    is v_threshold / gain with gain = (dt / tau) r (NIR LIF, forward Euler)."""
    dt = 1e-3
    lif_in = nir.LIF(
        tau=np.full(3, 4e-3),
        r=np.full(3, 8.0),
        v_leak=np.full(3, 40.0),
        v_threshold=np.full(3, 6.0),
    )
    lif = nir.LIF(
        tau=np.full(2, 2e-3), r=np.full(2, 2.0), v_leak=np.zeros(2), v_threshold=np.ones(2)
    )
    graph = nir.NIRGraph.from_list(lif_in, nir.Linear(weight=np.ones((2, 3))), lif)
    res = lnir.import_(graph, dt=dt)
    inp = res.network.layers[0]
    assert isinstance(inp, hdf5.InputLayer)
    gain = dt / 4e-3 * 8.0  # 2
    assert inp.neuron.v_th_mant == round(6.0 / gain) == 3
    assert inp.neuron.v_decay == 1024 and inp.neuron.i_decay == 4096
    # v_leak drives dt/tau * v_leak = 10 per step; in chip units 64/gain per float unit,
    # and bias mantissas count units of 64
    assert inp.bias == round(10 / gain) == 5
    x = np.ones((3, 12), np.int64)
    tr = Emulator(res.network).run(x, 12, record={0: ("s",)})
    assert tr.layers[0].data["s"].sum() > 0


def _records():
    from hypothesis import strategies as st

    @st.composite
    def network(draw):
        n_in = draw(st.integers(1, 6))
        layers, shape = [], n_in
        if draw(st.booleans()):
            layers.append(hdf5.InputLayer((n_in,)))
        for _ in range(draw(st.integers(1, 3))):
            n = draw(st.integers(1, 5))
            ints = st.integers
            decays = st.integers(0, 4096)
            if draw(st.booleans()):  # per-neuron decays
                decays = st.lists(decays, min_size=n, max_size=n).map(np.array)
            neuron = hdf5.CubaNeuron(
                i_decay=draw(decays),
                v_decay=draw(decays),
                v_th_mant=draw(st.sampled_from([draw(ints(0, (1 << 17) - 1)), (1 << 18) - 1])),
                ref_delay=draw(ints(1, 5)),
                graded_spike=draw(st.booleans()),
                wgt_exp=draw(ints(-8, 7)),
            )
            w = np.array(draw(st.lists(ints(-256, 255), min_size=n * shape, max_size=n * shape)))
            bias = np.array(draw(st.lists(ints(-4096, 4095), min_size=n, max_size=n)))
            delay = np.array(draw(st.lists(ints(0, 62), min_size=n, max_size=n)))
            layers.append(
                hdf5.DenseLayer(
                    (n,),
                    w.reshape(n, shape),
                    neuron=neuron,
                    bias=bias if draw(st.booleans()) else None,
                    delay=delay if draw(st.booleans()) else None,
                )
            )
            shape = n
        return hdf5.Network(layers)

    return network()


def test_random_records_roundtrip_exactly(tmp_path):
    """Any integer CUBA dense network (extreme decays, never-spiking thresholds, per-neuron
    decays, exponents, biases, delays) comes back field for field through a NIR file."""
    from hypothesis import HealthCheck, given, settings

    @settings(
        max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(_records())
    def check(net):
        path = tmp_path / "r.nir"
        lnir.write(path, net)
        res = lnir.read(path)
        assert res.report.exact
        assert res.network == net

    check()


def test_stale_metadata_falls_back_to_the_floats():
    """A tool that edits the float weights but keeps our metadata: the floats win."""
    net = hdf5.Network(
        [
            hdf5.DenseLayer(
                (3,), np.arange(-6, 6).reshape(3, 4) * 20, neuron=hdf5.CubaNeuron(1024, 512, 100)
            )
        ]
    )
    g = lnir.export(net, dt=1e-3)
    assert lnir.import_(g).report.exact
    g.nodes["0_linear"].weight = g.nodes["0_linear"].weight * 2  # edited elsewhere
    res = lnir.import_(g)
    (q,) = res.report.layers
    assert not q.exact and "no longer matches" in q.notes[0]
    # same ratios of weight to threshold as the edited float graph: 2x the original
    layer = res.network.layers[0]
    ratio = layer.weight * 2.0**layer.neuron.wgt_exp / layer.neuron.v_th_mant
    np.testing.assert_allclose(ratio, 2 * net.layers[0].weight / 100, atol=0.02)


@pytest.mark.parametrize("name", ["tiny.net", "network.net"])
def test_shipped_netx_files_roundtrip_exactly(tmp_path, name):
    """lava-dl files (legacy 'LOIHI' neurons with theta/tauRho/scaleRho extras, a simulation
    group) come back field for field."""
    from helpers import ROOT

    net = hdf5.load_network(ROOT / "tests" / "data" / name)
    lnir.write(tmp_path / "f.nir", net)
    res = lnir.read(tmp_path / "f.nir")
    assert res.report.exact and res.network == net


def test_missing_nir_package_is_named(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "nir", None)  # as if the [nir] extra were not installed
    with pytest.raises(ImportError, match=r"pip install loihi_slayer\[nir\]"):
        lnir.export(hdf5.Network([hdf5.InputLayer((3,))]))

"""Tests of the slayerPytorch compatibility layer against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import loihi_slayer.slayer_pytorch as snn
from loihi_slayer.errors import ParameterError

SRM_NEURON = {
    "type": "SRMALPHA",
    "theta": 10.0,
    "tauSr": 10.0,
    "tauRef": 1.0,
    "scaleRef": 2,
    "tauRho": 1,
    "scaleRho": 1,
}
SIM = {"Ts": 1.0, "tSample": 100}


def loihi_neuron(**kw):
    neuron = {
        "type": "LOIHI",
        "vThMant": 80,
        "vDecay": 128,
        "iDecay": 1024,
        "refDelay": 1,
        "wgtExp": 0,
        "tauRho": 1,
        "scaleRho": 1,
    }
    neuron.update(kw)
    return neuron


# ----------------------------------------------------------------------------- references
def rsz(x: int) -> int:
    """x >> 12 rounded toward zero."""
    return -((-x) >> 12) if x < 0 else x >> 12


def sp_loihi_kernel(w, i_decay, v_decay, vth_mant, ref_delay, wgt_exp):
    """NumPy transcription of the SP Loihi kernel pseudo-code (spec §2.2).

    ``w``: integer array (neurons, Ns). Returns spikes, u, reported v.
    """
    n, steps = w.shape
    theta = vth_mant * 64
    wscale = 1 << (6 + wgt_exp)
    s = np.zeros((n, steps), np.int64)
    u = np.zeros((n, steps), np.int64)
    v_rep = np.zeros((n, steps), np.int64)
    for k in range(n):
        u_old = v_old = 0
        ref = 0
        for i in range(steps):
            if i == 0:
                continue
            u_t = rsz(u_old * (4096 - i_decay)) + wscale * int(w[k, i])
            v_t = rsz(v_old * (4096 - v_decay)) + u_t
            if i >= ref_delay:
                ref -= s[k, i - ref_delay]
            spike = (v_t > theta) and ref == 0
            v_old = v_t if (ref == 0 and not spike) else 0
            ref += int(spike)
            s[k, i] = spike
            u[k, i] = u_old = u_t
            v_rep[k, i] = v_decay if spike else v_old
    return s, u, v_rep


def loihi_psp_reference(i_decay, v_decay, wgt_exp, max_len=10000):
    """slayerPytorch's Loihi PSP kernel, computed by hand from its definition."""
    u = v = 2 ** (7 + wgt_exp)
    out = [v / 2]
    while v > 0 and len(out) < max_len:
        u = u * (4096 - i_decay) // 4096
        v = v * (4096 - v_decay) // 4096 + u
        out.append(v / 2)
    return np.array(out)


def srm_spike_reference(u, ref, theta, ts):
    u = u.astype(np.float64).copy()
    s = np.zeros_like(u)
    for n in range(u.shape[0]):
        for t in range(u.shape[1]):
            if u[n, t] >= theta:
                s[n, t] = 1 / ts
                for j in range(len(ref)):
                    if t + j < u.shape[1]:
                        u[n, t + j] += ref[j]
    return s, u


def corr_reference(x, kernel, ts):
    """out[t] = Ts * sum_k kernel[k] * x[t + k] along the last axis."""
    out = np.zeros_like(x, dtype=np.float64)
    steps = x.shape[-1]
    for t in range(steps):
        for k in range(len(kernel)):
            if t + k < steps:
                out[..., t] += kernel[k] * x[..., t + k]
    return out * ts


# ----------------------------------------------------------------------------- SRM layer
def test_alpha_kernel_hand_values():
    layer = snn.layer(SRM_NEURON, SIM)
    k = layer.srmKernel.numpy()
    t = np.arange(len(k), dtype=np.float64)
    np.testing.assert_allclose(k, t / 10 * np.exp(1 - t / 10), rtol=1e-6)
    assert k[0] == 0 and abs(k[10] - 1.0) < 1e-6  # peak 1 at t = tau
    # truncated at the first sample below 0.01 after tau
    nxt = len(k) / 10 * math.exp(1 - len(k) / 10)
    assert nxt < 0.01 and k[-1] >= 0.01
    ref = layer.refKernel.numpy()
    tr = np.arange(len(ref), dtype=np.float64)
    np.testing.assert_allclose(ref, -2 * 10 * tr * np.exp(1 - tr), rtol=1e-6)


def test_psp_impulse_and_gradient():
    sim = {"Ts": 0.5, "tSample": 50}
    layer = snn.layer(SRM_NEURON, sim)
    x = torch.zeros(2, 3, 1, 1, 100, requires_grad=True)
    with torch.no_grad():
        x[1, 2, 0, 0, 7] = 1 / 0.5
    out = layer.psp(x)
    k = layer.srmKernel.numpy()
    expected = np.zeros(100)
    expected[7 : 7 + len(k)] = k[: 100 - 7]
    np.testing.assert_allclose(out[1, 2, 0, 0].detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    assert float(out[0].detach().abs().sum()) == 0
    g = torch.randn_like(out)
    (out * g).sum().backward()
    np.testing.assert_allclose(
        x.grad.numpy(), corr_reference(g.numpy(), k, 0.5), rtol=1e-4, atol=1e-5
    )


def test_srm_spike_forward_refractory_and_surrogate():
    layer = snn.layer(SRM_NEURON, SIM)
    rng = np.random.default_rng(0)
    u0 = rng.uniform(-5, 25, size=(2, 3, 1, 1, 60)).astype(np.float32)
    u = torch.tensor(u0, requires_grad=True)
    u_in = u * 1.0
    s = layer.spike(u_in)
    s_ref, u_ref = srm_spike_reference(u0.reshape(6, 60), layer.refKernel.numpy(), 10.0, 1.0)
    np.testing.assert_array_equal(s.detach().numpy().reshape(6, 60), s_ref)
    np.testing.assert_allclose(u_in.detach().numpy().reshape(6, 60), u_ref, rtol=1e-5, atol=1e-4)
    g = torch.randn_like(s)
    (s * g).sum().backward()
    tau = 1 * 10.0
    pdf = 1 / tau * np.exp(-np.abs(u_ref - 10.0) / tau)
    np.testing.assert_allclose(
        u.grad.numpy().reshape(6, 60), g.numpy().reshape(6, 60) * pdf, rtol=1e-4, atol=1e-7
    )


def test_dense_conv_pool_shapes_and_values():
    layer = snn.layer(SRM_NEURON, SIM)
    torch.manual_seed(0)
    x = torch.rand(2, 3, 5, 4, 7)
    fc = layer.dense((4, 5, 3), 6)  # (W, H, C)
    y = fc(x)
    assert y.shape == (2, 6, 1, 1, 7)
    ref = torch.einsum("ochw,nchwt->not", fc.weight[..., 0], x)
    torch.testing.assert_close(y[:, :, 0, 0], ref, rtol=1e-4, atol=1e-4)
    fc2 = layer.dense(60, 4)
    assert fc2(x.reshape(2, 60, 1, 1, 7)).shape == (2, 4, 1, 1, 7)

    conv = layer.conv(3, 8, 3, padding=1)
    yc = conv(x)
    assert yc.shape == (2, 8, 5, 4, 7)
    ref_c = torch.nn.functional.conv2d(x[..., 3], conv.weight[..., 0], padding=1)
    torch.testing.assert_close(yc[..., 3], ref_c, rtol=1e-4, atol=1e-3)

    pool = layer.pool(2)
    assert torch.all(pool.weight == 1.1 * 10.0) and not pool.weight.requires_grad
    yp = pool(x)
    assert yp.shape == (2, 3, 3, 2, 7)  # H = 5 padded to 6
    torch.testing.assert_close(yp[0, 1, 0, 0], 11.0 * x[0, 1, :2, :2].sum((0, 1)))
    torch.testing.assert_close(yp[0, 1, 2, 1], 11.0 * x[0, 1, 4, 2:4].sum(0))

    up = layer.unpool(2)
    assert up(yp).shape == (2, 3, 6, 4, 7)
    ct = layer.convTranspose(3, 2, 2, stride=2)
    assert ct(x).shape == (2, 2, 10, 8, 7)


def test_dropout_drops_whole_neurons():
    layer = snn.layer(SRM_NEURON, SIM)
    drop = layer.dropout(0.5)
    drop.train()
    y = drop(torch.ones(4, 10, 2, 2, 20))
    per_neuron = y.reshape(4, 40, 20)
    assert torch.all((per_neuron == 0).all(-1) | (per_neuron == 2).all(-1))
    drop.eval()
    assert torch.equal(drop(torch.ones(1, 2, 1, 1, 3)), torch.ones(1, 2, 1, 1, 3))


def test_delay_shift_and_learnable_delay():
    layer = snn.layer(SRM_NEURON, {"Ts": 0.5, "tSample": 5})
    x = torch.arange(1.0, 11.0).reshape(1, 1, 1, 1, 10).requires_grad_(True)
    y = layer.delayShift(x, 3)  # Ts defaults to 1
    assert y.flatten().tolist() == [0, 0, 0, 1, 2, 3, 4, 5, 6, 7]
    y2 = layer.delayShift(x, 2.7, Ts=1)  # trunc(2.7) = 2
    assert y2.flatten().tolist()[:3] == [0, 0, 1]
    g = torch.arange(10.0).reshape(x.shape)
    (y * g).sum().backward()
    assert x.grad.flatten().tolist() == [3, 4, 5, 6, 7, 8, 9, 0, 0, 0]

    delay = layer.delay((2, 1, 1))
    with torch.no_grad():
        delay.delay[:] = torch.tensor([1.2, 0.4]).reshape(2, 1, 1)  # 2 bins and 0 bins
    xin = torch.rand(3, 2, 1, 1, 12, requires_grad=True)
    out = delay(xin)
    torch.testing.assert_close(out[:, 0, 0, 0, 2:], xin[:, 0, 0, 0, :-2])
    torch.testing.assert_close(out[:, 1], xin[:, 1])
    g = torch.randn_like(out)
    (out * g).sum().backward()
    o = out.detach().numpy()
    prev = np.concatenate([np.zeros_like(o[..., :1]), o[..., :-1]], -1)
    expected = np.sum(g.numpy() * (prev - o), axis=(0, 4)).reshape(2, 1, 1)
    np.testing.assert_allclose(delay.delay.grad.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_psp_layer_and_filter():
    layer = snn.layer(SRM_NEURON, SIM)
    psp_layer = layer.pspLayer()
    x = torch.rand(2, 3, 1, 1, 40)
    torch.testing.assert_close(psp_layer(x), layer.psp(x), rtol=1e-4, atol=1e-5)
    assert psp_layer.weight.requires_grad
    filt = layer.pspFilter(4, 5)
    assert filt(x).shape == (2, 12, 1, 1, 40)


# ----------------------------------------------------------------------------- Loihi
def test_loihi_golden_vector_loihivth05_row2():
    golden = [
        0,
        128,
        220,
        285,
        330,
        359,
        377,
        387,
        390,
        389,
        385,
        378,
        370,
        361,
        351,
        341,
        330,
        319,
        309,
        299,
        289,
        279,
        270,
        261,
        252,
        244,
        236,
        228,
        220,
        213,
        206,
        199,
        192,
        186,
        180,
        174,
        168,
        162,
        156,
        151,
    ]
    layer = snn.loihi(loihi_neuron(vThMant=100000), {"Ts": 1, "tSample": 110})
    x = torch.zeros(1, 1, 1, 1, 110)
    x[..., 1] = 2.0  # weight mantissa 2 at index 1
    spike, voltage, current = layer.spikeLoihiFull(x)
    assert voltage.flatten()[:40].tolist() == golden
    assert spike.sum() == 0
    assert current.flatten()[1] == 128
    # the Loihi PSP kernel is the same impulse response, halved
    assert (2 * layer.srmKernel[:39]).tolist() == golden[1:]


@pytest.mark.parametrize("ref_delay", list(range(1, 16)))
def test_loihi_matches_sp_kernel_transcription(ref_delay):
    rng = np.random.default_rng(ref_delay)
    n, steps = 24, 120
    w = rng.integers(-20, 40, size=(n, steps)) * 2 * (rng.random((n, steps)) < 0.3)
    w[:, 0] = 50  # dropped by the kernel
    i_decay, v_decay = int(rng.integers(64, 2049)), int(rng.integers(64, 2049))
    vth = int(rng.integers(5, 60))
    wgt_exp = int(rng.integers(0, 3))
    ts = 0.5
    layer = snn.loihi(
        loihi_neuron(
            vThMant=vth, iDecay=i_decay, vDecay=v_decay, refDelay=ref_delay, wgtExp=wgt_exp
        ),
        {"Ts": ts, "tSample": steps * ts},
    )
    x = torch.tensor(w / ts, dtype=torch.float32).reshape(2, 3, 4, 1, steps)
    spike, voltage, current = layer.spikeLoihiFull(x)
    s_ref, u_ref, v_ref = sp_loihi_kernel(w, i_decay, v_decay, vth, ref_delay, wgt_exp)
    assert s_ref.sum() > 20 and (u_ref < 0).any()
    np.testing.assert_array_equal(spike.numpy().reshape(n, steps), s_ref / ts)
    np.testing.assert_array_equal(voltage.numpy().reshape(n, steps), v_ref)
    np.testing.assert_array_equal(current.numpy().reshape(n, steps), u_ref)
    # integer input is used as is (Ts = 1 amplitude)
    s_int, v_int, _ = layer.spikeLoihiFull(torch.tensor(w, dtype=torch.int32))
    np.testing.assert_array_equal(s_int.numpy(), s_ref)
    np.testing.assert_array_equal(v_int.numpy(), v_ref)


def test_loihi_refractory_semantics_by_hand():
    # constant strong drive: with refDelay R the neuron fires every R bins once u is large
    layer = snn.loihi(
        loihi_neuron(vThMant=1, iDecay=4096, vDecay=4096, refDelay=4), {"Ts": 1, "tSample": 20}
    )
    x = torch.full((1, 1, 1, 1, 20), 10.0)
    s, v, _ = layer.spikeLoihiFull(x)
    assert torch.nonzero(s.flatten()).flatten().tolist() == [1, 5, 9, 13, 17]
    vv = v.flatten().tolist()
    assert vv[1] == 4096 and vv[2:5] == [0, 0, 0]  # reported vDecay, then refractory zeros


def test_spike_loihi_surrogate_gradient():
    rng = np.random.default_rng(3)
    neuron = loihi_neuron(vThMant=40, refDelay=3, tauRho=2, scaleRho=3)
    ts = 1.0
    layer = snn.loihi(neuron, {"Ts": ts, "tSample": 80})
    w = rng.integers(-10, 30, size=(5, 80)) * 2 * (rng.random((5, 80)) < 0.4)
    x = torch.tensor(w, dtype=torch.float32, requires_grad=True)
    s = layer.spikeLoihi(x)
    g = torch.randn_like(s)
    (s * g).sum().backward()
    kernel = loihi_psp_reference(1024, 128, 0)
    theta = 40 * 64
    scale = 3 / kernel.max()
    _, _, v_rep = sp_loihi_kernel(w, 1024, 128, 40, 3, 0)
    pdf = scale / (2 * theta) * np.exp(-np.abs(v_rep - theta) / (2 * theta))
    expected = corr_reference(g.numpy() * pdf, kernel, ts)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(layer.srmKernel.numpy(), kernel)
    assert neuron["scaleRho"] == 3  # the descriptor is not modified
    assert layer.neuron["theta"] == theta


def test_loihi_quantized_weights_and_pool():
    layer = snn.loihi(loihi_neuron(), {"Ts": 1, "tSample": 10})
    fc = layer.dense(6, 3, weightScale=7)
    y = fc(torch.eye(6).reshape(6, 6, 1, 1, 1))
    wq = y[:, :, 0, 0, 0]
    assert torch.all(wq.remainder(2) == 0)
    torch.testing.assert_close(wq.T, torch.round(fc.weight[:, :, 0, 0, 0] / 2) * 2)
    fc.weight.grad = None
    y.sum().backward()
    assert torch.all(fc.weight.grad == 1)  # straight through
    raw = layer.dense(6, 3, quantize=False)
    assert raw.preHookFx is None
    pool = layer.pool(2)
    expected = round(1.1 * 80 * 64 / layer.maxPspKernel / 2) * 2
    assert torch.all(pool.weight == expected)
    conv = layer.conv(2, 4, 3)
    yc = conv(torch.zeros(1, 2, 3, 3, 1).index_put_((torch.tensor([0]),) * 5, torch.tensor(1.0)))
    assert torch.all(yc.remainder(2) == 0)


def test_loihi_parameter_errors():
    for key, value in (("vThMant", 1 << 17), ("iDecay", 4097), ("refDelay", 0), ("wgtExp", -1)):
        with pytest.raises(ParameterError, match=key):
            snn.loihi(loihi_neuron(**{key: value}), SIM)
    with pytest.raises(ParameterError, match="vDecay"):
        neuron = loihi_neuron()
        del neuron["vDecay"]
        snn.loihi(neuron, SIM)


def test_quantize():
    w = torch.tensor([1.0, 3.0, -2.9, 5.1], requires_grad=True)
    q = snn.quantize(w, 2)
    assert q.tolist() == [0.0, 4.0, -2.0, 6.0]  # round half to even
    assert snn.quantize.apply(w, 2).tolist() == q.tolist()
    q.sum().backward()
    assert w.grad.tolist() == [1, 1, 1, 1]
    assert snn.quantizeWeights.apply(torch.tensor([0.26]), 0.5).item() == 0.5


# ----------------------------------------------------------------------------- loss etc.
def test_spike_time_loss_hand_value():
    net = {"neuron": SRM_NEURON, "simulation": SIM, "training": {"error": {"type": "SpikeTime"}}}
    error = snn.loss(net)
    out = torch.zeros(1, 1, 1, 1, 100)
    des = torch.zeros(1, 1, 1, 1, 100)
    out[..., 10] = 1
    des[..., 20] = 1
    k = error.slayer.srmKernel.numpy()
    e = np.zeros(100)
    e[10 : 10 + len(k)] += k[:90]
    e[20 : 20 + len(k)] -= k[:80]
    assert error.spikeTime(out, des).item() == pytest.approx(0.5 * np.sum(e**2), rel=1e-5)
    with pytest.raises(ParameterError, match="NumSpikes"):
        error.numSpikes(out, torch.ones(1, 1, 1, 1, 1))


def test_num_spikes_loss_and_loihi_psp():
    err = {
        "type": "NumSpikes",
        "tgtSpikeRegion": {"start": 0, "stop": 50},
        "tgtSpikeCount": {True: 5, False: 1},
    }
    sim = {"Ts": 1, "tSample": 50}
    error = snn.loss(err, SRM_NEURON, sim)
    out = torch.zeros(1, 2, 1, 1, 50, requires_grad=True)
    with torch.no_grad():
        out[0, 0, 0, 0, [3, 9]] = 1
    desired = torch.tensor([1.0, 0.0]).reshape(1, 2, 1, 1, 1)
    value = error.numSpikes(out, desired)
    # inside the region the psp term vanishes: e = (count - target) / 50 everywhere
    expected = 0.5 * (50 * ((2 - 5) / 50) ** 2 + 50 * ((0 - 1) / 50) ** 2)
    assert value.item() == pytest.approx(expected)
    net = {"neuron": loihi_neuron(), "simulation": sim, "training": {"error": err}}
    loihi_error = snn.loss(net, snn.loihi)
    assert isinstance(loihi_error.slayer, snn.loihi)
    assert loihi_error.numSpikes(out, desired).item() == pytest.approx(expected)


def test_predict_get_class():
    spikes = torch.zeros(3, 4, 1, 1, 10)
    spikes[0, 2, ..., :5] = 1
    spikes[1, 0, ..., :2] = 1
    spikes[2, 3, ..., :9] = 1
    spikes[2, 1, ..., :3] = 1
    assert snn.predict.getClass(spikes).tolist() == [2, 0, 3]


def test_io_round_trips(tmp_path):
    td = snn.io.event([0, 5, 3], None, [1, 1, 2], [0.0, 2.0, 7.0])
    assert td.p.tolist() == [0, 0, 1]
    snn.io.encode1Dspikes(tmp_path / "a.bs1", td)
    back = snn.io.read1Dspikes(tmp_path / "a.bs1")
    assert back.x.tolist() == [0, 5, 3] and back.t.tolist() == [0.0, 2.0, 7.0]
    arr = back.toSpikeArray()
    assert arr.shape == (2, 6, 8) and arr[1, 3, 7] == 1
    tensor = back.toSpikeTensor(torch.zeros(2, 1, 6, 8), samplingTime=1)
    assert tensor.sum() == 3
    again = snn.io.spikeArrayToEvent(arr)
    assert sorted(again.t.tolist()) == [0.0, 2.0, 7.0]

    td2 = snn.io.event([1, 2], [3, 4], [0, 1], [1.0, 4.0])
    snn.io.encode2Dspikes(tmp_path / "b.bs2", td2)
    b2 = snn.io.read2Dspikes(tmp_path / "b.bs2")
    assert b2.toSpikeArray(dim=(2, 5, 3, 5))[1, 4, 2, 4] == 1
    snn.io.encode3Dspikes(tmp_path / "c.bs3", td2)
    assert snn.io.read3Dspikes(tmp_path / "c.bs3").y.tolist() == [3, 4]
    snn.io.encodeNumSpikes(tmp_path / "d.bsn", [0, 1], [0, 10], [300, 300], [60, 10])
    nid, t0, t1, count = snn.io.readNumSpikes(tmp_path / "d.bsn")
    assert nid.tolist() == [0, 1] and t1.tolist() == [300, 300] and count.tolist() == [60, 10]


def test_learning_stats_names(tmp_path, caplog):
    stats = snn.learningStats()
    stats.training.lossSum += 4.0
    stats.training.numSamples += 2
    stats.training.correctSamples += 1
    assert stats.training.loss() == 2.0 and stats.training.accuracy() == 0.5
    with caplog.at_level("INFO"):
        line = stats.print(0, 1, 0.5)
    assert "Epoch" in line and "loss" in line
    stats.update()
    assert stats.training.lossLog == [2.0] and stats.training.minloss == 2.0
    assert stats.training.numSamples == 0
    stats.training.lossSum, stats.training.numSamples = 1.0, 1
    stats.testing.lossSum, stats.testing.numSamples = 3.0, 1
    stats.update()
    assert stats.training.bestLoss is True
    stats.save(str(tmp_path) + "/run-")
    other = snn.learningStats()
    assert other.load(str(tmp_path) + "/run-") == 3  # slayerPytorch: epochs + 1
    assert other.training.lossLog == [2.0, 1.0] and other.testing.minloss == 3.0


def test_params_and_optimizer(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text("simulation: {Ts: 1, tSample: 20}\nneuron: {theta: 10}\n")
    net = snn.params(str(path))
    assert net["simulation"]["tSample"] == 20
    # slayerPytorch's own Nadam (amsgrad, lr 1e-3), not torch's NAdam (lr 2e-3)
    opt = snn.optimizer.Nadam([torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(opt, torch.optim.Optimizer) and opt.defaults["lr"] == 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_tensors_match_cpu():
    rng = np.random.default_rng(5)
    w = rng.integers(-20, 40, size=(8, 100)) * 2 * (rng.random((8, 100)) < 0.3)
    layer = snn.loihi(loihi_neuron(vThMant=50, refDelay=3), {"Ts": 1, "tSample": 100})
    x = torch.tensor(w, dtype=torch.float32)
    cpu = layer.spikeLoihiFull(x)
    gpu = layer.to("cuda").spikeLoihiFull(x.cuda())
    for a, b in zip(cpu, gpu, strict=True):
        assert b.is_cuda
        torch.testing.assert_close(a, b.cpu())
    srm = snn.layer(SRM_NEURON, SIM)
    u = torch.rand(2, 3, 1, 1, 50) * 20
    s_cpu = srm.spike(u.clone())
    s_gpu = srm.to("cuda").spike(u.cuda())
    torch.testing.assert_close(s_cpu, s_gpu.cpu())

"""lava-dl / slayerPytorch call compatibility (issue 9): signatures and behaviour checked
against independent computations (NumPy formulas, hand-made expectations)."""

from __future__ import annotations

import gc
import importlib

import numpy as np
import pytest
import torch

import loihi_slayer as slayer
import loihi_slayer.slayer_pytorch as snn
from loihi_slayer.errors import ParameterError


# ------------------------------------------------------------------ utils
def test_filter_conv_corr_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 12))
    h = rng.normal(size=4)
    out = slayer.utils.filter.conv(torch.tensor(x), torch.tensor(h), 0.5).numpy()
    ref = np.zeros_like(x)
    for t in range(12):
        for k in range(4):
            if t - k >= 0:
                ref[..., t] += 0.5 * h[k] * x[..., t - k]
    np.testing.assert_allclose(out, ref, atol=1e-12)
    corr = slayer.utils.filter.corr(torch.tensor(x), torch.tensor(h)).numpy()
    ref_c = np.zeros_like(x)
    for t in range(12):
        for k in range(4):
            if t + k < 12:
                ref_c[..., t] += h[k] * x[..., t + k]
    np.testing.assert_allclose(corr, ref_c, atol=1e-12)
    fir = slayer.utils.filter.FIR(time_constant=2, length=5)
    np.testing.assert_allclose(fir.filter.numpy(), np.exp(-np.arange(5) / 2), rtol=1e-6)
    bank = slayer.utils.filter.FIRBank(3, 5)
    assert bank(torch.rand(2, 4, 10)).shape == (2, 12, 10)


def test_time_replicate_shift_recurrent_int_utils():
    x = torch.arange(6.0).reshape(2, 3)
    r = slayer.utils.time.replicate(x, 4)
    assert r.shape == (2, 3, 4) and torch.equal(r[..., 2], x)
    s = slayer.utils.time.shift(torch.arange(1.0, 6.0).reshape(1, 1, 5), 2)
    assert s.flatten().tolist() == [0, 0, 1, 2, 3]
    per = slayer.utils.time.shift(torch.ones(1, 2, 4), torch.tensor([1.0, 3.0]))
    assert per[0].tolist() == [[0, 1, 1, 1], [0, 0, 0, 1]]
    v = torch.tensor([-9, -8, 7, 9], dtype=torch.int64)
    assert slayer.utils.int_utils.right_shift_to_zero(v, 3).tolist() == [-1, -1, 0, 1]
    with pytest.raises(Exception, match="int32 or torch.int64"):
        slayer.utils.int_utils.right_shift_to_zero(v.float(), 1)
    assert slayer.utils.event_rate(torch.tensor([[[5.0, 0, 1, 0, 0]]])) == 0.25
    d = slayer.utils.dotdict({"a": 1})
    assert d.a == 1 and d.missing is None
    q = slayer.utils.quantize(torch.tensor([0.3, -0.3]), 0.25, slayer.utils.MODE.FLOOR)
    assert q.tolist() == [0.25, -0.5]


def test_custom_recurrent_matches_step_loop():
    torch.manual_seed(0)
    n = slayer.neuron.cuba.Neuron(0.5, 0.5, 0.5, persistent_state=True, shape=(4,))
    syn = slayer.synapse.Dense(4, 4, weight_scale=2, pre_hook_fx=n.quantize_8bit)
    z = torch.rand(2, 4, 8) * 2
    out = slayer.utils.recurrent.custom_recurrent(z, n, syn)
    # independent loop: s[t] = N(z[t] + R s[t-1]), fresh neuron with the same parameters
    n2 = slayer.neuron.cuba.Neuron(0.5, 0.5, 0.5, persistent_state=True, shape=(4,))
    r = n.quantize_8bit(syn.weight.reshape(4, 4)).detach()
    s = torch.zeros(2, 4)
    ref = []
    for t in range(8):
        s = n2((z[..., t] + s @ r.T).unsqueeze(-1))[..., 0]
        ref.append(s)
    assert torch.equal(out, torch.stack(ref, -1)) and out.sum() > 0


# ------------------------------------------------------------------ stats
def test_learning_stats_lava_dl_keywords_and_print(capsys, tmp_path):
    stats = slayer.utils.LearningStats(loss_str="mse", loss_unit="deg", accuracy_str="acc")
    stats.training.loss_sum += 3.0
    stats.training.num_samples += 2
    stats.training.correct_samples += 1

    class Loader:
        dataset = range(100)
        batch_size = 10

        def __len__(self):
            return 10

    line = stats.print(2, iter=5, time_elapsed=0.25, header=["hdr"], dataloader=Loader())
    printed = capsys.readouterr().out
    assert "hdr" in printed and "Epoch    2: 50/100 (50%)" in printed
    assert "mse =     1.50000 deg" in printed and "acc = 0.50000" in printed
    assert "mse =     1.50000" in line
    stats.update()
    stats.save(str(tmp_path) + "/run-")  # lava-dl concatenates the path prefix
    assert (tmp_path / "run-mse.txt").exists() and (tmp_path / "run-acc.txt").exists()
    back = slayer.utils.LearningStats(loss_str="mse", accuracy_str="acc")
    back.load(str(tmp_path) + "/run-")
    assert back.training.loss_log == [1.5]
    silent = slayer.utils.LearningStats(printer=None)
    silent.print(0)
    assert capsys.readouterr().out == ""


def test_learning_stats_plot_lava_dl_order(tmp_path):
    pytest.importorskip("matplotlib")
    stats = slayer.utils.LearningStats(printer=None)
    for e in range(3):
        stats.training.loss_sum += 1.0 / (e + 1)
        stats.training.num_samples += 1
        stats.update()
    stats.plot((1, 2), None, str(tmp_path) + "/")
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_slayer_pytorch_learning_stats_print_to_stdout(capsys):
    stats = snn.learningStats()
    stats.training.lossSum += 1.0
    stats.training.numSamples += 4
    line = stats.print(1, 3, 0.5)
    out = capsys.readouterr().out
    assert "Epoch :          1(i =       3),     500.0000 ms elapsed" in out
    assert "loss =     0.25000" in out and "loss" in line


# ------------------------------------------------------------------ loss, io, neuron state
def test_spike_time_filter_callable_and_sparsity_enforcer():
    loss = slayer.loss.SpikeTime(time_constant=2, length=5)
    x = torch.zeros(1, 1, 6)
    x[..., 0] = 1
    np.testing.assert_allclose(
        loss.filter(x).flatten()[:5].numpy(), np.exp(-np.arange(5) / 2), rtol=1e-6
    )
    sp = slayer.loss.SparsityEnforcer(max_rate=0.1, lam=2.0)
    sp.append(torch.tensor([0.5, 0.0]))  # rate 0.25 -> (0.15)^2
    sp.append(torch.tensor([0.0, 0.0]))
    assert float(sp.loss) == pytest.approx(2 * 0.15**2)
    sp.clear()
    assert sp.loss == 0


@pytest.mark.filterwarnings("ignore:Animation was deleted")
def test_event_anim_takes_figure_first():
    plt = pytest.importorskip("matplotlib.pyplot")
    ev = slayer.io.Event([0, 1, 2], [0, 1, 1], [0, 1, 0], [0.0, 50.0, 100.0])
    fig = plt.figure(figsize=(3, 3))
    anim = ev.anim(fig, frame_rate=40)
    assert anim._fig is fig
    shown = ev.show(plt.figure(figsize=(2, 2)))
    assert tuple(shown.get_size_inches()) == (2.0, 2.0)
    plt.close("all")
    del anim  # collected here, where its never-rendered warning is filtered
    gc.collect()


def test_cuba_state_buffers_reset_by_user():
    n = slayer.neuron.cuba.Neuron(10.0, 1.0, 0.0, persistent_state=True, shape=(1,))
    x = torch.full((1, 1, 3), 1.0)
    n(x)
    assert n.current_state.flatten().tolist() == [1.0] and n.voltage_state.flatten()[0] == 3.0
    assert "current_state" in dict(n.named_buffers())
    n.voltage_state.zero_()  # a user's reset
    n.current_state.zero_()
    v = n.dynamics(x)[1]
    assert v.flatten().tolist() == [1.0, 2.0, 3.0]  # integration restarted from zero


def test_sigma_delta_neuron_sigma_device():
    n = slayer.neuron.sigma_delta.Neuron(0.1, torch.relu)
    assert isinstance(n.sigma, slayer.dendrite.Sigma) and n.device.type == "cpu"


# ------------------------------------------------------------------ axon, spike, blocks
def test_axon_delay_delta_order_and_clamp():
    x = torch.zeros(1, 2, 6, requires_grad=True)
    y = slayer.axon.delay(x, 2)
    (y * torch.arange(6.0)).sum().backward()
    assert x.grad[0, 0].tolist() == [2, 3, 4, 5, 0, 0]
    d = slayer.axon.Delta(0.5, 64, cum_error=True)  # lava-dl order: threshold, scale, ...
    assert d.scale == 64 and d.cum_error
    d.threshold.data.fill_(-1.0)
    d.clamp()
    assert float(d.threshold) == pytest.approx(1 / 64)
    delay = slayer.axon.Delay(max_delay=5, shape=(2,))
    delay.delay.data = torch.tensor([-1.0, 9.0])
    delay.clamp()
    assert delay.delay.tolist() == [0.0, 5.0]


def test_spike_functions():
    v = torch.tensor([0.5, 1.0, 1.5], requires_grad=True)
    s = slayer.spike.Spike.apply(v, 1.0, 1.0, 1.0, False, 0, 1)
    assert s.tolist() == [0.0, 0.0, 1.0]  # strict compare (Loihi)
    s.sum().backward()
    np.testing.assert_allclose(v.grad.numpy(), 0.5 * np.exp(-np.abs([-0.5, 0.0, 0.5])))
    re = torch.tensor([[2.0, 2.0, 2.0, 0.5]])
    im = torch.tensor([[-1.0, 1.0, 2.0, -1.0]])
    z = slayer.spike.complex.Spike.apply(re, im, 1.0, 1.0, 1.0, False, -1.0, 1)
    assert z.tolist() == [[0.0, 1.0, 0.0, 0.0]]  # im crosses 0 upward with re >= threshold


def test_grad_norm_and_residual_and_step_delay():
    blk = slayer.block.cuba.Dense(
        {"threshold": 0.1, "current_decay": 1, "voltage_decay": 0.1}, 3, 2, weight_scale=4
    )
    assert blk.synapse.grad_norm == 0
    blk(torch.ones(1, 3, 5)).sum().backward()
    g = blk.synapse.weight.grad
    assert blk.synapse.grad_norm == pytest.approx(float(g.norm()) / g.numel())
    res = slayer.block.base.AbstractResidual(torch.nn.Identity())
    assert torch.equal(res(torch.ones(1, 2, 3)), 2 * torch.ones(1, 2, 3))
    x = torch.arange(1.0, 4.0).reshape(1, 1, 3)
    assert slayer.block.base.step_delay(torch.nn.Module(), x).flatten().tolist() == [0, 1, 2]


def test_auto_sequential_network_reproduces_exported_net(tmp_path):
    from loihi_slayer.block import cuba
    from loihi_slayer.block import sigma_delta as sd
    from loihi_slayer.neuron import MeanOnlyBatchNorm

    torch.manual_seed(0)
    p = {"threshold": 0.5, "current_decay": 0.25, "voltage_decay": 0.03}
    net = torch.nn.Sequential(
        cuba.Input(p, shape=(2, 6, 6)),
        cuba.Conv(p, 2, 4, 3, padding=1, weight_scale=3, input_shape=(6, 6)),
        cuba.Pool(p, 2, input_shape=(4, 6, 6)),
        cuba.Flatten(),
        cuba.Dense({**p, "norm": MeanOnlyBatchNorm}, 36, 5, weight_scale=3, delay=True),
    )
    x = (torch.rand(2, 2, 6, 6, 20) < 0.3).float()
    net(x)  # training pass: moves the norm mean (bias)
    net.eval()
    slayer.block.export_network(net, tmp_path / "a.net")
    auto = slayer.auto.SequentialNetwork(tmp_path / "a.net")
    assert torch.equal(auto(x), net(x)) and net(x).sum() > 0
    sp = {"threshold": 0.05, "activation": torch.relu}
    sdn = torch.nn.Sequential(
        sd.Input(sp, delay_shift=True),
        sd.Dense({**sp, "norm": MeanOnlyBatchNorm}, 4, 6, weight_scale=2, delay_shift=True),
        sd.Output(sp, 6, 2),
    )
    xs = torch.rand(2, 4, 16).cumsum(-1) * 0.1
    sdn(xs)
    sdn.eval()
    slayer.block.export_network(sdn, tmp_path / "b.net")
    auto2 = slayer.auto.SequentialNetwork(tmp_path / "b.net")
    assert torch.equal(auto2(xs), sdn(xs))
    with pytest.raises(ParameterError, match="reduction"):
        slayer.auto.SequentialNetwork(tmp_path / "a.net", reduction="max")


# ------------------------------------------------------------------ slayerPytorch
def test_slayer_pytorch_module_names_and_params_dict():
    import loihi_slayer.slayer_pytorch.utils.optim as optim
    import loihi_slayer.slayer_pytorch.utils.stats as ustats

    assert optim.Nadam is snn.optimizer.Nadam and ustats.learningStats is snn.learningStats
    p = snn.params(dict={"simulation": {"Ts": 1}})
    assert p["simulation"]["Ts"] == 1
    assert snn.auto.dataset.__name__ == "SlayerDataset"
    ns: dict = {}
    exec("from loihi_slayer.slayer_pytorch.spikeFileIO import *", ns)
    for name in ("event", "read2Dspikes", "encode1DnumSpikes", "showTD", "np"):
        assert name in ns
    for name in ("slayerLoihi", "slayerParams", "spikeLoss"):  # slayerPytorch's module names
        module = importlib.import_module(f"loihi_slayer.slayer_pytorch.{name}")
        assert module.__name__.endswith(name)


def test_nadam_default_lr_amsgrad_and_formula():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = snn.optimizer.Nadam([w], amsgrad=True)
    assert opt.defaults["lr"] == 1e-3 and opt.defaults["amsgrad"] is True
    g = torch.tensor([0.5, -1.0])
    w.grad = g.clone()
    opt.step()
    b1, b2, lr, eps = 0.9, 0.999, 1e-3, 1e-8
    m = (1 - b1) * g
    v = (1 - b2) * g * g
    step = lr * np.sqrt(1 - b2) / (1 - b1)
    expected = torch.tensor([1.0, -2.0]) - step * (b1 * m + (1 - b1) * g) / (v.sqrt() + eps)
    torch.testing.assert_close(w.detach(), expected)

"""Sigma-delta completeness (issue 7 item 7): norm as chip bias, dropout, WgtScaleBatchNorm,
lava-dl state-dict names, any activation in training with a clear export refusal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from loihi_slayer import block, gap
from loihi_slayer.block import sigma_delta as sd
from loihi_slayer.errors import ParameterError
from loihi_slayer.neuron import Dropout, MeanOnlyBatchNorm, WgtScaleBatchNorm
from loihi_slayer.neuron import sigma_delta as sdn

T = 20


def sp(th=0.05, **kw):
    return {"threshold": th, "activation": F.relu, **kw}


def q8_mant(x: np.ndarray) -> np.ndarray:
    """Independent quantize_8bit(x, descale=True): even mantissa, half to even, [-256, 254]."""
    return np.clip(np.round(np.asarray(x, np.float64) * 64 / 2) * 2, -256, 254)


def norm_net():
    return torch.nn.Sequential(
        sd.Input(sp(), delay_shift=True),
        sd.Conv(
            sp(norm=MeanOnlyBatchNorm),
            2,
            4,
            3,
            padding=1,
            weight_scale=2,
            delay_shift=True,
            input_shape=(6, 6),
        ),
        sd.Flatten(),
        sd.Dense(sp(norm=MeanOnlyBatchNorm), 4 * 36, 8, weight_scale=2, delay_shift=True),
        sd.Output(sp(), 8, 2),
    )


def train(net, x, steps=3):
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(steps):
        y = net(x)
        loss = ((y - 0.3) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_norm_exports_running_mean_as_bias_with_zero_gap():
    torch.manual_seed(0)
    x = torch.rand(2, 2, 6, 6, T).cumsum(-1) * 0.1 + 0.2
    net = norm_net()
    train(net, x)
    net.eval()
    for i in (1, 3):
        mean = net[i].neuron.norm.running_mean.numpy()
        assert np.abs(mean).max() > 0.05  # the training pass moved the running mean
        expected = -q8_mant(mean)  # per channel, mantissa units (1/64)
        assert np.array_equal(net[i].neuron.bias_mant, expected)
        np.testing.assert_array_equal(np.asarray(net[i].to_layer().bias).reshape(-1), expected)
    rep = block.compare_with_emulator(net, x)
    assert rep.ok and not rep.skipped, rep.summary()
    outs = gap._eval_outputs(list(net), x)
    assert int((outs[3] != 0).sum()) > 10


def test_norm_with_set_bias_adds_up():
    n = sdn.Neuron(0.1, F.relu, norm=MeanOnlyBatchNorm, shape=(3,))
    n.norm.running_mean.copy_(torch.tensor([0.5, -0.25, 1.0]))
    n.set_bias(torch.tensor([0.125, 0.0, -0.5]))
    assert n.bias_mant.tolist() == [8 - 32, 0 + 16, -32 - 64]


def test_norm_batch_mean_in_training_moves_running_mean():
    n = sdn.Neuron(0.1, F.relu, norm=MeanOnlyBatchNorm, shape=(2,))
    x = torch.zeros(1, 2, 4)
    x[0, 0, 0] = 1.0  # sigma of channel 0 is 1 for all 4 steps
    n.train()
    n(x)
    torch.testing.assert_close(n.norm.running_mean, torch.tensor([0.1, 0.0]))


def test_dropout_trains_and_eval_is_chip_exact():
    torch.manual_seed(3)
    x = torch.rand(3, 6, T).cumsum(-1) * 0.2
    net = torch.nn.Sequential(
        sd.Input(sp(), delay_shift=True),
        sd.Dense(sp(dropout=Dropout(p=0.3)), 6, 10, weight_scale=2, delay_shift=True),
        sd.Output(sp(), 10, 2),
    )
    net.train()
    a, b = net(x), net(x)
    assert not torch.equal(a, b)  # dropout active while training
    train(net, x)
    rep = block.compare_with_emulator(net, x)
    assert rep.ok and not rep.skipped, rep.summary()


@pytest.mark.parametrize("act", [torch.tanh, torch.sigmoid, F.gelu])
def test_any_activation_trains_and_export_refuses(act):
    torch.manual_seed(4)
    net = torch.nn.Sequential(sd.Dense(sp(activation=act, requires_grad=True), 4, 3))
    x = torch.rand(2, 4, T)
    y = net(x)
    y.square().sum().backward()
    assert net[0].synapse.weight.grad.abs().sum() > 0
    with pytest.raises(ParameterError, match="no Loihi integer form"):
        block.network_record(net)


def test_custom_activation_forward_is_lava_dl_formula():
    # y = delta(f(sigma(x) + b)) with a threshold so small that delta passes all changes
    torch.manual_seed(5)
    n = sdn.Neuron(0.0, torch.tanh, shape=(3,))
    n.set_bias(0.25)
    x = (torch.randint(-64, 64, (2, 3, T)) / 256.0).double()
    y = n(x).double()
    f = torch.tanh(torch.cumsum(x, -1) + 0.25)
    expected = torch.diff(f, dim=-1, prepend=torch.zeros_like(f[..., :1]))
    # threshold 0 passes every change; the chip floors each payload to 1/4096 (not fed back)
    assert torch.all((expected - y >= -1e-9) & (expected - y < 2 / 4096))
    assert not torch.equal(y, torch.zeros_like(y))


def test_wgt_scale_batch_norm_trains_and_export_refuses():
    norm = WgtScaleBatchNorm(num_features=2)
    x = torch.randn(4, 2, 10) * 8 + 1
    norm.train()
    y = norm(x)
    assert float(norm.running_var) > 0
    k = torch.ceil(torch.log2(torch.sqrt(torch.var(x, unbiased=False) + 1e-5))).clamp(-3, 3)
    mean = x.reshape(4, 2, -1).mean(dim=(0, 2))
    torch.testing.assert_close(y, (x - mean.reshape(1, 2, 1)) / 2.0**k)
    net = torch.nn.Sequential(sd.Dense(sp(norm=WgtScaleBatchNorm), 4, 3))
    net(torch.rand(2, 4, T))
    with pytest.raises(ParameterError, match="WgtScaleBatchNorm"):
        block.network_record(net)


def lava_dl_keys():
    """State-dict keys of lava-dl blocks, from the documented attributes: block.neuron
    (sigma_delta.Neuron: ``bias``, ``delta.threshold``, ``norm.running_mean``),
    block.synapse (``weight``; ``weight_g``/``weight_v`` with weight_norm) and
    block.delay (``delay``)."""
    return {
        "1.neuron.bias",
        "1.neuron.delta.threshold",
        "1.neuron.norm.running_mean",
        "1.synapse.weight_g",
        "1.synapse.weight_v",
        "3.neuron.bias",
        "3.neuron.delta.threshold",
        "3.neuron.norm.running_mean",
        "3.synapse.weight",
        "3.delay.delay",
        "4.neuron.bias",
        "4.neuron.delta.threshold",
        "4.synapse.weight",
        "0.neuron.bias",
        "0.neuron.delta.threshold",
    }


def pilot():
    return torch.nn.Sequential(
        sd.Input(sp()),
        sd.Conv(
            sp(norm=MeanOnlyBatchNorm), 2, 4, 3, stride=2, weight_norm=True, input_shape=(7, 7)
        ),
        sd.Flatten(),
        sd.Dense(sp(norm=MeanOnlyBatchNorm), 36, 5, delay=True),
        sd.Output(sp(), 5, 1),
    )


def test_lava_dl_state_dict_loads_strict():
    torch.manual_seed(6)
    src = pilot()
    state = {}
    for k, v in src.state_dict().items():  # rename to lava-dl's (old weight_norm) names
        k = k.replace("parametrizations.weight.original0", "weight_g")
        k = k.replace("parametrizations.weight.original1", "weight_v")
        state[k] = v.clone() + 0.01
    assert set(state) == lava_dl_keys()
    assert state["1.neuron.norm.running_mean"].shape == (4,)
    assert state["1.synapse.weight_g"].shape == (4, 1, 1, 1, 1)
    dst = pilot()
    dst.load_state_dict(state, strict=True)
    torch.testing.assert_close(dst[1].neuron.norm.running_mean, state["1.neuron.norm.running_mean"])
    torch.testing.assert_close(
        dst[1].synapse.parametrizations.weight.original1, state["1.synapse.weight_v"]
    )


def test_per_channel_threshold_has_lava_dl_shape():
    conv = sd.Conv(sp(shared_param=False), 2, 3, 3, input_shape=(5, 5))
    assert tuple(conv.neuron.delta.threshold.shape) == (3, 1, 1)
    dense = sd.Dense(sp(shared_param=False), 2, 3)
    assert tuple(dense.neuron.delta.threshold.shape) == (3,)
    conv(torch.rand(1, 2, 5, 5, 6)).sum().backward()


def test_neuron_sigma_and_device():
    n = sdn.Neuron(0.1, F.relu)
    assert n.device == torch.device("cpu")
    y = n.sigma(torch.ones(1, 2, 3))
    assert y[0, 0].tolist() == [1.0, 2.0, 3.0]

"""Block API: lava-dl arguments, defaults, shapes, input checks, training."""

from __future__ import annotations

import pytest
import torch

from loihi_slayer import block
from loihi_slayer.block import cuba
from loihi_slayer.block import sigma_delta as sd
from loihi_slayer.errors import ParameterError
from loihi_slayer.neuron.norm import MeanOnlyBatchNorm

P = {"threshold": 0.5, "current_decay": 0.25, "voltage_decay": 0.03}
SP = {"threshold": 0.1, "activation": torch.nn.functional.relu}


def test_defaults_match_lava_dl():
    d = cuba.Dense(P, 4, 3)
    assert d.delay_shift is True and d.delay is None
    assert d.synapse.pre_hook_fx == d.neuron.quantize_8bit
    assert sd.Dense(SP, 4, 3).delay_shift is False
    assert sd.Dense(SP, 4, 3).synapse.exact is True
    assert cuba.Dense(P, 4, 3, delay=True).delay.delay.shape == (3,)
    assert cuba.Conv(P, 2, 5, 3, delay=True).delay.delay.shape == (5,)


def test_neuron_params_not_mutated():
    p = dict(P, norm=MeanOnlyBatchNorm)
    cuba.Pool(p, 2)
    cuba.Recurrent(p, 3, 3)
    assert p == dict(P, norm=MeanOnlyBatchNorm)


def test_quantized_forward_and_output_shift():
    d = cuba.Dense(P, 4, 3, weight_scale=5)
    x = torch.ones(2, 4, 10)
    y = d(x)
    assert y.shape == (2, 3, 10) and not y[..., 0].any()
    w = d.synapse.pre_hook_weight.detach() * 64
    assert torch.equal(w, torch.round(w)) and torch.all(w % 2 == 0)


@pytest.mark.parametrize(
    ("blk", "x", "match"),
    [
        (cuba.Dense(P, 4, 3), torch.zeros(2, 5, 8), r"cuba.Dense: expected input \(N, 4, T\)"),
        (
            cuba.Conv(P, 2, 3, 3, input_shape=(6, 6)),
            torch.zeros(1, 2, 5, 5, 4),
            r"block.cuba.Conv: expected input \(N, 2, 6, 6, T\), found shape \(1, 2, 5, 5, 4\)",
        ),
        (cuba.Conv(P, 2, 3, 3), torch.zeros(1, 3, 5, 5, 4), r"expected input \(N, 2, H, W, T\)"),
        (sd.Pool(SP, 2), torch.zeros(1, 3, 4), r"block.sigma_delta.Pool: expected input"),
        (cuba.Average(3), torch.zeros(1, 4, 5), r"multiple of 3"),
        (cuba.Input(P, shape=(4,)), torch.zeros(1, 5, 3), r"expected input \(N, 4, T\)"),
    ],
)
def test_bad_input_names_block_and_shapes(blk, x, match):
    with pytest.raises(ParameterError, match=match):
        blk(x)


def test_init_shapes_and_output_sizes():
    net = torch.nn.Sequential(
        cuba.Input(None),
        cuba.Conv(P, 2, 4, 3, stride=2),
        cuba.Pool(P, 2),
        cuba.ConvT(P, 4, 3, 2, stride=2),
        cuba.Unpool(P, 2),
        cuba.Flatten(),
        cuba.Dense(P, 3 * 12 * 12, 5),
        cuba.Average(5),
    )
    assert block.init_shapes(net, (2, 13, 13)) == (5,)
    assert net[1].shape == (4, 6, 6) and net[4].shape == (3, 12, 12)
    y = net(torch.zeros(1, 2, 13, 13, 6))
    assert y.shape == (1, 5, 6)
    with pytest.raises(ParameterError, match="already set"):
        net[1].init_shapes((2, 9, 9))


def test_count_log_and_training_changes_weights():
    torch.manual_seed(0)  # weights and input: the block must spike for (y**2) to have a gradient
    d = cuba.Dense(P, 6, 4, count_log=True, weight_scale=4)
    y, rate = d((torch.rand(3, 6, 20) < 0.5).float())
    assert 0 < float(rate) <= 1 and float(y.detach().sum()) > 0
    opt = torch.optim.SGD(d.parameters(), lr=1.0)
    w0 = d.synapse.weight.detach().clone()
    (y**2).sum().backward()
    opt.step()
    assert not torch.equal(w0, d.synapse.weight)


def test_kwta_and_time_decimation_semantics():
    k = cuba.KWTA(P, 4, 5, num_winners=2, self_excitation=3.0)
    k.clamp()
    assert float(k.self_excitation.detach()) == 1.0
    r = k.recurrent_weight().detach()
    assert torch.equal(torch.diag(r), torch.ones(5)) and float(r[0, 1]) == -1.0
    td = cuba.TimeDecimation(4)
    y = td(torch.arange(10.0).reshape(1, 1, 10))
    assert torch.equal(y, torch.tensor([[[1.5, 5.5, 4.25]]]))
    with pytest.raises(ParameterError, match="power of 2"):
        cuba.TimeDecimation(3)

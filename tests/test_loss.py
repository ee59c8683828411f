"""Spike losses against hand-computed values, plus gradient checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml

from loihi_slayer.errors import ParameterError, ParameterTypeError
from loihi_slayer.loss import (
    NumSpikes,
    SpikeMax,
    SpikeMoid,
    SpikeRate,
    SpikeTime,
    exponential_kernel,
    srm_alpha_kernel,
)

E = math.e


def t(values, grad=False):
    return torch.tensor(values, dtype=torch.float64, requires_grad=grad)


# ------------------------------------------------------------------------ SpikeTime
def test_spike_time_single_spike_vs_empty_target():
    loss_fn = SpikeTime(time_constant=1, length=3)
    out = t([[[1.0, 0, 0, 0]]], grad=True)
    loss = loss_fn(out, torch.zeros(1, 1, 4, dtype=torch.float64))
    # filtered output = [1, e^-1, e^-2, 0]
    expected = 1 + E**-2 + E**-4
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # dL/ds[0] = 2 * sum_k diff[k] h[k] = 2 (1 + e^-2 + e^-4); dL/ds[1] = 2 (e^-1 + e^-3)
    assert out.grad[0, 0, 0].item() == pytest.approx(2 * expected, rel=1e-6)
    assert out.grad[0, 0, 1].item() == pytest.approx(2 * (E**-1 + E**-3), rel=1e-6)
    assert out.grad[0, 0, 3].item() == pytest.approx(0.0, abs=1e-7)


def test_spike_time_shifted_spike_and_mean():
    out = t([[[0.0, 1, 0, 0]]])
    tgt = t([[[1.0, 0, 0, 0]]])
    # h = [1, e^-0.5]: out -> [0, 1, e^-.5, 0], tgt -> [1, e^-.5, 0, 0]
    expected = 1 + (1 - E**-0.5) ** 2 + E**-1
    assert SpikeTime(2, 2)(out, tgt).item() == pytest.approx(expected, rel=1e-6)
    assert SpikeTime(2, 2, reduction="mean")(out, tgt).item() == pytest.approx(
        expected / 4, rel=1e-6
    )


def test_spike_time_filter_order_two_is_alpha_like():
    kernel = exponential_kernel(1, 3, filter_order=2)
    np.testing.assert_allclose(kernel.numpy(), [1, 2 / E, 3 / E**2], rtol=1e-6)
    loss = SpikeTime(1, 3, filter_order=2)(t([[[1.0, 0, 0]]]), t([[[0.0, 0, 0]]]))
    assert loss.item() == pytest.approx(1 + 4 / E**2 + 9 / E**4, rel=1e-6)


def test_spike_time_5d_and_errors():
    out = torch.zeros(2, 3, 4, 5, 6, requires_grad=True)
    loss = SpikeTime()(out, torch.ones(2, 3, 4, 5, 6))
    loss.backward()
    assert out.grad.shape == out.shape and out.grad.abs().sum() > 0
    with pytest.raises(ParameterError, match="time_constant"):
        SpikeTime(time_constant=0)
    with pytest.raises(ParameterError, match="reduction"):
        SpikeTime(reduction="max")
    with pytest.raises(ParameterTypeError, match="same shape"):
        SpikeTime()(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4))


# ------------------------------------------------------------------------ SpikeRate
def test_spike_rate_hand_example():
    spikes = torch.zeros(2, 3, 4, dtype=torch.float64)
    spikes[0, 0, :2] = 1  # rate 0.5
    spikes[0, 2, :] = 1  # rate 1
    spikes.requires_grad_(True)
    label = torch.tensor([0, 2])
    loss = SpikeRate(0.8, 0.2)(spikes, label)
    # sample 0: (0.5-0.8)^2 + (0-0.2)^2 + (1-0.2)^2 = 0.77; sample 1: 0.04 + 0.04 + 0.64
    assert loss.item() == pytest.approx(1.49)
    assert SpikeRate(0.8, 0.2, reduction="mean")(spikes, label).item() == pytest.approx(1.49 / 6)
    loss.backward()
    # d/ds (r - r_hat)^2 with r = mean over 4 steps -> 2 (r - r_hat) / 4
    assert spikes.grad[0, 0, 0].item() == pytest.approx(2 * (0.5 - 0.8) / 4)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spike_rate_is_the_composite_bit_for_bit(reduction, dtype):
    """The loss, its gradient and (``create_graph``) a gradient of its gradient equal the
    plain composite ``mse_loss(mean_t(s), true·onehot + false·(1 - onehot))`` bit for
    bit, for spikes (a 4-d input too) and graded values."""
    gen = torch.Generator().manual_seed(5)
    for shape in ((6, 10, 37), (4, 2, 5, 9)):
        x = (torch.rand(shape, generator=gen) < 0.3).to(dtype) * torch.rand(shape, generator=gen)
        x.requires_grad_(True)
        label = torch.randint(0, math.prod(shape[1:-1]), (shape[0],), generator=gen)
        loss = SpikeRate(0.7, 0.05, reduction=reduction)(x, label)
        one_hot = torch.nn.functional.one_hot(label, math.prod(shape[1:-1])).to(dtype)
        target = 0.7 * one_hot + 0.05 * (1 - one_hot)
        rate = x.reshape(shape[0], -1, shape[-1]).mean(-1)
        ref = torch.nn.functional.mse_loss(rate.flatten(), target.flatten(), reduction=reduction)
        bits = torch.int32 if dtype == torch.float32 else torch.int64
        assert torch.equal(loss.detach().view(bits), ref.detach().view(bits))
        with torch.no_grad():  # no graph: the composite's ops alone
            plain = SpikeRate(0.7, 0.05, reduction=reduction)(x, label)
        assert torch.equal(plain.view(bits), ref.detach().view(bits))
        (g,) = torch.autograd.grad(loss, x, create_graph=True)
        (g_ref,) = torch.autograd.grad(ref, x, create_graph=True)
        assert torch.equal(g.detach().view(bits), g_ref.detach().view(bits))
        (h,) = torch.autograd.grad((g * g).sum(), x)
        (h_ref,) = torch.autograd.grad((g_ref * g_ref).sum(), x)
        assert torch.equal(h.view(bits), h_ref.view(bits)) and bool(h.abs().sum() > 0)
        (g_plain,) = torch.autograd.grad(
            SpikeRate(0.7, 0.05, reduction=reduction)(x, label), x
        )  # without create_graph: the replaced nodes' ops
        assert torch.equal(g_plain.view(bits), g_ref.detach().view(bits))


def test_spike_rate_moving_window():
    spikes = t([[[1.0, 0, 1], [0, 1, 1]]])
    # W = 2: r0 = [0.5, 0.5, 0.5], r1 = [0, 0.5, 1]; labels [0, 1, 1]
    loss = SpikeRate(1.0, 0.0, moving_window=2)(spikes, torch.tensor([[0, 1, 1]]))
    assert loss.item() == pytest.approx(0.75 + 0.25)
    # a (N,) label is replicated over time: label 1 everywhere
    loss = SpikeRate(1.0, 0.0, moving_window=2)(spikes, torch.tensor([1]))
    assert loss.item() == pytest.approx(0.75 + (1 + 0.25 + 0))


def test_spike_rate_errors():
    with pytest.raises(ParameterError, match="true_rate"):
        SpikeRate(1.5, 0.1)
    with pytest.raises(ParameterError, match="label values"):
        SpikeRate(0.5, 0.1)(torch.zeros(1, 3, 4), torch.tensor([3]))


# ------------------------------------------------------------------------- SpikeMax
def _max_input():
    spikes = torch.zeros(1, 3, 2, dtype=torch.float64)
    spikes[0, 0] = 1  # rate 1
    spikes[0, 1, 0] = 1  # rate 0.5
    return spikes.requires_grad_(True)


def test_spike_max_modes_hand_example():
    spikes = _max_input()
    label = torch.tensor([1])
    eps = 1e-6
    prob = SpikeMax(mode="probability")(spikes, label)
    assert prob.item() == pytest.approx(-math.log(0.5 / (1.5 + eps)))
    soft = SpikeMax(mode="softmax")(spikes, label)
    assert soft.item() == pytest.approx(-math.log(E**0.5 / (E + E**0.5 + 1)))
    logp = SpikeMax(mode="logprobability")(spikes, torch.tensor([2]))
    assert logp.item() == pytest.approx(-(math.log(eps) - math.log(1.5 + 3 * eps)))
    # the lava-dl probability mode is infinite for a silent true class
    assert math.isinf(SpikeMax(mode="probability")(spikes, torch.tensor([2])).item())
    soft.backward()
    assert spikes.grad is not None and spikes.grad.abs().sum() > 0


def test_spike_max_moving_window():
    spikes = t([[[1.0, 1], [0, 1]]], grad=True)
    # W = 2: r0 = [0.5, 1], r1 = [0, 0.5]; labels [0, 1]
    loss = SpikeMax(moving_window=2, mode="softmax")(spikes, torch.tensor([[0, 1]]))
    expected = -math.log(E**0.5 / (E**0.5 + 1)) - math.log(E**0.5 / (E + E**0.5))
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert spikes.grad.abs().sum() > 0
    with pytest.raises(ParameterError, match="mode"):
        SpikeMax(mode="argmax")


# ------------------------------------------------------------------------ SpikeMoid
def test_spike_moid_hand_example():
    spikes = t([[[1.0, 1, 0, 0], [1, 0, 0, 0]]], grad=True)
    target = t([[1.0, 0.0]])
    loss = SpikeMoid(alpha=0.5, theta=0.25)(spikes, target)
    # z0 = (0.5 - 0.25) / 0.5 = 0.5, z1 = 0
    expected = math.log(1 + E**-0.5) + math.log(2)
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    # dL/dz0 = sigmoid(z0) - 1, dz0/ds = 1 / (4 * alpha)
    sig = 1 / (1 + E**-0.5)
    assert spikes.grad[0, 0, 0].item() == pytest.approx((sig - 1) / 2)


def test_spike_moid_moving_window():
    spikes = t([[[1.0, 0]]])
    # W = 1: rate = spikes; targets per step [1, 0]: -log(sig(1)) - log(1 - sig(0))
    loss = SpikeMoid(moving_window=1)(spikes, t([[[1.0, 0.0]]]))
    assert loss.item() == pytest.approx(math.log(1 + E**-1) + math.log(2))
    # (N, C) target replicated in time: target 1 at both steps
    loss = SpikeMoid(moving_window=1)(spikes, t([[1.0]]))
    assert loss.item() == pytest.approx(math.log(1 + E**-1) + math.log(2))


# ------------------------------------------------------------------------ NumSpikes
def test_num_spikes_identity_psp_hand_example():
    loss_fn = NumSpikes({"start": 1, "stop": 4}, {True: 2, False: 0}, psp=lambda s: s)
    spikes = t([[[1.0, 1, 0, 1, 1], [0, 1, 1, 1, 0]]], grad=True)
    desired = torch.tensor([[[1], [0]]])  # slayerPytorch: one-hot with a time axis of 1
    loss = loss_fn(spikes, desired)
    # class 0: count 2 == 2 in region, spikes outside at t=0,4 -> e = [1,0,0,0,1]
    # class 1: count 3 vs 0 -> e = 3/3 in region -> [0,1,1,1,0]
    assert loss.item() == pytest.approx(0.5 * (2 + 3))
    loss.backward()
    np.testing.assert_allclose(spikes.grad.numpy(), [[[1, 0, 0, 0, 1], [0, 1, 1, 1, 0]]])
    # integer labels and (N, C) one-hot give the same value
    assert loss_fn(spikes, torch.tensor([0])).item() == pytest.approx(2.5)
    assert loss_fn(spikes, torch.tensor([[True, False]])).item() == pytest.approx(2.5)
    assert loss_fn.numSpikes(spikes, torch.tensor([0])).item() == pytest.approx(2.5)


def test_num_spikes_alpha_psp_vs_numpy():
    ts, tau = 1.0, 2.0
    kernel = []
    for k in range(100):  # slayerPytorch SRM alpha kernel, truncated at < 0.01 after tau
        value = k * ts / tau * math.exp(1 - k * ts / tau)
        if value < 0.01 and k * ts > tau:
            break
        kernel.append(value)
    np.testing.assert_allclose(srm_alpha_kernel(tau, ts).numpy(), kernel, rtol=1e-6)

    rng = np.random.default_rng(1)
    s = (rng.random((2, 3, 20)) < 0.3).astype(np.float64)
    labels = np.array([2, 0])
    start, stop, n_true, n_false = 5, 15, 4, 1
    region = np.zeros(20)
    region[start:stop] = 1
    total = 0.0
    for n in range(2):
        for c in range(3):
            outside = s[n, c] * (1 - region)
            psp = np.convolve(outside, kernel)[:20] * ts
            want = n_true if labels[n] == c else n_false
            count_err = (s[n, c, start:stop].sum() * ts - want) / (stop - start)
            e = psp + count_err * region
            total += 0.5 * ts * np.sum(e**2)
    loss_fn = NumSpikes((start, stop), (n_true, n_false), sampling_time=ts, time_constant=tau)
    spikes = torch.tensor(s, requires_grad=True)
    loss = loss_fn(spikes, torch.tensor(labels))
    assert loss.item() == pytest.approx(total, rel=1e-6)
    loss.backward()
    assert spikes.grad.abs().sum() > 0


def test_num_spikes_from_params_yaml():
    text = """
    simulation: {Ts: 1.0, tSample: 350}
    neuron: {tauSr: 1.0}
    training:
      error:
        type: NumSpikes
        tgtSpikeRegion: {start: 0, stop: 3}
        tgtSpikeCount: {true: 3, false: 0}
    """
    params = yaml.safe_load(text)
    loss_fn = NumSpikes.from_params(params, psp=lambda s: s)
    assert (loss_fn.start_id, loss_fn.stop_id, loss_fn.true_count) == (0, 3, 3.0)
    spikes = torch.zeros(1, 2, 3)
    # class 0 silent: count error (0 - 3) / 3 = -1 at 3 steps -> 0.5 * 3
    assert loss_fn(spikes, torch.tensor([0])).item() == pytest.approx(1.5)
    with pytest.raises(ParameterError, match="start < stop"):
        NumSpikes({"start": 5, "stop": 5}, {True: 1, False: 0})
    with pytest.raises(ParameterError, match="exceeds"):
        NumSpikes({"start": 0, "stop": 10}, {True: 1, False: 0})(spikes, torch.tensor([0]))

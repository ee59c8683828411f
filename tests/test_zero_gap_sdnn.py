"""Zero train-to-chip gap, sigma-delta blocks (graded payloads, float64-exact synapses).

Alignment (spec §7.2/§7.4): with ``delay_shift=True`` on every block the rule is
the CUBA one (block output index ``n`` == emulator column ``n - 1``, payload ×
4096 == emulator ``s``); with lava-dl's default ``delay_shift=False`` layer ``k``
runs ``k`` steps later on the chip, exact only without bias (§7.4). The
``Output`` block's sigma × 2**18 equals the emulator's ``s`` (the accumulator).
The input block injects ``rint(64 * Q(x))`` into the chip's ``Delta`` neuron.
"""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loihi_slayer import block, gap
from loihi_slayer.block import sigma_delta as sd
from loihi_slayer.errors import ParameterError

T = 24


def sp(th=0.1):
    return {"threshold": th, "activation": torch.nn.functional.relu}


def train_steps(net, x, steps=3):
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(steps):
        y = net(x)
        loss = ((y - 0.1) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()


def check(net, x):
    try:
        rec = block.network_record(net)
    except ParameterError as exc:
        assert "inhibitory sign mode" in str(exc)
        return None
    rep = block.compare_with_emulator(net, x, rec)
    assert rep.ok and not rep.skipped, rep.summary()
    return rep


def test_dense_with_bias_shifted():
    torch.manual_seed(1)
    x = torch.randn(2, 8, T).cumsum(-1) * 0.3
    net = torch.nn.Sequential(
        sd.Input(sp(), delay_shift=True),
        sd.Dense(sp(), 8, 10, weight_scale=3, delay_shift=True),
        sd.Dense(sp(0.05), 10, 6, weight_scale=3, delay_shift=True),
        sd.Output(sp(), 6, 3),
    )
    net[1].neuron.set_bias(0.2)
    train_steps(net, x)
    rep = check(net, x)
    outs = gap._eval_outputs(list(net), x)
    assert int((outs[2] != 0).sum()) > 20
    assert rep.compared[3] > 0


def test_conv_pool_flatten_default_shift():
    torch.manual_seed(2)
    x = torch.rand(2, 2, 8, 8, T).cumsum(-1) * 0.2
    net = torch.nn.Sequential(
        sd.Input(sp()),
        sd.Conv(sp(), 2, 4, 3, padding=1, weight_scale=2, input_shape=(8, 8)),
        sd.Pool(sp(), 2, input_shape=(4, 8, 8)),
        sd.ConvT(sp(), 4, 2, 2, stride=2, weight_scale=2, input_shape=(4, 4)),
        sd.Unpool(sp(), 2, input_shape=(2, 8, 8)),
        sd.Flatten(),
        sd.Dense(sp(), 512, 5, weight_scale=2),
        sd.Average(5),
    )
    train_steps(net, x, steps=2)
    check(net, x)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    th=st.sampled_from([1 / 64, 0.1, 1.0]),
    shift=st.booleans(),
    big=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_sdnn(sizes, th, shift, big, seed):
    """Random sizes/thresholds; ``big`` drives sigma far beyond float32 exactness."""
    torch.manual_seed(seed)
    x = torch.randn(2, sizes[0], T).cumsum(-1) * (3.0 if big else 0.3)
    blocks = [sd.Input(sp(th), delay_shift=shift)]
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        blocks.append(sd.Dense(sp(th), a, b, weight_scale=50.0 if big else 2.0, delay_shift=shift))
    net = torch.nn.Sequential(*blocks)
    train_steps(net, x, steps=2)
    check(net, x)

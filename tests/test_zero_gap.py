"""Zero train-to-chip gap, CUBA blocks: export -> Emulator gives exactly the training forward.

Alignment rule (spec loihi-fixed-point.md §7.2/§7.4, implemented by
``block.compare_with_emulator``): with ``delay_shift=True`` on every block,
block output index ``n`` == chip spikes of that layer at Lava step ``n`` ==
emulator trace column ``n - 1`` (index 0 is zero); the training input index
``n`` is what the first synapse receives at step ``n`` (the emulator is fed
``x[..., 1:]``, or ``x`` behind a neuron-less ``Input`` block); an input block
with a neuron gets ``rint(64 * Q(x))`` injected (its index ``n`` = column
``n``). A block without ``delay_shift`` moves every later layer one step
later on the chip (exact without bias). Axonal delays shift each channel by
``floor(d)`` after the one-step shift. Average/decimation outputs are the
integer sums (training mean × group size / factor); a decimation is exported with
``latency`` 1 after a block with ``delay_shift`` (0 otherwise) so the chip groups
the same steps as training.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import train_steps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loihi_slayer import block, gap
from loihi_slayer.block import cuba
from loihi_slayer.errors import ParameterError
from loihi_slayer.neuron.norm import MeanOnlyBatchNorm

T = 24


def params(th=0.5, di=0.25, dv=0.03, norm=False):
    p = {"threshold": th, "current_decay": di, "voltage_decay": dv}
    return dict(p, norm=MeanOnlyBatchNorm) if norm else p


def assert_zero_gap(net, x, min_events=1):
    rep = block.compare_with_emulator(net, x)
    assert rep.compared, rep.summary()
    assert rep.ok, rep.summary()
    assert not rep.skipped, rep.summary()
    outs = gap._eval_outputs(list(net), x)
    assert sum(int((o != 0).sum()) for o in outs) >= min_events
    return rep


def spikes(shape, p=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).float()


def randomize_delays(net, hi=5.0):
    with torch.no_grad():
        for b in net:
            if getattr(b, "delay", None) is not None:
                b.delay.delay.uniform_(0, hi)


def test_dense_chain_with_bias_and_delays():
    x = spikes((2, 12, T))
    x[..., 0] = 0
    net = torch.nn.Sequential(
        cuba.Dense(params(norm=True), 12, 10, weight_scale=3, delay=True),
        cuba.Dense(params(), 10, 8, weight_scale=3),
        cuba.Dense(params(norm=True), 8, 6, weight_scale=3, delay=True),
    )
    randomize_delays(net)
    train_steps(net, x)
    assert_zero_gap(net, x, min_events=20)


def test_conv_flatten_dense_recurrent():
    x = spikes((2, 3, 8, 8, T))
    net = torch.nn.Sequential(
        cuba.Input(None),
        cuba.Conv(params(norm=True), 3, 4, 3, padding=1, weight_scale=2, delay=True),
        cuba.Conv(params(), 4, 5, 3, stride=2, weight_scale=2),
        cuba.Flatten(),
        cuba.Dense(params(norm=True), 45, 10, weight_scale=3),
        cuba.Recurrent(params(), 10, 6, weight_scale=3),
    )
    assert block.init_shapes(net, (3, 8, 8)) == (6,)
    randomize_delays(net)
    train_steps(net, x)
    assert_zero_gap(net, x, min_events=50)


def test_pool_convt_unpool_average():
    x = spikes((2, 2, 8, 8, T))
    net = torch.nn.Sequential(
        cuba.Input(None),
        cuba.Pool(params(), 2, weight_scale=0.5, input_shape=(2, 8, 8)),
        cuba.ConvT(params(), 2, 3, 3, stride=2, weight_scale=2, input_shape=(4, 4)),
        cuba.Unpool(params(), 2, weight_scale=0.6, input_shape=(3, 9, 9)),
        cuba.Flatten(),
        cuba.Average(9),
    )
    train_steps(net, x)
    assert_zero_gap(net, x, min_events=50)


def test_input_neuron_kwta_and_decimation():
    x = torch.rand(2, 12, T) * 2
    net = torch.nn.Sequential(
        cuba.Input(params(th=0.3), weight=1.5, bias=0.1),
        cuba.Dense(params(), 12, 10, weight_scale=3),
        cuba.KWTA(params(), 10, 6, num_winners=2, weight_scale=3, delay_shift=False),
        cuba.TimeDecimation(4),
    )
    train_steps(net, x)
    assert_zero_gap(net, x, min_events=10)


def test_decimation_after_shifted_block_is_exact():
    """The CUBA default (delay_shift=True) before a decimation: compared, not skipped."""
    x = spikes((2, 12, T), p=0.5)
    x[..., 0] = 0
    net = torch.nn.Sequential(
        cuba.Dense(params(), 12, 10, weight_scale=3),
        cuba.Dense(params(), 10, 8, weight_scale=3),
        cuba.TimeDecimation(4),
    )
    train_steps(net, x)
    rec = block.network_record(net)
    assert rec.layers[2].latency == 1
    rep = block.compare_with_emulator(net, x, rec)
    assert rep.ok and 2 not in rep.skipped and rep.compared[2] > 0, rep


def test_affine_readout_voltage_is_exact():
    """Affine (lava-dl's vThMant 262143 'never fires' integrator): voltages compared."""
    x = spikes((2, 12, T), p=0.5)
    x[..., 0] = 0
    net = torch.nn.Sequential(
        cuba.Dense(params(), 12, 10, weight_scale=3),
        cuba.Affine(params(), 10, 4, weight_scale=3),
    )
    train_steps(net, x)
    rep = block.compare_with_emulator(net, x)
    assert rep.ok and not rep.skipped and rep.compared[1] > 0, rep.summary()


def test_gap_detector_sees_a_changed_weight():
    x = spikes((1, 12, T), p=0.5)
    x[..., 0] = 0
    net = torch.nn.Sequential(cuba.Dense(params(), 12, 10, weight_scale=3))
    rec = block.network_record(net)
    assert block.compare_with_emulator(net, x, rec).ok
    rec.layers[0].weight[:, :] += 10
    rep = block.compare_with_emulator(net, x, rec)
    assert not rep.ok and rep.mismatches[0] > 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_in=st.integers(1, 6),
    hidden=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    th=st.sampled_from([0.0, 1 / 64, 0.5, 1.0, 60.0]),
    di=st.sampled_from([0.0, 1 / 4096, 0.5, 1.0]),
    dv=st.sampled_from([0.0, 0.1, 1.0]),
    norm=st.booleans(),
    delay=st.booleans(),
    scale=st.sampled_from([1.0, 4.0, 100.0]),
    seed=st.integers(0, 2**16),
)
def test_random_dense_networks(n_in, hidden, th, di, dv, norm, delay, scale, seed):
    """Random sizes and parameters: ties (zero/tiny thresholds, integer-valued weights),
    large states (weight scale 100, no decay: u/v near the 24-bit limits)."""
    torch.manual_seed(seed)
    x = spikes((2, n_in, T), p=0.6, seed=seed)
    x[..., 0] = 0
    blocks, prev = [], n_in
    for k, h in enumerate(hidden):
        blocks.append(
            cuba.Dense(
                params(th, di, dv, norm and k % 2 == 0), prev, h, weight_scale=scale, delay=delay
            )
        )
        prev = h
    net = torch.nn.Sequential(*blocks)
    randomize_delays(net, 3.0)
    train_steps(net, x, steps=2, seed=seed)
    try:
        rec = block.network_record(net)
    except ParameterError as exc:  # the one netx sign-mode edge case the export refuses
        assert "inhibitory sign mode" in str(exc)
        return
    rep = block.compare_with_emulator(net, x, rec)
    assert rep.ok, rep.summary()


@pytest.mark.parametrize("th", [0.5, 64.0])
def test_threshold_ties(th):
    """Synaptic sums that land exactly on the threshold must not spike (strict >)."""
    vth = int(th * 64)
    w = np.zeros((1, 2))
    w[0, 0] = 2 / 64
    net = torch.nn.Sequential(cuba.Dense(params(th, 1.0, 1.0), 2, 1))
    with torch.no_grad():
        net[0].synapse.weight.copy_(torch.tensor(w, dtype=torch.float32).reshape(1, 2, 1, 1, 1))
    # u = A << 6 with A = 2 * count; v = u: tie when 128 * count == vth * 64
    x = torch.zeros(1, 2, T)
    count = max(1, vth // 2)
    x[0, 0, 1:] = 1.0 if count == 1 else 0.0
    rep = block.compare_with_emulator(net, x)
    assert rep.ok, rep.summary()

"""CUBA training neuron: integer forward vs the fixed-point reference, API, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loihi_slayer.errors import ParameterError
from loihi_slayer.fixed import CubaParams
from loihi_slayer.fixed import reference as fixed_ref
from loihi_slayer.neuron import cuba
from loihi_slayer.neuron.norm import MeanOnlyBatchNorm


def _ref(a_int: np.ndarray, i_decay, v_decay, vth_mant, bias_mant=0, state=None):
    n, c, t = a_int.shape
    p = CubaParams(
        i_decay=np.broadcast_to(np.asarray(i_decay), (c,))[None].repeat(n, 0).reshape(-1),
        v_decay=np.broadcast_to(np.asarray(v_decay), (c,))[None].repeat(n, 0).reshape(-1),
        v_th_mant=vth_mant,
        bias_mant=np.broadcast_to(np.asarray(bias_mant), (c,))[None].repeat(n, 0).reshape(-1),
        bias_exp=6,
    )
    tr, st_ = fixed_ref.cuba(a_int.reshape(n * c, t), p, state=state)
    return {k: v.reshape(n, c, t) for k, v in tr.items()}, st_


@settings(max_examples=25, deadline=None)
@given(
    vth=st.integers(1, 2000),
    di=st.sampled_from([0, 1, 7, 1024, 2048, 4095, 4096]),
    dv=st.sampled_from([0, 1, 128, 3000, 4096]),
    amp=st.sampled_from([4, 200, 1 << 16]),
    seed=st.integers(0, 2**31 - 1),
    graded=st.booleans(),
)
def test_forward_equals_fixed_reference(vth, di, dv, amp, seed, graded):
    rng = np.random.default_rng(seed)
    a = rng.integers(-amp // 2, amp, size=(2, 3, 40))
    x = torch.tensor(a / 64.0, dtype=torch.float32)
    n = cuba.Neuron(vth / 64, di / 4096, dv / 4096, graded_spike=graded)
    assert n.v_th_mant == vth and n.cx_current_decay == di and n.cx_voltage_decay == dv
    tr, _ = _ref(a, di, dv, vth)
    cur, vol = n.dynamics(x)
    assert np.array_equal(vol.numpy() * 4096, tr["v_pre"])
    assert np.array_equal(cur.numpy() * 4096, tr["u"])
    s = n(x).numpy()
    expect = tr["s"] * (tr["v_pre"] / 4096 if graded else 1)
    assert np.array_equal(s, expect)
    assert np.array_equal(n.spike(vol).detach().numpy(), expect)


def test_threshold_tie_is_strict_and_decays_extreme():
    # full decays: v = u = A << 6, so A == vThMant is an exact tie
    n = cuba.Neuron(10 / 64, 1.0, 1.0)
    x = torch.tensor([[[10, 11, 9, 10]]], dtype=torch.float32) / 64
    assert n(x).flatten().tolist() == [0.0, 1.0, 0.0, 0.0]
    # no decay at all: pure integration, wraps at 24 bit, voltage saturates
    n = cuba.Neuron(100000 / 64, 0.0, 0.0)
    a = np.full((1, 1, 12), 1 << 15)
    tr, _ = _ref(a, 0, 0, 100000)
    cur, vol = n.dynamics(torch.tensor(a / 64, dtype=torch.float32))
    assert tr["u"].min() < 0  # the current wrapped
    assert np.array_equal(cur.numpy() * 4096, tr["u"])
    assert np.array_equal(vol.numpy() * 4096, tr["v_pre"])


def test_off_grid_input_is_rounded_half_even():
    n = cuba.Neuron(1000, 1.0, 1.0)
    x = torch.tensor([[[0.5, 1.5, 2.5, -0.5, 0.49]]]) / 64
    _, vol = n.dynamics(x)
    assert (vol.flatten() * 4096 / 64).tolist() == [0.0, 2.0, 2.0, 0.0, 0.0]


def test_persistent_state_matches_one_long_call_and_batch_change_resets():
    rng = np.random.default_rng(1)
    a = rng.integers(-20, 60, size=(2, 4, 30))
    x = torch.tensor(a / 64, dtype=torch.float32)
    n = cuba.Neuron(0.8, 0.1, 0.05, persistent_state=True)
    s = torch.cat([n(x[..., :13]), n(x[..., 13:])], dim=-1)
    ref = cuba.Neuron(0.8, 0.1, 0.05)(x)
    assert torch.equal(s, ref)
    # a different batch size starts from zero again
    s1 = n(x[:1, :, :13])
    assert torch.equal(s1, ref[:1, :, :13])


def test_device_params_properties_and_per_channel():
    n = cuba.Neuron(1.2, 0.25, 0.03, graded_spike=True)
    assert n.device_params == {
        "type": "CUBA",
        "iDecay": 1024,
        "vDecay": 123,
        "vThMant": 76,
        "refDelay": 1,
        "gradedSpike": True,
    }
    assert n.threshold == 76 / 64
    n2 = cuba.Neuron(1.0, (0.1, 0.2), (0.01, 0.02), shared_param=False, shape=(5,))
    di = n2.device_params["iDecay"]
    assert di.shape == (5,) and np.all((di >= 409) & (di <= 820))
    with pytest.raises(ParameterError, match="init_shape"):
        cuba.Neuron(1.0, 0.1, 0.1, shared_param=False)(torch.zeros(1, 5, 4))
    # per-channel decays go to the kernel per channel
    x = torch.tensor(np.random.default_rng(2).integers(0, 90, (2, 5, 20)) / 64, dtype=torch.float32)
    tr, _ = _ref(
        x.numpy().astype(np.float64).__mul__(64).round().astype(np.int64),
        n2.cx_current_decay,
        n2.cx_voltage_decay,
        64,
    )
    assert np.array_equal(n2(x).numpy(), tr["s"])


def test_norm_maps_to_bias_and_matches_reference():
    n = cuba.Neuron(0.5, 0.2, 0.1, norm=MeanOnlyBatchNorm, shape=(3,))
    rng = np.random.default_rng(3)
    a = rng.integers(0, 40, size=(4, 3, 25))
    x = torch.tensor(a / 64, dtype=torch.float32)
    n.train()
    n(x)
    mean = n.norm.running_mean.clone()
    assert mean.abs().sum() > 0
    n.eval()
    bias = n.bias
    assert np.array_equal(bias, -np.clip(np.round(mean.numpy() * 32) * 2, -256, 254))
    tr, _ = _ref(a, n.cx_current_decay, n.cx_voltage_decay, n.v_th_mant, bias_mant=bias)
    cur, vol = n.dynamics(x)
    assert np.array_equal(n(x).numpy(), tr["s"])
    assert np.array_equal(vol.numpy() * 4096, tr["v_pre"])
    # lava-dl reports the post-norm current
    assert np.allclose(cur.numpy() * 4096, tr["u"] + bias[None, :, None] * 64)


def test_bad_inputs_are_reported():
    n = cuba.Neuron(1.0, 0.1, 0.1, shape=(4,))
    with pytest.raises(ParameterError, match=r"cuba.Neuron.*\(N, 4, T\).*\(2, 3, 5\)"):
        n(torch.zeros(2, 3, 5))
    with pytest.raises(ParameterError, match="found shape"):
        n(torch.zeros(4, 5))
    x = torch.zeros(1, 4, 5)
    x[0, 1, 2] = float("nan")
    with pytest.raises(ParameterError, match="NaN"):
        n(x)
    with pytest.raises(ParameterError, match="2\\*\\*31"):
        n(torch.full((1, 4, 5), 1e12))


def test_decays_changed_after_a_forward_reach_the_next_forward():
    """Each way of changing a decay between forwards (in place, ``.data =``,
    ``load_state_dict``, an optimizer step on learnable decays) gives the next forward the
    fixed-point reference's dynamics with the new decays: nothing of the old ones is
    kept (the neuron remembers its integer decays between calls)."""
    rng = np.random.default_rng(3)
    a = rng.integers(-40, 200, size=(2, 3, 30))
    x = torch.tensor(a / 64.0, dtype=torch.float32)
    n = cuba.Neuron(80 / 64, 1024 / 4096, 128 / 4096, requires_grad=True)

    def expect(di, dv):
        assert n.cx_current_decay == di and n.cx_voltage_decay == dv
        cur, vol = n.dynamics(x)
        tr, _ = _ref(a, di, dv, 80)
        assert np.array_equal(vol.detach().numpy() * 4096, tr["v_pre"])
        assert np.array_equal(cur.detach().numpy() * 4096, tr["u"])
        assert np.array_equal(n(x).detach().numpy(), tr["s"])

    expect(1024, 128)
    with torch.no_grad():
        n.current_decay.fill_(2000)
    expect(2000, 128)
    n.voltage_decay.data = torch.full_like(n.voltage_decay, 3000.0)
    expect(2000, 3000)
    n.load_state_dict({**n.state_dict(), "current_decay": torch.full((1,), 7.0)})
    expect(7, 3000)
    n(x).sum().backward()
    grads = [p.grad.abs().max() for p in n.parameters() if p.grad is not None]
    opt = torch.optim.SGD(n.parameters(), lr=float(50 / max(grads)))  # some decay moves 50
    before = (n.cx_current_decay, n.cx_voltage_decay)
    opt.step()
    after = (n.cx_current_decay, n.cx_voltage_decay)
    assert after != before  # the step moved a decay past a rounding boundary
    expect(*after)

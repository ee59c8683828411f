"""CUBA refractory delay (hardware refDelay) in training: forward bit-exact with the
fixed-point reference, gradient rule, persistent state, validation, export, zero gap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loihi_slayer import block, fixed, gap
from loihi_slayer.block import cuba as bcuba
from loihi_slayer.errors import ParameterError
from loihi_slayer.fixed import CubaParams
from loihi_slayer.fixed.params import CUBA_RANGES
from loihi_slayer.neuron import cuba

R_LO, R_HI = CUBA_RANGES["ref_delay"]


def _expected(a, vth, di, dv, ref_delay, state=None):
    """The NumPy fixed-point reference (spec §2.2/2.3), independent of the kernels."""
    n, c, t = a.shape
    p = CubaParams(i_decay=di, v_decay=dv, v_th_mant=vth, ref_delay=ref_delay)
    tr, st_ = fixed.cuba(
        a.reshape(n * c, t), p, state=state, record=("s", "u", "v_pre"), backend="reference"
    )
    return {k: np.asarray(v).reshape(n, c, t) for k, v in tr.items()}, st_


def _check(n, a, vth, di, dv, ref_delay, graded):
    x = torch.tensor(a / 64.0, dtype=torch.float32)
    tr, _ = _expected(a, vth, di, dv, ref_delay)
    cur, vol = n.dynamics(x)
    assert np.array_equal(vol.numpy() * 4096, tr["v_pre"])
    assert np.array_equal(cur.numpy() * 4096, tr["u"])
    expect = tr["s"] * (tr["v_pre"] / 4096 if graded else 1)
    assert np.array_equal(n(x).numpy(), expect)
    return tr


@pytest.mark.parametrize("ref_delay", range(1, 16))
def test_forward_bit_exact_with_fixed_cuba_for_every_small_ref_delay(ref_delay):
    rng = np.random.default_rng(ref_delay)
    a = rng.integers(-20, 120, size=(2, 5, 60))
    n = cuba.Neuron(40 / 64, 1024 / 4096, 128 / 4096, ref_delay=ref_delay)
    assert n.ref_delay == ref_delay and n.device_params["refDelay"] == ref_delay
    tr = _check(n, a, 40, 1024, 128, ref_delay, False)
    spikes = tr["s"].reshape(-1, 60)
    assert spikes.sum() >= 10
    # the refractory rule itself: two spikes are at least R steps apart
    for row in spikes:
        idx = np.flatnonzero(row)
        assert np.all(np.diff(idx) >= ref_delay)


@pytest.mark.parametrize("backend", ["reference", "cuda"])
@pytest.mark.parametrize("ref_delay", [2, 5, 15])
def test_other_backends_bit_exact(backend, ref_delay):
    rng = np.random.default_rng(7)
    a = rng.integers(-20, 140, size=(2, 3, 40))
    n = cuba.Neuron(30 / 64, 0.25, 0.03, ref_delay=ref_delay, graded_spike=True, backend=backend)
    _check(n, a, 30, 1024, 123, ref_delay, True)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ref_delay=st.integers(R_LO, R_HI),
    vth=st.integers(0, 3000),
    di=st.sampled_from([0, 1, 1024, 4095, 4096]),
    dv=st.sampled_from([0, 1, 128, 4096]),
    amp=st.sampled_from([4, 300, 1 << 17]),
    graded=st.booleans(),
    split=st.integers(1, 39),
    seed=st.integers(0, 2**31 - 1),
)
def test_forward_property_with_persistent_state(ref_delay, vth, di, dv, amp, graded, split, seed):
    """Ties, saturation and decays 0/4096; the refractory counter carries across calls."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-amp // 3, amp, size=(1, 6, 40))
    a[0, 0, : 40 // 2] = vth  # with full decays a tie v == vThMant << 6
    x = torch.tensor(a / 64.0, dtype=torch.float32)
    n = cuba.Neuron(
        vth / 64,
        di / 4096,
        dv / 4096,
        graded_spike=graded,
        ref_delay=ref_delay,
        persistent_state=True,
    )
    tr, final = _expected(a, vth, di, dv, ref_delay)
    s = torch.cat([n(x[..., :split]), n(x[..., split:])], -1).numpy()
    assert np.array_equal(s, tr["s"] * (tr["v_pre"] / 4096 if graded else 1))
    assert np.array_equal(n.refractory_state.numpy().reshape(-1), final["rc"])
    assert np.array_equal(n.voltage_state.numpy().reshape(-1) * 4096, final["v"])


def plain_torch_refractory(x, p_i, p_v, vth_mant, ref_delay):
    """Independent gradient: autograd through a loop over time, values from the integer
    reference, lava-dl's surrogate, and on refractory steps ``v`` a constant 0."""
    n, c, steps = x.shape
    x = x.double()
    a = torch.round(x.detach() * 64).long().numpy()
    tr, _ = _expected(
        a, vth_mant, int(torch.round(p_i.detach())), int(torch.round(p_v.detach())), ref_delay
    )
    p_i = p_i + (torch.round(p_i) - p_i).detach()  # the kernels use rne(p), straight through
    p_v = p_v + (torch.round(p_v) - p_v).detach()
    spikes = tr["s"]
    refr = np.zeros_like(spikes, dtype=bool)
    for lag in range(1, ref_delay):
        refr[..., lag:] |= spikes[..., :-lag].astype(bool)
    theta = vth_mant / 64
    tau, rho = 100 * theta, 0.1
    u = torch.zeros(n, c, dtype=torch.float64)
    v = torch.zeros(n, c, dtype=torch.float64)
    out = []
    for t in range(steps):
        u_lin = (1 - p_i / 4096) * u + x[..., t]
        u = u_lin + (torch.tensor(tr["u"][..., t] / 4096.0) - u_lin).detach()
        v_lin = (1 - p_v / 4096) * v + u
        vt = v_lin + (torch.tensor(tr["v_pre"][..., t] / 4096.0) - v_lin).detach()
        held = torch.tensor(refr[..., t])
        z = vt - theta
        anti = rho / 2 * torch.where(z >= 0, 1 - torch.exp(-z / tau), torch.exp(z / tau) - 1)
        s_t = torch.tensor(spikes[..., t], dtype=torch.float64)
        out.append(torch.where(held, torch.zeros_like(vt), s_t + anti - anti.detach()))
        v = torch.where(held, torch.zeros_like(vt), vt - (vt * s_t).detach())
    return torch.stack(out, -1)


@pytest.mark.parametrize("backend", ["cpu", "reference", "cuda"])
@pytest.mark.parametrize("ref_delay", [1, 3, 8])
def test_backward_has_no_voltage_gradient_on_refractory_steps(backend, ref_delay):
    rng = np.random.default_rng(3)
    a = rng.integers(-10, 80, size=(2, 3, 30))
    x0 = torch.tensor(a / 64.0, dtype=torch.float32)
    w = torch.tensor(rng.normal(size=a.shape))
    n = cuba.Neuron(0.6, 0.2, 0.1, requires_grad=True, ref_delay=ref_delay, backend=backend)
    x = x0.clone().requires_grad_(True)
    (n(x).double() * w).sum().backward()
    pi = n.current_decay.detach().clone().double().requires_grad_(True)
    pv = n.voltage_decay.detach().clone().double().requires_grad_(True)
    xr = x0.clone().double().requires_grad_(True)
    (plain_torch_refractory(xr, pi, pv, n.v_th_mant, ref_delay) * w).sum().backward()
    torch.testing.assert_close(x.grad.double(), xr.grad, rtol=2e-5, atol=1e-6)
    torch.testing.assert_close(n.current_decay.grad.double(), pi.grad, rtol=2e-4, atol=1e-9)
    torch.testing.assert_close(n.voltage_decay.grad.double(), pv.grad, rtol=2e-4, atol=1e-9)


@pytest.mark.parametrize("bad", [0, -1, R_HI + 1, 100])
def test_ref_delay_outside_the_hardware_range_is_refused(bad):
    with pytest.raises(ParameterError, match=rf"ref_delay = {bad} is outside .*\[{R_LO}, {R_HI}\]"):
        cuba.Neuron(0.5, 0.2, 0.1, ref_delay=bad)
    with pytest.raises(ParameterError, match="ref_delay"):
        bcuba.Dense(
            {"threshold": 0.5, "current_decay": 0.2, "voltage_decay": 0.1, "ref_delay": bad}, 3, 2
        )
    with pytest.raises(ParameterError, match="ref_delay"):
        cuba.Neuron(0.5, 0.2, 0.1, ref_delay=2.5)


def _params(ref_delay):
    return {"threshold": 0.4, "current_decay": 0.25, "voltage_decay": 0.03, "ref_delay": ref_delay}


@pytest.mark.parametrize("ref_delay", [2, 4, 9])
def test_zero_gap_with_refractory(ref_delay, tmp_path):
    g = torch.Generator().manual_seed(ref_delay)
    x = (torch.rand((2, 12, 30), generator=g) < 0.4).float()
    x[..., 0] = 0
    net = torch.nn.Sequential(
        bcuba.Dense(_params(ref_delay), 12, 10, weight_scale=4),
        bcuba.Dense(_params(ref_delay), 10, 6, weight_scale=4),
    )
    rec = block.network_record(net)
    assert all(layer.neuron.ref_delay == ref_delay for layer in rec.layers)
    rep = block.compare_with_emulator(net, x, rec)
    assert rep.compared and rep.ok and not rep.skipped, rep.summary()
    outs = gap._eval_outputs(list(net), x)
    assert int((outs[0] != 0).sum()) >= 20
    # refractory really acts: without it the same weights give other spikes
    s_ref = outs[0]
    net1 = torch.nn.Sequential(bcuba.Dense(_params(1), 12, 10, weight_scale=4))
    net1.load_state_dict(net[:1].state_dict())
    assert not torch.equal(net1(x), s_ref)
    # the exported file carries refDelay
    path = tmp_path / "net.net"
    block.export_network(net, path)
    import h5py

    with h5py.File(path, "r") as f:
        assert int(np.asarray(f["layer/0/neuron/refDelay"])) == ref_delay

"""ALIF training neuron: forward bit-exact with the model's NumPy reference, surrogate
gradients equal to a plain-PyTorch autograd loop, state, parameters and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loihi_slayer import fixed
from loihi_slayer.errors import ParameterError
from loihi_slayer.neuron import alif
from loihi_slayer.neuron.norm import MeanOnlyBatchNorm

S = 4096  # s_scale at the default scale 64
STATE_MAX = (1 << 23) - 1


def make(th=0.5, step=0.1, di=0.25, dv=0.03, dth=0.05, dref=0.2, **kw):
    return alif.Neuron(th, step, di, dv, dth, dref, **kw)


def reference_run(n: alif.Neuron, a: np.ndarray, bias=None):
    """The model's independent NumPy reference on the neuron's device parameters."""
    dp = n.device_params
    c = n.shape[0]
    spatial = (1,) * (len(n.shape) - 1)

    def chan(v):
        v = np.asarray(v)
        return v if v.size == 1 else v.reshape((c,) + spatial)

    params = {
        "i_decay": chan(dp["iDecay"]),
        "v_decay": chan(dp["vDecay"]),
        "th_decay": chan(dp["thDecay"]),
        "ref_decay": chan(dp["refDecay"]),
        "v_th_mant": dp["vThMant"],
        "v_th_step": dp["vThStep"],
        "ref_delay": dp["refDelay"],
    }
    if bias is not None:
        a = a + np.asarray(bias).reshape((1, c) + spatial + (1,))
    tr, _ = fixed.run("alif", a, params, record=("s", "u", "v", "th", "r"), backend="reference")
    return tr


# ------------------------------------------------------------------ forward exactness


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    spatial=st.booleans(),
    th_mant=st.sampled_from([0, 1, 2, 32, 4096, (1 << 17) - 1]),
    step_mant=st.sampled_from([0, 1, 7, 500, (1 << 17) - 1]),
    decays=st.lists(st.sampled_from([0, 1, 300, 2048, 4095, 4096]), min_size=4, max_size=4),
    ref_delay=st.sampled_from([1, 2, 5]),
    amp=st.sampled_from([3, 40, 1 << 17]),
    backend=st.sampled_from(["cpu", "reference"]),
    shared=st.booleans(),
)
def test_forward_bit_exact_with_model_reference(
    data, spatial, th_mant, step_mant, decays, ref_delay, amp, backend, shared
):
    """Spikes and every trace equal the model's reference, incl. ties (threshold 0,
    small integer inputs) and saturation (|a| up to 2**17 without decay)."""
    shape = (2, 2, 3) if spatial else (3,)
    steps = data.draw(st.integers(1, 20))
    seed = data.draw(st.integers(0, 2**16))
    a = np.random.default_rng(seed).integers(-amp, amp + 1, size=(2, *shape, steps))
    if shared:
        di, dv, dth, dref = (d / 4096 for d in decays)
    else:  # per-channel decays drawn from (min, max) ranges
        di, dv, dth, dref = ((d / 4096, min(d + 700, 4096) / 4096) for d in decays)
    n = make(
        th_mant / 64,
        step_mant / 64,
        di,
        dv,
        dth,
        dref,
        ref_delay=ref_delay,
        shape=shape,
        backend=backend,
        shared_param=shared,
    )
    if not shared:
        assert np.asarray(n.cx_current_decay).shape == (shape[0],)
    x = torch.tensor(a / 64.0, dtype=torch.float64)
    cur, vol, thr, ref = n.dynamics(x)
    s = n(x)
    exp = reference_run(n, a)
    np.testing.assert_array_equal(s.numpy(), exp["s"])
    for got, k in ((cur, "u"), (vol, "v"), (thr, "th"), (ref, "r")):
        np.testing.assert_array_equal(np.rint(got.numpy() * S).astype(np.int64), exp[k])


def test_ties_spike_and_states_saturate():
    """Spec §6.1: s = v >= θ + r (a tie spikes); u, v saturate at ±(2**23 - 1)."""
    # no decay memory (decay 1): u = 64 a, v = u; threshold mantissa 10 -> θ0 = 640
    n = make(10 / 64, 0.0, 1.0, 1.0, 1.0, 1.0)
    a = torch.tensor([[[10.0, 9.0, 10.0, 11.0]]]) / 64  # tie, below, tie, above
    # after a spike r = 2 θ (fully decayed again next step): each step starts afresh
    assert n(a).tolist() == [[[1.0, 0.0, 1.0, 1.0]]]
    big = make(1000.0, 0.0, 0.0, 0.0, 1.0, 1.0)
    x = torch.full((1, 1, 6), float(1 << 16), dtype=torch.float64)  # a = 2**22 per step
    cur, vol, _, _ = big.dynamics(x)
    assert cur[0, 0, -1].item() * S == STATE_MAX
    assert vol[0, 0, -1].item() * S == STATE_MAX


def test_norm_is_a_bias_on_the_input():
    """lava-dl applies ALIF's norm before the current integrator: a chip input bias."""
    n = make(0.3, 0.05, 0.2, 0.1, 0.1, 0.1, norm=MeanOnlyBatchNorm, shape=(3,))
    with torch.no_grad():
        n.norm.running_mean.copy_(torch.tensor([0.1, -0.2, 0.0]))
    n.eval()
    a = np.random.default_rng(1).integers(0, 30, size=(2, 3, 16))
    s = n(torch.tensor(a / 64.0, dtype=torch.float32))
    b = n.bias_mant
    assert b.tolist() == [-6, 12, 0]  # -rne(mean * 64 / 2) * 2
    np.testing.assert_array_equal(s.numpy(), reference_run(n, a, bias=b)["s"])


def test_persistent_state_split_equals_whole_and_batch_change_restarts():
    a = np.random.default_rng(2).integers(-5, 30, size=(2, 3, 30))
    x = torch.tensor(a / 64.0)
    whole = make(0.4, 0.2, ref_delay=3, shape=(3,))(x)
    n = make(0.4, 0.2, ref_delay=3, shape=(3,), persistent_state=True)
    parts = torch.cat([n(x[..., :7]), n(x[..., 7:8]), n(x[..., 8:])], -1)
    torch.testing.assert_close(parts, whole, rtol=0, atol=0)
    assert whole.sum() > 5
    th = n.threshold_state
    assert th is not None and th.shape == (2, 3) and n.refractory_state.shape == (2, 3)
    # a new batch size restarts from rest: equals a fresh run
    torch.testing.assert_close(n(x[:1]), make(0.4, 0.2, ref_delay=3, shape=(3,))(x[:1]))
    n.reset_state()
    assert n.voltage_state is None


def test_spike_of_dynamics_equals_forward():
    a = np.random.default_rng(3).integers(-5, 30, size=(2, 3, 25))
    x = torch.tensor(a / 64.0, dtype=torch.float32)
    n = make(0.4, 0.2, shape=(3,))
    s1 = n(x)
    s2 = n.spike(*n.dynamics(x)[1:])
    torch.testing.assert_close(s1, s2, rtol=0, atol=0)


# ------------------------------------------------------------------------- gradients


def plain_torch_alif(x, p_i, p_v, n: alif.Neuron, graded: bool):
    """Independent implementation: autograd through a Python loop over time.

    Values come from the model's integer reference; gradients from the float
    recursion of the two leaky integrators (holds ignored), with lava-dl's surrogate
    at v - (θ + r) and θ, r constants, via straight-through tricks.
    """
    _, c, steps = x.shape
    x = x.double()
    di = p_i + (torch.round(p_i) - p_i).detach()
    dv = p_v + (torch.round(p_v) - p_v).detach()
    a = torch.round(x.detach() * 64).long().numpy()
    tr = reference_run(n, a)
    u_int, v_int = (torch.tensor(tr[k] / S) for k in ("u", "v"))
    theta = torch.tensor((tr["th"] + tr["r"]) / S)
    s_int = torch.tensor(tr["s"], dtype=torch.float64)
    hold = n.ref_delay > 1
    tau = 100 * n.tau_grad * n.threshold
    rho = 0.1 * n.scale_grad
    u = torch.zeros(x.shape[:2], dtype=torch.float64)
    v = torch.zeros(x.shape[:2], dtype=torch.float64)
    out = []
    for t in range(steps):
        u_lin = (1 - di / 4096) * u + x[..., t]
        u = u_lin + (u_int[..., t] - u_lin).detach()
        v_lin = (1 - dv / 4096) * v + u
        vt = v_lin + (v_int[..., t] - v_lin).detach()
        z = vt - theta[..., t]
        if graded:
            anti = torch.where(
                z < 0, rho * tau * torch.exp(torch.clamp(z, max=0) / tau), rho * (tau + z)
            )
            val = s_int[..., t] * vt.detach()
        else:
            anti = rho / 2 * torch.where(z >= 0, 1 - torch.exp(-z / tau), torch.exp(z / tau) - 1)
            val = s_int[..., t]
        out.append(val + anti - anti.detach())
        v = vt - (vt * s_int[..., t]).detach() if hold else vt  # a hold starts at 0
    return torch.stack(out, -1)


@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("backend", ["cpu", "reference", "cuda"])
@pytest.mark.parametrize("ref_delay", [1, 3])
def test_gradients_equal_plain_pytorch(graded, backend, ref_delay):
    torch.manual_seed(0)  # per-channel decays are drawn from their ranges
    rng = np.random.default_rng(5)
    a = rng.integers(-10, 40, size=(2, 3, 24))
    x0 = torch.tensor(a / 64.0, dtype=torch.float32)
    w = torch.tensor(rng.normal(size=(2, 3, 24)))
    n = alif.Neuron(
        0.9,
        0.3,
        (0.1, 0.3),
        (0.05, 0.2),
        0.1,
        0.2,
        tau_grad=0.7,
        scale_grad=2.0,
        shared_param=False,
        requires_grad=True,
        graded_spike=graded,
        ref_delay=ref_delay,
        shape=(3,),
        backend=backend,
    )
    x = x0.clone().requires_grad_(True)
    s = n(x)
    (s.double() * w).sum().backward()
    pi = n.current_decay.detach().clone().double().requires_grad_(True)
    pv = n.voltage_decay.detach().clone().double().requires_grad_(True)
    xr = x0.clone().double().requires_grad_(True)
    sr = plain_torch_alif(xr, pi, pv, n, graded)
    (sr * w).sum().backward()
    torch.testing.assert_close(s.double(), sr.detach(), rtol=0, atol=1e-6)
    assert s.sum() > 0
    torch.testing.assert_close(x.grad.double(), xr.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(n.current_decay.grad.double(), pi.grad, rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(n.voltage_decay.grad.double(), pv.grad, rtol=1e-4, atol=1e-9)
    # lava-dl: the adaptive-threshold dynamics pass no gradient to their decays
    assert n.threshold_decay.grad is None and n.refractory_decay.grad is None


@pytest.mark.parametrize("backend", ["cpu", "reference", "cuda"])
def test_trace_gradients_are_the_linear_scans(backend):
    """Gradients through the current/voltage traces of dynamics(): plain-torch recursion."""
    rng = np.random.default_rng(7)
    x0 = torch.tensor(rng.integers(0, 50, size=(2, 3, 20)) / 64.0, dtype=torch.float32)
    n = make(1000.0, 0.0, 0.25, 0.125, backend=backend)  # never spikes
    x = x0.clone().requires_grad_(True)
    cur, vol, _, _ = n.dynamics(x)
    (cur.sum() + 2 * vol.sum()).backward()
    xr = x0.clone().double().requires_grad_(True)
    u = torch.zeros(2, 3, dtype=torch.float64)
    v = torch.zeros(2, 3, dtype=torch.float64)
    tot = 0
    for t in range(20):
        u = 0.75 * u + xr[..., t]
        v = 0.875 * v + u
        tot = tot + u.sum() + 2 * v.sum()
    tot.backward()
    torch.testing.assert_close(x.grad.double(), xr.grad, rtol=1e-6, atol=1e-9)


def test_norm_training_gradient_flows_through_the_batch_mean():
    n = make(0.3, 0.05, norm=MeanOnlyBatchNorm, shape=(3,))
    x = torch.tensor(
        np.random.default_rng(8).integers(0, 30, size=(2, 3, 12)) / 64.0,
        dtype=torch.float32,
        requires_grad=True,
    )
    n(x).sum().backward()
    # d/dx of (x - mean_c(x)) sums to zero over each channel (straight-through quantizer)
    torch.testing.assert_close(x.grad.sum(dim=(0, 2)), torch.zeros(3), atol=1e-5, rtol=0)
    assert n.norm.running_mean.abs().sum() > 0


# ------------------------------------------------------------------ parameters, errors


def test_lava_dl_constructor_and_device_params():
    n = alif.Neuron(0.5, 0.1, 0.25, 0.03, 0.05, 0.2)
    assert n.device_params == {
        "type": "ALIF",
        "iDecay": 1024,
        "vDecay": 123,
        "thDecay": 205,
        "refDecay": 819,
        "vThMant": 32,
        "vThStep": 6,
        "refDelay": 1,
        "gradedSpike": False,
    }
    back = alif.neuron_params(n.device_params)
    assert back["threshold"] == 0.5 and back["threshold_step"] == 6 / 64
    assert back["refractory_decay"] == 819 / 4096
    names = [k for k, _ in n.named_parameters()]
    assert names == ["current_decay", "voltage_decay", "threshold_decay", "refractory_decay"]
    per = alif.Neuron(
        0.5, 0.1, (0.1, 0.2), 0.5, 0.05, (0.2, 0.3), shared_param=False, shape=(4, 2, 2)
    )
    assert per.cx_current_decay.shape == (4,) and np.all(per.cx_threshold_decay == 205)
    assert np.all((per.cx_voltage_decay >= 2027) & (per.cx_voltage_decay <= 2069))


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"dth": 1.5}, ["threshold_decay", "1.5", "thDecay", "6144", "[0, 4096]"]),
        ({"dref": -0.1}, ["refractory_decay", "-0.1", "refDecay", "[0, 4096]"]),
        ({"di": 2.0}, ["current_decay", "iDecay", "8192"]),
        ({"th": 2048.0}, ["threshold", "vThMant", "131072", "[0, 131071]"]),
        ({"step": 2048.0}, ["threshold_step", "vThStep", "131072", "[0, 131071]"]),
        ({"step": -1.0}, ["threshold_step", "vThStep", "-64"]),
        ({"ref_delay": 0}, ["ref_delay", "refDelay", "0", "[1, 63]"]),
        ({"ref_delay": 64}, ["ref_delay", "refDelay", "64", "[1, 63]"]),
        ({"di": (0.1, 0.2)}, ["current_decay", "scalar", "shared_param"]),
        ({"tau_grad": 0.0}, ["tau_grad"]),
    ],
)
def test_out_of_range_parameters_raise_at_construction(kwargs, words):
    with pytest.raises(ParameterError) as err:
        make(**kwargs)
    msg = str(err.value)
    assert "neuron.alif.Neuron" in msg
    for w in words:
        assert w in msg, msg


def test_bad_input_is_refused():
    n = make(shape=(3,))
    with pytest.raises(ParameterError, match="NaN/inf"):
        n(torch.full((1, 3, 4), float("nan")))
    with pytest.raises(ParameterError, match="2\\*\\*31"):
        n(torch.full((1, 3, 4), 2.0**30))
    with pytest.raises(ParameterError, match="expected input shape"):
        n(torch.zeros(1, 4, 4))
    with pytest.raises(ParameterError, match="MeanOnlyBatchNorm"):
        make(norm=lambda: torch.nn.Identity())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [64, 3])
def test_conversions_njit_equal_torch_forms(dtype, scale):
    """The njit conversions (CPU) equal the torch forms the CUDA path runs: ties at .5
    round half to even, NaN/inf/too-large entries are counted and zeroed."""
    from loihi_slayer.autograd import _convert

    rng = np.random.default_rng(9)
    ties = rng.integers(-500, 500, 200) / 2 / scale  # many land on .5 after * scale
    bad_vals = [np.nan, np.inf, -np.inf, 2.0**40]
    vals = np.concatenate([ties, rng.normal(0, 100, 200), bad_vals])
    x = torch.tensor(vals, dtype=dtype).reshape(4, -1)
    got, bad = _convert.to_int(x, scale, 2.0**31)
    exp, bad_t = _convert._to_int_torch(x, scale, 2.0**31)
    assert bad == bad_t == 4
    torch.testing.assert_close(got, exp, rtol=0, atol=0)
    half = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5], dtype=dtype) / 64
    assert _convert.to_int(half, 64, 2.0**31)[0].tolist() == [0, 2, 2, 0, -2]
    a = torch.tensor(rng.integers(-(2**23), 2**23, (3, 50)))
    b = torch.tensor(rng.integers(-(2**23), 2**23, (3, 50)))
    for bb in (None, b):
        torch.testing.assert_close(
            _convert.scaled_sum(a, bb, 1 / 4096, dtype),
            _convert._scaled_sum_torch(a, bb, 1 / 4096, dtype),
            rtol=0,
            atol=0,
        )

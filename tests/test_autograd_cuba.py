"""CUBA surrogate gradients: kernels (njit, numba.cuda simulator, NumPy) vs plain PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loihi_slayer.autograd.cuba import CubaState, decay_int
from loihi_slayer.fixed import CubaParams
from loihi_slayer.fixed import reference as fixed_ref
from loihi_slayer.neuron import cuba
from loihi_slayer.neuron.norm import MeanOnlyBatchNorm


def plain_torch_cuba(x, p_i, p_v, vth_mant, tau_grad, scale_grad, graded, bias_mant=None):
    """Independent implementation: autograd through a Python loop over time.

    Values come from the integer reference; gradients from the float recursion
    with the reset ignored and lava-dl's surrogate, via straight-through tricks.
    """
    n, c, steps = x.shape
    x = x.double()
    di = p_i + (torch.round(p_i) - p_i).detach()
    dv = p_v + (torch.round(p_v) - p_v).detach()
    a = torch.round(x.detach() * 64).long().numpy()
    params = CubaParams(
        i_decay=np.resize(torch.round(p_i).long().numpy(), c)[None].repeat(n, 0).reshape(-1),
        v_decay=np.resize(torch.round(p_v).long().numpy(), c)[None].repeat(n, 0).reshape(-1),
        v_th_mant=vth_mant,
        bias_mant=0 if bias_mant is None else np.tile(bias_mant, n),
    )
    tr, _ = fixed_ref.cuba(a.reshape(n * c, steps), params)
    u_int = torch.tensor(tr["u"].reshape(n, c, steps) / 4096.0)
    v_int = torch.tensor(tr["v_pre"].reshape(n, c, steps) / 4096.0)
    s_int = torch.tensor(tr["s"].reshape(n, c, steps), dtype=torch.float64)
    theta = vth_mant / 64
    tau = 100 * tau_grad * theta
    rho = 0.1 * scale_grad
    b = 0.0 if bias_mant is None else torch.tensor(bias_mant / 64.0).reshape(1, -1)
    u = torch.zeros(n, c, dtype=torch.float64)
    v = torch.zeros(n, c, dtype=torch.float64)
    out = []
    for t in range(steps):
        u_lin = (1 - di / 4096) * u + x[..., t]
        u = u_lin + (u_int[..., t] - u_lin).detach()
        v_lin = (1 - dv / 4096) * v + u + b
        vt = v_lin + (v_int[..., t] - v_lin).detach()
        z = vt - theta
        if graded:
            anti = torch.where(
                z < 0, rho * tau * torch.exp(torch.clamp(z, max=0) / tau), rho * (tau + z)
            )
            val = s_int[..., t] * vt.detach()
        else:
            # antiderivative of rho/(2 tau) exp(-|z|/tau), written with a branch so
            # autograd gives the correct derivative at an exact tie z == 0 (sign/abs
            # have zero gradient there)
            anti = rho / 2 * torch.where(z >= 0, 1 - torch.exp(-z / tau), torch.exp(z / tau) - 1)
            val = s_int[..., t]
        out.append(val + anti - anti.detach())
        v = vt - (vt * s_int[..., t]).detach()  # reset, ignored by the gradient
    return torch.stack(out, -1)


@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("backend", ["cpu", "reference", "cuda"])
@pytest.mark.parametrize("seed", [0, 120])  # 120 draws decays giving an exact tie at t=15
def test_gradients_equal_plain_pytorch(graded, backend, seed):
    torch.manual_seed(seed)  # per-channel decays are drawn at random from their ranges
    rng = np.random.default_rng(5)
    a = rng.integers(-10, 40, size=(2, 3, 24))
    x0 = torch.tensor(a / 64.0, dtype=torch.float32)
    w = torch.tensor(rng.normal(size=(2, 3, 24)))
    n = cuba.Neuron(
        0.9,
        (0.1, 0.3),
        (0.05, 0.2),
        tau_grad=0.7,
        scale_grad=2.0,
        shared_param=False,
        requires_grad=True,
        graded_spike=graded,
        shape=(3,),
        backend=backend,
    )
    x = x0.clone().requires_grad_(True)
    s = n(x)
    (s.double() * w).sum().backward()
    pi = n.current_decay.detach().clone().double().requires_grad_(True)
    pv = n.voltage_decay.detach().clone().double().requires_grad_(True)
    xr = x0.clone().double().requires_grad_(True)
    sr = plain_torch_cuba(xr, pi, pv, n.v_th_mant, 0.7, 2.0, graded)
    (sr * w).sum().backward()
    torch.testing.assert_close(s.double(), sr.detach(), rtol=0, atol=1e-9)
    assert s.sum() > 0
    # float32 kernel scans vs a float64 reference: float32 rounding tolerance
    torch.testing.assert_close(x.grad.double(), xr.grad, rtol=2e-5, atol=1e-6)
    torch.testing.assert_close(n.current_decay.grad.double(), pi.grad, rtol=2e-4, atol=1e-9)
    torch.testing.assert_close(n.voltage_decay.grad.double(), pv.grad, rtol=2e-4, atol=1e-9)


def test_fast_path_equals_general_and_dynamics_spike_split():
    rng = np.random.default_rng(6)
    x0 = torch.tensor(rng.integers(-10, 50, size=(3, 7, 33)) / 64.0, dtype=torch.float32)
    w = torch.tensor(rng.normal(size=(3, 7, 33)), dtype=torch.float32)
    grads = []
    for mode in ("fused", "split", "reference"):
        n = cuba.Neuron(1.1, 0.2, 0.1, backend="reference" if mode == "reference" else "cpu")
        x = x0.clone().requires_grad_(True)
        s = n(x) if mode != "split" else n.spike(n.dynamics(x)[1])
        (s * w).sum().backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[2], rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(grads[1], grads[2], rtol=1e-5, atol=1e-8)


def test_trace_gradients_and_norm_training_gradient():
    rng = np.random.default_rng(7)
    x0 = torch.tensor(rng.integers(0, 50, size=(2, 3, 20)) / 64.0, dtype=torch.float32)
    # gradient through the current/voltage traces: a linear scan, check vs plain torch
    n = cuba.Neuron(1000.0, 0.25, 0.125)
    x = x0.clone().requires_grad_(True)
    cur, vol = n.dynamics(x)
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
    torch.testing.assert_close(x.grad.double(), xr.grad, rtol=1e-5, atol=1e-7)
    # batch-mean norm: gradient of the mean subtraction (I - mean) on the current
    for backend in ("cpu", "reference"):
        m = cuba.Neuron(0.3, 0.25, 0.125, norm=MeanOnlyBatchNorm, backend=backend, shape=(3,))
        x = x0.clone().requires_grad_(True)
        s = m(x)
        (s * torch.arange(20.0)).sum().backward()
        if backend == "cpu":
            g_cpu = x.grad.clone()
    torch.testing.assert_close(g_cpu, x.grad, rtol=1e-5, atol=1e-6)
    assert g_cpu.abs().sum() > 0


def test_trace_backward_is_linear_in_the_output_gradient():
    """The reverse scan is a linear map of the incoming gradient."""
    from loihi_slayer.autograd.cuba import CubaFunction, CubaState, make_spec

    spec = make_spec(1000.0, 64, 1.0, 1.0, False, 2, 1, "cpu")

    def f(g):
        # d/dg of <g, voltage(x)> w.r.t. the scan: use the backward as a linear map
        x = torch.zeros(1, 2, 6, dtype=torch.float64, requires_grad=True)
        st = CubaState(torch.zeros(2, dtype=torch.int64), torch.zeros(2, dtype=torch.int64))
        _, cur, vol = CubaFunction.apply(
            x, torch.tensor([1024.0]), torch.tensor([512.0]), spec, st, None, True
        )
        (gx,) = torch.autograd.grad((vol * g).sum(), x, create_graph=False)
        return gx

    g = torch.randn(1, 2, 6, dtype=torch.float64)
    # linearity and the explicit kernel: g -> sum_{k>=t} (binomial) weights
    a = f(g) + f(2 * g)
    torch.testing.assert_close(a, f(3 * g))


@settings(max_examples=200, deadline=None)
@given(
    value=st.one_of(
        st.floats(allow_nan=False, width=32),
        st.integers(-2, 4100).map(lambda k: k + 0.5),  # ties: half to even
        st.sampled_from([0.0, -0.0, 4096.0, 4095.5, 4096.5, float("inf"), -float("inf")]),
    ),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_decay_int_of_a_shared_decay_equals_the_tensor_formula(value, dtype):
    """The scalar fast path of ``decay_int``: ``rne(clamp(p, 0, 4096))`` as torch does it."""
    p = torch.tensor([value], dtype=dtype)
    want = torch.round(p.clamp(0, 4096)).to(torch.int64).numpy()
    got = decay_int(torch.nn.Parameter(p))
    assert got.dtype == np.int64 and got.shape == (1,)
    np.testing.assert_array_equal(got, want)


def test_state_made_packed_hands_out_its_tensor_until_a_row_is_replaced():
    st = CubaState.zeros(5, torch.device("cpu"))
    packed = st.stacked()
    assert packed.shape == (3, 5) and st.stacked() is packed  # no copy per call
    st.u.add_(7)  # in place: still the packed rows
    assert torch.equal(st.stacked()[0], torch.full((5,), 7))
    st.v = torch.arange(5)  # a replaced row: a new stack with it
    fresh = st.stacked()
    assert fresh is not packed and torch.equal(fresh[1], torch.arange(5))
    end = torch.arange(15).reshape(3, 5)
    st.assign(end)
    assert st.stacked() is end

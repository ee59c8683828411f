"""torch.compile: the kernels as custom ops (opcheck) and whole networks with fullgraph=True."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from loihi_slayer.autograd.cuba import CubaState, batch_mean_bias, cuba_op, make_spec, op_config
from loihi_slayer.autograd.op import check_finite
from loihi_slayer.autograd.sigma_delta import SdnnSpec, sdnn_op
from loihi_slayer.autograd.sigma_delta import op_config as sd_op_config
from loihi_slayer.autograd.spike import spike_op
from loihi_slayer.block import cuba, sigma_delta
from loihi_slayer.errors import ParameterError
from loihi_slayer.neuron.norm import MeanOnlyBatchNorm

# all of opcheck's checks, including dynamic-shape AOT dispatch of forward and backward
OPCHECK = (
    "test_schema",
    "test_autograd_registration",
    "test_faketensor",
    "test_aot_dispatch_dynamic",
)


def _spikes(*shape, p=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < p).to(torch.float32)


def _cuba_args(x, ref_delay=1, batch_mean=False, rec_u=True, bias=None, shift=False):
    rows = x.numel() // x.shape[-1]
    spec = make_spec(0.5, 64, 1.0, 1.0, False, x.shape[1], 1, "cpu", ref_delay)
    bias = torch.zeros(1, dtype=torch.int64) if bias is None else bias
    state = CubaState(*(torch.zeros(rows, dtype=torch.int64) for _ in range(3))).stacked()
    config, rho = op_config(spec, batch_mean, rec_u, True, shift)
    # without the recorded current the current decay has no gradient (the op refuses one)
    decays = (
        torch.tensor([1024.0], requires_grad=rec_u),
        torch.tensor([512.0], requires_grad=True),
    )
    return (x, *decays, bias, state, config, rho, spec.backend)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"ref_delay": 4},
        {"batch_mean": True},
        {"rec_u": False},
        {"bias": torch.tensor([64, -128, 0], dtype=torch.int64)},
        {"shift": True},
        {"shift": True, "ref_delay": 4, "batch_mean": True},
    ],
)
def test_cuba_op_opcheck(kw):
    x = (torch.rand(2, 3, 12) * 0.8).requires_grad_()
    torch.library.opcheck(cuba_op.op, _cuba_args(x, **kw), test_utils=OPCHECK)


def test_kernel_op_without_a_graph_runs_the_forward_alone(monkeypatch):
    """Gradients off: the eager path calls the forward function itself (no
    autograd.Function), with the custom op's outputs; gradients on, the function."""
    args = _cuba_args(torch.rand(2, 3, 12) * 0.8)
    want = cuba_op.op(*args)

    def no_function(*a):
        raise AssertionError("autograd.Function called")

    monkeypatch.setattr(cuba_op._eager, "apply", no_function)
    with torch.no_grad():
        got = cuba_op(*args)
    for a, b in zip(got, want, strict=True):
        assert a.grad_fn is None and torch.equal(a, b.detach())
    with pytest.raises(AssertionError, match="autograd.Function called"):
        cuba_op(*args)  # the decays require a gradient


@pytest.mark.parametrize("custom_op", [False, True])
def test_cuba_op_refuses_a_decay_gradient_without_the_current(custom_op):
    x = (torch.rand(2, 3, 12) * 0.8).requires_grad_()
    args = list(_cuba_args(x, rec_u=False))
    args[1] = torch.tensor([1024.0], requires_grad=True)
    s = (cuba_op.op if custom_op else cuba_op)(*args)[0]
    with pytest.raises(ParameterError, match="rec_u = 1"):
        s.sum().backward()


@pytest.mark.parametrize("mode", ["delta", "sigma_delta"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_sigma_delta_op_opcheck(mode, with_bias):
    x = (torch.rand(2, 3, 12, dtype=torch.float64) * 0.1).requires_grad_()
    th = torch.tensor([0.05, 0.1, 0.02], requires_grad=True)
    bias = torch.tensor([0.25], requires_grad=True) if with_bias else None
    state = torch.zeros(4, 6, dtype=torch.int64)
    spec = SdnnSpec(mode, True, False, 1.0, 1.0, 3, 1, "cpu")
    args = (x, th, bias, state, *sd_op_config(spec, True), spec.backend)
    torch.library.opcheck(sdnn_op.op, args, test_utils=OPCHECK)


@pytest.mark.parametrize("s_scale", [0, 4096])
@pytest.mark.parametrize("graded", [False, True])
def test_spike_op_opcheck(s_scale, graded):
    v = (torch.rand(3, 4, 5) * 2).requires_grad_()
    torch.library.opcheck(spike_op.op, (v, 1.0, s_scale, 1.0, 0.5, 0.1, graded), test_utils=OPCHECK)


def same_both_ways(op, args) -> None:
    """The eager path (a plain autograd.Function) and the registered custom op give the
    same outputs and the same gradients for every input that needs one, bit for bit."""
    outs = [op(*args), op.op(*args)]
    outs = [o if isinstance(o, tuple) else (o,) for o in outs]
    for a, b in zip(*outs, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)
        assert a.requires_grad == b.requires_grad
    wrt = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    g = torch.Generator().manual_seed(5)
    ups = [
        torch.randn(o.shape, generator=g, dtype=o.dtype) if o.is_floating_point() else None
        for o in outs[0]
    ]
    grads = []
    for out in outs:
        pairs = [(o, u) for o, u in zip(out, ups, strict=True) if o.requires_grad]
        grads.append(
            torch.autograd.grad(
                [o for o, _ in pairs], wrt, [u for _, u in pairs], allow_unused=True
            )
        )
    assert len(grads[0]) == len(wrt) and any(x is not None for x in grads[0])
    for a, b in zip(*grads, strict=True):
        assert (a is None and b is None) or torch.equal(a, b)


def test_eager_path_is_the_custom_op(monkeypatch):
    x = (torch.rand(2, 3, 12) * 0.8).requires_grad_()
    for kw in ({}, {"ref_delay": 4}, {"batch_mean": True}, {"rec_u": False}, {"shift": True}):
        same_both_ways(cuba_op, _cuba_args(x, **kw))
    for mode in ("delta", "sigma_delta"):
        xs = (torch.rand(2, 3, 12, dtype=torch.float64) * 0.1).requires_grad_()
        th = torch.tensor([0.05, 0.1, 0.02], requires_grad=True)
        spec = SdnnSpec(mode, True, False, 1.0, 1.0, 3, 1, "cpu")
        state = torch.zeros(4, 6, dtype=torch.int64)
        bias = torch.tensor([0.25], requires_grad=True)
        same_both_ways(sdnn_op, (xs, th, bias, state, *sd_op_config(spec, True), spec.backend))
    v = (torch.rand(3, 4, 5) * 2).requires_grad_()
    same_both_ways(spike_op, (v, 1.0, 4096, 1.0, 0.5, 0.1, True))
    # which path runs: eager by default, the custom op under a dispatch mode
    from torch.utils._python_dispatch import TorchDispatchMode

    calls = []
    real = spike_op.op
    monkeypatch.setattr(spike_op, "op", lambda *a: calls.append(1) or real(*a))
    spike_op(v, 1.0, 4096, 1.0, 0.5, 0.1, True)
    assert calls == []

    class Passthrough(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    with Passthrough():
        spike_op(v, 1.0, 4096, 1.0, 0.5, 0.1, True)
    assert calls == [1]


def test_batch_mean_bias_is_quantize_8bit_of_the_mean():
    """bias = -(2 * rne(64 * mean / 2)) << 6, clamped to the 8-bit grid [-256, 254]."""
    mean = torch.tensor([0.0, 1 / 64, 3 / 64, -5.0, 5.0], dtype=torch.float64)
    bias, ok = batch_mean_bias(mean, 64)
    assert bias.tolist() == [0, 0, -4 * 64, 256 * 64, -254 * 64]
    assert ok.tolist() == [True, True, True, False, False]


def _train_step(net, x, target, compiled):
    model = torch.compile(net, fullgraph=True, backend="aot_eager") if compiled else net
    out = model(x)
    loss = F.mse_loss(out, target)
    loss.backward()
    return out.detach(), {
        n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None
    }


def _compare_eager_and_compiled(make_net, x, target):
    torch.manual_seed(0)
    eager_net = make_net()
    torch.manual_seed(0)
    comp_net = make_net()
    comp_net.load_state_dict(eager_net.state_dict())
    out_e, grads_e = _train_step(eager_net, x, target, False)
    out_c, grads_c = _train_step(comp_net, x, target, True)
    torch.testing.assert_close(out_c, out_e, rtol=0, atol=0)
    for (k, b_e), b_c in zip(eager_net.named_buffers(), comp_net.buffers(), strict=True):
        torch.testing.assert_close(b_c, b_e, rtol=0, atol=0, msg=k)  # e.g. norm running means
    assert grads_e and grads_e.keys() == grads_c.keys()
    for k in grads_e:
        torch.testing.assert_close(grads_c[k], grads_e[k], rtol=1e-6, atol=1e-7)
    assert any(g.abs().sum() > 0 for g in grads_e.values())


@pytest.mark.parametrize("ref_delay", [1, 3])
def test_cuba_network_fullgraph_same_outputs_and_gradients(ref_delay):
    p = {
        "threshold": 0.1,
        "current_decay": 0.25,
        "voltage_decay": 0.1,
        "ref_delay": ref_delay,
        "requires_grad": True,
    }

    def make():
        return torch.nn.Sequential(cuba.Dense(p, 20, 16, weight_scale=2), cuba.Dense(p, 16, 8))

    x = _spikes(3, 20, 16)
    _compare_eager_and_compiled(make, x, torch.rand(3, 8, 16))


@pytest.mark.slow
def test_mixed_cuba_blocks_fullgraph_same_outputs_and_gradients():
    """Input, Conv with norm and delay, Pool, Flatten, Dense, Recurrent, KWTA, Affine."""
    p = {"threshold": 0.1, "current_decay": 0.25, "voltage_decay": 0.1, "requires_grad": True}
    pn = dict(p, norm=MeanOnlyBatchNorm)

    def make():
        return torch.nn.Sequential(
            cuba.Input(p, weight=1.5),
            cuba.Conv(pn, 2, 3, 3, weight_scale=3, delay=True, input_shape=(6, 6)),
            cuba.Pool(p, 2, weight_scale=2),
            cuba.Flatten(),
            cuba.Dense(pn, 12, 10, weight_scale=4, delay=True),
            cuba.Recurrent(p, 10, 8, weight_scale=4),
            cuba.KWTA(p, 8, 6, num_winners=2, weight_scale=4),
            cuba.Affine(p, 6, 4, weight_scale=4),
        )

    x = torch.rand(2, 2, 6, 6, 6)  # short: Recurrent and KWTA unroll over time when traced
    _compare_eager_and_compiled(make, x, torch.rand(2, 4, 6))


def test_sigma_delta_network_fullgraph_same_outputs_and_gradients():
    p = {"threshold": 0.05, "activation": F.relu, "requires_grad": True}

    def make():
        return torch.nn.Sequential(
            sigma_delta.Input(p),
            sigma_delta.Conv(p, 2, 4, 3, weight_scale=3, input_shape=(8, 8)),
            sigma_delta.Flatten(),
            sigma_delta.Dense(p, 4 * 6 * 6, 5, weight_scale=3),
            sigma_delta.Output(p, 5, 3, weight_scale=2),
        )

    x = torch.rand(2, 2, 8, 8, 12, dtype=torch.float64)
    _compare_eager_and_compiled(make, x, torch.rand(2, 3, 12, dtype=torch.float64))


def test_no_graph_breaks_and_finite_check_survives_compilation():
    p = {"threshold": 0.1, "current_decay": 0.25, "voltage_decay": 0.1}
    net = torch.nn.Sequential(cuba.Dense(p, 6, 5), cuba.Dense(p, 5, 4))
    x = _spikes(2, 6, 8)
    assert torch._dynamo.explain(net)(x).graph_break_count == 0
    model = torch.compile(net, fullgraph=True, backend="aot_eager")
    model(x)
    with torch.no_grad():
        net[0].synapse.weight[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ParameterError, match="NaN/inf"):
        model(x)


def test_check_finite_eager():
    check_finite(torch.ones(3), "fine")
    with pytest.raises(ParameterError, match="bad thing"):
        check_finite(torch.tensor([1.0, float("inf")]), "bad thing")


def test_persistent_state_with_refractory_carries_across_compiled_calls():
    p = {
        "threshold": 0.1,
        "current_decay": 0.25,
        "voltage_decay": 0.1,
        "persistent_state": True,
        "ref_delay": 3,
    }
    torch.manual_seed(0)
    eager = torch.nn.Sequential(cuba.Dense(p, 6, 5, weight_scale=3))
    comp = torch.nn.Sequential(cuba.Dense(p, 6, 5, weight_scale=3))
    comp.load_state_dict(eager.state_dict())
    model = torch.compile(comp, fullgraph=True, backend="aot_eager")
    x = _spikes(2, 6, 8, p=0.5)
    events = 0
    for _ in range(3):
        y = eager(x)
        assert torch.equal(model(x), y)
        events += int(y.sum())
        n_e, n_c = eager[0].neuron, comp[0].neuron  # the state buffers (issue 9)
        for k in ("current_state", "voltage_state", "refractory_state"):
            assert torch.equal(getattr(n_c, k), getattr(n_e, k))
    assert events >= 5


@pytest.mark.parametrize("shift", [False, True])
def test_cuba_neuron_last_spike_gradient(shift):
    """A spike gradient in neuron-last memory (a ``(B, N, T)`` view of ``(B, T, N)``), as a
    dense synapse's float product returns it: the eager path reads it as it lies and
    returns the input gradient in that layout, the custom op returns it contiguous (as
    its fake declares); both equal the contiguous gradient's result bit for bit."""
    torch.manual_seed(3)
    x0 = torch.rand(3, 10, 17) * 0.8
    up = torch.randn(3, 17, 10).transpose(1, 2)
    grads = []
    for op, g in ((cuba_op, up), (cuba_op, up.contiguous()), (cuba_op.op, up)):
        x = x0.clone().requires_grad_()
        args = list(_cuba_args(x, shift=shift))
        args[1], args[2] = args[1].detach(), args[2].detach()  # no decay gradient
        (g_x,) = torch.autograd.grad(op(*args)[0], x, g)
        grads.append(g_x)
    eager_nl, eager_tl, custom = grads
    assert not eager_nl.is_contiguous() and eager_nl.transpose(1, 2).is_contiguous()
    assert custom.is_contiguous() and eager_tl.is_contiguous()
    assert torch.equal(eager_nl, eager_tl) and torch.equal(custom, eager_tl)
    assert eager_tl.abs().sum() > 0

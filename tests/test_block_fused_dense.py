"""A CUBA dense block as one autograd node (``block/_fused_dense.py``): the same spikes,
loss and gradients, bit for bit, as its four nodes (weight norm, quantizer, product,
neuron), on every product it can take; and the four nodes wherever the fused node would
differ from them (hooks, state, graded input, custom quantizers, ...)."""

from __future__ import annotations

import pytest
import torch

import loihi_slayer.block._fused_dense as fd
import loihi_slayer.synapse._int_product as ip
from loihi_slayer.block import cuba
from loihi_slayer.errors import DoubleBackwardError, ParameterError

NEURON = {
    "threshold": 1.25,
    "current_decay": 0.25,
    "voltage_decay": 0.03,
    "tau_grad": 0.03,
    "scale_grad": 3,
    "requires_grad": False,
}


@pytest.fixture
def fused_calls(monkeypatch):
    """The number of fused nodes built so far (a spy on :class:`fd.FusedDense`)."""
    calls = {"n": 0}
    apply = fd.FusedDense.apply

    def spy(*args):
        calls["n"] += 1
        return apply(*args)

    monkeypatch.setattr(fd.FusedDense, "apply", spy)
    return calls


@pytest.fixture(params=["int8", "float", "narrow"])
def products(request, monkeypatch):
    """Every product the dense block can take at small sizes; returns how many of
    :func:`network`'s two blocks take the fused path. ``int8``, ``float``: the int
    product's work floor lifted, and its GEMM int8 (forced) or, without, the event
    product or sgemm by density, for both blocks. ``narrow``: the floor kept, so the
    int product declines these sizes and the 5-output block takes the narrow product
    (the 24-output block, with no exact product, its four nodes)."""
    if request.param == "narrow":
        return 1
    monkeypatch.setenv("LOIHI_SLAYER_INT8_GEMM", "1" if request.param == "int8" else "0")
    monkeypatch.setattr(ip, "MIN_WORK", 0)
    return 2


def network(n_in=40, hidden=24, n_out=5, seed=0, **kw) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        cuba.Dense(NEURON, n_in, hidden, weight_norm=True, **kw),
        cuba.Dense(NEURON, hidden, n_out, weight_norm=True, **kw),
    )


def spikes(batch=3, n_in=40, steps=30, density=0.15, seed=1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, n_in, steps, generator=gen) < density).float()


def run(net, x, fused: bool, monkeypatch) -> tuple[torch.Tensor, list]:
    """Spikes, and the gradients of a loss of them, with the fused path on or off."""
    monkeypatch.setattr(fd, "ENABLED", fused)
    for p in net.parameters():
        p.grad = None
    if x.grad is not None:
        x.grad = None
    out = net(x)
    weights = torch.arange(out[0].numel(), dtype=torch.float32).reshape(out.shape[1:]) % 7
    (out * weights).sum().backward()
    grads = [p.grad.clone() for p in net.parameters() if p.grad is not None]
    if x.requires_grad:
        grads.append(x.grad.clone())
    return out.detach(), grads


def same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


@pytest.mark.parametrize("density", [0.02, 0.15, 0.6])
def test_fused_equals_the_four_nodes(products, fused_calls, monkeypatch, density):
    """Spikes and every weight gradient, bit for bit, for the dense (24 outputs: int
    product) and narrow (5 outputs) blocks, at sparse and dense input."""
    net = network()
    x = spikes(density=density)
    ref_s, ref_g = run(net, x, False, monkeypatch)
    assert fused_calls["n"] == 0
    s, g = run(net, x, True, monkeypatch)
    assert fused_calls["n"] == products
    assert torch.equal(s, ref_s) and same(g, ref_g)
    assert len(g) == 4 and all(bool(t.abs().sum() > 0) for t in g)  # gradients reached


def test_input_gradient(products, fused_calls, monkeypatch):
    """An input that needs a gradient gets the four nodes' one."""
    net = network()
    x = spikes().requires_grad_(True)
    ref_s, ref_g = run(net, x, False, monkeypatch)
    s, g = run(net, x, True, monkeypatch)
    assert fused_calls["n"] == products
    assert torch.equal(s, ref_s) and same(g, ref_g)


def test_training_steps_match(products, monkeypatch):
    """Five Adam steps of a 5-D input network, fused and not: the same weights after."""
    results = []
    for fused in (False, True):
        monkeypatch.setattr(fd, "ENABLED", fused)
        torch.manual_seed(3)
        net = torch.nn.Sequential(
            cuba.Dense(NEURON, (2, 4, 4), 16, weight_norm=True),
            cuba.Dense(NEURON, 16, 3, weight_norm=True),
        )
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        x = (torch.rand(4, 2, 4, 4, 25, generator=torch.Generator().manual_seed(2)) < 0.2).float()
        for _ in range(5):
            opt.zero_grad()
            net(x).sum().backward()
            opt.step()
        results.append([p.detach().clone() for p in net.parameters()])
    assert same(*results)


def _forward_hook(net):
    net[0].synapse.register_forward_hook(lambda *a: None)


def _persistent(net):
    net[0].neuron.persistent_state = True


def _mask(net):
    net[0].synapse.mask = torch.ones(24, 40, 1, 1, 1)


def _norm_pre_hook(net):
    net[0].synapse.parametrizations.weight[0].register_forward_pre_hook(lambda *a: None)


def _neuron_backward_hook(net):
    net[0].neuron.register_full_backward_hook(lambda *a: None)


class _Same(torch.nn.Module):
    def forward(self, w):
        return w


def _second_parametrization(net):
    torch.nn.utils.parametrize.register_parametrization(net[0].synapse, "weight", _Same())


@pytest.mark.parametrize(
    "change",
    [
        _forward_hook,
        _persistent,
        _mask,
        _norm_pre_hook,
        _neuron_backward_hook,
        _second_parametrization,
    ],
    ids=[
        "synapse forward hook",
        "persistent state",
        "mask",
        "weight norm pre-hook",
        "neuron backward hook",
        "second parametrization",
    ],
)
def test_not_fused_where_it_would_differ(monkeypatch, fused_calls, change):
    """The first block runs its four nodes (the second, untouched, is fused)."""
    monkeypatch.setenv("LOIHI_SLAYER_INT8_GEMM", "1")
    monkeypatch.setattr(ip, "MIN_WORK", 0)
    net = network()
    change(net)
    run(net, spikes(), True, monkeypatch)
    assert fused_calls["n"] == 1


def test_not_fused_without_weight_norm_shift_or_default_quantizer(monkeypatch, fused_calls):
    monkeypatch.setattr(ip, "MIN_WORK", 0)
    torch.manual_seed(0)
    x = spikes()
    blocks = [
        cuba.Dense(NEURON, 40, 8),  # no weight norm
        cuba.Dense(NEURON, 40, 8, weight_norm=True, delay_shift=False),
        cuba.Dense(NEURON, 40, 8, weight_norm=True, pre_hook_fx=lambda w: w),
        cuba.Dense({**NEURON, "requires_grad": True}, 40, 8, weight_norm=True),
    ]
    for block in blocks:
        block(x).sum().backward()
    with torch.no_grad():  # nothing to differentiate
        cuba.Dense(NEURON, 40, 8, weight_norm=True)(x)
    assert fused_calls["n"] == 0


def test_graded_input_takes_the_float_path(monkeypatch, fused_calls):
    """Values that are not integers have no exact product: the first block runs its four
    nodes (float GEMM), the second, fed spikes, is fused; a narrow block refuses them
    inside its product and falls back the same way. The results are the four nodes'."""
    monkeypatch.setattr(ip, "MIN_WORK", 0)
    x = spikes() * 0.37
    net = network()
    ref_s, ref_g = run(net, x, False, monkeypatch)
    s, g = run(net, x, True, monkeypatch)
    assert fused_calls["n"] == 1
    assert torch.equal(s, ref_s) and same(g, ref_g)
    narrow = network(hidden=5, n_out=3)[:1]  # 40 -> 5: the narrow product
    ref_s, ref_g = run(narrow, x, False, monkeypatch)
    s, g = run(narrow, x, True, monkeypatch)
    assert torch.equal(s, ref_s) and same(g, ref_g)


def test_nan_weight_keeps_the_blocks_error(monkeypatch):
    monkeypatch.setattr(ip, "MIN_WORK", 0)
    net = network()
    with torch.no_grad():
        net[0].synapse.parametrizations.weight.original1[0, 0] = float("nan")
    messages = []
    for fused in (False, True):
        monkeypatch.setattr(fd, "ENABLED", fused)
        with pytest.raises(ParameterError) as err:
            net(spikes())
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "NaN" in messages[0]


def test_bad_input_shape_keeps_the_blocks_error(monkeypatch):
    net = network()
    with pytest.raises(ParameterError, match="40"):
        net(torch.zeros(2, 41, 10))


def test_no_gradient_of_the_gradient(monkeypatch, fused_calls):
    """``create_graph`` through the fused node gives the gradient, and differentiating it
    again raises the library's error (the node is differentiable once, as the four nodes'
    CUBA op: see ``test_double_backward.py``)."""
    monkeypatch.setattr(ip, "MIN_WORK", 0)
    net = network()
    out = net(spikes())
    assert fused_calls["n"] == 2
    (g,) = torch.autograd.grad(
        out.sum(), net[0].synapse.parametrizations.weight.original1, create_graph=True
    )
    with pytest.raises(DoubleBackwardError, match="block.cuba.Dense"):
        g.sum().backward()


@pytest.mark.parametrize("fused", [False, True])
def test_input_changed_in_place_is_refused(monkeypatch, fused_calls, fused):
    """The narrow product keeps its input for the weight gradient: changing the input
    in place before the backward raises, fused as with the four nodes (the fused node
    saves every tensor through ``save_for_backward``)."""
    monkeypatch.setattr(fd, "ENABLED", fused)
    narrow = network(hidden=5, n_out=3)[:1]  # 40 -> 5: the narrow product (small work)
    x = spikes()
    out = narrow(x)
    assert fused_calls["n"] == int(fused)
    x.mul_(2)
    with pytest.raises(RuntimeError, match="inplace"):
        out.sum().backward()

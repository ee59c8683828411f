"""Fused recurrence (``autograd.recurrent``) against the step-by-step loop it replaces.

The reference is the block's own step-by-step loop (``block.recurrent.FUSED = False``:
one neuron call per time step, feedback through the recurrent synapse), which the
zero-gap tests tie to the chip. Spikes and the persistent state must be equal bit for
bit; gradients (input, feed-forward and recurrent weight, self excitation, decays)
equal to float rounding. Every comparison also checks that the fused kernel really ran
(or, for the cases it does not cover, that it did not).
"""

from __future__ import annotations

import copy
from fractions import Fraction

import numba
import numpy as np
import pytest
import torch
from helpers import in_both_paths, refused_in_both_paths, train_steps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loihi_slayer import block, gap
from loihi_slayer.autograd import _recurrent_gemm
from loihi_slayer.autograd import recurrent as fused_mod
from loihi_slayer.block import alif, cuba
from loihi_slayer.block import recurrent as rec
from loihi_slayer.errors import ParameterError
from loihi_slayer.neuron.dropout import Dropout
from loihi_slayer.neuron.norm import MeanOnlyBatchNorm
from loihi_slayer.synapse._grad_calibration import EVENT_GRAD_ENV


def params(th=0.5, di=0.25, dv=0.03, **kw):
    return {"threshold": th, "current_decay": di, "voltage_decay": dv, **kw}


def alif_params(th=0.5, **kw):
    extra = {"threshold_step": 0.1, "threshold_decay": 0.1, "refractory_decay": 0.2}
    return params(th, **{**extra, **kw})


@pytest.fixture
def fused_calls(monkeypatch):
    """Counts the fused kernel runs (calls of a fused loop that did not decline)."""
    calls = []

    def spy_on(name):
        real = getattr(fused_mod, name)

        def spy(*args, **kwargs):
            try:
                out = real(*args, **kwargs)
            except ParameterError:
                calls.append(name)
                raise
            if out is not None:
                calls.append(name)
            return out

        monkeypatch.setattr(fused_mod, name, spy)

    spy_on("cuba_recurrent")
    spy_on("alif_recurrent")
    return calls


def spikes(shape, p=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).float()


def run(blk, x, fused: bool, grad_seed=7):
    """Block output and every gradient (parameters and input) of a random linear loss."""
    old = rec.FUSED
    rec.FUSED = fused
    try:
        blk.zero_grad(set_to_none=True)
        x = x.detach().clone().requires_grad_()
        y = blk(x)
        g = torch.rand(y.shape, generator=torch.Generator().manual_seed(grad_seed), dtype=y.dtype)
        (y * g).sum().backward()
    finally:
        rec.FUSED = old
    grads = {n: p.grad.clone() for n, p in blk.named_parameters() if p.grad is not None}
    grads["input"] = x.grad.clone()
    return y.detach(), grads


def assert_grads_close(ga: dict, gb: dict) -> None:
    """Gradients equal to float rounding. A decay gradient is a long sum whose terms can
    cancel to ~1e-11 while they are ~1e-3 each: its summation-order error is relative to
    the problem's gradient scale, not to its own near-zero value."""
    assert ga.keys() == gb.keys()
    scale = max(float(b.abs().max()) for b in gb.values())
    for name in gb:
        a, b = ga[name], gb[name]
        tol = max(1e-5 * float(b.abs().max()), 1e-7 * scale, 1e-30)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=tol, msg=name)


#: the neuron state a CUBA/ALIF block carries between calls
CUBA_STATES = ("current_state", "voltage_state", "refractory_state")


def compare(make, x, fused_calls, expect_fused=True, calls=1, states=CUBA_STATES):
    """Fused and step-by-step copies of the same block on ``x`` (``calls`` forwards):
    equal spikes and neuron ``states``, finite and close gradients, and whether the fused
    kernel ran (``fused_calls`` grows)."""
    blk_f = make()
    blk_s = copy.deepcopy(blk_f)
    for i in range(calls):
        n0 = len(fused_calls)
        y_f, g_f = run(blk_f, x, True, grad_seed=i)
        assert (len(fused_calls) > n0) == expect_fused
        y_s, g_s = run(blk_s, x, False, grad_seed=i)
        assert y_f.dtype == y_s.dtype
        assert torch.equal(y_f, y_s), f"call {i}: spikes differ"
        assert all(bool(torch.isfinite(g).all()) for g in g_s.values())
        assert_grads_close(g_f, g_s)
        for name in states:
            a, b = getattr(blk_f.neuron, name), getattr(blk_s.neuron, name)
            same = a is None and b is None
            assert same or torch.equal(torch.as_tensor(a), torch.as_tensor(b)), name
    return y_f


def compare_over_calls(blk_f, states) -> None:
    """A persistent-state block and its step-loop copy over four calls (the second
    shorter, the third with another batch size, which restarts the state): equal spikes
    and ``states`` after each call, close gradients."""
    blk_s = copy.deepcopy(blk_f)
    x = spikes((2, 10, 15), p=0.5, seed=2)
    for i, xi in enumerate((x, x[:, :, :7], spikes((3, 10, 15), seed=4), x)):
        y_f, g_f = run(blk_f, xi, True, grad_seed=i)
        y_s, g_s = run(blk_s, xi, False, grad_seed=i)
        assert torch.equal(y_f, y_s), i
        assert_grads_close(g_f, g_s)
        for name in states:
            assert torch.equal(getattr(blk_f.neuron, name), getattr(blk_s.neuron, name)), name


# ------------------------------------------------------------------ forward + grads

_MAKERS = {
    "recurrent": lambda fam, p, n_in, n: fam.Recurrent(p, n_in, n, weight_scale=3),
    "kwta": lambda fam, p, n_in, n: fam.KWTA(
        p, n_in, n, num_winners=max(1, n // 3), weight_scale=3
    ),
}
_FAMILIES = {"cuba": (cuba, params), "alif": (alif, alif_params)}


def _case(family: str, kind: str):
    fam, par = _FAMILIES[family]
    return lambda p, n_in, n: _MAKERS[kind](fam, par(**p), n_in, n)


#: "<family>_<kind>" -> (neuron parameter overrides, n_in, n) -> block
CASES = {f"{f}_{k}": _case(f, k) for f in _FAMILIES for k in _MAKERS}


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize(
    ("batch", "n_in", "n", "steps"),
    [(1, 7, 5, 9), (3, 12, 10, 24), (5, 16, 33, 17)],
)
def test_fused_equals_step_loop(kind, batch, n_in, n, steps, fused_calls):
    torch.manual_seed(batch)  # the weights: not whatever the tests before left (silent)
    x = spikes((batch, n_in, steps), p=0.4, seed=batch)
    y = compare(lambda: CASES[kind]({"requires_grad": True}, n_in, n), x, fused_calls)
    assert y.sum() > 0


@pytest.mark.parametrize("kind", ["cuba_recurrent", "alif_kwta"])
def test_fused_parallel_kernels(kind, fused_calls):
    """Work above PARALLEL_MIN_WORK: batch items on threads, an incomplete last group."""
    x = spikes((11, 40, 100), p=0.4, seed=11)
    compare(lambda: CASES[kind]({"requires_grad": True}, 40, 64), x, fused_calls)


@pytest.mark.parametrize("kind", ["cuba_recurrent", "alif_recurrent"])
@pytest.mark.parametrize(
    ("n", "batch"),
    [(_recurrent_gemm.GEMM_MIN_NEURONS + 1, 5), (_recurrent_gemm.TILE_OUTPUTS + 17, 6)],
)
def test_fused_backward_register_tiles(kind, n, batch, fused_calls):
    """From ``GEMM_MIN_NEURONS`` neurons the backward's feedback product runs in register
    tiles (``backward_gemm``): neuron counts with a last vector of fewer than 16 outputs,
    with and without whole 32-output tile columns, and batches that are not a multiple
    of the 8-row tiles (a last group of one row or of two)."""
    torch.manual_seed(5)
    x = spikes((batch, 16, 12), p=0.4, seed=5)
    compare(lambda: CASES[kind]({"requires_grad": True}, 16, n), x, fused_calls)


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize(
    "extra",
    [
        {"ref_delay": 3},
        {"shared_param": False, "requires_grad": True},
        {"threshold": 0.0},
        {"scale": 16},
    ],
    ids=["refractory", "per_channel", "zero_threshold", "scale16"],
)
def test_fused_neuron_variants(kind, extra, fused_calls):
    x = spikes((3, 10, 30), p=0.5, seed=3)
    compare(lambda: CASES[kind](extra, 10, 8), x, fused_calls)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_fused_float64_input(kind, fused_calls):
    x = spikes((2, 9, 20), p=0.5).double()
    compare(lambda: CASES[kind]({"requires_grad": True}, 9, 7).double(), x, fused_calls)


@pytest.mark.parametrize("kind", ["cuba_recurrent", "cuba_kwta"])
def test_fused_norm_in_eval_mode(kind, fused_calls):
    """A trained mean-only batch norm is a constant bias in eval mode: fused (CUBA)."""
    x = spikes((3, 10, 25), p=0.5, seed=1)

    def make():
        torch.manual_seed(0)
        blk = CASES[kind]({"norm": MeanOnlyBatchNorm}, 10, 8)
        with torch.no_grad():
            blk.neuron.norm.running_mean.uniform_(-0.3, 0.3)
        return blk.eval()

    compare(make, x, fused_calls)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_fused_persistent_state_over_calls(kind, fused_calls):
    """State carried across forwards (and reset when the batch size changes)."""
    blk_f = CASES[kind]({"persistent_state": True, "requires_grad": True}, 10, 8)
    compare_over_calls(blk_f, ("voltage_state", "current_state"))
    assert len(fused_calls) == 4
    assert blk_f.neuron.current_state.abs().sum() > 0  # the state really was carried


def test_weight_gradient_sparse_and_dense_spikes(fused_calls, monkeypatch):
    """Both ways of the recurrent weight gradient: event by event up to the density
    limit (pinned here), one BLAS product beyond it."""
    events = []
    real = fused_mod.event_weight_grad
    monkeypatch.setattr(fused_mod, "event_weight_grad", lambda *a: events.append(1) or real(*a))
    monkeypatch.setenv(EVENT_GRAD_ENV, "0.2")

    def make(th):
        torch.manual_seed(0)
        return cuba.Recurrent(params(th=th), 10, 12, weight_scale=3)

    sparse = compare(lambda: make(12.0), spikes((4, 10, 40), p=0.1), fused_calls)
    taken = len(events)
    dense = compare(lambda: make(0.05), spikes((4, 10, 40), p=0.8), fused_calls)
    assert 0 < sparse.mean() < 0.2 < dense.mean()
    assert taken >= 1 and len(events) == taken  # the dense spikes took the product


# --------------------------------------------------------- property tests at the edges


@st.composite
def recurrence(draw):
    """A neuron, integer inputs/weights on the grid, reaching ties and saturation."""
    scale = draw(st.sampled_from([16, 64]))
    n = draw(st.integers(1, 6))
    batch = draw(st.integers(1, 3))
    steps = draw(st.integers(1, 12))
    th_mant = draw(st.integers(0, 12))
    big = draw(st.booleans())  # saturation / wrap-around of the 24-bit state
    lim = (1 << 20) if big else 16
    a_ff = draw(
        st.lists(st.integers(-lim, lim), min_size=batch * n * steps, max_size=batch * n * steps)
    )
    w = draw(st.lists(st.integers(-128, 127), min_size=n * n, max_size=n * n))
    neuron = {
        "threshold": th_mant / scale,
        "threshold_step": draw(st.integers(0, 6)) / scale,
        "threshold_decay": draw(st.sampled_from([0, 1, 2048, 4096])) / 4096,
        "refractory_decay": draw(st.sampled_from([0, 1, 2048, 4096])) / 4096,
        "current_decay": draw(st.sampled_from([0, 1, 2048, 4096])) / 4096,
        "voltage_decay": draw(st.sampled_from([0, 1, 410, 4096])) / 4096,
        "scale": scale,
        "ref_delay": draw(st.integers(1, 3)),
        "requires_grad": True,
    }
    z = torch.tensor(a_ff, dtype=torch.float32).reshape(batch, n, steps) / scale
    w_m = torch.tensor(w, dtype=torch.float32).reshape(n, n) * 2  # even mantissas
    return neuron, z, w_m, scale, draw(st.floats(0, 1)), draw(st.integers(0, n))


def neuron_run(blk, z, fused: bool):
    """Spikes of ``blk._neuron_forward(z)`` and every gradient of a random linear loss;
    ``z`` a tensor, or a resonator's ``(z_re, z_im)``."""
    old = rec.FUSED
    rec.FUSED = fused
    parts = z if isinstance(z, tuple) else (z,)
    try:
        blk.zero_grad(set_to_none=True)
        parts = tuple(part.detach().clone().requires_grad_() for part in parts)
        s = blk._neuron_forward(parts if isinstance(z, tuple) else parts[0])
        g = torch.rand(s.shape, generator=torch.Generator().manual_seed(1))
        (s * g).sum().backward()
    finally:
        rec.FUSED = old
    grads = {n: p.grad.clone() for n, p in blk.named_parameters() if p.grad is not None}
    names = ("z_re", "z_im") if isinstance(z, tuple) else ("z",)
    grads.update({k: part.grad.clone() for k, part in zip(names, parts, strict=True)})
    return s.detach(), grads


def neuron_runs_agree(blk, z, fused_calls):
    """:func:`neuron_run` of ``blk`` fused (which must run the fused kernel) and of a copy
    step by step: equal spikes; returns both gradients and the step-loop copy."""
    ref = copy.deepcopy(blk)
    n0 = len(fused_calls)
    s_f, g_f = neuron_run(blk, z, True)
    assert len(fused_calls) == n0 + 1
    s_s, g_s = neuron_run(ref, z, False)
    assert torch.equal(s_f, s_s)
    return g_f, g_s, ref


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=recurrence(), kwta=st.booleans(), family=st.sampled_from(["cuba", "alif"]))
def test_property_ties_and_saturation(case, kwta, family, fused_calls):
    neuron, z, w_m, scale, excitation, winners = case
    n = z.shape[1]
    fam = {"cuba": cuba, "alif": alif}[family]
    if family == "cuba":
        neuron = {k: v for k, v in neuron.items() if not k.startswith(("threshold_", "refr"))}
    if kwta:
        blk = fam.KWTA(neuron, n, n, num_winners=winners, self_excitation=excitation)
    else:
        blk = fam.Recurrent(neuron, n, n)
        with torch.no_grad():
            blk.recurrent_synapse.weight.copy_(w_m.reshape(n, n, 1, 1, 1) / scale)
    g_f, g_s, _ = neuron_runs_agree(blk, z, fused_calls)
    assert_grads_close(g_f, g_s)


def test_ties_at_threshold_do_not_spike(fused_calls):
    """Integrate-and-fire with the input exactly at the threshold: strict compare, no spike;
    one unit more spikes, and the feedback of that spike lifts its neighbour to a spike."""
    p = params(th=10 / 64, di=1.0, dv=1.0)  # u = 64 A, v = u: v > 64 vThMant <=> A > 10
    blk = cuba.Recurrent(p, 2, 2)
    with torch.no_grad():
        blk.recurrent_synapse.weight.copy_(
            torch.tensor([[0, 0], [2 / 64, 0]]).reshape(2, 2, 1, 1, 1)
        )
    z = torch.zeros(1, 2, 3)
    z[0, 0, 0] = 11 / 64  # neuron 0 spikes at t = 0
    z[0, 1, :] = 10 / 64  # neuron 1 sits at the threshold; the feedback (+2) lifts it at t = 1
    for s in in_both_paths(lambda: blk._neuron_forward(z)):
        assert s[0].tolist() == [[1, 0, 0], [0, 1, 0]]
    assert len(fused_calls) == 1


def test_too_large_input_is_refused_in_both_paths(fused_calls):
    blk = cuba.Recurrent(params(), 3, 3)
    z = torch.full((1, 3, 4), 2.0**32 / 64)
    refused_in_both_paths(lambda: blk._neuron_forward(z), ParameterError, "2\\*\\*31")
    assert len(fused_calls) == 1


# ------------------------------------------------------------------------ fallbacks


@pytest.mark.parametrize(
    "make",
    [
        lambda: cuba.Recurrent(params(graded_spike=True), 6, 5),
        lambda: cuba.Recurrent(params(dropout=Dropout(p=0.0)), 6, 5),
        lambda: cuba.Recurrent(params(norm=MeanOnlyBatchNorm), 6, 5),  # training statistics
        lambda: cuba.Recurrent(params(), 6, 5, pre_hook_fx=lambda w: w),  # off the 8-bit grid
        lambda: cuba.Recurrent(params(scale=48), 6, 5),  # grid 1/48: not exact in binary
        lambda: alif.Recurrent(alif_params(norm=MeanOnlyBatchNorm), 6, 5),
        lambda: alif.KWTA(alif_params(graded_spike=True), 6, 5, 2),
    ],
    ids=[
        "graded",
        "dropout",
        "norm_training",
        "unquantized",
        "scale48",
        "alif_norm",
        "alif_graded",
    ],
)
def test_uncovered_cases_keep_the_step_loop(make, fused_calls):
    x = spikes((2, 6, 12), p=0.6)
    compare(make, x, fused_calls, expect_fused=False)


def test_feedback_grid_bounds():
    w = torch.tensor([[1.0, -0.5], [0.25, 0.0]])
    m_t, b = fused_mod.feedback_grid(w, torch.tensor([0.125]), 64)
    assert m_t.tolist() == [[64, 16], [-32, 0]] and b == 8  # transposed mantissas
    assert fused_mod.feedback_grid(w / 128, None, 64) is None  # off the 1/64 grid
    assert fused_mod.feedback_grid(w, None, 48) is None  # scale not a power of two
    big = torch.full((1, 2**12), 2.0**12 / 64)  # row sum 2**24: float32 sums inexact
    assert fused_mod.feedback_grid(big, None, 64) is None
    assert fused_mod.feedback_grid(big.double(), None, 64) is not None
    assert fused_mod.feedback_grid(big[:, :-1], None, 64) is not None


# ------------------------------------------------------------------ chip equivalence


@pytest.mark.parametrize("kind", sorted(CASES))
def test_fused_blocks_have_zero_gap_with_the_emulator(kind, fused_calls):
    """Trained with the fused kernel, exported, emulated: the chip's spikes exactly."""
    x = spikes((2, 12, 40), p=0.4)
    x[..., 0] = 0
    fam, par = _FAMILIES[kind.split("_")[0]]
    torch.manual_seed(0)
    net = torch.nn.Sequential(fam.Dense(par(), 12, 10, weight_scale=3), CASES[kind]({}, 10, 8))
    train_steps(net, x)
    assert len(fused_calls) >= 3
    rep = block.compare_with_emulator(net, x)
    assert rep.compared and rep.ok and not rep.skipped, rep.summary()
    outs = gap._eval_outputs(list(net), x)
    assert int((outs[-1] != 0).sum()) >= 10


def test_step_switch_reaches_the_reference(fused_calls):
    blk = cuba.Recurrent(params(), 4, 4)
    x = spikes((1, 4, 6))
    rec.FUSED = False
    try:
        blk(x)
    finally:
        rec.FUSED = True
    assert not fused_calls
    blk(x)
    assert len(fused_calls) == 1
    assert np.isfinite(blk.neuron.voltage_state.numpy()).all()


def test_registry_is_keyed_by_exact_neuron_class(fused_calls, monkeypatch):
    """A neuron subclass (possibly other dynamics) keeps the step loop unless registered."""
    from loihi_slayer.neuron import cuba as cuba_neuron

    class Sub(cuba_neuron.Neuron):
        pass

    class SubRecurrent(cuba.Recurrent):
        neuron_class = Sub

    x = spikes((2, 6, 10), p=0.6)
    compare(lambda: SubRecurrent(params(), 6, 5), x, fused_calls, expect_fused=False)
    monkeypatch.setitem(rec.FUSED_LOOPS, Sub, rec.FUSED_LOOPS[cuba_neuron.Neuron])
    compare(lambda: SubRecurrent(params(), 6, 5), x, fused_calls, expect_fused=True)


# ------------------------------------------------------------------ custom ops

OPCHECK = (
    "test_schema",
    "test_autograd_registration",
    "test_faketensor",
    "test_aot_dispatch_dynamic",
)


def _fused_op_args(family: str, ref_delay: int):
    torch.manual_seed(0)
    n, batch, steps = 5, 2, 9
    z = (spikes((batch, n, steps), p=0.5) * 0.75).requires_grad_()
    w = (torch.randint(-40, 40, (n, n)) * 2 / 64.0).requires_grad_()
    m_t, fb_bias = fused_mod.feedback_grid(w, None, 64)
    decays = (torch.tensor([1024.0], requires_grad=True), torch.tensor([512.0], requires_grad=True))
    if family == "cuba":
        state = torch.zeros(3, batch * n, dtype=torch.int64)
        args = (
            z,
            w,
            torch.from_numpy(m_t),
            *decays,
            torch.zeros(1, dtype=torch.int64),
            state,
            [64, 32, ref_delay, fb_bias],
            [50.0, 0.1],
            True,
        )
        op = fused_mod.cuba_recurrent_op
    else:
        table = torch.tensor([[1024], [512], [410], [820], [32], [6], [ref_delay]])
        state = torch.zeros(5, batch * n, dtype=torch.int64)
        state[2] = 32 * 64  # th starts at the base threshold
        args = (
            z,
            w,
            torch.from_numpy(m_t),
            *decays,
            table,
            state,
            [64, fb_bias],
            [50.0, 0.001],
            True,
        )
        op = fused_mod.alif_recurrent_op
    return op, args


@pytest.mark.parametrize("family", ["cuba", "alif"])
@pytest.mark.parametrize("ref_delay", [1, 3])
def test_fused_ops_pass_opcheck(family, ref_delay):
    """Schema, fake tensors and autograd registration of the two custom ops."""
    op, args = _fused_op_args(family, ref_delay)
    torch.library.opcheck(op.op, args, test_utils=OPCHECK)


@pytest.mark.parametrize("family", ["cuba", "alif"])
@pytest.mark.parametrize("ref_delay", [1, 3])
def test_fused_ops_eager_path_is_the_custom_op(family, ref_delay):
    from test_compile import same_both_ways

    same_both_ways(*_fused_op_args(family, ref_delay))


def test_kwta_weights_take_the_compact_kernel_form():
    """``o + (d - o) I`` (KWTA) is passed as ``[[d, o]]``; anything else stays dense."""
    r = torch.full((4, 4), -64, dtype=torch.int32) + torch.eye(4, dtype=torch.int32) * 96
    assert fused_mod._compact(r).tolist() == [[32, -64]]
    r[1, 2] = 0
    assert fused_mod._compact(r) is r
    one = torch.tensor([[5]], dtype=torch.int32)
    assert fused_mod._compact(one) is one


@pytest.mark.parametrize("limit", ["1", "off"])
def test_feedback_weight_gradient_is_the_product(monkeypatch, limit):
    r""":math:`\sum_t g_a[t] s[t-1]^\top` by events (spikes read in place from the
    neuron-last time-major array: steps and batch items without spikes, non-binary
    values) and by the BLAS product: the float64 product's values to float rounding."""
    monkeypatch.setenv(EVENT_GRAD_ENV, limit)
    rng = np.random.default_rng(2)
    steps, batch, n = 13, 3, 70
    g_a = torch.tensor(rng.standard_normal((steps, batch, n)), dtype=torch.float32)
    s = torch.tensor((rng.random((steps, batch, n)) < 0.05) * 1.0, dtype=torch.float32)
    s[4] = 0  # a step without spikes
    s[7, 1, 5] = 3.0  # a graded value
    w = torch.zeros(n, n)
    got = fused_mod.feedback_weight_grad(g_a, s, w)
    want = g_a[1:].double().reshape(-1, n).t() @ s[:-1].double().reshape(-1, n)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    assert got.dtype == w.dtype and got.shape == (n, n)


@pytest.mark.parametrize("refractory", [False, True])
@pytest.mark.parametrize("size", [50, 70_000])  # serial and parallel kernel
def test_surrogate_pass_is_the_formula(refractory, size):
    """The compiled surrogate (vectorised exp) against float64 ``exp`` of the formula,
    refractory steps 0; float64 input takes PyTorch's ``exp``. float32 tolerance: the
    exponent's argument (up to ~50 here) is rounded to float32 first, which moves the
    result by up to ~3e-6 relative, as PyTorch's float32 formula does."""
    g = torch.Generator().manual_seed(size)
    vp = (torch.randn(size, generator=g) * 4).reshape(size, 1, 1)
    r_out = (torch.rand(vp.shape, generator=g) < 0.3).to(torch.uint8)
    refr = r_out if refractory else torch.empty((0, 1, 1), dtype=torch.uint8)
    theta, inv_tau, amp = 0.75, 1 / 0.3, 0.6
    want = amp * torch.exp(-(vp.double() - theta).abs() * inv_tau)
    if refractory:
        want[r_out.bool()] = 0.0
    got = fused_mod.surrogate(vp, refr, theta, inv_tau, amp)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=5e-6, atol=1e-30)
    got64 = fused_mod.surrogate(vp.double(), refr, theta, inv_tau, amp)
    torch.testing.assert_close(got64, want, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("kind", ["Recurrent", "KWTA"])
def test_recurrent_blocks_read_time_major_input_without_a_copy(kind, monkeypatch):
    """The feed-forward product writes time-major memory, which the fused loop reads as
    it is (no transpose of the block's input)."""
    torch.manual_seed(0)
    net = (
        cuba.Recurrent(params(), 12, 10) if kind == "Recurrent" else cuba.KWTA(params(), 12, 10, 3)
    )
    assert net.synapse.time_major_output
    seen = []
    real = fused_mod._time_major

    def spy(z):
        out = real(z)
        seen.append(out.untyped_storage().data_ptr() == z.untyped_storage().data_ptr())
        return out

    monkeypatch.setattr(fused_mod, "_time_major", spy)
    x = (torch.rand(3, 12, 9) < 0.4).float()
    net(x).sum().backward()
    assert seen == [True]


def test_narrowed_feedback_is_the_same_feedback():
    """``_narrow``: the common power of two moves into the grid step, the quotients into
    the narrowest integer type; ``grid * (b + m)`` is unchanged value for value."""
    rng = np.random.default_rng(5)
    even8 = rng.integers(-128, 128, (6, 6)).astype(np.int32) * 2  # 8-bit weights x 64 / 32
    cases = [
        (even8, 0, np.int8, 1),
        (even8, 3, np.int16, 0),  # an odd bias keeps the factor 1; 254 needs int16
        (even8 * 8, 16, np.int8, 4),
        (even8 * 300, 0, np.int16, 3),  # 300 = 4 * 75: 127 * 75 * 2 needs int16
        (even8 * 2**20, 0, np.int8, 21),
        (even8 + 1, 0, np.int16, 0),
        (np.array([[-128, 127]], np.int32), 0, np.int8, 0),  # int8's whole range
        (np.array([[-129, 127]], np.int32), 0, np.int16, 0),
        (np.zeros((3, 3), np.int32), 0, np.int8, 0),
    ]
    for m, bias, dtype, e in cases:
        grid = 2.0**-6
        m_k, b_k, g_k = fused_mod._narrow(m, bias, grid)
        assert m_k.dtype == dtype and m_k.flags.c_contiguous
        assert g_k == grid * 2.0**e
        assert np.array_equal((m_k.astype(np.float64) + b_k) * g_k, (m + bias) * grid)
    big = np.array([[40001, -2]], np.int32)
    assert fused_mod._narrow(big, 0, 1.0)[0].dtype == np.int32  # 40001 > int16's 32767


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32])
@pytest.mark.parametrize("nspk", [0, 3, 255, 256, 257, 600])
def test_feedback_sum_at_the_int16_block_edges(dtype, nspk):
    """The feedback sum of the fused kernels against NumPy's int64 sum: int8 rows summed
    in int16 blocks of ``INT16_ROWS`` (every row at the extremes -128 or 127, so a block
    one row longer would wrap), int16/int32 rows in int32."""
    from loihi_slayer.autograd import _recurrent_cpu as kern

    rng = np.random.default_rng(nspk)
    info = np.iinfo(dtype)
    low, high = max(info.min, -(2**20)), min(info.max, 2**20)  # 600 rows' sums fit int32
    n = 600  # square: (inputs, outputs) of the feedback
    m_t = np.where(rng.random((n, n)) < 0.5, low, high).astype(dtype)
    m_t[:, 0] = low  # one column at the minimum throughout
    m_t[:, 1] = high
    idx = rng.permutation(n)[:nspk].astype(np.int64)
    idx = np.concatenate([idx, np.zeros(n - nspk, np.int64)])
    acc = np.empty(n, np.int32)
    part = np.empty(n, np.int16)
    kern._feedback_sum(acc, part, m_t, idx, nspk, -7)
    want = m_t[idx[:nspk]].astype(np.int64).sum(0) - 7
    assert np.array_equal(acc, want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_feedback_grid_one_pass_against_numpy(dtype):
    """The one-pass mantissas (blocks of 16 rows transposed together) against NumPy on
    shapes that are not multiples of the block, and every refusal: a value off the grid,
    NaN, +-inf, a mantissa of 2**31."""
    rng = np.random.default_rng(1)
    for n_o, n_i in ((37, 19), (16, 1), (1, 40), (0, 5)):
        w = torch.tensor(rng.integers(-300, 301, (n_o, n_i)) / 64.0, dtype=dtype)
        got = fused_mod.feedback_grid(w, None, 64)
        want = (w.double().numpy() * 64).T.astype(np.int32)
        assert got is not None and got[0].flags.c_contiguous
        assert np.array_equal(got[0], want)
        for bad in (1 / 128, float("nan"), float("inf"), -float("inf"), 2.0**31 / 64):
            if w.numel():
                wb = w.clone()
                wb[n_o - 1, n_i // 2] = bad
                assert fused_mod.feedback_grid(wb, None, 64) is None, bad


@settings(max_examples=40, deadline=None)
@given(
    steps=st.integers(1, 12),
    batch=st.integers(1, 7),
    n=st.integers(2, 40),
    diag=st.sampled_from([0.0, 1.0, 0.75, -2.0]),
    off=st.sampled_from([0.0, -0.25, -1.0, 0.5]),
    with_gs=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_compact_backward_loop_is_the_recurrence(steps, batch, n, diag, off, with_gs, seed):
    r"""KWTA's compiled backward time loop (weights ``o + (d - o) I``, O(n) per row):
    :math:`g_a[t] = (g_s[t] + g_a[t+1] W)\sigma[t]` against the float64 recurrence with
    the dense matrix, zero surrogates included; every value written, the same bits on
    one thread and on all, and the same as the block's float32 PyTorch step loop up to
    the order of the row sums."""
    from loihi_slayer.autograd import _recurrent_cpu

    rng = np.random.default_rng(seed)
    g_s = rng.standard_normal((steps, batch, n)).astype(np.float32)
    sigma = rng.random((steps, batch, n)).astype(np.float32)
    sigma[rng.random(sigma.shape) < 0.3] = 0.0
    w = np.full((n, n), off) + (diag - off) * np.eye(n)
    want = np.zeros((steps + 1, batch, n))
    for t in range(steps - 1, -1, -1):
        src = g_s[t].astype(np.float64) if with_gs else 0.0
        want[t] = (src + want[t + 1] @ w) * sigma[t]
    gs_arg = g_s if with_gs else np.zeros((0, 0, 0), np.float32)
    outs = []
    before = numba.get_num_threads()
    try:
        for threads in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(threads)
            g_a = np.full((steps, batch, n), np.nan, np.float32)
            _recurrent_cpu.backward_compact(gs_arg, sigma, np.float32(diag), np.float32(off), g_a)
            outs.append(g_a)
    finally:
        numba.set_num_threads(before)
    scale = np.abs(want).max() + 1.0
    np.testing.assert_allclose(outs[0], want[:steps], rtol=1e-4, atol=1e-5 * scale)
    assert np.array_equal(outs[1], outs[0])
    # the step loop the block ran before (PyTorch ops per step, float32)
    w_fb = torch.tensor([[diag, off]], dtype=torch.float32)
    ref = torch.empty((steps, batch, n))
    for t in range(steps - 1, -1, -1):
        g = ref[t]
        g.copy_(torch.from_numpy(g_s[t])) if with_gs else g.zero_()
        if t < steps - 1:
            fused_mod.add_feedback_grad(g, ref[t + 1], w_fb)
        g.mul_(torch.from_numpy(sigma[t]))
    torch.testing.assert_close(torch.from_numpy(outs[0]), ref, rtol=1e-5, atol=1e-5 * scale)


@settings(max_examples=40, deadline=None)
@given(
    steps=st.integers(1, 12),
    batch=st.integers(1, 7),
    n=st.integers(1, 40),
    with_gs=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_backward_loop_is_the_recurrence(steps, batch, n, with_gs, seed):
    r"""The compiled backward time loop :math:`g_a[t] = (g_s[t] + g_a[t+1] W)\sigma[t]`
    against the float64 recurrence (float32 rounding over ``n`` terms per step), zero
    surrogates (refractory steps) included; bit for bit the same for any batch items per
    job (the thread split). The same for the register-tiled form (``backward_gemm``) on
    one thread and on all."""
    from loihi_slayer.autograd import _recurrent_cpu

    rng = np.random.default_rng(seed)
    g_s = rng.standard_normal((steps, batch, n)).astype(np.float32)
    sigma = rng.random((steps, batch, n)).astype(np.float32)
    sigma[rng.random(sigma.shape) < 0.3] = 0.0
    w = (rng.integers(-127, 128, (n, n)) / 64.0).astype(np.float32)
    want = np.zeros((steps + 1, batch, n))
    for t in range(steps - 1, -1, -1):
        src = g_s[t].astype(np.float64) if with_gs else 0.0
        want[t] = (src + want[t + 1] @ w.astype(np.float64)) * sigma[t]
    gs_arg = g_s if with_gs else np.zeros((0, 0, 0), np.float32)
    outs = []
    for rows in (1, 3, batch):
        g_a = np.full((steps, batch, n), np.nan, np.float32)  # every value written
        _recurrent_cpu.backward_loop(gs_arg, sigma, w, rows, g_a)
        outs.append(g_a)
    scale = np.abs(want).max() + 1.0
    np.testing.assert_allclose(outs[0], want[:steps], rtol=1e-4, atol=1e-5 * scale)
    for other in outs[1:]:
        assert np.array_equal(other, outs[0])
    # the register-tiled form, on one thread and on all
    _assert_gemm_is(want[:steps], gs_arg, sigma, w, scale)


@pytest.mark.parametrize(
    ("features", "wide"),
    [("+avx2,+fma,+avx512f,+avx512vl", True), ("+avx2,+fma,-avx512f", False), ("", False)],
)
def test_wide_tiles_follow_numba_target(monkeypatch, features, wide):
    """The 32-output tiles only where numba compiles for AVX-512: its target's features
    (``NUMBA_CPU_FEATURES`` where set) decide, not the machine's."""
    monkeypatch.setattr(numba.core.config, "CPU_FEATURES", features)
    _recurrent_gemm.wide_tiles.cache_clear()
    try:
        assert _recurrent_gemm.wide_tiles() is wide
    finally:
        _recurrent_gemm.wide_tiles.cache_clear()


@pytest.mark.parametrize("shape", [(1, 1), (5, 64), (7, 70), (130, 129), (3, 200)])
def test_packed_weights_are_panels_of_columns(shape):
    """``packed_weights``: panel ``p`` holds output columns ``64 p .. 64 p + 63`` of
    every row, contiguous, zeros past the last output (read value by value here)."""
    k, n = shape
    w = np.arange(k * n, dtype=np.float32).reshape(k, n) + 1.0
    packed = _recurrent_gemm.packed_weights(w)
    width = _recurrent_gemm.TILE_OUTPUTS
    assert packed.dtype == np.float32 and packed.flags.c_contiguous
    assert packed.shape == (-(-n // width), k, width)
    for p in range(packed.shape[0]):
        for j in range(k):
            for c in range(width):
                o = p * width + c
                assert packed[p, j, c] == (w[j, o] if o < n else 0.0)


def _fma32(a: np.float32, b: np.float32, c: np.float32) -> np.float32:
    """``a * b + c`` rounded once to float32 (nearest, ties to even), from the exact
    rational value: the float32 nearest to float64's rounding or one of its neighbours."""
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    near = np.float32(float(exact))
    cands = [np.nextafter(near, np.float32(-np.inf)), near, np.nextafter(near, np.float32(np.inf))]
    return min(cands, key=lambda v: (abs(Fraction(float(v)) - exact), int(v.view(np.int32)) & 1))


def _assert_gemm_is(want, gs_arg, sigma, w, scale):
    """``backward_gemm`` on one thread and on all, and with 16-output tiles only (AVX2's
    form): within float32 rounding of ``want``, and the same bits every way."""
    outs = []
    before = numba.get_num_threads()
    padded = _recurrent_gemm.packed_weights(w)
    try:
        for threads, wide in ((1, True), (numba.config.NUMBA_NUM_THREADS, True), (1, False)):
            numba.set_num_threads(threads)
            g_a = np.full(sigma.shape, np.nan, np.float32)  # every value written
            _recurrent_gemm.backward_gemm(gs_arg, sigma, padded, threads, wide, g_a)
            outs.append(g_a)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_allclose(outs[0], want, rtol=1e-4, atol=1e-5 * scale)
    assert np.array_equal(outs[1], outs[0])
    assert np.array_equal(outs[2], outs[0])


@settings(max_examples=25, deadline=None)
@given(
    steps=st.integers(1, 4),
    batch=st.integers(1, 9),
    n=st.integers(60, 140),
    with_gs=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_backward_gemm_tiles_are_the_recurrence(steps, batch, n, with_gs, seed):
    r"""``backward_gemm`` where whole 32-output tile columns, 16-output columns and a last
    partial vector meet, against the float64 recurrence :math:`g_a[t] = (g_s[t] + g_a[t+1]
    W)\sigma[t]`, with weights and gradients spanning many magnitudes (each sum's
    rounding then depends on its order: one fused multiply-add a term, ``j`` ascending,
    in every tile shape)."""
    _check_backward_gemm(steps, batch, n, with_gs, seed)


@pytest.mark.parametrize("batch", range(1, 19))
def test_backward_gemm_every_row_split(batch):
    """Every way a batch falls into jobs of four-row groups and those into tiles: eight
    rows, a last tile of five to seven (its missing rows repeated), of two to four
    (``_tile4``) or one lone row (``_row``, two panels at a time and an odd one), at 96
    outputs (three panels) plus a partial vector."""
    _check_backward_gemm(3, batch, 3 * _recurrent_gemm.TILE_OUTPUTS + 5, True, 1000 + batch)


def _check_backward_gemm(steps, batch, n, with_gs, seed):
    """The body of the two tests above."""
    rng = np.random.default_rng(seed)
    g_s = (rng.standard_normal((steps, batch, n)) * 10.0 ** rng.integers(-3, 4, n)).astype(
        np.float32
    )
    sigma = rng.random((steps, batch, n)).astype(np.float32)
    sigma[rng.random(sigma.shape) < 0.2] = 0.0
    w = (rng.integers(-127, 128, (n, n)) * 2.0 ** rng.integers(-12, 0, (n, 1))).astype(np.float32)
    want = np.zeros((steps + 1, batch, n))
    for t in range(steps - 1, -1, -1):
        src = g_s[t].astype(np.float64) if with_gs else 0.0
        want[t] = (src + want[t + 1] @ w.astype(np.float64)) * sigma[t]
    gs_arg = g_s if with_gs else np.zeros((0, 0, 0), np.float32)
    # float32 rounding of sums of n terms each up to the largest |g_a w| product
    scale = np.abs(want).max() + np.abs(g_s).max() + 1.0
    _assert_gemm_is(want[:steps], gs_arg, sigma, w, scale)
    # one output by hand: the fused multiply-add chain, term by term, as the tiles run it
    g_a = np.full(sigma.shape, np.nan, np.float32)
    _recurrent_gemm.backward_gemm(gs_arg, sigma, _recurrent_gemm.packed_weights(w), 2, True, g_a)
    if steps > 1:
        b, o = batch - 1, n - 1
        acc = np.float32(0.0)
        for j in range(n):
            acc = _fma32(g_a[1, b, j], w[j, o], acc)
        src = g_s[0, b, o] if with_gs else np.float32(0.0)
        assert g_a[0, b, o] == np.float32((src + acc) * sigma[0, b, o])


@settings(max_examples=30, deadline=None)
@given(
    steps=st.integers(1, 9),
    batch=st.integers(1, 5),
    n=st.integers(2, 24),
    graded=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_kwta_weight_gradient_is_the_projection_onto_its_form(steps, batch, n, graded, seed):
    r"""``feedback_weight_grad(..., kwta=True)``: the full gradient
    :math:`G = \sum_t g_a[t] s[t-1]^\top` (float64 einsum) projected onto the matrices
    ``o + (d - o) I``: its diagonal is ``tr G / n``, every off-diagonal entry
    ``(ΣG - tr G) / (n² - n)``, so the gradients of ``d`` and ``o`` (the diagonal and
    off-diagonal sums) are G's; and through a self-excitation ``a`` (``W = (1 + a) I - 1``)
    the same gradient as the dense G."""
    rng = np.random.default_rng(seed)
    s = (rng.random((steps, batch, n)) < 0.4).astype(np.float32)
    if graded:
        s *= rng.integers(1, 9, s.shape).astype(np.float32)
    g_a = rng.standard_normal((steps, batch, n)).astype(np.float32)
    w = torch.zeros((n, n))
    full = np.einsum("tbi,tbj->ij", g_a[1:].astype(np.float64), s[:-1].astype(np.float64))
    got = fused_mod.feedback_weight_grad(torch.from_numpy(g_a), torch.from_numpy(s), w, kwta=True)
    assert got.shape == (n, n) and got.dtype == w.dtype
    got = got.double().numpy()
    off = ~np.eye(n, dtype=bool)
    tol = 1e-5 * (1 + np.abs(full).sum())
    assert abs(np.trace(got) - np.trace(full)) <= tol
    assert abs(got[off].sum() - full[off].sum()) <= tol
    np.testing.assert_allclose(np.diagonal(got), np.trace(full) / n, rtol=1e-6, atol=tol)
    np.testing.assert_allclose(got[off], full[off].sum() / (n * n - n), rtol=1e-6, atol=tol)
    a = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    ((1 + a) * torch.eye(n, dtype=torch.float64) - 1).backward(torch.from_numpy(got))
    assert abs(float(a.grad) - np.trace(full)) <= tol
    dense = fused_mod.feedback_weight_grad(torch.from_numpy(g_a), torch.from_numpy(s), w)
    np.testing.assert_allclose(dense.double().numpy(), full, rtol=1e-4, atol=tol)

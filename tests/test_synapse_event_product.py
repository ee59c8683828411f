"""The dense synapse's event-driven product (issue 8): on sparse integer input the
forward is the exact sum (float64 reference, and the float GEMM it replaces, bit for
bit), the weight gradient the float product's up to summation order (float64 autograd
reference), and the choice between events and the GEMM follows the input's density:
both directions where the GEMM is sgemm, the weight gradient alone where it is the
int8 GEMM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from loihi_slayer import synapse
from loihi_slayer._recycle import recycled_for
from loihi_slayer.fixed.synapse_fast import INT8_GEMM_ENV, int8_gemm_works
from loihi_slayer.quantize import quantize_8bit
from loihi_slayer.synapse import _event_product as ep
from loihi_slayer.synapse import _int_product as ip
from loihi_slayer.synapse._grad_calibration import EVENT_GRAD_ENV


@pytest.fixture(autouse=True)
def fresh_choice(monkeypatch):
    """Every product at any size, no density memory from earlier tests, and the sgemm
    CPUs' choice (both directions by events), which every CPU can run; the int8 GEMM
    CPUs' split is tested with the int8 GEMM forced on."""
    monkeypatch.setattr(ip, "MIN_WORK", 0)
    monkeypatch.setenv(INT8_GEMM_ENV, "0")
    ip._DENSE_SKIPS.clear()
    yield
    ip._DENSE_SKIPS.clear()


def _exact(x3: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    return torch.einsum("oi,bit->bot", w2.double(), x3.double())


def _float_path(x3: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    return torch.matmul(x3.transpose(1, 2), w2.t()).transpose(1, 2)


def _sparse(rng, shape, top: int, events: int) -> np.ndarray:
    """Integers in ``[-top, min(top, 127)]`` at ``events`` random places (some may
    coincide), 0 elsewhere; one event at the extreme ``-top``."""
    q = np.zeros(shape, np.int64)
    flat = q.reshape(-1)
    at = rng.integers(0, flat.size, events)
    flat[at] = rng.integers(-top, min(top, 127) + 1, events)
    flat[at[0]] = -top
    return q


def _path(z: torch.Tensor) -> str:
    return type(z.grad_fn).__name__


@settings(max_examples=60, deadline=None)
@given(
    b=st.integers(1, 4),
    n_in=st.integers(9, 70),  # at least one event in 1 / MAX_DENSITY values
    n_out=st.integers(1, 20),
    steps=st.integers(1, 90),
    exp=st.integers(-12, 6),
    w_top=st.sampled_from([1, 2, 64, 127]),
    x_top=st.sampled_from([1, 3, 127, 128]),
    seed=st.integers(0, 2**31 - 1),
    time_major=st.booleans(),
    sums_bytes=st.sampled_from([64, 1 << 16]),
)
def test_event_product_is_the_exact_sum(
    b, n_in, n_out, steps, exp, w_top, x_top, seed, time_major, sums_bytes
):
    rng = np.random.default_rng(seed)
    m = rng.integers(-w_top, w_top + 1, (n_out, n_in))
    m[rng.integers(n_out), rng.integers(n_in)] = rng.choice([-w_top, w_top])  # the extreme
    w2 = torch.tensor(m * 2.0**exp, dtype=torch.float32, requires_grad=True)
    size = b * n_in * steps
    q = _sparse(rng, (b, n_in, steps), x_top, max(1, int(size * ep.MAX_DENSITY) // 2))
    x3 = torch.tensor(q, dtype=torch.float32)
    old = ep.SUMS_BYTES
    ep.SUMS_BYTES = sums_bytes  # 64: jobs of 8 steps each
    try:
        z = ip.int_product(x3, w2, time_major=time_major)
    finally:
        ep.SUMS_BYTES = old
    assert z is not None and _path(z) == "EventDenseProductBackward"
    assert (z.permute(2, 0, 1) if time_major else z).is_contiguous()
    exact = _exact(x3, w2.detach())
    assert exact.abs().max() < 2.0 ** (24 + exp)  # the module's bound holds here
    assert torch.equal(z.double(), exact)
    assert torch.equal(z, _float_path(x3, w2.detach()))  # bit for bit the float GEMM's


def _gradient_case(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(w, x, g)``: 8-bit grid weights, sparse integer input (values up to -128 and
    127) and a time-last gradient of a 40 -> 24 product at batch 3, T = 50."""
    rng = np.random.default_rng(seed)
    b, n_in, n_out, steps = 3, 40, 24, 50
    w = torch.tensor(rng.integers(-127, 128, (n_out, n_in)) / 64.0, dtype=torch.float32)
    x = torch.tensor(_sparse(rng, (b, n_in, steps), 128, 200), dtype=torch.float32)
    g = torch.tensor(rng.normal(size=(b, n_out, steps)), dtype=torch.float32)
    return w, x, g


def _assert_float64_gradients(w, x, g, w1, x1, x_grad: bool) -> None:
    """``w1.grad`` (and ``x1.grad`` where asked) are the float64 product's gradients."""
    w64 = w.double().requires_grad_(True)
    x64 = x.double().requires_grad_(x_grad)
    _exact(x64, w64).backward(g.double())
    torch.testing.assert_close(w1.grad.double(), w64.grad, rtol=1e-5, atol=1e-4)
    if x_grad:
        torch.testing.assert_close(x1.grad.double(), x64.grad, rtol=1e-5, atol=1e-4)
    else:
        assert x1.grad is None


@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("x_grad", [False, True])
def test_event_gradients_are_the_float_products(time_major, x_grad):
    w, x, g = _gradient_case(3)
    w1 = w.clone().requires_grad_(True)
    x1 = x.clone().requires_grad_(x_grad)
    z = ip.int_product(x1, w1, time_major=time_major)
    assert _path(z) == "EventDenseProductBackward"
    z.backward(g)
    _assert_float64_gradients(w, x, g, w1, x1, x_grad)


@pytest.mark.parametrize("steps", [1, 2, ep.FOLD_STEPS - 1, ep.FOLD_STEPS, 40])
@pytest.mark.parametrize("n_b", [1, 3])
@pytest.mark.parametrize("time_major", [False, True])
def test_input_gradient_both_ways_is_the_float64_product(steps, n_b, time_major):
    """The input gradient :math:`w^\\top g`, one GEMM over all columns below
    ``FOLD_STEPS`` steps and one per batch item from there on, is the float64 product's
    to float rounding, time-last and contiguous, for a time-last gradient and for a
    time-last view of time-major memory."""
    rng = np.random.default_rng(steps * 10 + n_b)
    n_o, n_i = 24, 40
    w = torch.tensor(rng.normal(size=(n_o, n_i)), dtype=torch.float32)
    g = torch.tensor(rng.normal(size=(n_b, n_o, steps)), dtype=torch.float32)
    if time_major:
        g = g.permute(2, 0, 1).contiguous().permute(1, 2, 0)
    g_x = ep.input_grad(w, g)
    assert g_x.shape == (n_b, n_i, steps) and g_x.is_contiguous()
    want = torch.einsum("oi,bot->bit", w.double(), g.double())
    torch.testing.assert_close(g_x.double(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("steps", [1, 50])
def test_one_step_product_gradients_are_the_float_products(steps):
    """A product of one step (a block stepped through time) and of many, through the
    autograd node: both gradients are the float64 product's."""
    w, x, g = _gradient_case(5)
    x, g = x[..., :steps].contiguous(), g[..., :steps].contiguous()
    w1 = w.clone().requires_grad_(True)
    x1 = x.clone().requires_grad_(True)
    z = ip.int_product(x1, w1)
    z.backward(g)
    _assert_float64_gradients(w, x, g, w1, x1, True)


def test_time_major_gradient_is_read_in_place():
    """A gradient that is a time-last view of time-major memory (the fused recurrence's)
    reaches the weight gradient as it is; the same gradient time-last gives the same
    values."""
    rng = np.random.default_rng(4)
    b, n_in, n_out, steps = 2, 30, 16, 40
    w = torch.tensor(rng.integers(-127, 128, (n_out, n_in)) / 32.0, dtype=torch.float32)
    x = torch.tensor(_sparse(rng, (b, n_in, steps), 1, 60), dtype=torch.float32)
    g_tm = torch.tensor(rng.normal(size=(steps, b, n_out)), dtype=torch.float32)
    grads = []
    for g in (g_tm.permute(1, 2, 0), g_tm.permute(1, 2, 0).contiguous()):
        w1 = w.clone().requires_grad_(True)
        ip.int_product(x, w1).backward(g)
        grads.append(w1.grad)
    assert torch.equal(grads[0], grads[1])  # the same sums in the same order


@pytest.mark.parametrize("int8", ["0", "1"])
def test_neuron_last_gradient_is_read_in_place(monkeypatch, int8):
    """A gradient that is a time-last view of neuron-last ``(B, T, O)`` memory (a CUBA
    neuron's input gradient) gives the weight gradient of the same gradient time-last
    or time-major, bit for bit, without a reordering copy; the time-last one is copied."""
    if int8 == "1" and not int8_gemm_works():
        pytest.skip("torch._int_mm is missing or inexact here")
    monkeypatch.setenv(INT8_GEMM_ENV, int8)
    rng = np.random.default_rng(6)
    b, n_in, n_out, steps = 3, 30, 16, 40
    w = torch.tensor(rng.integers(-127, 128, (n_out, n_in)) / 32.0, dtype=torch.float32)
    x = torch.tensor(_sparse(rng, (b, n_in, steps), 1, 60), dtype=torch.float32)
    g_nl = torch.tensor(rng.normal(size=(b, steps, n_out)), dtype=torch.float32)
    copies = []
    kept = ep.kept_empty

    def spy(role, *args, **kwargs):
        copies.append(role == ep._G_ROWS)
        return kept(role, *args, **kwargs)

    monkeypatch.setattr(ep, "kept_empty", spy)
    grads = {}
    layouts = {
        "neuron-last": g_nl.transpose(1, 2),
        "time-last": g_nl.transpose(1, 2).contiguous(),
        "time-major": g_nl.permute(1, 0, 2).contiguous().permute(1, 2, 0),
    }
    for name, g in layouts.items():
        copies.clear()
        w1 = w.clone().requires_grad_(True)
        z = ip.int_product(x, w1)
        events = _path(z) == "EventDenseProductBackward" or z.grad_fn.counts is not None
        if not events:
            pytest.skip("the weight gradient is a GEMM at this density on this machine")
        z.backward(g)
        grads[name] = w1.grad
        assert any(copies) == (name == "time-last"), name
    # the same events summed in the same order, whichever rows hold their gradients
    assert torch.equal(grads["neuron-last"], grads["time-last"])
    assert torch.equal(grads["time-major"], grads["time-last"])


def test_density_decides_and_a_dense_owner_skips_the_event_pass():
    rng = np.random.default_rng(5)
    b, n_in, n_out, steps = 2, 50, 8, 40
    w = torch.tensor(rng.integers(-127, 128, (n_out, n_in)) / 64.0, requires_grad=True)
    w = w.float().detach().requires_grad_(True)
    size = b * n_in * steps
    sparse = torch.zeros(b, n_in, steps)
    sparse.view(-1)[: int(size * ep.MAX_DENSITY)] = 1.0  # at the limit: events
    dense = torch.zeros(b, n_in, steps)
    dense.view(-1)[: int(size * ep.MAX_DENSITY) + 1] = 1.0  # one more: the GEMM
    owner = torch.nn.Linear(1, 1)
    assert _path(ip.int_product(sparse, w, owner)) == "EventDenseProductBackward"
    assert _path(ip.int_product(dense, w, owner)) == "IntDenseProductBackward"
    # the owner's next DENSE_RETRY products take the GEMM without the event pass ...
    for _ in range(ep.DENSE_RETRY):
        assert _path(ip.int_product(sparse, w, owner)) == "IntDenseProductBackward"
    # ... then it looks again; other owners were never affected
    assert _path(ip.int_product(sparse, w, owner)) == "EventDenseProductBackward"
    assert _path(ip.int_product(sparse, w, torch.nn.Linear(1, 1))) == "EventDenseProductBackward"
    # either way the values are the exact sums
    for x in (sparse, dense):
        assert torch.equal(ip.int_product(x, w, owner).double(), _exact(x, w.detach()))


@pytest.mark.parametrize("bad", [0.5, float("nan"), 200.0])
def test_sparse_input_off_the_integers_keeps_the_float_gemm(bad):
    x = torch.zeros(2, 20, 30)
    x[1, 3, 7] = 1.0
    x[0, 5, 2] = bad
    w = torch.full((4, 20), 0.25)
    assert ip.int_product(x, w) is None


def test_dense_synapse_takes_the_event_path_for_sparse_spikes():
    torch.manual_seed(0)
    syn = synapse.Dense(64, 32, weight_scale=2, pre_hook_fx=quantize_8bit)
    x = (torch.rand(4, 64, 50) < 0.05).float()
    z = syn(x)
    assert _path(z) == "EventDenseProductBackward"
    w = quantize_8bit(syn.weight).reshape(32, 64)
    assert torch.equal(z.double(), _exact(x, w.detach()))
    # the int8 values live in memory the synapse keeps across steps
    kept = recycled_for(syn, "event operand").kept
    assert len(kept) == 1 and kept[0].nbytes() == x.numel()
    z.sum().backward()
    w64 = w.detach().double().requires_grad_(True)
    _exact(x, w64).sum().backward()
    torch.testing.assert_close(
        syn.weight.grad.reshape(32, 64).double(), w64.grad, rtol=1e-5, atol=1e-5
    )


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 70), st.integers(0, 2**31 - 1))
def test_transposed_mantissas(n_o, n_i, seed):
    """The forward's rows are the int8 mantissas transposed, every value kept (-128 and
    127 included)."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randint(-128, 128, (n_o, n_i), dtype=torch.int8, generator=g)
    m[0, 0], m[-1, -1] = -128, 127
    out = np.full((n_i, n_o), 7, np.int8)
    ep.transposed(m.numpy(), out)
    assert np.array_equal(out, m.numpy().T)


@settings(max_examples=40, deadline=None)
@given(
    n_i=st.integers(1, 9),
    n_b=st.integers(1, 5),
    steps=st.sampled_from([1, 7, 255, 256, 257, 300]),
    density=st.sampled_from([0.0, 0.05, 0.5, 1.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_event_lists_are_the_nonzero_steps(n_i, n_b, steps, density, seed):
    """Each row's list is its non-zero steps in ascending order (NumPy's ``nonzero``),
    in the narrowest type that holds every step (uint8 up to 256 steps, then uint16);
    rows without events are not written."""
    rng = np.random.default_rng(seed)
    q = rng.integers(-128, 128, (n_i, n_b, steps)).astype(np.int8)
    q[rng.random(q.shape) >= density] = 0
    q[0, 0, -1] = -128  # an event at the last step
    counts = np.ascontiguousarray((q != 0).sum(axis=2).T, dtype=np.int32)
    dt = ep.position_dtype(steps)
    assert dt == (np.uint8 if steps <= 256 else np.uint16)
    pos = np.full((n_b, n_i, steps), 77, dt)
    ep.event_lists(q, counts, pos)
    for i in range(n_i):
        for b in range(n_b):
            listed = pos[b, i, : counts[b, i]]
            assert np.array_equal(listed, np.nonzero(q[i, b])[0])
            if counts[b, i] == 0:
                assert (pos[b, i] == 77).all()


@pytest.mark.parametrize(("q_top", "m_top"), [(1, 127), (128, 127), (1, 1), (3, 100)])
@pytest.mark.parametrize("over", [0, 1])
@pytest.mark.parametrize("by_item", [False, True])
def test_event_sums_at_the_int16_bound(q_top, m_top, over, by_item):
    """A step whose events can just reach the int16 range (events · |q| · |m| = the
    largest multiple of |q| · |m| up to 32767) is summed exactly in int16, one more event
    in int32: the exact sums, signs and extremes included, either way; with jobs by
    batch item (cursors along the lists) or by item and block of steps (searches)."""
    top = q_top * m_top
    n = 32767 // top + over
    n_o, steps = 3, 5
    q = np.zeros((n, 1, steps), np.int8)
    q[:, 0, 2] = -q_top if q_top == 128 else q_top  # all at step 2
    q[0, 0, 4] = 1
    m = np.full((n_o, n), m_top, np.int8)
    m[1] = -m_top  # a negative sum in the second output
    m[2, ::2] = 0
    counts = np.ascontiguousarray((q != 0).sum(axis=2).T, dtype=np.int32)
    pos = np.zeros((1, n, steps), np.uint8)
    ep.event_lists(q, counts, pos)
    mt = np.ascontiguousarray(m.T)
    z = np.full((1, n_o, steps), np.nan, np.float32)
    ep.forward_events(q, counts, pos, mt, top, np.float32(0.5), 2, z, False, by_item)
    exact = np.einsum("oi,ibt->bot", m.astype(np.float64), q.astype(np.float64)) * 0.5
    assert np.array_equal(z.astype(np.float64), exact)
    assert abs(exact[0, 0, 2]) * 2 == n * top  # the bound is reached (or passed by one)


needs_int8_gemm = pytest.mark.skipif(
    not int8_gemm_works(), reason="torch._int_mm is missing or inexact here"
)


@needs_int8_gemm
@pytest.mark.parametrize("x_grad", [False, True])
def test_int8_gemm_forward_with_event_weight_gradient(monkeypatch, x_grad):
    """Where the GEMM is int8, sparse input keeps the GEMM forward (exact, the float
    GEMM's bits) and sums the weight gradient event by event: the float64 product's
    gradient, and the same values as the event path's gradient in the same order."""
    monkeypatch.setenv(INT8_GEMM_ENV, "1")
    w, x, g = _gradient_case(8)
    w1 = w.clone().requires_grad_(True)
    x1 = x.clone().requires_grad_(x_grad)
    z = ip.int_product(x1, w1)
    assert _path(z) == "IntDenseProductBackward" and z.grad_fn.counts is not None
    assert torch.equal(z.double(), _exact(x, w))
    assert torch.equal(z, _float_path(x, w))
    z.backward(g)
    _assert_float64_gradients(w, x, g, w1, x1, x_grad)
    monkeypatch.setenv(INT8_GEMM_ENV, "0")
    w2 = w.clone().requires_grad_(True)
    z2 = ip.int_product(x, w2)
    assert _path(z2) == "EventDenseProductBackward"
    z2.backward(g)
    assert torch.equal(w1.grad, w2.grad)  # the same event sums


@needs_int8_gemm
@pytest.mark.parametrize("time_major", [False, True])
def test_int8_gemm_weight_gradient_choice_follows_density(monkeypatch, time_major):
    """The event weight gradient up to :func:`grad_max_density` of the values non-zero
    (here pinned by ``LOIHI_SLAYER_EVENT_GRAD``), the float GEMM's beyond it, for a
    time-last or a time-major operand; the forward is the GEMM's exact sums throughout,
    and both weight gradients the float64 product's."""
    monkeypatch.setenv(INT8_GEMM_ENV, "1")
    monkeypatch.setenv(EVENT_GRAD_ENV, "0.15")
    b, n_in, n_out, steps = 2, 50, 8, 40
    w = torch.tensor(np.random.default_rng(9).integers(-127, 128, (n_out, n_in)) / 64.0)
    w = w.float()
    size = b * n_in * steps
    limit = int(size * 0.15)
    sparse = torch.zeros(b, n_in, steps)
    sparse.view(-1)[:limit] = 1.0  # at the limit: events
    dense = torch.zeros(b, n_in, steps)
    dense.view(-1)[: limit + 1] = 1.0  # one more: the GEMM
    g = torch.tensor(np.random.default_rng(2).normal(size=(b, n_out, steps)), dtype=torch.float32)
    for x, events in ((sparse, True), (dense, False)):
        w1 = w.clone().requires_grad_(True)
        z = ip.int_product(x, w1, time_major=time_major)
        assert _path(z) == "IntDenseProductBackward"
        assert (z.grad_fn.counts is not None) is events
        assert z.permute(2, 0, 1).is_contiguous() is time_major
        assert torch.equal(z.double(), _exact(x, w))
        z.backward(g)
        _assert_float64_gradients(w, x, g, w1, x, False)
    monkeypatch.setenv(EVENT_GRAD_ENV, "off")
    z = ip.int_product(sparse, w.clone().requires_grad_(True), time_major=time_major)
    assert z.grad_fn.counts is None


def _layout(q3: np.ndarray, g3: np.ndarray, cross: bool) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's operands from the input ``(I, A, C)`` and the gradient ``(A, C, O)``:
    its rows in ``(c, a)`` order when ``cross``."""
    n_o = g3.shape[-1]
    g2 = g3.transpose(1, 0, 2) if cross else g3
    return q3, np.ascontiguousarray(g2).reshape(-1, n_o)


@settings(max_examples=60, deadline=None)
@given(
    # jobs of 16 inputs and more write their columns as 16 x 16 blocks, the rest one by one
    n_i=st.integers(1, 40),
    n_a=st.integers(1, 9),
    # rows longer than one scan mask (64 values), and outputs past the register passes
    # (128, then 64, 32 or 16 reaching back, one column at a time under 16)
    n_c=st.integers(1, 150),
    n_o=st.integers(1, 300),
    block=st.integers(1, 200),
    density=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    cross=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_event_weight_gradient_any_layout_and_block(
    n_i, n_a, n_c, n_o, block, density, cross, seed
):
    """``weight_grad_events`` is the float64 product's weight gradient (float32
    rounding) for any block (shorter than a row, whole rows, beyond the input), any
    density (none to all), values from -128 to 127, gradient rows in either order, with
    rows without events skipped by their counts or read, and the events scanned or
    read from their lists; bit for bit the same whatever the inputs per job (the thread
    split), the inputs whose rows a job sums at a time, and whether listed or scanned
    (the same order)."""
    rng = np.random.default_rng(seed)
    q3 = rng.integers(-128, 128, (n_i, n_a, n_c)).astype(np.int8)
    q3[rng.random(q3.shape) >= density] = 0
    if n_a > 1:
        q3[:, 1] = 0  # rows without events, which the counts let the kernel skip
    q3.reshape(-1)[0] = -128 if density else 0
    g3 = rng.normal(size=(n_a, n_c, n_o)).astype(np.float32)
    q, g2 = _layout(q3, g3, cross)
    ref = np.einsum("iac,aco->io", q3.astype(np.float64), g3.astype(np.float64))
    counts = np.ascontiguousarray((q3 != 0).sum(axis=2).T, dtype=np.int32)  # (A, I)
    pos = np.zeros((n_a, n_i, n_c), ep.position_dtype(n_c))
    ep.event_lists(q3, counts, pos)
    outs = []
    # (inputs a job, their rows summed this many at a time): parts of 16 and 17 inputs
    # split a job of up to 40, and write its columns as blocks and one by one
    for (chunk, part), rows, lists in (
        ((1, 16), counts, ep._NO_LISTS),
        ((5, 16), ep._NO_COUNTS, ep._NO_LISTS),
        ((n_i, n_i), counts, ep._NO_LISTS),
        ((n_i, 17), counts, ep._NO_LISTS),
        ((1, 16), counts, pos),
        ((n_i, 16), counts, pos),
    ):
        gw = np.full((n_o, n_i), np.nan, np.float32)  # every value written
        ep.weight_grad_events(q, g2, cross, block, chunk, rows, lists, gw, part)
        outs.append(gw.T)
    scale = np.abs(q3.astype(np.float64)).sum() * np.abs(g3).max() + 1.0  # int8 abs(-128) wraps
    np.testing.assert_allclose(outs[0], ref, rtol=1e-5, atol=1e-6 * scale)
    for other in outs[1:]:
        assert np.array_equal(other, outs[0])


@settings(max_examples=25, deadline=None)
@given(
    widths=st.lists(st.integers(1, 300), min_size=1, max_size=6),
    density=st.sampled_from([0.05, 0.5]),
    seed=st.integers(0, 2**31 - 1),
)
def test_event_weight_gradient_columns_do_not_depend_on_the_width(widths, density, seed):
    """A gradient column's value is its events summed in order, whatever pass of
    :func:`_add_gradient_rows` sums it: the first ``k`` columns of a gradient ``n_o``
    wide are, bit for bit, the gradient of its first ``k`` columns alone, for widths that
    take every pass (128, 64, 32, 16 columns, passes reaching back over columns already
    summed, one column at a time). A column summed twice, or left out, would differ."""
    rng = np.random.default_rng(seed)
    n_i, n_a, n_c, n_o = 20, 3, 70, 300
    q3 = rng.integers(-128, 128, (n_i, n_a, n_c)).astype(np.int8)
    q3[rng.random(q3.shape) >= density] = 0
    g3 = rng.normal(size=(n_a, n_c, n_o)).astype(np.float32)
    counts = np.ascontiguousarray((q3 != 0).sum(axis=2).T, dtype=np.int32)

    def grad(width: int) -> np.ndarray:
        q, g2 = _layout(q3, np.ascontiguousarray(g3[..., :width]), False)
        gw = np.full((width, n_i), np.nan, np.float32)
        ep.weight_grad_events(q, g2, False, 64, 7, counts, ep._NO_LISTS, gw, 16)
        return gw

    full = grad(n_o)
    for width in widths:
        np.testing.assert_array_equal(grad(width), full[:width])


def test_event_weight_gradient_is_contiguous_output_by_input():
    """``event_weight_grad`` returns the weight gradient as a contiguous ``(O, I)``
    tensor, the layout of the weight it belongs to (the weight norm's backward misreads
    a strided one), with the float64 product's values; more inputs than threads, so
    every job writes its own columns."""
    rng = np.random.default_rng(7)
    n_i, n_a, n_c, n_o = 37, 3, 60, 130
    q3 = rng.integers(-3, 4, (n_i, n_a, n_c)).astype(np.int8)
    q3[rng.random(q3.shape) >= 0.2] = 0
    g3 = rng.normal(size=(n_a, n_c, n_o)).astype(np.float32)
    gw = ep.event_weight_grad(q3, np.ascontiguousarray(g3).reshape(-1, n_o))
    assert gw.shape == (n_o, n_i) and gw.is_contiguous()
    ref = np.einsum("iac,aco->oi", q3.astype(np.float64), g3.astype(np.float64))
    np.testing.assert_allclose(gw.numpy(), ref, rtol=1e-5, atol=1e-4)


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(0, 3 * ep.COUNT_BLOCK + 5),
    density=st.floats(0.0, 1.0),
    double=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_nonzero_count_is_numpys(size, density, double, seed):
    """The parallel count against NumPy's, over block boundaries, with NaN, +-inf and
    -0.0 among the values (NaN and inf count, -0.0 does not)."""
    rng = np.random.default_rng(seed)
    a = np.where(rng.random(size) < density, rng.standard_normal(size), 0.0)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0])
    at = rng.integers(0, max(size, 1), 4)
    if size:
        a[at] = specials
    t = torch.from_numpy(a.astype(np.float64 if double else np.float32))
    assert ep.nonzero_count(t) == int(np.count_nonzero(a))


def test_nonzero_count_other_layouts_fall_back():
    """Non-contiguous and integer tensors take ``count_nonzero``: the same number."""
    x = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    assert ep.nonzero_count(x.t()) == 3
    assert ep.nonzero_count(torch.tensor([0, 5, 0, -1])) == 2


def test_event_lists_of_products_in_flight_are_not_shared():
    """Two event products of one synapse before either backward: each keeps its own
    event lists (kept memory is reused only once no graph holds it), so each weight
    gradient is its own input's."""
    torch.manual_seed(1)
    syn = synapse.Dense(40, 12, weight_scale=2, pre_hook_fx=quantize_8bit)
    xs = [(torch.rand(3, 40, 30) < p).float() for p in (0.03, 0.08)]
    zs = [syn(x) for x in xs]
    assert all(_path(z) == "EventDenseProductBackward" for z in zs)
    w = quantize_8bit(syn.weight).reshape(12, 40).detach()
    for x, z in zip(xs, zs, strict=True):
        syn.zero_grad()
        z.sum().backward()
        w64 = w.double().requires_grad_(True)
        _exact(x, w64).sum().backward()
        torch.testing.assert_close(
            syn.weight.grad.reshape(12, 40).double(), w64.grad, rtol=1e-5, atol=1e-5
        )
    kept = recycled_for(syn, "event lists").kept
    assert len(kept) == 1  # the second product's lists took new memory, now kept


@njit
def _mask_of(q, i, a, c0, width):
    return ep._event_mask(q, i, a, c0, width)


@settings(max_examples=80, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 140)),
    density=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    strided=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_event_mask_is_the_rows_nonzero_bits(shape, density, strided, seed):
    # the 64-byte load ending at the run (the array's first 64 bytes: the loop), and the
    # loop on a strided view: bit k for every non-zero value (-128 included)
    rng = np.random.default_rng(seed)
    q = rng.integers(-128, 128, shape).astype(np.int8)
    q[rng.random(shape) >= density] = 0
    if strided:
        q = np.ascontiguousarray(np.repeat(q, 2, axis=2))[:, :, ::2]
    n_i, n_a, n_c = q.shape
    for _ in range(20):
        i, a = rng.integers(n_i), rng.integers(n_a)
        c0 = int(rng.integers(n_c))
        width = int(rng.integers(1, min(64, n_c - c0) + 1))
        expect = sum(1 << k for k in range(width) if q[i, a, c0 + k] != 0)
        assert int(_mask_of(q, i, a, c0, width)) == expect


@given(
    n_b=st.integers(1, 3),
    n_o=st.integers(1, 40),
    steps=st.integers(1, 70),
    seed=st.integers(0, 2**31 - 1),
)
@settings(max_examples=60, deadline=None)
def test_gradient_rows_transpose_every_value(n_b, n_o, steps, seed):
    """The event weight gradient's ``(B·T, O)`` rows of a time-last gradient: every value
    moved, whatever the sizes (below 16, partial last blocks), on one thread and two."""
    g = np.random.default_rng(seed).normal(size=(n_b, n_o, steps)).astype(np.float32)
    for kernel in (ep.gradient_rows, ep.gradient_rows_serial):
        out = np.full((n_b * steps, n_o), np.nan, np.float32)
        kernel(g, out)
        np.testing.assert_array_equal(out, g.transpose(0, 2, 1).reshape(-1, n_o))

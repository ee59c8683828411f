"""Fused recurrence of the resonator blocks (``autograd.recurrent_complex``) against the
step-by-step loop it replaces.

The reference is the block's own step-by-step loop (``block.recurrent.FUSED = False``:
one resonator neuron call per step, the feedback through the complex recurrent synapse
or KWTA's lateral weights into both parts). Spikes and the persistent state must be
equal bit for bit, gradients (input, feed-forward and recurrent weights, self
excitation, rotation) equal to float rounding; every comparison also checks whether the
fused kernel really ran.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch
from helpers import in_both_paths, refused_in_both_paths, spy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_recurrent_fused import (
    assert_grads_close,
    compare_over_calls,
    neuron_runs_agree,
    run,
    spikes,
)
from test_recurrent_fused import compare as compare_blocks

from loihi_slayer import _recycle
from loihi_slayer.autograd import _recurrent_gemm, recurrent_complex
from loihi_slayer.block import adrf, adrf_iz, rf, rf_iz
from loihi_slayer.errors import ParameterError
from loihi_slayer.fixed import codegen
from loihi_slayer.models import get as get_model
from loihi_slayer.neuron.dropout import Dropout

FAMILIES = {"rf": rf, "rf_iz": rf_iz, "adrf": adrf, "adrf_iz": adrf_iz}


def params(family: str, th: float = 0.1, **kw) -> dict:
    p = {"threshold": th, "period": 10, "decay": 0.1}
    if family.startswith("adrf"):
        p.update(threshold_step=0.05, threshold_decay=0.1, refractory_decay=0.2)
    return {**p, **kw}


def make(family: str, kind: str, n_in: int, n: int, **kw):
    torch.manual_seed(0)
    fam = FAMILIES[family]
    p = params(family, **kw)
    if kind == "kwta":
        return fam.KWTA(p, n_in, n, num_winners=max(1, n // 3), weight_scale=3)
    return fam.Recurrent(p, n_in, n, weight_scale=3)


CASES = [(f, k) for f in FAMILIES for k in ("recurrent", "kwta")]
IDS = [f"{f}_{k}" for f, k in CASES]


@pytest.fixture
def fused_calls(monkeypatch):
    """Records the fused kernel runs."""
    return spy(monkeypatch, recurrent_complex, "resonator_recurrent")


#: the neuron state a resonator block carries between calls (and the phase before the
#: last step, which ``spike()`` compares with)
STATES = ("real_state", "imag_state", "_imag_before")


def compare(build, x, fused_calls, expect_fused=True, calls=1):
    """:func:`test_recurrent_fused.compare` with the resonator's state."""
    return compare_blocks(build, x, fused_calls, expect_fused, calls, states=STATES)


@pytest.mark.parametrize(("family", "kind"), CASES, ids=IDS)
@pytest.mark.parametrize(("batch", "n_in", "n", "steps"), [(1, 7, 5, 20), (3, 12, 10, 30)])
def test_fused_equals_step_loop(family, kind, batch, n_in, n, steps, fused_calls):
    x = spikes((batch, n_in, steps), p=0.4, seed=batch)
    y = compare(lambda: make(family, kind, n_in, n, requires_grad=True), x, fused_calls)
    assert y.sum() > 0


@pytest.mark.parametrize(("family", "kind"), CASES, ids=IDS)
@pytest.mark.parametrize(
    "extra",
    [{"shared_param": False, "requires_grad": True}, {"threshold": 1 / 64}, {"scale": 16}],
    ids=["per_channel", "lowest_threshold", "scale16"],
)
def test_fused_neuron_variants(family, kind, extra, fused_calls):
    x = spikes((3, 10, 30), p=0.5, seed=3)
    compare(lambda: make(family, kind, 10, 8, **extra), x, fused_calls)


@pytest.mark.parametrize(("family", "kind"), [("rf_iz", "recurrent"), ("adrf", "kwta")])
def test_fused_parallel_kernels(family, kind, fused_calls):
    """Work above PARALLEL_MIN_WORK: batch items on threads."""
    x = spikes((11, 40, 100), p=0.4, seed=11)
    compare(lambda: make(family, kind, 40, 64, requires_grad=True), x, fused_calls)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fused_backward_register_tiles(family, fused_calls):
    """From ``GEMM_MIN_NEURONS`` neurons a Recurrent block's backward (dense feedback: a
    weight per part, or the imaginary part's alone for the Izhikevich resonators) runs
    in register tiles: a neuron count with a last vector of fewer than 16 outputs, and a
    batch with a last item alone after whole 4-row tiles."""
    n = _recurrent_gemm.GEMM_MIN_NEURONS + 1
    x = spikes((5, 12, 16), p=0.4, seed=7)
    compare(lambda: make(family, "recurrent", 12, n, requires_grad=True), x, fused_calls)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fused_float64_and_persistent_state(family, fused_calls):
    """float64 blocks, and state carried across calls (reset when the batch size changes)."""
    x = spikes((2, 9, 20), p=0.5).double()
    compare(lambda: make(family, "kwta", 9, 7, requires_grad=True).double(), x, fused_calls)
    blk_f = make(family, "recurrent", 10, 8, persistent_state=True, requires_grad=True)
    compare_over_calls(blk_f, ("real_state", "imag_state"))
    assert len(fused_calls) == 5
    assert blk_f.neuron.real_state.abs().sum() > 0  # the state really was carried


# --------------------------------------------------------- property tests at the edges


@st.composite
def recurrence(draw):
    """A resonator block with integer inputs and weights on the grid, reaching the 24-bit
    saturation, ties at the threshold (``re == vThMant * 64``) and every rotation."""
    family = draw(st.sampled_from(sorted(FAMILIES)))
    scale = draw(st.sampled_from([16, 64]))
    # up to 6 neurons (the kernel's lanes past the last neuron), or whole 16-neuron
    # lane blocks and a partial one (their values from a drawn seed)
    n = draw(st.one_of(st.integers(1, 6), st.integers(16, 35)))
    batch = draw(st.integers(1, 3))
    steps = draw(st.integers(1, 12))
    th_mant = draw(st.integers(1, 12))  # a resonator needs a positive threshold
    big = draw(st.booleans())
    lim = (1 << 20) if big else 16
    size = 2 * batch * n * steps
    if n <= 6:
        a_ff = draw(st.lists(st.integers(-lim, lim), min_size=size, max_size=size))
        w = draw(st.lists(st.integers(-128, 127), min_size=2 * n * n, max_size=2 * n * n))
    else:
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        a_ff = rng.integers(-lim, lim, size, endpoint=True).tolist()
        w = rng.integers(-128, 127, 2 * n * n, endpoint=True).tolist()
    neuron = params(
        family,
        th_mant / scale,
        period=draw(st.sampled_from([4, 4.5, 10, 1000])),
        decay=draw(st.sampled_from([0.0, 0.1, 1.0])),
        scale=scale,
        requires_grad=True,
    )
    if family.startswith("adrf"):
        neuron.update(
            threshold_step=draw(st.integers(0, 6)) / scale,
            threshold_decay=draw(st.sampled_from([0, 1, 2048, 4096])) / 4096,
            refractory_decay=draw(st.sampled_from([0, 1, 2048, 4096])) / 4096,
        )
    z = torch.tensor(a_ff, dtype=torch.float32).reshape(2, batch, n, steps) / scale
    w_m = torch.tensor(w, dtype=torch.float32).reshape(2, n, n) * 2  # even mantissas
    return family, neuron, z, w_m, scale, draw(st.floats(0, 1)), draw(st.integers(0, n))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=recurrence(), kwta=st.booleans())
def test_property_ties_and_saturation(case, kwta, fused_calls):
    family, neuron, z, w_m, scale, excitation, winners = case
    n = z.shape[2]
    fam = FAMILIES[family]
    if kwta:
        blk = fam.KWTA(neuron, n, n, num_winners=winners, self_excitation=excitation)
    else:
        blk = fam.Recurrent(neuron, n, n)
        with torch.no_grad():
            parts = (blk.recurrent_synapse.real, blk.recurrent_synapse.imag)
            for part, m in zip(parts, w_m, strict=True):
                part.weight.copy_(m.reshape(n, n, 1, 1, 1) / scale)
    g_f, g_s, ref = neuron_runs_agree(blk, z, fused_calls)
    if all(bool(torch.isfinite(g).all()) for g in g_s.values()):
        assert_grads_close(g_f, g_s)
    assert torch.equal(blk.neuron.real_state, ref.neuron.real_state)


def test_tie_at_threshold_spikes_and_feeds_back(fused_calls):
    """RF_IZ at its threshold: ``im >= vThMant * 64`` spikes on equality (spec §6.3), and
    that spike's feedback lifts the other neuron to its threshold on the next step."""
    p = params("rf_iz", th=10 / 64, period=1000, decay=1.0)  # no memory: im = 64 x_im
    blk = rf_iz.Recurrent(p, 2, 2)
    with torch.no_grad():
        blk.recurrent_synapse.real.weight.zero_()
        blk.recurrent_synapse.imag.weight.copy_(
            torch.tensor([[0, 0], [2 / 64, 0]]).reshape(2, 2, 1, 1, 1)
        )
    z_re = torch.zeros(1, 2, 3)
    z_im = torch.zeros(1, 2, 3)
    z_im[0, 0, 0] = 10 / 64  # neuron 0 at its threshold at t = 0: a spike
    z_im[0, 1, :] = 8 / 64  # neuron 1 two below; the feedback (+2) lifts it at t = 1
    for s in in_both_paths(lambda: blk._neuron_forward((z_re, z_im))):
        assert s[0].tolist() == [[1, 0, 0], [0, 1, 0]]
    assert len(fused_calls) == 1


def test_too_large_input_is_refused_in_both_paths(fused_calls):
    blk = rf.Recurrent(params("rf"), 3, 3)
    z = (torch.zeros(1, 3, 4), torch.full((1, 3, 4), 2.0**32 / 64))
    refused_in_both_paths(lambda: blk._neuron_forward(z), ParameterError, "2\\*\\*31")
    assert len(fused_calls) == 1


def test_narrowed_parts_keep_every_feedback_value():
    """``narrow_parts``: one grid step for both parts, each part's mantissas in its own
    narrowest type, and every feedback value ``grid * (b + sum of rows)`` unchanged."""
    from loihi_slayer.autograd.recurrent import narrow_parts

    rng = np.random.default_rng(0)
    re = rng.integers(-120, 120, (6, 6)) * 8  # multiples of 8, wider than int8
    im = rng.integers(-60, 60, (6, 6)) * 4  # multiples of 4: the common power is 4
    ms, biases, grid = narrow_parts([re, im], [-24, 12], 1 / 64)
    assert grid == 4 / 64
    assert [m.dtype for m in ms] == [np.int16, np.int8]
    assert biases == (-6, 3)
    for m_e, b_e, m, b in zip(ms, biases, (re, im), (-24, 12), strict=True):
        spikes_ = rng.integers(0, 2, (50, 6)).astype(bool)
        for row in spikes_:
            assert grid * (b_e + int(m_e[row].astype(np.int64).sum())) == (b + m[row].sum()) / 64
    (m0,), (b0,), g0 = narrow_parts([np.zeros((2, 2), np.int32)], [0], 1 / 64)
    assert (m0.dtype, b0, g0) == (np.int8, 0, 1 / 64)  # nothing to move into the grid


def test_fused_parts_of_different_widths(fused_calls):
    """A recurrent synapse whose real part needs int16 mantissas and whose imaginary part
    fits int8 (weights on the 1/64 grid, one part 40x the other): the fused kernel, with
    the narrowed parts, still equals the step loop."""

    def build():
        torch.manual_seed(3)
        blk = rf.Recurrent(
            params("rf", requires_grad=True),
            8,
            6,
            weight_scale=3,
            pre_hook_fx=lambda w: torch.round(w * 64) / 64,
        )
        with torch.no_grad():
            blk.recurrent_synapse.real.weight.mul_(40)
        return blk

    m_re = torch.round(build().recurrent_synapse.real.weight * 64).abs().max()
    assert m_re > 255  # wider than int8 even after the common power of two
    compare(build, spikes((2, 8, 25), p=0.5, seed=7), fused_calls)


def test_kept_memory_carries_nothing_between_blocks(fused_calls):
    """The recurrence's arrays live in memory kept across calls (``kept_empty``). A block of
    another family first fills it (RF: both parts carry gradient); then an RF_IZ block
    of the same size, whose spike passes nothing to the real part (that gradient must
    be zeros again, not the RF block's values), still equals its step loop, in each
    kind; and the memory is handed out again from one training step to the next."""
    x = spikes((3, 12, 30), p=0.4, seed=5)
    for kind in ("recurrent", "kwta"):
        compare(lambda kind=kind: make("rf", kind, 12, 10, requires_grad=True), x, fused_calls)
        compare(lambda kind=kind: make("rf_iz", kind, 12, 10, requires_grad=True), x, fused_calls)
    blk = make("rf", "recurrent", 12, 10)
    run(blk, x, True)  # the kept storages now have this block's sizes
    pools = {
        k[len(recurrent_complex.KEPT_ROLE) :]: m
        for k, m in _recycle._ROLES.items()
        if k.startswith(recurrent_complex.KEPT_ROLE)
    }
    kept = {k: {st.data_ptr() for st in m.kept} for k, m in pools.items()}
    held, _ = run(blk, x, True)  # the caller keeps this output
    want = held.clone()
    again, _ = run(blk, x, True)
    assert torch.equal(held, want)  # not overwritten by the next call
    assert torch.equal(again, want)
    for role in ("pre", "surrogate re", "input grad", "spike grad"):
        now = {st.data_ptr() for st in pools[role].kept}
        assert kept[role] <= now, role  # the same memory again, no fresh allocation


@pytest.mark.parametrize(
    "build",
    [
        lambda: rf.Recurrent(params("rf", graded_spike=True), 6, 5),
        lambda: rf_iz.KWTA(params("rf_iz", dropout=Dropout(p=0.0)), 6, 5, 2),
        lambda: adrf.Recurrent(params("adrf"), 6, 5, pre_hook_fx=lambda w: w),  # off the grid
        lambda: adrf_iz.Recurrent(params("adrf_iz", scale=48), 6, 5),  # grid 1/48
    ],
    ids=["graded", "dropout", "unquantized", "scale48"],
)
def test_uncovered_cases_keep_the_step_loop(build, fused_calls):
    x = spikes((2, 6, 12), p=0.6)
    compare(build, x, fused_calls, expect_fused=False)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_generated_recurrent_module_names_every_trace(family):
    """The generated fused kernel writes every trace of the model's declaration, and its
    spike list comes from the trace named ``s``."""
    model = get_model(family)
    src = codegen.render(model, "recurrent")
    for i in range(len(model.traces)):
        assert f"os{i}[j] = lane[" in src and f"or{i}[j0 + j] = lane[" in src
    assert f"_spike_list(idx, or{model.traces.index('s')})" in src
    assert np.all([f"x{i}, e{i} = chip_int" in src for i in range(len(model.inputs))])


@settings(max_examples=40, deadline=None)
@given(
    steps=st.integers(1, 12),
    batch=st.integers(1, 9),
    n=st.integers(1, 11),
    shared=st.booleans(),
    real_part=st.booleans(),
    kwta=st.booleans(),
    with_grad=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_compiled_backward_loop_is_the_stepped_loop(
    steps, batch, n, shared, real_part, kwta, with_grad, seed
):
    """The backward's compiled time loop for KWTA's ``o + (d - o) I`` weights
    (``_recurrent_cpu.complex_backward_compact``) gives the PyTorch step loop's input
    gradients up to float32 summation order: each form of the feedback (shared weights,
    each part's own, the imaginary part alone), with and without a gradient from above;
    dense weights (and one neuron) are left to the step loop."""
    rng = np.random.default_rng(seed)
    if kwta:  # o + (d - o) I
        w_re = torch.full((n, n), -0.25) + 0.75 * torch.eye(n)
        w_im = torch.full((n, n), 0.125) - 0.5 * torch.eye(n)
    else:
        w_re, w_im = (torch.tensor(rng.normal(size=(n, n)), dtype=torch.float32) for _ in "ri")
    d_re, d_im = (torch.tensor(rng.normal(size=(steps, batch, n))) for _ in "ri")
    g_s = torch.tensor(rng.normal(size=(steps, batch, n)), dtype=torch.float32)
    g_s = g_s if with_grad else None
    s = torch.zeros((steps, batch, n))
    ref = recurrent_complex._stepped_loop(g_s, s, d_re, d_im, w_re, w_im, shared, real_part)
    got = recurrent_complex._compiled_loop(g_s, d_re, d_im, w_re, w_im, shared, real_part)
    if not kwta or n < 2:  # dense feedback: BLAS products step by step
        assert got is None
        return
    if not real_part:
        assert not got[0].any()  # the real part gets no gradient
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * (1 + float(ref.abs().max())))


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(1, 300),
    mode=st.sampled_from([0, 1]),
    graded=st.booleans(),
    adaptive=st.booleans(),
    tau=st.sampled_from([0.05, 0.5, 3.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_recurrence_surrogate_is_the_row_kernels(size, mode, graded, adaptive, tau, seed):
    """The fused recurrence's flat surrogate pass (``_resonator_bwd.surrogate_steps``)
    gives the resonator backward kernel's values on one-step rows (a unit spike
    gradient, no rotation) bit for bit: both modes, graded spikes, an adaptive
    threshold, values at the threshold and at zero (the sign branches)."""
    from loihi_slayer.autograd import _resonator_bwd as rb

    rng = np.random.default_rng(seed)
    re = rng.normal(size=size).astype(np.float32)
    im = rng.normal(size=size).astype(np.float32)
    theta = 0.25
    re[::7], im[::5], im[1::9] = theta, 0.0, theta  # ties: d = 0, x_im = 0
    # far from threshold: exp's arguments below -745 (0.0, the shortcut), near it
    # (subnormal results) and beyond -746 (the shortcut's boundary)
    re[2::11], im[3::13] = 5e4, -5e4
    re[4::17] = theta - 745.5 * tau
    im[6::19] = -746.0 * tau
    thr = (rng.random(size) * 0.5).astype(np.float32) if adaptive else np.zeros(0, np.float32)
    rho = 0.7
    d_re, d_im = np.full(size, np.nan), np.full(size, np.nan)
    rb.surrogate_steps(re, im, thr, theta, tau, rho, graded, mode, d_re, d_im)
    none = np.zeros((size, 0))
    zero = np.zeros(1)
    g_xre, g_xim = np.full((size, 1), np.nan), np.full((size, 1), np.nan)
    rb.backward(
        np.ones((size, 1), np.float32),
        none,
        none,
        re[:, None],
        im[:, None],
        thr[:, None] if adaptive else np.zeros((size, 0), np.float32),
        np.zeros((size, 0)),
        theta,
        tau,
        rho,
        graded,
        mode,
        zero,
        zero,
        zero,
        zero,
        0.0,
        g_xre,
        g_xim,
        np.zeros(0),
        np.zeros(0),
    )
    assert np.array_equal(d_re.view(np.int64), g_xre[:, 0].view(np.int64))
    assert np.array_equal(d_im.view(np.int64), g_xim[:, 0].view(np.int64))


@settings(max_examples=30, deadline=None)
@given(
    steps=st.integers(1, 5),
    batch=st.integers(1, 9),
    n=st.integers(_recurrent_gemm.GEMM_MIN_NEURONS, 90),
    shared=st.booleans(),
    real_part=st.booleans(),
    with_grad=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_tiled_backward_loop_is_the_stepped_loop(
    steps, batch, n, shared, real_part, with_grad, seed
):
    """Dense feedback from ``GEMM_MIN_NEURONS`` neurons: the register-tiled time loop
    (``_recurrent_gemm.complex_backward_gemm``) gives the PyTorch step loop's input
    gradients up to float32 summation order, for each form of the feedback (the parts'
    sum through one weight, each part through its own as one sum over both, the
    imaginary part alone); with 32-output tiles and with 16-output ones only (AVX2's),
    the same bits, on one thread and on all. At the last step (no feedback) the
    surrogate products are PyTorch's bit for bit, at huge, tiny and zero surrogates."""
    rng = np.random.default_rng(seed)
    w_re, w_im = (torch.tensor(rng.normal(size=(n, n)) / n, dtype=torch.float32) for _ in "ri")
    d_re, d_im = (torch.tensor(rng.normal(size=(steps, batch, n))) for _ in "ri")
    last_re, last_im = d_re[-1].reshape(-1), d_im[-1].reshape(-1)
    last_im[:: max(1, last_im.numel() // 3)] = 1e300
    last_re[:: max(1, last_re.numel() // 4)] = 1e-310
    last_im[1::5] = 0.0
    g_s = torch.tensor(rng.normal(size=(steps, batch, n)), dtype=torch.float32)
    g_s = g_s if with_grad else None
    s = torch.zeros((steps, batch, n))
    want = recurrent_complex._stepped_loop(g_s, s, d_re, d_im, w_re, w_im, shared, real_part)
    want = want.clone()
    before = numba.get_num_threads()
    wide = _recurrent_gemm.wide_tiles
    outs = []
    try:
        for threads, tiles in ((1, True), (numba.config.NUMBA_NUM_THREADS, True), (1, False)):
            numba.set_num_threads(threads)
            _recurrent_gemm.wide_tiles = lambda tiles=tiles: tiles
            got = recurrent_complex._tiled_loop(g_s, d_re, d_im, w_re, w_im, shared, real_part)
            outs.append(got.clone())
    finally:
        numba.set_num_threads(before)
        _recurrent_gemm.wide_tiles = wide
    got = outs[0]
    # the last step exactly (inf, subnormal and zero products included)
    assert torch.equal(torch.nan_to_num(got[:, -1]), torch.nan_to_num(want[:, -1]))
    if not real_part:
        assert not got[0].any()  # the real part gets no gradient
    # earlier steps: the feedback summed in another order (huge surrogates make inf
    # there, which both propagate alike)
    if steps > 1:
        a, b = got[:, :-1], want[:, :-1]
        assert torch.equal(a.isfinite(), b.isfinite())
        fin = b.isfinite()
        scale = 1.0 + float(b[fin].abs().max()) if fin.any() else 1.0
        torch.testing.assert_close(a[fin], b[fin], rtol=1e-4, atol=1e-5 * scale)
    for other in outs[1:]:
        assert torch.equal(torch.nan_to_num(other), torch.nan_to_num(got))


@settings(max_examples=30, deadline=None)
@given(
    steps=st.integers(1, 8),
    batch=st.integers(1, 5),
    n=st.integers(1, 12),
    shared=st.booleans(),
    real_part=st.booleans(),
    with_grad=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_stepped_loop_surrogate_products_are_pytorchs(
    steps, batch, n, shared, real_part, with_grad, seed
):
    """The float32 stepped loop (dense feedback) takes each step's surrogate products in
    one compiled call: bit for bit PyTorch's ``gx[k, t] = g[t].to(float64) * d[t]`` (one
    float64 product, one rounding to float32), also at huge, tiny and zero surrogates."""
    rng = np.random.default_rng(seed)
    w_re, w_im = (torch.tensor(rng.normal(size=(n, n)), dtype=torch.float32) for _ in "ri")
    d_re, d_im = (torch.tensor(rng.normal(size=(steps, batch, n))) for _ in "ri")
    d_im.view(-1)[:: max(1, d_im.numel() // 3)] = 1e300
    d_re.view(-1)[:: max(1, d_re.numel() // 4)] = 1e-310
    d_im.view(-1)[1::5] = 0.0
    g_s = torch.tensor(rng.normal(size=(steps, batch, n)), dtype=torch.float32)
    g_s = g_s if with_grad else None
    s = torch.zeros((steps, batch, n))
    got = recurrent_complex._stepped_loop(g_s, s, d_re, d_im, w_re, w_im, shared, real_part)
    got = got.clone()
    # the loop in PyTorch ops alone
    g = torch.zeros((steps, batch, n)) if g_s is None else g_s.clone()
    want = torch.zeros((2, steps, batch, n))
    for t in range(steps - 1, -1, -1):
        if t < steps - 1:
            if shared:
                g[t].addmm_(want[0, t + 1] + want[1, t + 1], w_re)
            else:
                if real_part:
                    g[t].addmm_(want[0, t + 1], w_re)
                g[t].addmm_(want[1, t + 1], w_im)
        g64 = g[t].to(torch.float64)
        if real_part:
            want[0, t] = g64 * d_re[t]
        want[1, t] = g64 * d_im[t]
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(torch.nan_to_num(got), torch.nan_to_num(want))

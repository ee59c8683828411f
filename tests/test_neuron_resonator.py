"""Resonator training neurons ``neuron.{rf, rf_iz, adrf, adrf_iz}``.

- Forward: spikes and traces equal ``fixed.run(model, ..., backend='reference')``
  (the models' independent NumPy references) on the integer sums
  ``rint(64 * x)``, for shared and per-channel parameters, split (persistent)
  runs and every backend.
- Backward: equal to an independent plain-PyTorch autograd loop of the same
  surrogate (written here from spec ``loihi-fixed-point.md`` §5.4: lava-dl's
  complex phase spike for RF/ADRF, its real spike on ``im`` for RF_IZ/ADRF_IZ,
  the rotation recursion with resets and thresholds as constants), on the cpu,
  reference and CUDA-simulator backends, including the rotation-parameter
  gradients; the three backward kernels agree on random inputs (hypothesis).
- Parameters: the integer rotation of §6.2 computed here with NumPy; errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import cuda_available
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loihi_slayer import fixed
from loihi_slayer.autograd import _resonator_bwd, _resonator_ref
from loihi_slayer.errors import ParameterError, ParameterTypeError
from loihi_slayer.neuron import adrf, adrf_iz, rf, rf_iz
from loihi_slayer.neuron.norm import MeanOnlyBatchNorm

needs_cuda = pytest.mark.skipif(not cuda_available(), reason="numba.cuda unavailable")

#: module, lava-dl positional arguments (threshold [, step], period, decay [, th/ref decays])
FAMILIES = {
    "rf": (rf, (0.25, 9.0, 0.05)),
    "rf_iz": (rf_iz, (0.25, 9.0, 0.05)),
    "adrf": (adrf, (0.25, 0.125, 9.0, 0.05, 0.1, 0.3)),
    "adrf_iz": (adrf_iz, (0.25, 0.125, 9.0, 0.05, 0.1, 0.3)),
}
#: lava-dl's surrogate multipliers (spec §5.4 table): (TAU_RHO_MULT, SCALE_RHO_MULT)
MULT = {"rf": (0.5, 10.0), "rf_iz": (100.0, 0.1), "adrf": (100.0, 0.1), "adrf_iz": (100.0, 0.1)}
PHASE = {"rf", "adrf"}


def make(name, **kw):
    mod, args = FAMILIES[name]
    return mod.Neuron(*args, **kw)


def grid_input(shape, seed, hi=12):
    """Weight-grid complex input (multiples of 2/64), as a quantized synapse produces."""
    g = torch.Generator().manual_seed(seed)
    re = torch.randint(-hi, hi + 1, shape, generator=g).float() * 2 / 64
    im = torch.randint(-hi, hi + 1, shape, generator=g).float() * 2 / 64
    return re, im


def reference_run(neuron, re, im, state=None):
    """fixed.run on the NumPy reference with the neuron's exported device parameters."""
    model = neuron.model
    dev = neuron.device_params
    fields = model.fields
    params = {}
    for field, value in dev.items():
        if field in fields:
            v = np.asarray(value, np.int64)
            if v.size > 1:  # per channel: broadcast over (N, C, *spatial)
                v = v.reshape((-1,) + (1,) * (re.dim() - 3))
            params[fields[field].name] = v
    a = tuple(np.rint(t.numpy().astype(np.float64) * 64).astype(np.int64) for t in (re, im))
    return fixed.run(model, a, params, state=state, record=model.traces, backend="reference")


# ------------------------------------------------------------------------------ forward


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("backend", ["cpu", "reference", pytest.param("cuda", marks=needs_cuda)])
def test_forward_equals_reference(name, backend):
    n = make(name, shape=(6,), backend=backend)
    re, im = grid_input((3, 6, 80 if backend != "cuda" else 24), seed=1)
    s = n((re, im))
    tr, _ = reference_run(n, re, im)
    assert s.sum() > 0
    np.testing.assert_array_equal(s.numpy(), tr["s"].astype(np.float32))
    traces = n.dynamics((re, im))
    for k, got in zip(("re", "im", "th", "r"), traces, strict=False):
        np.testing.assert_array_equal((got.double() * 4096).numpy(), tr[k])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(list(FAMILIES)),
    period=st.one_of(st.just(4.0), st.floats(4.0, 1e4)),
    decay=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)),
    mant=st.one_of(st.sampled_from([1, 2, 131071]), st.integers(1, 4096)),
    hi=st.sampled_from([2, 20, 127]),
    seed=st.integers(0, 2**16),
)
def test_forward_equals_reference_over_parameters(name, period, decay, mant, hi, seed):
    """Extreme periods and decays (gain clamp, period 4), thresholds up to 17 bits, ties."""
    mod, args = FAMILIES[name]
    args = list(args)
    args[0] = mant / 64
    idx = 2 if name.startswith("adrf") else 1
    args[idx], args[idx + 1] = period, decay
    n = mod.Neuron(*args, shape=(4,))
    re, im = grid_input((2, 4, 40), seed=seed, hi=hi)
    s = n((re, im))
    tr, _ = reference_run(n, re, im)
    np.testing.assert_array_equal(s.numpy(), tr["s"].astype(np.float32))
    s_int, c_int = n.cx_sin_decay, n.cx_cos_decay
    assert 1 <= s_int <= 4095 and 0 <= c_int <= 4095 and s_int**2 + c_int**2 <= 4096**2


@pytest.mark.parametrize("name", list(FAMILIES))
def test_forward_per_channel_spatial_and_saturation(name):
    """Per-channel rotations and decays over (C, H, W); large inputs saturate the state."""
    mod, args = FAMILIES[name]
    args = list(args)
    idx = 2 if name.startswith("adrf") else 1
    args[idx] = (5.0, 40.0)  # period range
    args[idx + 1] = (0.0, 0.02)  # decay range
    n = mod.Neuron(*args, shared_param=False, shape=(4, 2, 3), log_init=False)
    assert np.asarray(n.cx_sin_decay).shape == (4,)
    re, im = grid_input((2, 4, 2, 3, 60), seed=2, hi=127)
    re, im = re * 600, im * 600  # sums of up to 600 synapses: one step can saturate
    s = n((re, im))
    tr, _ = reference_run(n, re, im)
    np.testing.assert_array_equal(s.numpy(), tr["s"].astype(np.float32))
    assert np.abs(tr["re"]).max() == (1 << 23) - 1  # saturation was reached
    assert np.abs(tr["im"]).max() == (1 << 23) - 1


@pytest.mark.parametrize("name", list(FAMILIES))
def test_persistent_state_splits_and_resets_on_batch_change(name):
    n = make(name, shape=(5,), persistent_state=True)
    whole = make(name, shape=(5,))
    re, im = grid_input((2, 5, 60), seed=3)
    full = whole((re, im))
    parts = torch.cat([n((re[..., :25], im[..., :25])), n((re[..., 25:], im[..., 25:]))], -1)
    assert torch.equal(parts, full)
    _, final = reference_run(whole, re, im)
    assert np.array_equal(n.real_state.double().numpy() * 4096, final["re"])
    assert np.array_equal(n.imag_state.double().numpy() * 4096, final["im"])
    if name.startswith("adrf"):
        assert np.array_equal(n.threshold_state.double().numpy() * 4096, final["th"])
    # a new batch size restarts from rest
    s3 = n((re[:1, :, :25], im[:1, :, :25]))
    assert torch.equal(s3, full[:1, :, :25])


def test_spike_function_matches_fused_forward():
    for name in FAMILIES:
        n = make(name, shape=(4,))
        re, im = grid_input((2, 4, 50), seed=4)
        fused = n((re, im))
        assert torch.equal(n.spike(*n.dynamics((re, im))), fused), name


def test_real_input_drives_the_real_part():
    n = make("rf", shape=(3,))
    re, _ = grid_input((1, 3, 30), seed=5)
    assert torch.equal(n(re), n((re, torch.zeros_like(re))))


# ----------------------------------------------------------------------------- backward


class _PhaseRef(torch.autograd.Function):
    """Spec §5.4 complex spike: forward = given exact spikes; backward = the formulas."""

    @staticmethod
    def forward(ctx, re, im, s, th, tau, rho, graded):
        ctx.save_for_backward(re, im, th)
        ctx.cfg = (tau, rho, graded)
        return s.clone()

    @staticmethod
    def backward(ctx, g):
        re, im, th = ctx.saved_tensors
        tau, rho, graded = ctx.cfg
        d = re - th
        if graded:
            dr = torch.exp(-torch.clamp(th - re, min=0) / tau)
        else:
            dr = torch.exp(-torch.abs(d) / tau) / (2 * tau)
        di = torch.exp(-torch.abs(im) / tau) / (2 * tau)
        h = 0.5 * (1 + torch.sign(d) * (1 - 2 * tau * dr))
        return (
            g * rho * dr * di,
            -g * rho / tau * torch.sign(im) * di * h,
            None,
            None,
            None,
            None,
            None,
        )


class _ImagRef(torch.autograd.Function):
    """lava-dl's real spike surrogate on ``im`` (spec §5.4)."""

    @staticmethod
    def forward(ctx, im, s, th, tau, rho, graded):
        ctx.save_for_backward(im, th)
        ctx.cfg = (tau, rho, graded)
        return s.clone()

    @staticmethod
    def backward(ctx, g):
        im, th = ctx.saved_tensors
        tau, rho, graded = ctx.cfg
        if graded:
            d = rho * torch.exp(torch.clamp(im - th, max=0) / tau)
        else:
            d = rho / (2 * tau) * torch.exp(-torch.abs(im - th) / tau)
        return g * d, None, None, None, None, None


def torch_loop(name, neuron, x_re, x_im, w_s, w_re):
    """Independent autograd loop; returns the loss (grads flow to x and sin/cos params)."""
    tr, _ = reference_run(neuron, x_re.detach(), x_im.detach())
    S = neuron.sin_decay + (torch.round(neuron.sin_decay) - neuron.sin_decay).detach()
    C = neuron.cos_decay + (torch.round(neuron.cos_decay) - neuron.cos_decay).detach()
    S, C = S.double().reshape(1, -1), C.double().reshape(1, -1)
    ex = {k: torch.from_numpy(v.astype(np.float64)) / 4096 for k, v in tr.items()}
    tau_mult, rho_mult = MULT[name]
    theta = neuron.threshold
    tau, rho = neuron.tau_grad * theta * tau_mult, neuron.scale_grad * rho_mult
    xr, xi = x_re.double(), x_im.double()
    re_st = torch.zeros(xr.shape[:-1], dtype=torch.float64)
    im_st = torch.zeros_like(re_st)
    loss = 0.0
    for t in range(xr.shape[-1]):
        re_lin = (C * re_st - S * im_st) / 4096 + xr[..., t]
        im_lin = (S * re_st + C * im_st) / 4096 + xi[..., t]
        re = re_lin + (ex["re"][..., t] - re_lin).detach()
        im = im_lin + (ex["im"][..., t] - im_lin).detach()
        s_ex = ex["s"][..., t] * 4096
        th = torch.full_like(re, theta)
        if name.startswith("adrf"):
            th = ex["th"][..., t] + ex["r"][..., t]
        if neuron.graded_spike:
            s_ex = s_ex * (ex["re"][..., t] if name in PHASE else ex["im"][..., t])
        if name in PHASE:
            s = _PhaseRef.apply(re, im, s_ex, th, tau, rho, neuron.graded_spike)
        else:
            s = _ImagRef.apply(im, s_ex, th, tau, rho, neuron.graded_spike)
        loss = loss + (s * w_s[..., t]).sum() + (re * w_re[..., t]).sum()
        re_post, im_post = re, im
        if name == "rf_iz":  # the reset, ignored by the gradient (straight through)
            fired = ex["s"][..., t] > 0
            re_post = re + (torch.where(fired, 0.0, re) - re).detach()
            im_post = im + (torch.where(fired, theta - 1 / 4096, im) - im).detach()
        re_st, im_st = re_post, im_post
    return loss


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("backend", ["cpu", "reference", pytest.param("cuda", marks=needs_cuda)])
@pytest.mark.parametrize("graded", [False, True])
def test_gradients_equal_plain_torch_loop(name, backend, graded):
    if backend == "cuda" and graded:
        pytest.skip("graded path covered on cpu/reference; simulator time")
    steps = 40 if backend != "cuda" else 12
    n = make(name, shape=(3,), requires_grad=True, graded_spike=graded, backend=backend)
    ref = make(name, shape=(3,), requires_grad=True, graded_spike=graded)
    re, im = grid_input((2, 3, steps), seed=6)
    g = torch.Generator().manual_seed(7)
    w_s = torch.randn(2, 3, steps, generator=g, dtype=torch.float64)
    w_re = torch.randn(2, 3, steps, generator=g, dtype=torch.float64) * 0.01

    xr, xi = re.clone().requires_grad_(), im.clone().requires_grad_()
    s = n((xr, xi))
    re_out = n.dynamics((xr, xi))[0]
    ((s.double() * w_s).sum() + (re_out.double() * w_re).sum()).backward()

    yr, yi = re.clone().requires_grad_(), im.clone().requires_grad_()
    torch_loop(name, ref, yr, yi, w_s, w_re).backward()
    assert s.sum() > 0
    for got, want in (
        (xr.grad, yr.grad),
        (xi.grad, yi.grad),
        (n.sin_decay.grad, ref.sin_decay.grad),
        (n.cos_decay.grad, ref.cos_decay.grad),
    ):
        tol = 1e-6 * float(want.abs().max()) + 1e-9
        np.testing.assert_allclose(got.double().numpy(), want.double().numpy(), rtol=2e-4, atol=tol)


def test_adaptive_decays_get_no_gradient():
    n = make("adrf", shape=(2,), requires_grad=True)
    re, im = grid_input((1, 2, 30), seed=8)
    n((re.requires_grad_(), im)).sum().backward()
    assert n.threshold_decay.grad is None and n.refractory_decay.grad is None
    assert n.sin_decay.grad is not None


# -------------------------------------------------------------- backward kernels agree


#: the property tests' sizes (small: the CUDA simulator runs them too)
SMALL_ROWS, SMALL_STEPS = st.integers(1, 5), st.integers(1, 12)


@st.composite
def backward_case(draw, rows=SMALL_ROWS, steps=SMALL_STEPS, every=False):
    """A backward case; ``every``: every optional array given, parameter gradients too."""
    rows = draw(rows)
    steps = draw(steps)
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    flag = st.just(True) if every else st.booleans()
    present = draw(st.tuples(flag, flag, flag, flag, flag))

    def arr(on, scale=1.0):
        return rng.normal(size=(rows, steps)) * scale if on else None

    re = np.round(rng.normal(size=(rows, steps)) * 2048) / 4096  # state grid, ties with 0
    im = np.round(rng.normal(size=(rows, steps)) * 2048) / 4096
    im[rng.random((rows, steps)) < 0.2] = 0.0
    case = dict(
        g_s=arr(present[0] or not (present[1] or present[2])),
        g_re=arr(present[1]),
        g_im=arr(present[2]),
        re=re,
        im=im,
        thr=np.round(rng.normal(size=(rows, steps)) * 1024) / 4096 if present[3] else None,
        spk=(rng.random((rows, steps)) < 0.3).astype(np.int8) if present[4] else None,
        theta=float(draw(st.sampled_from([0.0, 0.25, 1.0]))),
        tau=float(draw(st.sampled_from([0.125, 1.0, 25.0]))),
        rho=float(rng.uniform(0.1, 10)),
        graded=draw(st.booleans()),
        mode=draw(st.sampled_from([0, 1])),
        sin_d=rng.integers(1, 2896, size=draw(st.sampled_from([1, rows]))) / 4096.0,
        cos_d=None,
        re0=rng.normal(size=rows),
        im0=rng.normal(size=rows),
        im_reset=float(rng.normal()),
        want_p=draw(flag),
    )
    case["cos_d"] = rng.integers(0, 2896, size=case["sin_d"].size) / 4096.0
    return case


def _run_kernel(kernel, case, launch=None):
    rows, steps = case["re"].shape

    def given(a, dtype=np.float64):
        return np.zeros((rows, 0), dtype) if a is None else a

    out = [np.zeros((rows, steps)), np.zeros((rows, steps))]
    n_p = rows if case["want_p"] else 0
    gp = [np.zeros(n_p), np.zeros(n_p)]
    args = (
        given(case["g_s"]),
        given(case["g_re"]),
        given(case["g_im"]),
        case["re"],
        case["im"],
        given(case["thr"]),
        given(case["spk"], np.int8),
        case["theta"],
        case["tau"],
        case["rho"],
        case["graded"],
        case["mode"],
        case["sin_d"],
        case["cos_d"],
        case["re0"],
        case["im0"],
        case["im_reset"],
        *out,
        *gp,
    )
    if launch is None:
        kernel(*args)
    else:  # the training kernels' launch: warps of 32 rows (autograd._dispatch.launch)
        from loihi_slayer.autograd import _cuda

        kernel[_cuda.blocks_for(rows), _cuda.THREADS](*args)
    return out[0], out[1], (gp[0] if n_p else None), (gp[1] if n_p else None)


def _check_same(got, want):
    for a, b in zip(got, want, strict=True):
        if b is None:
            assert a is None
        else:
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def _reference(case):
    keys = (
        "g_s",
        "g_re",
        "g_im",
        "re",
        "im",
        "thr",
        "spk",
        "theta",
        "tau",
        "rho",
        "graded",
        "mode",
        "sin_d",
        "cos_d",
        "re0",
        "im0",
        "im_reset",
        "want_p",
    )
    return _resonator_ref.backward(*(case[k] for k in keys))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(backward_case())
def test_backward_njit_equals_reference(case):
    _check_same(_run_kernel(_resonator_bwd.backward, case), _reference(case))


@needs_cuda
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(backward_case())
def test_backward_cuda_equals_reference(case):
    from loihi_slayer.autograd import _resonator_cuda

    _check_same(_run_kernel(_resonator_cuda.backward, case, launch=True), _reference(case))


@needs_cuda
@pytest.mark.cuda
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(backward_case(rows=st.just(70), steps=st.just(37), every=True))
def test_backward_cuda_tiles_cross_blocks_and_time_tiles(case):
    """The tiled CUDA backward (warps of 32 rows, tiles of 16 steps from the end, each
    holding the step before it) at 70 rows x 37 steps: two full blocks and a partial one,
    two full tiles and a partial one, every optional array and the parameter gradients."""
    from loihi_slayer.autograd import _cuda_tiles, _resonator_cuda

    assert (_cuda_tiles.ROWS, _cuda_tiles.TILE) == (32, 16)
    _check_same(_run_kernel(_resonator_cuda.backward, case, launch=True), _reference(case))


# ---------------------------------------------------------------------------- parameters


def expected_rotation(period, decay):
    """Spec §6.2 with lava-dl's clamp (gain <= 4095, sin >= 1, cos >= 0) before rne."""
    w = 2 * math.pi / period
    s, c = 4096 * (1 - decay) * math.sin(w), 4096 * (1 - decay) * math.cos(w)
    gain = math.hypot(s, c)
    if gain > 4095:
        s, c = s * 4095 / gain, c * 4095 / gain
    return int(np.rint(max(s, 1.0))), int(np.rint(max(c, 0.0)))


@pytest.mark.parametrize(
    "period, decay", [(9.0, 0.05), (4.0, 0.0), (4.0, 0.5), (1000.0, 0.2), (6.5, 1.0), (37.0, 0.0)]
)
def test_rotation_integers(period, decay):
    n = rf.Neuron(0.25, period, decay)
    assert (n.cx_sin_decay, n.cx_cos_decay) == expected_rotation(period, decay)
    s, c = n.cx_sin_decay, n.cx_cos_decay
    assert n.frequency == pytest.approx(math.atan2(s, c) / 2 / math.pi)
    assert n.decay == pytest.approx(1 - math.hypot(s, c) / 4096)


def test_device_params_and_neuron_params_round_trip():
    n = adrf.Neuron(0.5, 0.25, 12.0, 0.1, 0.2, 0.3)
    dp = n.device_params
    assert dp == {
        "type": "ADRF_PHASE",
        "sinDecay": n.cx_sin_decay,
        "cosDecay": n.cx_cos_decay,
        "thDecay": round(0.2 * 4096),
        "refDecay": round(0.3 * 4096),
        "vThMant": 32,
        "vThStep": 16,
        "gradedSpike": False,
    }
    back = adrf.neuron_params(dp)  # lava-dl's version raises a TypeError (spec §6.4)
    assert back["threshold"] == 0.5 and back["threshold_step"] == 0.25
    assert back["period"] == pytest.approx(12.0, rel=2e-3)
    assert back["decay"] == pytest.approx(0.1, abs=2e-4)
    again = adrf.Neuron(**back)
    assert again.device_params == dp
    assert set(rf_iz.Neuron(0.5, 8, 0.1).device_params) == {
        "type",
        "sinDecay",
        "cosDecay",
        "vThMant",
        "gradedSpike",
    }
    assert adrf_iz.Neuron(0.5, 0.25, 12.0, 0.1, 0.2, 0.3).device_params["type"] == "ADRF_IZHIKEVICH"


def test_lava_dl_defaults_and_parameters():
    n = rf.Neuron(0.1, 10, 0.1)
    assert (n.tau_grad, n.scale_grad, n.w_scale, n.s_scale) == (1.0, 1.0, 64, 4096)
    assert n.shared_param and not n.persistent_state and not n.requires_grad
    assert not n.graded_spike and n.log_init
    names = {k for k, _ in n.named_parameters()}
    assert names == {"sin_decay", "cos_decay"}
    a = adrf_iz.Neuron(0.1, 0.1, 10, 0.1, 0.1, 0.1)
    assert {k for k, _ in a.named_parameters()} == {
        "sin_decay",
        "cos_decay",
        "threshold_decay",
        "refractory_decay",
    }


@pytest.mark.parametrize(
    "make_bad, match",
    [
        (lambda: rf.Neuron(0.1, 3.9, 0.1), r"period = 3.9 is outside the allowed range \[4, inf\)"),
        (lambda: rf_iz.Neuron(0.1, 10, 1.5), r"decay = 1.5 is outside the allowed range \[0, 1\]"),
        (lambda: rf.Neuron(0.1, 10, -0.1), r"decay = -0.1"),
        (lambda: rf.Neuron(2049.0, 10, 0.1), r"vThMant = 131136.*\[0, 131071\]"),
        (lambda: adrf.Neuron(0.1, 2049.0, 10, 0.1, 0.1, 0.1), r"threshold_step.*vThStep.*131071"),
        (lambda: adrf_iz.Neuron(0.1, 0.1, 10, 0.1, 1.2, 0.1), r"threshold_decay.*thDecay"),
        (lambda: adrf.Neuron(0.1, 0.1, 10, 0.1, 0.1, -0.5), r"refractory_decay.*refDecay"),
        (lambda: rf.Neuron(0.1, (8, 12), 0.1), r"period must be a scalar when shared_param"),
        (lambda: rf.Neuron(0.1, (8, 12, 16), 0.1, shared_param=False), r"\(min, max\) pair"),
        (lambda: rf.Neuron(0.1, (3, 12), 0.1, shared_param=False), r"period = 3"),
        (lambda: rf.Neuron(0.1, 10, 0.1, norm=MeanOnlyBatchNorm), r"norm .* not supported"),
        (lambda: rf.Neuron(0.0, 10, 0.1), r"threshold \* tau_grad must be positive"),
        (lambda: rf.Neuron(float("nan"), 10, 0.1), r"threshold"),
    ],
)
def test_construction_errors(make_bad, match):
    with pytest.raises(ParameterError, match=match):
        make_bad()


def test_input_errors():
    n = make("rf", shape=(3,))
    x = torch.zeros(1, 3, 4)
    with pytest.raises(ParameterError, match="differ in shape"):
        n((x, torch.zeros(1, 3, 5)))
    with pytest.raises(ParameterError, match=r"\(real, imag\)"):
        n((x, x, x))
    with pytest.raises(ParameterError, match="input shape"):
        n((torch.zeros(1, 4, 4), torch.zeros(1, 4, 4)))
    with pytest.raises(ParameterError, match="NaN/inf"):
        n((x + float("nan"), x))
    with pytest.raises(ParameterTypeError):
        n((x.long(), x.long()))

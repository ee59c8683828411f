"""Declared neuron models: kernels == NumPy reference, known answers, parameter checks.

For every registered model (ALIF, RF, RF_IZ, ADRF, ADRF_IZ, ...) the njit and
CUDA kernels generated from its step equal its independent NumPy reference bit
for bit. Strategies reach the corners: saturation (inputs up to 2**22, i.e.
2**28 after the ``<< 6``), exact ties at threshold built at the first step
(ALIF ``v == th + r``; RF ``re == theta0`` with ``im`` crossing zero exactly;
RF_IZ/ADRF_IZ ``im == th + r``), decays 0 and 4096, rotations of period 4 and
of very long periods, per-neuron and shared parameters, reset masks, initial
states, split runs. CUDA runs in numba's simulator without a GPU (small sizes).

Known-answer tests compute their expected values by hand from the spec
formulas (``loihi-fixed-point.md`` §6), written out in the comments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import cuda_available
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loihi_slayer import fixed, models
from loihi_slayer.errors import ParameterError

SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]
CPU_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=SLOW_OK)
CUDA_SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=SLOW_OK)
needs_cuda = pytest.mark.skipif(not cuda_available(), reason="numba.cuda unavailable")

STATE_MAX = (1 << 23) - 1
#: models covered by the property tests below (a registered model missing here fails
#: test_every_model_is_covered); hand-tuned runners (CUBA, sigma-delta) have their own
PROPERTY_MODELS = ("alif", "rf", "rf_iz", "adrf", "adrf_iz")


def rz(x: int) -> int:
    """Round ``x / 4096`` toward zero, on Python ints (the spec's ``rsz(x, 12)``)."""
    return -((-x) // 4096) if x < 0 else x // 4096


def ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


# ---------------------------------------------------------------------------------------
# strategies

decays = st.one_of(st.sampled_from([0, 1, 4095, 4096]), st.integers(0, 4096))
thresholds = st.one_of(st.sampled_from([0, 1, 131071]), st.integers(0, 64), st.integers(0, 131071))
steps = st.one_of(st.just(0), st.integers(0, 64), st.integers(0, 131071))


@st.composite
def rotations(draw):
    """An integer ``(sinDecay, cosDecay)`` pair of gain <= 4096."""
    kind = draw(st.sampled_from(["period4", "long", "corner", "float", "int"]))
    if kind == "period4":  # P = 4: sin(pi/2) = 1, cos = 0
        return draw(st.integers(1, 4095)), 0
    if kind == "long":  # very long periods: the smallest sine
        return 1, draw(st.sampled_from([0, 1, 4000, 4095]))
    if kind == "corner":  # largest gains lava-dl writes (rounded past 4095)
        return draw(st.sampled_from([(2896, 2896), (4095, 0), (1, 4095), (2048, 3547)]))
    if kind == "float":  # lava-dl's construction from a period and a decay
        period = draw(st.floats(4, 1e5))
        keep = 1 - draw(st.floats(0, 1))
        s = max(1, round(4095 * keep * math.sin(2 * math.pi / period)))
        c = max(0, round(4095 * keep * math.cos(2 * math.pi / period)))
        return s, c
    s = draw(st.integers(1, 4095))
    c = draw(st.integers(0, math.isqrt(4096 * 4096 - s * s)))
    return s, c


SCALAR_PARAMS = {
    "i_decay": decays,
    "v_decay": decays,
    "th_decay": decays,
    "ref_decay": decays,
    "v_th_mant": thresholds,
    "v_th_step": steps,
    "ref_delay": st.one_of(st.integers(1, 4), st.integers(1, 63)),
}


def draw_params(draw, model, n):
    """Per-neuron or shared values for every parameter of ``model``."""
    values = {}
    names = [p.name for p in model.params]
    if "sin_decay" in names:
        pairs = draw(st.lists(rotations(), min_size=n, max_size=n))
        if draw(st.booleans()):
            pairs = pairs[:1]
        values["sin_decay"] = np.array([s for s, _ in pairs], np.int64)
        values["cos_decay"] = np.array([c for _, c in pairs], np.int64)
    for name in names:
        if name in values:
            continue
        strat = SCALAR_PARAMS[name]  # KeyError: add a strategy for a new parameter
        if draw(st.booleans()):
            values[name] = draw(strat)
        else:
            values[name] = np.array(draw(st.lists(strat, min_size=n, max_size=n)), np.int64)
    return values


def per_neuron(values, n):
    return {k: [int(x) for x in np.broadcast_to(v, (n,))] for k, v in values.items()}


def _adapt0(p, th, r):
    """Threshold and refractory state at the first step (§6.1), from initial th and r."""
    th0 = p["v_th_mant"] * 64
    return rz((th - th0) * (4096 - p["th_decay"])) + th0, rz(r * (4096 - p["ref_decay"]))


def _tie_alif(p, i, st0, x):
    """``v == th + r`` at step 0: hit the remainder mod 64 through the decay of v or u."""
    th_i, r_i = int(st0["th"][i]) // 2, int(st0["r"][i]) // 2
    th, r = _adapt0(p, th_i, r_i)
    target = th + r
    a0, rem = divmod(target, 64)
    u_i = v_i = 0
    if rem and p["v_decay"] < 4096:
        v_i = ceil_div(rem * 4096, 4096 - p["v_decay"])  # rz(v_i (4096 - vD)) == rem
    elif rem and p["i_decay"] < 4096:
        u_i = ceil_div(rem * 4096, 4096 - p["i_decay"])
    st0["th"][i], st0["r"][i], st0["u"][i], st0["v"][i], st0["rc"][i] = th_i, r_i, u_i, v_i, 0
    x[0][i, 0] = a0


def _tie_phase(p, i, st0, x, adaptive):
    """``re == th + r`` at step 0 with ``im`` crossing from negative to >= 0."""
    target = p["v_th_mant"] * 64
    if adaptive:
        th_i, r_i = int(st0["th"][i]) // 2, int(st0["r"][i]) // 2
        st0["th"][i], st0["r"][i] = th_i, r_i
        th, r = _adapt0(p, th_i, r_i)
        target = th + r
    xr, rem = divmod(target, 64)
    k = max(1, ceil_div(rem * 4096, p["sin_decay"]))  # -rz(S * -k) == rem
    st0["re"][i], st0["im"][i] = 0, -k
    q = p["cos_decay"] * k // 4096  # im' = -q + 64 x_im, made 0..63 (0 when 64 | q)
    x[0][i, 0], x[1][i, 0] = xr, ceil_div(q, 64)


def _tie_iz(p, i, st0, x, adaptive):
    """``im == th + r`` at step 0."""
    target = p["v_th_mant"] * 64
    if adaptive:
        th_i, r_i = int(st0["th"][i]) // 2, int(st0["r"][i]) // 2
        st0["th"][i], st0["r"][i] = th_i, r_i
        th, r = _adapt0(p, th_i, r_i)
        target = th + r
    xi, rem = divmod(target, 64)
    st0["re"][i], st0["im"][i] = ceil_div(rem * 4096, p["sin_decay"]), 0  # rz(S re) == rem
    x[1][i, 0] = xi


TIES = {
    "alif": _tie_alif,
    "rf": lambda p, i, s, x: _tie_phase(p, i, s, x, False),
    "adrf": lambda p, i, s, x: _tie_phase(p, i, s, x, True),
    "rf_iz": lambda p, i, s, x: _tie_iz(p, i, s, x, False),
    "adrf_iz": lambda p, i, s, x: _tie_iz(p, i, s, x, True),
}

STATE_VALUES = {
    "rc": st.integers(0, 14),
    "th": st.one_of(st.integers(0, STATE_MAX), st.integers(-STATE_MAX, STATE_MAX)),
}


@st.composite
def cases(draw, model, max_n=8, max_t=30):
    """``(inputs, params, state, reset)`` for ``model``."""
    n = draw(st.integers(1, max_n))
    t = draw(st.integers(1, max_t))
    params = draw_params(draw, model, n)
    scale = draw(st.sampled_from([1, 64, 4096, 1 << 17, 1 << 22]))
    x = [
        np.array(
            draw(st.lists(st.integers(-scale, scale), min_size=n * t, max_size=n * t)), np.int64
        ).reshape(n, t)
        for _ in model.inputs
    ]
    state = None
    tie = draw(st.booleans())
    if tie or draw(st.booleans()):
        full = st.integers(-STATE_MAX, STATE_MAX)
        state = {
            k: np.array(draw(st.lists(STATE_VALUES.get(k, full), min_size=n, max_size=n)), np.int64)
            for k in model.states
        }
    if tie:
        p = per_neuron(params, n)
        for i in range(n):
            if draw(st.booleans()):
                TIES[model.name]({k: v[i] for k, v in p.items()}, i, state, x)
    reset = None
    if draw(st.booleans()):
        reset = np.array(draw(st.lists(st.booleans(), min_size=t, max_size=t)))
        reset[0] = False  # keep a constructed tie
    dtype = draw(st.sampled_from([np.int64, np.int32]))
    return [a.astype(dtype) for a in x], params, state, reset


def random_params(model, rng: np.random.Generator, sizes: tuple[int, ...]):
    """Random valid device parameters, ``sizes[k]`` values each (drawn in turn); a draw
    that a cross-parameter check rejects is drawn again."""
    for attempt in range(1000):
        size = sizes[attempt % len(sizes)]
        values = {p.name: rng.integers(p.lo, p.hi + 1, size) for p in model.params}
        try:
            return model.make_params(**values)
        except ParameterError:
            continue
    pytest.fail(f"no valid random parameters for {model.name}")


def run_all(model, case, backend):
    x, params, state, reset = case
    inputs = x[0] if len(x) == 1 else tuple(x)
    return fixed.run(
        model, inputs, params, state=state, reset=reset, record=model.traces, backend=backend
    )


def assert_same(ref, got):
    (rt, rs), (gt, gs) = ref, got
    assert rt.keys() == gt.keys() and rs.keys() == gs.keys()
    for k in rt:
        np.testing.assert_array_equal(np.asarray(gt[k]), rt[k], err_msg=f"trace {k}")
    for k in rs:
        np.testing.assert_array_equal(np.asarray(gs[k]), rs[k], err_msg=f"state {k}")


# ---------------------------------------------------------------------------------------
# kernels == reference


@pytest.mark.parametrize("name", PROPERTY_MODELS)
@CPU_SETTINGS
@given(data=st.data())
def test_cpu_equals_reference(name, data):
    model = models.get(name)
    case = data.draw(cases(model))
    assert_same(run_all(model, case, "reference"), run_all(model, case, "cpu"))


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("name", PROPERTY_MODELS)
@CUDA_SETTINGS
@given(data=st.data())
def test_cuda_equals_reference(name, data):
    model = models.get(name)
    case = data.draw(cases(model, max_n=6, max_t=12))
    assert_same(run_all(model, case, "reference"), run_all(model, case, "cuda"))


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("name", [*PROPERTY_MODELS, "cuba", "sigma_delta"])
def test_cuda_tiles_cross_blocks_time_tiles_and_resets(name):
    """The tiled CUDA kernel (warps of 32 neurons, shared-memory tiles of 16 steps) at
    sizes the property tests do not reach: 70 neurons (two full blocks and a partial
    one), 37 steps (two full tiles and a partial one), resets that start segments inside
    tiles, and some traces not recorded; against the CPU kernel (itself tested against
    the reference above)."""
    from loihi_slayer.fixed import codegen

    assert (codegen.CUDA_ROWS, codegen.CUDA_TILE) == (32, 16)  # the sizes chosen around
    n, steps = 70, 37
    rng = np.random.default_rng(11)
    reset = np.zeros(steps, bool)
    reset[[5, 16, 30]] = True
    if name == "cuba":
        x = rng.integers(-300, 600, (n, steps))
        p = fixed.CubaParams(i_decay=rng.integers(0, 4097, n), v_decay=300, v_th_mant=40)

        def go(backend, record):
            return fixed.cuba(x, p, reset=reset, record=record, backend=backend)

        traces = ("s", "u", "v")
    elif name == "sigma_delta":
        x = rng.integers(-(1 << 14), 1 << 14, (n, steps))
        p = fixed.SigmaDeltaParams(v_th_mant=3)

        def go(backend, record):
            return fixed.sigma_delta(x, p, reset=reset, record=record, backend=backend)

        traces = ("s", "sigma", "act", "residue")
    else:
        model = models.get(name)
        params = random_params(model, rng, (n, 1))
        x = tuple(rng.integers(-1 << 12, 1 << 12, (n, steps)) for _ in model.inputs)
        inputs = x[0] if len(x) == 1 else x

        def go(backend, record):
            return fixed.run(model, inputs, params, reset=reset, record=record, backend=backend)

        traces = model.traces
    for record in (traces, traces[:1], traces[1:]):
        assert_same(go("cpu", record), go("cuda", record))


@pytest.mark.parametrize("name", PROPERTY_MODELS)
@settings(max_examples=25, deadline=None, suppress_health_check=SLOW_OK)
@given(data=st.data())
def test_split_run_equals_single_run(name, data):
    """Two calls, the second from the first's returned state, equal one call."""
    model = models.get(name)
    x, params, state, _ = data.draw(cases(model, max_t=20))
    cut = data.draw(st.integers(0, x[0].shape[1]))
    for backend in ("reference", "cpu"):
        whole, wst = run_all(model, (x, params, state, None), backend)
        first, mid = run_all(model, ([a[:, :cut] for a in x], params, state, None), backend)
        second, fst = run_all(model, ([a[:, cut:] for a in x], params, mid, None), backend)
        for k in model.traces:
            np.testing.assert_array_equal(np.concatenate([first[k], second[k]], 1), whole[k])
        for k in model.states:
            np.testing.assert_array_equal(fst[k], wst[k])


def test_every_model_is_covered():
    """A newly registered model must join the property tests (or bring its own runner)."""
    generated = {m.name for m in models.all_models() if m.runner is None}
    assert generated <= set(PROPERTY_MODELS), generated - set(PROPERTY_MODELS)
    assert set(PROPERTY_MODELS) <= set(TIES)


@pytest.mark.parametrize(
    "name", [m.name for m in models.all_models() if m.runner is None]
)  # hand-tuned runners (CUBA, sigma-delta) are tested by their own suites
def test_registry_model_runs(name):
    """Every registered model: reference == cpu == cuda on a small random case."""
    model = models.get(name)
    if model.step is None:
        pytest.skip(f"{name} runs on its own kernel (tests/test_fixed_properties.py)")
    rng = np.random.default_rng(7)
    params = random_params(model, rng, (3,))
    x = tuple(rng.integers(-1 << 12, 1 << 12, (3, 16)) for _ in model.inputs)
    inputs = x[0] if len(x) == 1 else x
    ref = fixed.run(model, inputs, params, record=model.traces, backend="reference")
    assert set(ref[0]) == set(model.traces) and set(ref[1]) == set(model.states)
    assert_same(ref, fixed.run(model, inputs, params, record=model.traces, backend="cpu"))
    if cuda_available():
        assert_same(ref, fixed.run(model, inputs, params, record=model.traces, backend="cuda"))
    init = model.initial_state(params.as_dict(), 3)
    assert set(init) == set(model.states)
    assert model.netx_types and all(p.field for p in model.params)


# ---------------------------------------------------------------------------------------
# known answers, by hand from loihi-fixed-point.md §6


def test_rf_phase_crossing_known_answer():
    # S = 3000, C = 1000, theta0 = 100 * 64 = 6400; state (0, 0)
    # t0: re = 0,                     im = 64 * -200 = -12800                    s = 0
    # t1: re = -rz(3000 * -12800) = -rz(-38400000 / 4096) = 9375
    #     im = rz(1000 * -12800) = -3125                                          s = 0 (im < 0)
    # t2: re = rz(9375000 / 4096) - rz(-9375000 / 4096) + 64 * 50 = 2288 + 2288 + 3200 = 7776
    #     im = rz(28125000 / 4096) + rz(-3125000 / 4096) = 6866 - 762 = 6104
    #     (toward zero: -762, not floor's -763); re >= 6400, im >= 0, im_prev < 0 -> s = 1
    # t3: re = rz(7776000 / 4096) - rz(18312000 / 4096) = 1898 - 4470 = -2572
    #     im = rz(23328000 / 4096) + rz(6104000 / 4096) = 5695 + 1490 = 7185    s = 0
    x_re = np.array([[0, 0, 50, 0]])
    x_im = np.array([[-200, 0, 0, 0]])
    p = {"sin_decay": 3000, "cos_decay": 1000, "v_th_mant": 100}
    for backend in ("reference", "cpu"):
        tr, st_ = fixed.run("rf", (x_re, x_im), p, record=("s", "re", "im"), backend=backend)
        np.testing.assert_array_equal(tr["s"][0], [0, 0, 1, 0])
        np.testing.assert_array_equal(tr["re"][0], [0, 9375, 7776, -2572])
        np.testing.assert_array_equal(tr["im"][0], [-12800, -3125, 6104, 7185])
        assert (int(st_["re"][0]), int(st_["im"][0])) == (-2572, 7185)
    # one LSB more threshold than re at t2 (7776 < 122 * 64 = 7808): no spike
    tr, _ = fixed.run("rf", (x_re, x_im), {**p, "v_th_mant": 122}, backend="cpu")
    np.testing.assert_array_equal(tr["s"][0], [0, 0, 0, 0])
    tr, _ = fixed.run("rf", (x_re, x_im), {**p, "v_th_mant": 121}, backend="cpu")  # 7744
    np.testing.assert_array_equal(tr["s"][0], [0, 0, 1, 0])


def test_rf_iz_reset_known_answer():
    # S = 3000, C = 1000, theta0 = 50 * 64 = 3200; state (0, 0)
    # t0: re = 64 * 100 = 6400, im = 0                                           s = 0
    # t1: re = rz(6400000 / 4096) = 1562, im = rz(19200000 / 4096) = 4687 >= 3200 -> s = 1,
    #     reported pre-reset (1562, 4687); state becomes re = 0, im = 3200 - 1 = 3199
    # t2: re = -rz(9597000 / 4096) = -2343, im = rz(3199000 / 4096) = 781       s = 0
    x_re = np.array([[100, 0, 0]])
    x_im = np.zeros((1, 3), np.int64)
    p = {"sin_decay": 3000, "cos_decay": 1000, "v_th_mant": 50}
    for backend in ("reference", "cpu"):
        tr, st_ = fixed.run("rf_iz", (x_re, x_im), p, record=("s", "re", "im"), backend=backend)
        np.testing.assert_array_equal(tr["s"][0], [0, 1, 0])
        np.testing.assert_array_equal(tr["re"][0], [6400, 1562, -2343])
        np.testing.assert_array_equal(tr["im"][0], [0, 4687, 781])
        assert (int(st_["re"][0]), int(st_["im"][0])) == (-2343, 781)
        # stopping right after the spike returns the reset state
        _, st1 = fixed.run("rf_iz", (x_re[:, :2], x_im[:, :2]), p, backend=backend)
        assert (int(st1["re"][0]), int(st1["im"][0])) == (0, 3199)


def test_alif_threshold_adaptation_known_answer():
    # iDecay = vDecay = 4096 (u = 64 a, v = u), thDecay = 2048, refDecay = 1024,
    # theta0 = 10 * 64 = 640, step = 5 * 64 = 320
    # t0: v = 640; r = 0; th = 640; 640 >= 640 + 0 (tie) -> s = 1, reported th 640, r 0;
    #     then r = 0 + 2 * 640 = 1280, th = 640 + 320 = 960
    # t1: v = 0; r = rz(1280 * 3072 / 4096) = 960; th = rz(320 * 2048 / 4096) + 640 = 800; s = 0
    # t2: v = 23 * 64 = 1472; r = rz(960 * 3072 / 4096) = 720; th = 80 + 640 = 720;
    #     1472 >= 1440 -> s = 1; then r = 720 + 1440 = 2160, th = 720 + 320 = 1040
    # t3: v = 0; r = rz(2160 * 3072 / 4096) = 1620; th = rz(400 * 2048 / 4096) + 640 = 840
    a = np.array([[10, 0, 23, 0]])
    p = {
        "i_decay": 4096,
        "v_decay": 4096,
        "th_decay": 2048,
        "ref_decay": 1024,
        "v_th_mant": 10,
        "v_th_step": 5,
    }
    for backend in ("reference", "cpu"):
        tr, st_ = fixed.run("alif", a, p, record=("s", "v", "th", "r"), backend=backend)
        np.testing.assert_array_equal(tr["s"][0], [1, 0, 1, 0])
        np.testing.assert_array_equal(tr["v"][0], [640, 0, 1472, 0])
        np.testing.assert_array_equal(tr["th"][0], [640, 800, 720, 840])
        np.testing.assert_array_equal(tr["r"][0], [0, 960, 720, 1620])
        assert (int(st_["th"][0]), int(st_["r"][0])) == (840, 1620)
    # one LSB of input less at t2 (v = 1408 < 1440): no second spike
    tr, _ = fixed.run("alif", np.array([[10, 0, 22, 0]]), p, backend="cpu")
    np.testing.assert_array_equal(tr["s"][0], [1, 0, 0, 0])


def test_adrf_adaptation_known_answer():
    # ADRF, S = 4095, C = 0 (period 4), theta0 = 640, thDecay = 0, refDecay = 4096, step 1 * 64
    # state re = 0, im = -40960, th = 640, r = 0
    # t0: re = -rz(4095 * -40960 / 4096) = -rz(-167731200 / 4096) = 40950; im = rz(0) = 0
    #   th = 640 (no decay), r = 0; re >= 640, im >= 0, im_prev < 0 -> s = 1;
    #   then r = 2 * 640 = 1280, th = 640 + 64 = 704
    # t1: re = -rz(4095 * 0) = 0, im = rz(4095 * 40950 / 4096) = rz(167690250 / 4096) = 40940;
    #     r = rz(1280 * 0) = 0 (full decay), th = 704; s = 0 (re < th)
    p = {
        "sin_decay": 4095,
        "cos_decay": 0,
        "th_decay": 0,
        "ref_decay": 4096,
        "v_th_mant": 10,
        "v_th_step": 1,
    }
    x = np.zeros((1, 2), np.int64)
    state = {"re": [0], "im": [-40960], "th": [640], "r": [0]}
    for backend in ("reference", "cpu"):
        tr, st_ = fixed.run(
            "adrf", (x, x), p, state=state, record=models.get("adrf").traces, backend=backend
        )
        np.testing.assert_array_equal(tr["s"][0], [1, 0])
        np.testing.assert_array_equal(tr["re"][0], [40950, 0])
        np.testing.assert_array_equal(tr["im"][0], [0, 40940])
        np.testing.assert_array_equal(tr["th"][0], [640, 704])
        np.testing.assert_array_equal(tr["r"][0], [0, 0])
        assert int(st_["th"][0]) == 704


def test_resonator_saturates_to_24_bits():
    # a huge input saturates re and im to +-(2**23 - 1), the rotation then continues from there
    x = np.array([[1 << 30, 0]])
    p = {"sin_decay": 4095, "cos_decay": 0, "v_th_mant": 131071}
    for backend in ("reference", "cpu"):
        tr, _ = fixed.run("rf", (x, -x), p, record=("re", "im"), backend=backend)
        # t1: re = -rz(4095 * -(2**23 - 1) / 4096) = 8386559, im = rz(4095 * (2**23-1) / 4096)
        assert tr["re"][0, 0] == STATE_MAX and tr["im"][0, 0] == -STATE_MAX
        assert tr["re"][0, 1] == (4095 * STATE_MAX) // 4096 == tr["im"][0, 1]


# ---------------------------------------------------------------------------------------
# parameter validation


def _range_cases():
    for model in models.all_models():
        for p in model.params:
            for bad in (p.lo - 1, p.hi + 1):
                yield pytest.param(
                    model.name, p.name, bad, p.lo, p.hi, id=f"{model.name}-{p.name}-{bad}"
                )


@pytest.mark.parametrize("name, param, bad, lo, hi", list(_range_cases()))
def test_out_of_range_parameter_is_named(name, param, bad, lo, hi):
    model = models.get(name)
    names = {p.name for p in model.params}
    # every other parameter valid (required ones without a default at their lower bound)
    values = {p.name: p.lo if p.default is None else p.default for p in model.params}
    values.update({k: 100 for k in ("sin_decay", "cos_decay") if k in names})
    values[param] = bad
    with pytest.raises(ParameterError) as err:
        model.make_params(**values)
    msg = str(err.value)
    assert param in msg and str(bad) in msg and f"[{lo}, {hi}]" in msg


@pytest.mark.parametrize(
    "name, param, bad, lo, hi",
    [
        ("rf", "cos_decay", -1, 0, 4095),  # period below 4: cos < 0
        ("rf", "sin_decay", 0, 1, 4095),  # no oscillation (infinite period)
        ("rf_iz", "sin_decay", 4096, 1, 4095),
        ("adrf", "v_th_mant", 1 << 17, 0, (1 << 17) - 1),  # threshold outside 17 bits
        ("adrf_iz", "v_th_step", 1 << 17, 0, (1 << 17) - 1),
        ("adrf", "th_decay", 4097, 0, 4096),
        ("adrf_iz", "ref_decay", -1, 0, 4096),
        ("alif", "ref_delay", 0, 1, 63),
        ("alif", "ref_delay", 64, 1, 63),
        ("alif", "v_th_step", -1, 0, (1 << 17) - 1),
        ("alif", "th_decay", 4097, 0, 4096),
    ],
)
def test_named_hardware_ranges(name, param, bad, lo, hi):
    model = models.get(name)
    values = {"sin_decay": 1, "cos_decay": 0} if name != "alif" else {}
    values[param] = bad
    with pytest.raises(
        ParameterError,
        match=rf"{param} = {bad} is outside the allowed range "
        rf"\[{lo}, {hi}\]",
    ):
        model.make_params(**values)
    # per-neuron arrays: one bad element suffices, and fixed.run checks the same way
    values[param] = np.array([lo, bad, hi])
    x = np.zeros((3, 2), np.int64)
    with pytest.raises(ParameterError, match=param):
        fixed.run(name, x if name == "alif" else (x, x), values, backend="reference")


@pytest.mark.parametrize("name", ["rf", "rf_iz", "adrf", "adrf_iz"])
def test_rotation_gain_above_4096_is_refused(name):
    model = models.get(name)
    with pytest.raises(
        ParameterError,
        match=r"sin_decay = 4095, cos_decay = 4095 .*5791\.2"
        r".*\[0, 4096\]",
    ):
        model.make_params(sin_decay=4095, cos_decay=4095)
    with pytest.raises(ParameterError, match=r"sin_decay = 2897, cos_decay = 2897"):
        model.make_params(sin_decay=[1, 2897], cos_decay=[4095, 2897])
    # the largest pairs lava-dl writes (gain 4095 before rounding) are accepted
    model.make_params(sin_decay=[2896, 4095, 1], cos_decay=[2896, 0, 4095])
    with pytest.raises(ParameterError, match="needs parameter 'sin_decay'"):
        model.make_params(cos_decay=0)


def test_unknown_parameter_is_named():
    with pytest.raises(ParameterError, match=r"no parameter\(s\) \['i_decay'\]"):
        models.get("rf").make_params(sin_decay=1, cos_decay=0, i_decay=1)


def test_alif_refractory_state_saturates_below():
    """A negative initial threshold drives r = r + 2 th below -(2**23 - 1): it saturates,
    so the returned state is a valid initial state again (split runs)."""
    a = np.zeros((1, 2), np.int64)
    p = {"v_th_mant": 0, "th_decay": 0, "ref_decay": 0, "v_decay": 0}
    state = {"th": [-STATE_MAX], "r": [-STATE_MAX]}
    for backend in ("reference", "cpu"):
        # t0: v = 0 >= th + r = -2 (2**23 - 1) -> s = 1; r = sat(-3 (2**23 - 1)) = -(2**23 - 1)
        tr, st_ = fixed.run("alif", a, p, state=state, record=("s", "r"), backend=backend)
        np.testing.assert_array_equal(tr["s"][0], [1, 1])
        assert int(st_["r"][0]) == -STATE_MAX
        fixed.run("alif", a, p, state=st_, backend=backend)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_per_channel_parameters_broadcast_over_neuron_shape(backend):
    """Parameters of shape (C, 1) over (C, W) neurons equal C separate runs."""
    rng = np.random.default_rng(3)
    x = tuple(rng.integers(-500, 500, (2, 3, 12)) for _ in range(2))
    p = {
        "sin_decay": np.array([[300], [4000]]),
        "cos_decay": np.array([[4000], [0]]),
        "v_th_mant": np.array([[2], [40]]),
        "v_th_step": 3,
    }
    traces = models.get("adrf").traces
    tr, st_ = fixed.run("adrf", x, p, record=traces, backend=backend)
    for c in range(2):
        pc = {k: (v[c, 0] if np.ndim(v) else v) for k, v in p.items()}
        tc, sc = fixed.run("adrf", (x[0][c], x[1][c]), pc, record=traces, backend=backend)
        for k in traces:
            np.testing.assert_array_equal(tr[k][c], tc[k])
        for k in sc:
            np.testing.assert_array_equal(st_[k][c], sc[k])


def test_torch_in_torch_out():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = tuple(rng.integers(-3000, 3000, (4, 20)) for _ in range(2))
    p = {"sin_decay": 1000, "cos_decay": 3500, "v_th_mant": 20}
    ref, _ = fixed.run("rf_iz", x, p, record=("s", "im"), backend="reference")
    got, _ = fixed.run("rf_iz", tuple(torch.from_numpy(a) for a in x), p, record=("s", "im"))
    assert isinstance(got["s"], torch.Tensor)
    np.testing.assert_array_equal(got["s"].numpy(), ref["s"])
    np.testing.assert_array_equal(got["im"].numpy(), ref["im"])

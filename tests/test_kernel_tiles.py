"""The CPU kernels' lane blocks and time tiles: every boundary, equal to the reference.

The generated CPU kernels step 16 neurons per lane loop and pass time through
64-step tiles (:mod:`loihi_slayer.fixed.codegen`). The property strategies of
``test_fixed_properties`` and ``test_models_kernels`` (ties at threshold,
saturation, extreme decays, per-neuron parameters, resets, initial states) draw
small cases; here each case is tiled over neurons and time so that it crosses
lane-block and tile boundaries (including partial last blocks and tiles, and a
reset inside a tile), then compared bit for bit with the independent NumPy
reference. ``out=`` (caller-owned trace arrays) is checked the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fixed_properties import ALL_CUBA, ALL_SDNN, assert_same, cuba_cases, sdnn_cases
from test_models_kernels import PROPERTY_MODELS, cases

from loihi_slayer import fixed, models
from loihi_slayer.errors import ParameterError
from loihi_slayer.fixed import codegen, workers
from loihi_slayer.models.sigma_delta import ModeParams

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
REPS = st.tuples(st.integers(1, 7), st.integers(1, 6))


def tile_neurons(value, n: int, reps: int):
    """Tile a per-neuron vector (length ``n``) ``reps`` times; scalars stay."""
    arr = np.asarray(value)
    if arr.ndim >= 1 and arr.shape[0] == n and n > 1:
        return np.tile(arr, reps)
    if arr.ndim >= 1 and arr.shape[0] == n == 1:
        return np.tile(arr, reps)
    return value


def tile_params(params, n: int, reps: int):
    if isinstance(params, dict):
        return {k: tile_neurons(v, n, reps) for k, v in params.items()}
    fields = {
        f.name: getattr(params, f.name)
        for f in dataclasses.fields(params)
        if not f.name.startswith("_")
    }
    return type(params)(**{k: tile_neurons(v, n, reps) for k, v in fields.items()})


def tile_case(x, state, reset, reps):
    rn, rt = reps
    n = x.shape[0]
    big = np.tile(x, (rn, rt))
    if state is not None:
        state = {k: np.tile(np.asarray(v), rn) for k, v in state.items()}
    if reset is not None:
        reset = np.tile(reset, rt)
    return big, state, reset, n


@SETTINGS
@given(cuba_cases(max_n=9, max_t=40), REPS)
def test_cuba_tiles_equal_reference(case, reps):
    a, params, state, reset = case
    a, state, reset, n = tile_case(a, state, reset, reps)
    params = tile_params(params, n, reps[0])
    kw = dict(state=state, reset=reset, record=ALL_CUBA)
    assert_same(
        fixed.cuba(a, params, backend="reference", **kw), fixed.cuba(a, params, backend="cpu", **kw)
    )


@SETTINGS
@given(sdnn_cases(max_n=7, max_t=30), REPS)
def test_sigma_delta_tiles_equal_reference(case, reps):
    x, params, mode, reset = case
    x, _, reset, n = tile_case(x, None, reset, reps)
    params = tile_params(params, n, reps[0])
    kw = dict(mode=mode, reset=reset, record=ALL_SDNN)
    assert_same(
        fixed.sigma_delta(x, params, backend="reference", **kw),
        fixed.sigma_delta(x, params, backend="cpu", **kw),
    )


@pytest.mark.parametrize("name", PROPERTY_MODELS)
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_model_tiles_equal_reference(name, data):
    model = models.get(name)
    xs, params, state, reset = data.draw(cases(model, max_n=6, max_t=20))
    reps = data.draw(REPS)
    n = xs[0].shape[0]
    big = [tile_case(x, None, None, reps)[0] for x in xs]
    _, state, reset, _ = tile_case(xs[0], state, reset, reps)
    params = tile_params(params, n, reps[0])
    inputs = big[0] if len(big) == 1 else tuple(big)
    kw = dict(state=state, reset=reset, record=model.traces)
    assert_same(
        fixed.run(model, inputs, params, backend="reference", **kw),
        fixed.run(model, inputs, params, backend="cpu", **kw),
    )


@pytest.mark.parametrize(
    "shape", [(15, 63), (16, 64), (17, 65), (33, 129), (700, 100), (1100, 40), (2100, 7)]
)
def test_kernel_shares_of_lane_blocks_agree_at_block_edges(shape):
    """The generated kernel over all lane blocks in one call and over the shares of 2-5
    workers (run last share first), on partial lane blocks and time blocks: the
    reference's traces and final state each time."""
    n, t = shape
    rng = np.random.default_rng(n * t)
    a = (rng.integers(-300, 3000, (n, t)) * (rng.random((n, t)) < 0.4)).astype(np.int32)
    params = fixed.CubaParams(
        i_decay=rng.integers(0, 4097, n), v_decay=1024, v_th_mant=100, ref_delay=3, wgt_exp=-1
    )
    ref, rst = fixed.cuba(a, params, record=ALL_CUBA, backend="reference")
    table = np.stack(
        [
            np.asarray(v, np.int64).reshape(-1) * np.ones(n, np.int64)
            for v in (
                params.array("i_decay"),
                params.array("v_decay"),
                params.v_th,
                params.array("ref_delay"),
                params.bias,
                params.array("wgt_exp"),
            )
        ]
    )
    mod = codegen.kernel_module(models.get("cuba"), "cpu")
    dtypes = {"s": np.int8, "u": np.int32, "v": np.int32, "v_pre": np.int32}
    blocks = -(-n // codegen.LANES)
    for count in (1, 2, 3, 5):
        st_ = np.zeros((3, n), np.int64)
        outs = [np.full((n, t), 77, dtypes[k]) for k in ALL_CUBA]
        for lo, hi in reversed(workers.shares(blocks, count)):
            mod.kernel(a, table, 0, t, st_, *outs, lo, hi)
        for k, o in zip(ALL_CUBA, outs, strict=True):
            np.testing.assert_array_equal(o, ref[k], err_msg=f"{k}, {count} shares")
        np.testing.assert_array_equal(st_[0], rst["u"])
        np.testing.assert_array_equal(st_[1], rst["v"])


@pytest.mark.parametrize("columns", [1, 3, 40, 41])
def test_kernel_parameter_tables_of_any_width(columns):
    """The kernel's table of ``M`` columns gives neuron ``n`` column ``n % M``: shared
    (one column, loaded once per call), per neuron (``M = N``, whole blocks read as
    runs) and the general case (3 columns; 41 with 40 neurons), on whole and partial
    lane blocks: the reference's traces with each neuron's parameters spelled out."""
    n, t = 40, 21
    rng = np.random.default_rng(columns)
    a = rng.integers(-500, 3000, (n, t)).astype(np.int32)
    cols = np.stack(
        [
            rng.integers(0, 4097, columns),  # i_decay
            rng.integers(0, 4097, columns),  # v_decay
            rng.integers(1, 200, columns) * 64,  # v_th
            rng.integers(1, 4, columns),  # ref_delay
            rng.integers(-300, 300, columns) * 64,  # bias
            rng.integers(-3, 3, columns),  # wgt_exp
        ]
    ).astype(np.int64)
    per = cols[:, np.arange(n) % columns]
    params = fixed.CubaParams(
        i_decay=per[0],
        v_decay=per[1],
        v_th_mant=per[2] // 64,
        ref_delay=per[3],
        bias_mant=per[4] // 64,
        bias_exp=6,
        wgt_exp=per[5],
    )
    ref, rst = fixed.cuba(a, params, record=ALL_CUBA, backend="reference")
    mod = codegen.kernel_module(models.get("cuba"), "cpu")
    dtypes = {"s": np.int8, "u": np.int32, "v": np.int32, "v_pre": np.int32}
    st_ = np.zeros((3, n), np.int64)
    outs = [np.zeros((n, t), dtypes[k]) for k in ALL_CUBA]
    mod.kernel(a, cols, 0, t, st_, *outs, 0, -(-n // codegen.LANES))
    for k, o in zip(ALL_CUBA, outs, strict=True):
        np.testing.assert_array_equal(o, ref[k], err_msg=k)
    np.testing.assert_array_equal(st_[1], rst["v"])


@pytest.mark.parametrize("pool", [True, False])
@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_neuron_kernels_run_in_shares(count, pool, monkeypatch):
    """Above PARALLEL_MIN_WORK a model's kernel runs in ``min(workers, blocks)`` shares
    (1-8 workers, more than there are lane blocks too): on :func:`.workers.in_workers`
    inside ``on_pool`` (an emulator run), else as the ``prange`` form's ranges; below
    it in one call. The reference's traces and state every way."""
    monkeypatch.setattr(workers, "TILE_WORKERS", count)
    shares: list[int] = []
    real = workers.in_workers
    monkeypatch.setattr(workers, "in_workers", lambda w, k: (shares.append(k), real(w, k)))
    mod = codegen.kernel_module(fixed.api.SDNN_KERNEL, "cpu")
    ranges: list[list[list[int]]] = []
    real_par = mod.kernel_parallel

    def parallel(*args):
        ranges.append(args[-1].tolist())
        return real_par(*args)

    monkeypatch.setattr(mod, "kernel_parallel", parallel)
    rng = np.random.default_rng(count)
    sp = fixed.SigmaDeltaParams(v_th_mant=3, bias=rng.integers(-200, 200, 100))
    for n, t in ((100, workers.PARALLEL_MIN_WORK // 100 + 1), (100, 20)):
        x = rng.integers(-5000, 5000, (n, t))
        ref, rst = fixed.sigma_delta(x, sp, record=("s", "sigma"), backend="reference")
        with workers.on_pool() if pool else contextlib.nullcontext():
            got, gst = fixed.sigma_delta(x, sp, record=("s", "sigma"), backend="cpu")
        for k in ("s", "sigma"):
            np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
        for k in rst:
            np.testing.assert_array_equal(gst[k], rst[k], err_msg=k)
    blocks = -(-100 // codegen.LANES)
    split = min(count, blocks)
    if pool or split == 1:
        assert shares == [split, 1] and ranges == []
    else:
        assert shares == [1] and ranges == [[list(r) for r in workers.shares(blocks, split)]]


# ------------------------------------------------------------------------ out=


def test_out_arrays_receive_the_traces():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 400, (3, 50, 70)).astype(np.int16)
    params = fixed.CubaParams(i_decay=300, v_decay=500, v_th_mant=30)
    ref, _ = fixed.cuba(a, params, record=("s", "v"), backend="reference")
    out = {"s": np.full(a.shape, 7, np.int8), "v": torch.full(a.shape, 7, dtype=torch.int32)}
    got, _ = fixed.cuba(a, params, record=("s", "v"), backend="cpu", out=out)
    assert got["s"] is out["s"] and got["v"] is out["v"]
    np.testing.assert_array_equal(out["s"], ref["s"])
    np.testing.assert_array_equal(out["v"].numpy(), ref["v"])
    # again into the same arrays: overwritten, not accumulated
    fixed.cuba(a, params, record=("s", "v"), backend="cpu", out=out)
    np.testing.assert_array_equal(out["s"], ref["s"])

    x = rng.integers(-5000, 5000, (40, 90))
    sp = fixed.SigmaDeltaParams(v_th_mant=3)
    sref, _ = fixed.sigma_delta(x, sp, record=("s",), backend="reference")
    sout = {"s": np.empty(x.shape, np.int64)}
    fixed.sigma_delta(x, sp, record=("s",), backend="cpu", out=sout)
    np.testing.assert_array_equal(sout["s"], sref["s"])

    alif = models.get("alif")
    mref, _ = fixed.run(alif, x, None, record=("s",), backend="reference")
    mout = {"s": np.empty(x.shape, np.int8)}
    fixed.run(alif, x, None, record=("s",), backend="cpu", out=mout)
    np.testing.assert_array_equal(mout["s"], mref["s"])


@pytest.mark.parametrize(
    "out, match",
    [
        ({"u": np.zeros((4, 9), np.int32)}, "'u' is not recorded"),
        ({"s": np.zeros((4, 9), np.int32)}, "dtype int8"),
        ({"s": np.zeros((4, 8), np.int8)}, r"expected shape \(4, 9\)"),
        ({"s": np.zeros((9, 4), np.int8).T}, "C-contiguous"),
    ],
)
def test_bad_out_arrays_are_refused(out, match):
    a = np.ones((4, 9), np.int32)
    with pytest.raises(ParameterError, match=match):
        fixed.cuba(a, record=("s",), backend="cpu", out=out)


def test_out_is_refused_on_the_reference_backend():
    with pytest.raises(ParameterError, match="'cpu' backend"):
        fixed.cuba(
            np.ones((2, 3), np.int32), backend="reference", out={"s": np.zeros((2, 3), np.int8)}
        )


def _every_trace(model, inputs, reset):
    """Run ``model`` on the CPU kernels with every trace recorded into caller arrays
    filled with two different sentinels in turn; the reference's traces."""
    names = model.traces
    if model.name == "sigma_delta":
        params = fixed.SigmaDeltaParams(v_th_mant=3)

        def run(**kw):
            return fixed.sigma_delta(inputs[0], params, reset=reset, record=names, **kw)[0]
    else:
        # mid-range values of every parameter without a default (the resonators' decays)
        need = {p.name: (p.lo + p.hi) // 2 for p in model.params if p.default is None}
        params = model.make_params(**need)

        def run(**kw):
            return fixed.run(model, inputs, params, reset=reset, record=names, **kw)[0]

    ref = run(backend="reference")
    got = []
    for sentinel in (7, -9):
        out = {k: np.full(ref[k].shape, sentinel, ref[k].dtype) for k in names}
        run(backend="cpu", out=out)
        got.append(out)
    return ref, got


@pytest.mark.parametrize("name", models.names())
def test_every_trace_element_is_written(name):
    """The kernels write every element of every recorded trace, across tiles, lane
    blocks and a reset (callers reuse their ``out=`` arrays, so nothing may be left from
    before): arrays filled with 7, then with -9, both end equal to the reference."""
    model = models.get(name)
    rng = np.random.default_rng(3)
    shape = (37, 75)  # partial lane block, several time tiles
    inputs = [rng.integers(-3000, 3000, shape) for _ in model.inputs]
    reset = np.zeros(shape[-1], bool)
    reset[[0, 33, 34]] = True
    ref, got = _every_trace(model, inputs, reset)
    for out in got:
        for k in model.traces:
            np.testing.assert_array_equal(out[k], ref[k], err_msg=f"{name} trace {k}")


RESONATOR_PARAMS = {"sin_decay": 3000, "cos_decay": 1000, "v_th_mant": 100}


@pytest.mark.parametrize("name", models.names())
def test_every_recorded_value_is_written(name):
    """The CPU kernels write every value of every recorded trace, with resets splitting
    the time axis and neuron counts off the lane width: the API hands them uninitialised
    memory. Checked on ``out`` arrays filled with a value no trace holds here."""
    model = models.get(name)
    rng = np.random.default_rng(7)
    shape = (3, 21, 37)  # 63 neurons: not a multiple of the 16 lanes; 37 steps: of a tile
    xs = [rng.integers(-3000, 3000, shape) for _ in model.inputs]
    inputs = xs[0] if len(xs) == 1 else tuple(xs)
    reset = np.zeros(shape[-1], bool)
    reset[[0, 11, 30]] = True
    record = tuple(model.traces)
    # the resonators' decays have no default; the others run on theirs
    params = RESONATOR_PARAMS if "sin_decay" in _param_names(model) else None
    if name == "sigma_delta":  # its runner takes the parameters with the layer's mode
        params = ModeParams(fixed.SigmaDeltaParams(v_th_mant=3), "sigma_delta")
    kw = {"reset": reset, "record": record}
    ref, _ = model.run(inputs, params, backend="reference", **kw)
    got, _ = model.run(inputs, params, backend="cpu", **kw)
    for k in record:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{name}: trace {k!r}")
    sentinel = -97
    out = {k: np.full(shape, sentinel, got[k].dtype) for k in record}
    model.run(inputs, params, backend="cpu", out=out, **kw)
    for k in record:
        np.testing.assert_array_equal(out[k], ref[k], err_msg=f"{name}: trace {k!r}")


def _param_names(model) -> set[str]:
    return {p.name for p in model.params}

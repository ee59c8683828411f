"""Known-answer tests: vectors written in the spec (lava-nc unit tests, Loihi-1 traces).

Every expected value here comes from ``shared/spec/loihi-fixed-point.md`` or is
computed by hand from its equations, never from this library's output.
"""

from __future__ import annotations

import numpy as np
import pytest

from loihi_slayer import fixed
from loihi_slayer.fixed import CubaParams

BACKENDS = ["reference", "cpu", "cuda"]


def one_input(value: int, at: int, steps: int) -> np.ndarray:
    a = np.zeros((1, steps), np.int64)
    a[0, at] = value
    return a


@pytest.mark.parametrize("backend", BACKENDS)
def test_nc_current_decay_half(backend):
    # spec §2.6 item 2: du = 2047 (iDecay 2048 after ds_offset), a_in = 128 at step 1
    tr, _ = fixed.cuba(
        one_input(128, 0, 4),
        CubaParams(i_decay=2048, v_decay=0, v_th_mant=131071),
        record=("u",),
        backend=backend,
    )
    assert np.asarray(tr["u"])[0].tolist() == [8192, 4096, 2048, 1024]


@pytest.mark.parametrize("backend", BACKENDS)
def test_nc_voltage_decay_half(backend):
    # spec §2.6 item 2: du = 0 (iDecay 1), dv = 2048
    tr, _ = fixed.cuba(
        one_input(128, 0, 8),
        CubaParams(i_decay=1, v_decay=2048, v_th_mant=131071),
        record=("v",),
        backend=backend,
    )
    assert np.asarray(tr["v"])[0].tolist() == [
        8192,
        12286,
        14331,
        15351,
        15859,
        16111,
        16235,
        16295,
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_nc_bias_spikes_strict_threshold(backend):
    # spec §2.6 item 2: bias_mant 2, bias_exp 6, vth 8, du = dv = 0: spikes at steps 5, 10
    tr, _ = fixed.cuba(
        np.zeros((1, 12), np.int64),
        CubaParams(i_decay=1, v_decay=0, v_th_mant=8, bias_mant=2, bias_exp=6),
        record=("s", "v"),
        backend=backend,
    )
    assert np.flatnonzero(np.asarray(tr["s"])[0]).tolist() == [4, 9]  # 0-based: steps 5, 10
    # 512 == vth << 6 is a tie and does not fire; 640 does, then v resets to 0
    assert np.asarray(tr["v"])[0, :5].tolist() == [128, 256, 384, 512, 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_loihi1_hardware_voltage_trace(backend):
    # spec §2.6 item 1 (LoihiVth05 row 2): iDecay 1024, vDecay 128, W = 2 at index 1
    expected = [
        0,
        128,
        220,
        285,
        330,
        359,
        377,
        387,
        390,
        389,
        385,
        378,
        370,
        361,
        351,
        341,
        330,
        319,
        309,
        299,
        289,
        279,
        270,
        261,
        252,
        244,
        236,
        228,
        220,
        213,
        206,
        199,
        192,
        186,
        180,
        174,
        168,
        162,
        156,
        151,
    ]
    tr, _ = fixed.cuba(
        one_input(2, 1, len(expected)),
        CubaParams(i_decay=1024, v_decay=128, v_th_mant=131071),
        record=("v",),
        backend=backend,
    )
    assert np.asarray(tr["v"])[0].tolist() == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_refractory_delay_holds_voltage(backend):
    # §2.2: a spike at bin i holds v = 0 at bins i..i+R-1; v restarts at i+R with v = u.
    # Constant input 10 with no decay of u (iDecay 4096 -> u = 640 each step), full v decay:
    # v = u = 640 > vth (600) -> spike every R steps.
    for r in (1, 2, 3, 7):
        tr, _ = fixed.cuba(
            np.full((1, 15), 10, np.int64),
            CubaParams(i_decay=4096, v_decay=4096, v_th_mant=600 // 64 + 0, ref_delay=r),
            record=("s", "v", "u"),
            backend=backend,
        )
        s = np.asarray(tr["s"])[0]
        assert np.flatnonzero(s).tolist() == list(range(0, 15, r))
        assert (np.asarray(tr["u"])[0] == 640).all()
        assert (np.asarray(tr["v"])[0] == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_current_wraps_and_voltage_saturates(backend):
    # u: 2**23 stays, 2**23 + 64 wraps to 64 - 2**23 (lava-nc's asymmetric wrap);
    # v saturates at 2**23 - 1.
    a = np.array([[2**17, 1, 0]], np.int64)  # u = 2**23, then 2**23 + 64 (iDecay 0)
    tr, _ = fixed.cuba(
        a,
        CubaParams(i_decay=0, v_decay=4096, v_th_mant=131071),
        record=("u", "v_pre", "s"),
        backend=backend,
    )
    assert np.asarray(tr["u"])[0].tolist() == [2**23, 64 - 2**23, 64 - 2**23]
    # saturated v = 2**23 - 1 exceeds 131071 << 6 = 2**23 - 64, so it also spikes
    assert np.asarray(tr["v_pre"])[0].tolist() == [2**23 - 1, 64 - 2**23, 64 - 2**23]
    assert np.asarray(tr["s"])[0].tolist() == [1, 0, 0]
    # negative boundary: -2**23 wraps to +2**23
    tr, _ = fixed.cuba(
        np.array([[-(2**17)]], np.int64),
        CubaParams(i_decay=0, v_decay=4096, v_th_mant=131071),
        record=("u", "v"),
        backend=backend,
    )
    assert np.asarray(tr["u"])[0].tolist() == [2**23]


@pytest.mark.parametrize("backend", BACKENDS)
def test_decay_rounds_toward_zero(backend):
    # u = -100*64 = -6400 with iDecay 1: -6400*4095/4096 = -6398.4 -> -6398 (not -6399)
    tr, _ = fixed.cuba(
        np.array([[-100, 0]], np.int64),
        CubaParams(i_decay=1, v_decay=4096, v_th_mant=0),
        record=("u",),
        backend=backend,
    )
    assert np.asarray(tr["u"])[0].tolist() == [-6400, -6398]


@pytest.mark.parametrize("backend", BACKENDS)
def test_negative_weight_exponent_floors_the_sum(backend):
    # wgtExp -2: A = -5 -> floor(-5 / 4) = -2 -> u = -128; A = 5 -> 1 -> 64
    tr, _ = fixed.cuba(
        np.array([[-5], [5]], np.int64),
        CubaParams(i_decay=4096, v_decay=4096, v_th_mant=131071, wgt_exp=-2),
        record=("u",),
        backend=backend,
    )
    assert np.asarray(tr["u"])[:, 0].tolist() == [-128, 64]


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigma_delta_legacy_residue(backend):
    # Hand-computed lava-nc PySigmaDeltaModelFixed steps, E = S = 6 (shift 12),
    # vth = 1 << 12, no bias: inputs (18 fractional bits) 5000, 0, -3000
    x = np.array([[5000, 0, -3000, 0]], np.int64)
    tr, _ = fixed.sigma_delta(
        x,
        fixed.SigmaDeltaParams(v_th_mant=1),
        record=("s", "sigma", "act", "residue"),
        backend=backend,
    )
    # step 1: sigma 5000, act 5000, d = 5000 >= 4096 -> s = 5000, payload 5000 >> 6 = 78
    # step 2: d = 0 -> 0; step 3: sigma 2000, d = -3000, |d| < 4096 -> residue -3000
    # step 4: sigma 2000, d = 0 - 3000 = -3000 -> 0, residue stays -3000
    assert np.asarray(tr["s"])[0].tolist() == [78, 0, 0, 0]
    assert np.asarray(tr["sigma"])[0].tolist() == [5000, 5000, 2000, 2000]
    assert np.asarray(tr["residue"])[0].tolist() == [0, 0, -3000, -3000]
    # a negative payload floors: -5000 >> 6 = -79
    tr, _ = fixed.delta(
        np.array([[0, -2]], np.int64), fixed.SigmaDeltaParams(v_th_mant=1), backend=backend
    )
    assert np.asarray(tr["s"])[0].tolist() == [0, (-2 << 12) >> 6]

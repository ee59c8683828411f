"""neuron.dynamics.leaky_integrator against an independent NumPy rendering of its equations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loihi_slayer.errors import ParameterError
from loihi_slayer.neuron.dynamics import leaky_integrator as li


def reference(x_int, decay, y0, v_th):
    """y = sat24(rz(y (4096 - D) / 4096) + x); pre-reset output; reset when y > v_th."""
    y = y0.copy()
    out = np.zeros_like(x_int)
    for t in range(x_int.shape[-1]):
        p = y * (4096 - decay)
        y = np.sign(p) * (np.abs(p) // 4096) + x_int[..., t]
        y = np.clip(y, -(2**23 - 1), 2**23 - 1)
        out[..., t] = y
        if v_th is not None:
            y = np.where(y > v_th, 0, y)
    return out


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    decay=st.sampled_from([0, 1, 1024, 2048, 4095, 4096]),
    scale=st.sampled_from([1, 64]),
    threshold=st.sampled_from([None, 0.5, 2.0, 40.0]),
    big=st.booleans(),
)
def test_matches_reference(seed, decay, scale, threshold, big):
    rng = np.random.default_rng(seed)
    w = 64 * scale
    a = rng.integers(-(2**16) if big else -300, (2**16) if big else 300, size=(2, 3, 2, 30))
    x = torch.tensor(a / scale, dtype=torch.float64)  # weight grid: W x = 64 a exactly
    y0 = rng.integers(-500, 500, size=(2, 3, 2)) * 64
    out = li.dynamics(x, torch.tensor([float(decay)]), torch.tensor(y0 / w), w, threshold)
    v_th = None if threshold is None else int(threshold * scale) * 64
    ref = reference(64 * a, decay, y0, v_th)
    assert np.array_equal(out.double().numpy() * w, ref)


def test_tie_does_not_reset_and_gradient_is_lava_dl():
    x = torch.zeros(1, 1, 4, dtype=torch.float64)
    x[..., 0] = 1.0  # y = 64 * 64 = threshold * W exactly: strict compare keeps it
    out = li.dynamics(x, torch.tensor([0.0]), torch.zeros(1), 64, threshold=1.0)
    assert out.flatten().tolist() == [1.0, 1.0, 1.0, 1.0]
    xg = torch.zeros(1, 1, 5, requires_grad=True)
    decay = torch.tensor([1024.0], requires_grad=True)
    li.dynamics(xg, decay, torch.zeros(1), 64)[..., -1].sum().backward()
    # g_x[t] = 0.75 * g_x[t+1] + g[t] with g = [0, 0, 0, 0, 1]
    torch.testing.assert_close(xg.grad.flatten(), torch.tensor([0.75**k for k in range(4, -1, -1)]))
    assert decay.grad is not None


def test_bad_scale_and_persistent_state():
    with pytest.raises(ParameterError, match="multiple of 64"):
        li.dynamics(torch.zeros(1, 1, 3), torch.tensor([0.0]), torch.zeros(1), 100)
    s = li.persistent_state(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0]))
    assert s.tolist() == [1.0, 0.0]


def rz(p):
    return np.sign(p) * (np.abs(p) // 4096)


def resonator_reference(a_re, a_im, s, c, re0, im0, v_th):
    """Re' = rz(C re) - rz(S im) + x_re, Im' = rz(S re) + rz(C im) + x_im (saturated);
    Izhikevich reset re = 0, im = v_th - 1 where Im' >= v_th; pre-reset outputs."""
    re, im = re0.copy(), im0.copy()
    out_re, out_im = np.zeros_like(a_re), np.zeros_like(a_im)
    lim = 2**23 - 1
    for t in range(a_re.shape[-1]):
        nre = np.clip(rz(c * re) - rz(s * im) + a_re[..., t], -lim, lim)
        nim = np.clip(rz(s * re) + rz(c * im) + a_im[..., t], -lim, lim)
        out_re[..., t], out_im[..., t] = nre, nim
        if v_th is not None:
            spk = nim >= v_th
            nre = np.where(spk, 0, nre)
            nim = np.where(spk, v_th - 1, nim)
        re, im = nre, nim
    return out_re, out_im


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    rot=st.sampled_from([(1, 4095), (2896, 2896), (4095, 0), (1000, 3000)]),
    threshold=st.sampled_from([None, 0.5, 3.0]),
    per_channel=st.booleans(),
)
def test_resonator_matches_reference(seed, rot, threshold, per_channel):
    from loihi_slayer.neuron.dynamics import resonator

    rng = np.random.default_rng(seed)
    a_re = rng.integers(-200, 200, size=(2, 3, 25))
    a_im = rng.integers(-200, 200, size=(2, 3, 25))
    s = np.array([rot[0], 1, 3000]) if per_channel else np.array([rot[0]])
    c = np.array([rot[1], 4000, 1000]) if per_channel else np.array([rot[1]])
    re0 = rng.integers(-300, 300, size=(2, 3)) * 64
    im0 = rng.integers(-300, 300, size=(2, 3)) * 64
    re, im = resonator.dynamics(
        torch.tensor(a_re / 1.0),
        torch.tensor(a_im / 1.0),
        torch.tensor(s, dtype=torch.float64),
        torch.tensor(c, dtype=torch.float64),
        torch.tensor(re0 / 64),
        torch.tensor(im0 / 64),
        64,
        threshold,
    )
    v_th = None if threshold is None else int(threshold) * 64
    sc = s.reshape(1, -1) if per_channel else s
    cc = c.reshape(1, -1) if per_channel else c
    ref_re, ref_im = resonator_reference(
        64 * a_re, 64 * a_im, sc[..., None][..., 0], cc[..., None][..., 0], re0, im0, v_th
    )
    assert np.array_equal(re.double().numpy() * 64, ref_re)
    assert np.array_equal(im.double().numpy() * 64, ref_im)


def test_resonator_gradient_is_transposed_rotation():
    from loihi_slayer.neuron.dynamics import resonator

    x_re = torch.zeros(1, 1, 3, requires_grad=True)
    x_im = torch.zeros(1, 1, 3, requires_grad=True)
    re, im = resonator.dynamics(
        x_re,
        x_im,
        torch.tensor([2048.0]),
        torch.tensor([2048.0]),
        torch.zeros(1),
        torch.zeros(1),
        64,
    )
    re[..., -1].sum().backward()
    # g_re[t] = C g_re[t+1] + S g_im[t+1] + g[t], g_im[t] = -S g_re[t+1] + C g_im[t+1]
    assert x_re.grad.flatten().tolist() == [0.0, 0.5, 1.0]
    assert x_im.grad.flatten().tolist() == [-0.5, -0.5, 0.0]


def adaptive_reference(v, th0, step, th_decay, ref_decay, th_init, r_init):
    """lava-dl's documented recursion on integers: r, th decay; s = v >= th + r;
    reported th, r before the spike update; r += 2 th, th += step on a spike."""
    th, r = th_init.copy(), r_init.copy()
    out_th, out_r = np.zeros_like(v), np.zeros_like(v)
    for t in range(v.shape[-1]):
        r = rz(r * (4096 - ref_decay))
        th = rz((th - th0) * (4096 - th_decay)) + th0
        out_th[..., t], out_r[..., t] = th, r
        s = v[..., t] >= th + r
        r = np.where(s, r + 2 * th, r)
        th = np.where(s, th + step, th)
    return out_th, out_r


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    th_decay=st.sampled_from([0, 100, 4096]),
    ref_decay=st.sampled_from([0, 500, 4096]),
)
def test_adaptive_threshold_matches_reference(seed, th_decay, ref_decay):
    from loihi_slayer.neuron.dynamics import adaptive_threshold

    rng = np.random.default_rng(seed)
    a = rng.integers(0, 40, size=(2, 3, 30))  # voltage in weight units (x 1/64)
    th0, step = 10.0, 2.0
    th, r = adaptive_threshold.dynamics(
        torch.tensor(a / 1.0),
        torch.zeros(1),
        torch.tensor([float(ref_decay)]),
        torch.tensor(th0),
        torch.tensor([float(th_decay)]),
        step,
        th0,
        64,
    )
    init = np.full((2, 3), 640)
    ref_th, ref_r = adaptive_reference(
        64 * a, 640, 128, th_decay, ref_decay, init, np.zeros((2, 3), np.int64)
    )
    assert np.array_equal(th.double().numpy() * 64, ref_th)
    assert np.array_equal(r.double().numpy() * 64, ref_r)
    assert (64 * a >= 640).any()  # the input crosses the resting threshold


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    rot=st.sampled_from([(2896, 2896), (1000, 3000)]),
    th_decay=st.sampled_from([0, 300]),
    ref_decay=st.sampled_from([0, 700]),
)
def test_adaptive_resonator_matches_reference(seed, rot, th_decay, ref_decay):
    from loihi_slayer.neuron.dynamics import adaptive_resonator

    rng = np.random.default_rng(seed)
    a_re = rng.integers(-60, 60, size=(2, 3, 30))
    a_im = rng.integers(-60, 60, size=(2, 3, 30))
    s, c = rot
    re, im, th, r = adaptive_resonator.dynamics(
        torch.tensor(a_re / 1.0),
        torch.tensor(a_im / 1.0),
        torch.tensor([float(s)]),
        torch.tensor([float(c)]),
        torch.tensor([float(ref_decay)]),
        torch.tensor([float(th_decay)]),
        torch.zeros(1),
        torch.zeros(1),
        torch.zeros(1),
        torch.tensor(1.0),
        1.0,
        1.0,
        64,
    )
    # independent rendering of the documented ADRF_IZ recursion (docs/neuron-models.md)
    lim = 2**23 - 1
    zre = np.zeros((2, 3), np.int64)
    zim = np.zeros((2, 3), np.int64)
    t_th, t_r = np.full((2, 3), 64), np.zeros((2, 3), np.int64)
    spikes = 0
    for t in range(30):
        t_r = rz(t_r * (4096 - ref_decay))
        t_th = rz((t_th - 64) * (4096 - th_decay)) + 64
        zre, zim = (
            np.clip(rz(c * zre) - rz(s * zim) + 64 * a_re[..., t], -lim, lim),
            np.clip(rz(s * zre) + rz(c * zim) + 64 * a_im[..., t], -lim, lim),
        )
        assert np.array_equal(re[..., t].double().numpy() * 64, zre)
        assert np.array_equal(im[..., t].double().numpy() * 64, zim)
        assert np.array_equal(th[..., t].double().numpy() * 64, t_th)
        assert np.array_equal(r[..., t].double().numpy() * 64, t_r)
        fire = zim >= t_th + t_r
        spikes += int(fire.sum())
        t_r = np.where(fire, np.clip(t_r + 2 * t_th, -lim, lim), t_r)
        t_th = np.where(fire, np.clip(t_th + 64, -lim, lim), t_th)
    assert spikes > 0

"""neuron.dynamics.adaptive_phase_th against an independent rendering of spec §6.4's recursion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loihi_slayer.errors import ParameterError
from loihi_slayer.neuron.dynamics import adaptive_phase_th


def _rz(x, d):
    p = x * (4096 - d)
    return np.sign(p) * (np.abs(p) >> 12)


def _expected(re_q, im_q, im0, th_start, r_start, th0, step, th_d, ref_d):
    """Integer recursion of spec §6.4 (threshold/refractory driven by given re, im)."""
    th, r, prev = th_start.copy(), r_start.copy(), im0.copy()
    out_th, out_r = np.zeros(re_q.shape, np.int64), np.zeros(re_q.shape, np.int64)
    for t in range(re_q.shape[-1]):
        r = _rz(r, ref_d)
        th = _rz(th - th0, th_d) + th0
        s = (re_q[..., t] >= th + r) & (im_q[..., t] >= 0) & (prev < 0)
        out_th[..., t], out_r[..., t] = th, r
        r = np.where(s, r + 2 * th, r)
        th = np.where(s, th + step, th)
        prev = im_q[..., t]
    return out_th, out_r


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_integer_recursion_and_adapts(seed):
    g = torch.Generator().manual_seed(seed)
    n, c, steps, w_scale = 2, 3, 64, 1024  # W = 1024: state grid 1/16
    phase = torch.rand(n, c, 1, generator=g) * 6.28
    t = torch.arange(steps, dtype=torch.float64)
    amp = 1 + 2 * torch.rand(n, c, 1, generator=g, dtype=torch.float64)
    real = (amp * torch.cos(2 * np.pi * t / 8 + phase)).float()
    imag = (amp * torch.sin(2 * np.pi * t / 8 + phase)).float()
    th, r = adaptive_phase_th.dynamics(
        real,
        imag,
        torch.tensor(-0.5),
        torch.tensor(0.0),
        torch.tensor(300),
        torch.tensor(0.75),
        torch.tensor(200),
        0.25,
        0.75,
        w_scale,
    )
    scale, w = w_scale // 64, w_scale
    re_q = np.rint(real.double().numpy() * scale).astype(np.int64) * 64
    im_q = np.rint(imag.double().numpy() * scale).astype(np.int64) * 64
    full = np.ones((n, c), np.int64)
    th0 = int(0.75 * scale) * 64
    exp_th, exp_r = _expected(
        re_q,
        im_q,
        full * int(-0.5 * w),
        full * int(0.75 * w),
        full * 0,
        th0,
        int(0.25 * scale) * 64,
        200,
        300,
    )
    np.testing.assert_array_equal(np.rint(th.double().numpy() * w), exp_th)
    np.testing.assert_array_equal(np.rint(r.double().numpy() * w), exp_r)
    assert (exp_r > 0).any(), "no spike: the threshold never adapted"


def test_bad_arguments_are_named():
    x = torch.zeros(1, 2, 5)
    with pytest.raises(ParameterError, match="w_scale"):
        adaptive_phase_th.dynamics(x, x, 0, 0, 0, 0, 0, 0.1, 0.5, 100)
    with pytest.raises(ParameterError, match="real and imag"):
        adaptive_phase_th.dynamics(x, x[..., :3], 0, 0, 0, 0, 0, 0.1, 0.5, 64)

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

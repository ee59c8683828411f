"""The synapse fast paths (issue 8): Dense as a batched matmul, Pool as strided slices,
the one-reduction finite check. Expected values come from PyTorch's conv3d, the
operation these paths replace."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from loihi_slayer import synapse
from loihi_slayer.errors import ParameterError
from loihi_slayer.quantize import quantize_8bit

GEOMETRIES = list(itertools.product([1, 2, 3, (2, 3)], [None, 1, 2, (1, 3)], [0, 1], [1, 2]))


def _spikes(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < 0.4).float()


@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation"), GEOMETRIES)
def test_pool_equals_conv3d_values_and_input_gradient(kernel, stride, padding, dilation):
    pool = synapse.Pool(
        kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        weight_scale=0.75,
        pre_hook_fx=quantize_8bit,
    )
    x = _spikes(2, 3, 7, 8, 5).requires_grad_(True)
    w = quantize_8bit(pool.weight)
    try:
        ref = F.conv3d(x.reshape(6, 1, 7, 8, 5), w, None, pool.stride, pool.padding, pool.dilation)
    except RuntimeError:  # kernel larger than the padded input: the same error from ours
        with pytest.raises(RuntimeError):
            pool(x)
        return
    ref = ref.reshape(2, 3, *ref.shape[2:])
    y = pool(x)
    assert y.shape == ref.shape and y.is_contiguous()
    assert torch.equal(y, ref)  # spikes on the weight grid: every sum exact
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    (gx,) = torch.autograd.grad(y, x, g)
    (gr,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(gx, gr)


def test_pool_learnable_uneven_weight_gets_conv3d_gradients():
    pool = synapse.Pool(2, stride=1, padding=1)
    with torch.no_grad():
        pool.weight.copy_(torch.tensor([[0.25, -0.5], [1.0, 0.75]]).reshape(pool.weight.shape))
    pool.weight.requires_grad_(True)
    x = _spikes(2, 2, 5, 5, 4).requires_grad_(True)
    y = pool(x)
    ref = F.conv3d(x.reshape(4, 1, 5, 5, 4), pool.weight, None, pool.stride, pool.padding)
    assert torch.equal(y, ref.reshape(y.shape))
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
    gx, gw = torch.autograd.grad(y, (x, pool.weight), g)
    rx, rw = torch.autograd.grad(ref.reshape(y.shape), (x, pool.weight), g)
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gw, rw)


def test_pool_equal_learnable_taps_get_one_gradient_per_tap():
    # equal taps sum separably only while the weight needs no gradient: a learnable one
    # still gets conv3d's per-tap gradient (each tap its own sum of g * x)
    pool = synapse.Pool((2, 3), stride=(2, 1), weight_scale=0.5)
    pool.weight.requires_grad_(True)
    x = _spikes(2, 2, 6, 7, 3, seed=4).requires_grad_(True)
    ref = F.conv3d(x.reshape(4, 1, 6, 7, 3), pool.weight, None, pool.stride)
    y = pool(x)
    assert torch.equal(y, ref.reshape(y.shape))
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(5))
    gw = torch.autograd.grad(y, pool.weight, g)[0]
    rw = torch.autograd.grad(ref.reshape(y.shape), pool.weight, g)[0]
    assert not torch.all(rw == rw.reshape(-1)[0])  # the taps' gradients differ
    torch.testing.assert_close(gw, rw)


def test_pool_of_off_grid_values_is_close_to_conv3d():
    # float inputs off the weight grid: the separable sum rounds in another order than
    # conv3d, so equal up to float32 rounding
    pool = synapse.Pool(3, stride=2, padding=1, weight_scale=0.3)
    x = torch.randn(2, 3, 9, 8, 4, generator=torch.Generator().manual_seed(6))
    ref = F.conv3d(x.reshape(6, 1, 9, 8, 4), pool.weight, None, pool.stride, pool.padding)
    torch.testing.assert_close(pool(x), ref.reshape(2, 3, *ref.shape[2:]))


def test_large_pool_kernel_still_pools():
    pool = synapse.Pool(5, weight_scale=1)  # above the strided-slice limit: conv3d
    x = _spikes(1, 2, 10, 10, 3)
    ref = F.conv3d(x.reshape(2, 1, 10, 10, 3), pool.weight, None, pool.stride)
    assert torch.equal(pool(x), ref.reshape(1, 2, 2, 2, 3))


@pytest.mark.parametrize("exact", [False, True])
def test_dense_equals_conv3d_values_and_gradients(exact):
    dense = synapse.Dense((2, 3, 3), 7, weight_scale=3, pre_hook_fx=quantize_8bit, exact=exact)
    x = _spikes(4, 2, 3, 3, 6).requires_grad_(True)  # 5-D input, flattened by the synapse
    y = dense(x)
    dt = torch.float64 if exact else torch.float32
    w = quantize_8bit(dense.weight).to(dt)
    ref = F.conv3d(x.to(dt).reshape(4, 18, 1, 1, 6), w).reshape(4, 7, 6)
    assert y.dtype == dt and y.shape == (4, 7, 6)
    assert torch.equal(y, ref)
    g = torch.randn(y.shape, dtype=dt, generator=torch.Generator().manual_seed(3))
    gx, gw = torch.autograd.grad(y, (x, dense.weight), g)
    rx, rw = torch.autograd.grad(ref, (x, dense.weight), g)
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gw, rw)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_finite_check_catches_one_bad_value(bad):
    dense = synapse.Dense(4, 2)
    x = torch.zeros(3, 4, 5)
    x[2, 3, 4] = bad
    with pytest.raises(ParameterError, match="input contains NaN/inf"):
        dense(x)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("time_major", [False, True])
def test_dense_finite_check_on_its_smaller_output_sees_every_input_value(bad, time_major):
    """A dense synapse with fewer outputs than inputs checks its output sum: one bad input
    value anywhere is refused, also under zero and masked weights (0 * inf is NaN); a
    finite input whose sums overflow passes."""
    n_in, n_out = 9, 2
    for scale, mask in ((1.0, None), (0.0, None), (1.0, torch.zeros(n_out, n_in))):
        dense = synapse.Dense(n_in, n_out, weight_scale=scale, mask=mask)
        dense.time_major_output = time_major
        for b, i, t in ((0, 0, 0), (1, n_in - 1, 4), (1, 4, 2)):
            x = torch.zeros(2, n_in, 5)
            x[b, i, t] = bad
            with pytest.raises(ParameterError, match="synapse.Dense: input contains NaN/inf"):
                dense(x)
    dense = synapse.Dense(n_in, n_out)
    with torch.no_grad():
        dense.weight.fill_(1.0)
    x = torch.full((1, n_in, 3), 3e38)
    assert torch.isinf(dense(x)).all()


def test_finite_check_accepts_finite_values_whose_sum_overflows():
    # the one-reduction check sums the input: 3e38 + 3e38 is inf in float32, yet every
    # value is finite, so the full check must run and accept it
    pool = synapse.Pool(1)
    x = torch.full((1, 1, 2, 2, 2), 3e38)
    assert torch.isinf(x.sum())
    assert torch.equal(pool(x), x)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize(
    ("kernel", "stride", "hw"),
    [(2, None, (6, 6)), ((2, 3), None, (4, 9)), (2, None, (5, 6)), (3, 2, (7, 7)), (2, 1, (4, 4))],
)
def test_pool_finite_check_sees_every_input_value(bad, kernel, stride, hw):
    """A pool whose windows tile the input checks its output sum, others their input:
    either way one bad value anywhere (here the last row and column, which an untiled
    pool may skip) is refused, even under a zero weight (0 * inf is NaN)."""
    for scale in (1.0, 0.0):
        pool = synapse.Pool(kernel, stride=stride, weight_scale=scale)
        x = torch.zeros(2, 3, *hw, 4)
        x[1, 2, -1, -1, 3] = bad
        with pytest.raises(ParameterError, match="synapse.Pool: input contains NaN/inf"):
            pool(x)

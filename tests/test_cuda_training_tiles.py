"""The tiled numba.cuda training kernels (``autograd._cuda``, ``autograd._li_scan_cuda``:
a warp of 32 rows, shared-memory tiles of 16 steps) at sizes the other tests do not
reach: 70 rows (two full blocks and a partial one) and 37 steps (two full tiles and a
partial one, scanned forwards and, in the backward, from the end), with every optional
trace, refractory steps and the decay gradients (whose scans read the step before each
tile). Against the NumPy reference backend, in float64 so that the comparison is tight:
a row, step or tile border read wrong moves values by far more than the tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import cuda_available

from loihi_slayer.autograd import _cuda_tiles
from loihi_slayer.autograd.sigma_delta import SdnnState, sdnn_apply
from loihi_slayer.neuron import alif, cuba, sigma_delta

pytestmark = [
    pytest.mark.skipif(not cuda_available(), reason="numba.cuda unavailable"),
    pytest.mark.cuda,
]

BATCH, CHANNELS, STEPS = 2, 35, 37  # 70 rows
#: forward values are exact; float64 scans differ only in the order-free exp calls
GRAD_TOL = {"rtol": 1e-9, "atol": 1e-12}


def test_sizes_cross_blocks_and_tiles():
    assert (_cuda_tiles.ROWS, _cuda_tiles.TILE) == (32, 16)
    rows = BATCH * CHANNELS
    assert rows % _cuda_tiles.ROWS and rows > 2 * _cuda_tiles.ROWS
    assert STEPS % _cuda_tiles.TILE and STEPS > 2 * _cuda_tiles.TILE


def _input(seed: int, lo: int, hi: int, scale: float) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.tensor(rng.integers(lo, hi, (BATCH, CHANNELS, STEPS)) * scale)


def _weights(seed: int) -> torch.Tensor:
    return torch.tensor(np.random.default_rng(seed).normal(size=(BATCH, CHANNELS, STEPS)))


def _grads(make, run) -> dict[str, dict[str, torch.Tensor]]:
    """Outputs and gradients of ``run(neuron, x)`` (a dict of output tensors, each
    weighted into the loss) per backend."""
    out = {}
    for backend in ("reference", "cuda"):
        torch.manual_seed(3)  # per-channel parameters drawn alike
        neuron, x = make(backend)
        x = x.clone().requires_grad_(True)
        res = run(neuron, x)
        loss = sum((v * _weights(10 + i)).sum() for i, v in enumerate(res.values()))
        loss.backward()
        got = {k: v.detach().clone() for k, v in res.items()}
        got["grad x"] = x.grad
        for name, p in neuron.named_parameters():
            if p.grad is not None:
                got[f"grad {name}"] = p.grad.detach().clone()
        out[backend] = got
    return out


def _assert_same(out: dict) -> None:
    ref, dev = out["reference"], out["cuda"]
    assert ref.keys() == dev.keys()
    for k in ref:
        if k.startswith("grad"):
            torch.testing.assert_close(dev[k], ref[k], **GRAD_TOL, msg=k)
            assert ref[k].abs().sum() > 0, k  # the gradient reaches this input
        else:
            assert torch.equal(dev[k], ref[k]), k


@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("ref_delay", [1, 3])
def test_cuba_forward_backward(graded, ref_delay):
    def make(backend):
        n = cuba.Neuron(
            0.3,
            (0.05, 0.4),
            (0.02, 0.3),
            tau_grad=0.7,
            scale_grad=2.0,
            shared_param=False,
            requires_grad=True,
            graded_spike=graded,
            ref_delay=ref_delay,
            shape=(CHANNELS,),
            backend=backend,
        ).double()
        return n, _input(1, -10, 40, 1 / 64)

    def spikes(n, x):
        return {"spikes": n(x)}

    def traces(n, x):
        current, voltage = n.dynamics(x)
        return {"current": current, "voltage": voltage, "spikes": n.spike(voltage)}

    for run in (spikes, traces):
        out = _grads(make, run)
        assert out["reference"]["spikes"].abs().sum() > 0
        _assert_same(out)


@pytest.mark.parametrize("graded", [False, True])
def test_alif_backward_scan(graded):
    def make(backend):
        n = alif.Neuron(
            0.3,
            0.2,
            (0.05, 0.4),
            (0.02, 0.3),
            0.1,
            0.2,
            tau_grad=0.7,
            scale_grad=2.0,
            shared_param=False,
            requires_grad=True,
            graded_spike=graded,
            shape=(CHANNELS,),
            backend=backend,
        ).double()
        return n, _input(2, -10, 40, 1 / 64)

    out = _grads(make, lambda n, x: {"spikes": n(x)})
    assert out["reference"]["spikes"].abs().sum() > 0
    _assert_same(out)


@pytest.mark.parametrize("mode", ["delta", "sigma_delta"])
def test_sigma_delta_forward_backward(mode):
    def make(backend):
        n = sigma_delta.Neuron(
            0.02,
            torch.nn.functional.relu,
            tau_grad=0.5,
            scale_grad=2.0,
            requires_grad=True,
            shared_param=False,
            shape=(CHANNELS,),
            backend=backend,
        ).double()
        n.set_bias(torch.linspace(-0.2, 0.2, CHANNELS))
        return n, _input(4, -3000, 4000, 64 / 2.0**18 * (1 if mode == "sigma_delta" else 8))

    def run(n, x):
        if mode == "sigma_delta":
            return {"y": n(x)}
        spec = n._spec("delta")
        rows = BATCH * CHANNELS
        state = SdnnState(*(torch.zeros(rows, dtype=torch.int64) for _ in range(4)))
        return {"y": sdnn_apply(x, n.threshold_param, None, spec, state)}

    out = _grads(make, run)
    assert out["reference"]["y"].abs().sum() > 0
    _assert_same(out)


def test_cuda_input_rounds_half_to_even_as_the_cpu():
    """The synaptic input ``rint(x * 64)`` on the GPU: ties to even and the largest double
    below 0.5 (which ``floor(f + 0.5)`` rounds up), as NumPy's ``rint`` on the CPU."""
    below_half = np.nextafter(0.5, 0.0)
    a = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, below_half, -below_half, 3.0, 0.0])
    x = torch.tensor(a / 64).reshape(1, -1, 1).repeat(1, 1, 3)
    want = np.rint(a) / 64  # the current in synapse units: the integer sum << 6, / 2**12
    currents = {}
    for backend in ("reference", "cuda"):
        n = cuba.Neuron(1000.0, 0.0, 0.0, shape=(a.size,), backend=backend).double()
        currents[backend] = n.dynamics(x)[0][0, :, 0]
    np.testing.assert_array_equal(currents["reference"].numpy(), want)
    np.testing.assert_array_equal(currents["cuda"].numpy(), want)

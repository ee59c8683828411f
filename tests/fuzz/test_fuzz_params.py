"""Fuzz the kernel and block parameter surface.

Kernel parameters (``fixed.CubaParams``, ``fixed.SigmaDeltaParams``) and inputs:
an accepted set must run bit-exactly like the NumPy reference and every value
must lie in the spec's hardware range. Block constructors (``block.cuba``) with
one argument replaced by a hostile value: a refusal must name that argument.
"""

from __future__ import annotations

import math

import numpy as np
from fuzzlib import (
    BLOCK_CASES,
    BLOCK_NEURON,
    BLOCK_STEPS,
    CheckFailed,
    fuzz_settings,
    record,
    run_isolated,
)
from hypothesis import given
from hypothesis import strategies as st

#: Hardware ranges from shared/spec/loihi-fixed-point.md (independent of the code).
SPEC_CUBA = {
    "i_decay": (0, 4096),
    "v_decay": (0, 4096),
    "v_th_mant": (0, 2**17 - 1),
    "ref_delay": (1, 63),
    "bias_mant": (-4096, 4095),
    "bias_exp": (-8, 7),
    "wgt_exp": (-8, 7),
}
SPEC_SDNN = {
    "v_th_mant": (0, 2**17 - 1),
    "bias": (-(2**15), 2**15 - 1),
    "spike_exp": (0, 16),
    "state_exp": (0, 16),
}

HOSTILE = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            math.nan,
            math.inf,
            -math.inf,
            1e300,
            -1,
            0,
            4097,
            2**17,
            "abc",
            "",
            None,
            True,
            [1, 2],
            (),
            b"x",
            1.5,
        ]
    ),
    st.lists(st.integers(-5000, 5000), min_size=0, max_size=4),
)


def _in_spec(value, lo, hi) -> bool:
    arr = np.asarray(value)
    return arr.dtype.kind in "iuf" and bool(np.all((arr >= lo) & (arr <= hi)))


@fuzz_settings(40)
@given(
    kind=st.sampled_from(["cuba", "sdnn"]),
    data=st.data(),
    shape=st.sampled_from([(3, 20), (0, 5), (2, 0), (4,), (2, 2, 6), ()]),
    dtype=st.sampled_from(["i8", "f8", "i2", "?", "U1", "c16"]),
    fill=st.sampled_from([0, 1, 2**40, -(2**40), math.nan]),
)
def test_kernel_parameters_and_inputs(kind, data, shape, dtype, fill):
    spec = SPEC_CUBA if kind == "cuba" else SPEC_SDNN
    name = data.draw(st.sampled_from(sorted(spec)))
    value = data.draw(HOSTILE)

    def target() -> None:
        from loihi_slayer import fixed

        cls = fixed.CubaParams if kind == "cuba" else fixed.SigmaDeltaParams
        params = cls(**{name: value})
        if not _in_spec(value, *spec[name]):
            raise CheckFailed(f"{name} = {value!r} accepted outside {spec[name]}")
        rng = np.random.default_rng(0)
        with np.errstate(all="ignore"):
            x = (rng.integers(-3, 4, shape) * 50 + (fill if fill == fill else 0)).astype(dtype)
            if fill != fill and dtype == "f8" and x.size:
                x.reshape(-1)[0] = math.nan
        run = fixed.cuba if kind == "cuba" else fixed.sigma_delta
        got, _ = run(x, params, record=("s",), backend="cpu")
        ref, _ = run(x, params, record=("s",), backend="reference")
        if not np.array_equal(np.asarray(got["s"]), np.asarray(ref["s"])):
            raise CheckFailed("cpu kernel differs from the NumPy reference")

    out = run_isolated(target)
    if out.kind == "clean" and "Params(" not in out.detail:
        # a refusal of the parameter must name it; one of the input names the input
        if name not in out.detail and not any(w in out.detail for w in ("input", "a_in", "x_in")):
            out.kind, out.detail = "raw", f"error does not name {name!r}: {out.detail}"
    record(f"kernel {kind}", out)


_BLOCK_ARGS = {
    "Dense": ("in_neurons", "out_neurons"),
    "Conv": (
        "in_features",
        "out_features",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
    ),
    "Pool": ("kernel_size", "stride", "padding", "dilation"),
}
_NEURON_KEYS = ("threshold", "current_decay", "voltage_decay", "tau_grad", "scale_grad")


@fuzz_settings(40)
@given(
    cls=st.sampled_from(sorted(_BLOCK_ARGS)),
    data=st.data(),
    time_steps=st.sampled_from(BLOCK_STEPS),
)
def test_block_parameter_surface(cls, data, time_steps):
    arg = data.draw(st.sampled_from(_BLOCK_ARGS[cls] + _NEURON_KEYS))
    value = data.draw(HOSTILE)

    def target() -> None:
        import torch

        from loihi_slayer.block import cuba

        neuron = dict(BLOCK_NEURON)
        kwargs = dict(BLOCK_CASES[cls][0])
        if arg in _NEURON_KEYS:
            neuron[arg] = value
        else:
            kwargs[arg] = value
        try:
            blk = getattr(cuba, cls)(neuron, **kwargs)
        except Exception as exc:
            if arg not in str(exc) and type(exc).__module__.startswith("loihi_slayer"):
                raise CheckFailed(f"refusal does not name {arg!r}: {exc}") from None
            raise
        y = blk(torch.zeros((*BLOCK_CASES[cls][1], time_steps)))
        if not torch.isfinite(y).all():
            raise CheckFailed("non-finite block output for a zero input")

    record(f"block {cls}", run_isolated(target))

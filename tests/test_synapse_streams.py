"""``synapse_fast._delayed``: the input stream delayed by the synaptic latency and
converted once for the GEMM and pixel paths. Expected values: the definition in NumPy,
``out[i, t] = x[i, t - lat]`` (0 before the latency and in padded steps; 0/1 spikes)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from loihi_slayer.fixed import synapse_fast


def _expected(x, lat, binary, dtype, wide):
    n, steps = x.shape
    out = np.zeros((n, wide), dtype)
    src = (x != 0) if binary else x
    if lat < steps:
        out[:, lat:steps] = src[:, : steps - lat].astype(dtype)
    return out


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(0, 20),
    steps=st.integers(1, 40),
    lat=st.integers(0, 45),
    pad=st.sampled_from([0, 0, 3, 16]),
    kind=st.sampled_from(
        [
            (np.int8, np.int8, True),
            (np.int64, np.float32, False),
            (np.int32, np.float64, False),
            (np.int64, np.int16, True),
            (np.uint8, np.float32, False),
        ]
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_delayed_streams_match_their_definition(n, steps, lat, pad, kind, seed):
    """Every row shifted by the latency (also at and past ``T``: all zero), the first
    values of each row zero (not the row before's last ones), spikes cast to 0/1, padded
    steps zero, over any output memory (garbage beforehand)."""
    src_dtype, dtype, binary = kind
    rng = np.random.default_rng(seed)
    info = np.iinfo(src_dtype)
    x = rng.integers(max(info.min, -1000), min(info.max, 1000) + 1, (n, steps)).astype(src_dtype)
    x[rng.random((n, steps)) < 0.5] = 0
    out = np.full((n, steps + pad), 99, dtype)
    synapse_fast._delayed(x, lat, binary, out)
    np.testing.assert_array_equal(out, _expected(x, lat, binary, dtype, steps + pad))

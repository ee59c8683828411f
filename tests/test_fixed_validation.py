"""Bad input: clear errors naming the parameter, the value and the allowed range."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loihi_slayer import fixed
from loihi_slayer.errors import ParameterError, ParameterTypeError
from loihi_slayer.fixed import CubaParams, SigmaDeltaParams


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"i_decay": 4097}, r"i_decay = 4097 is outside the allowed range \[0, 4096\]"),
        ({"i_decay": -1}, r"i_decay = -1 is outside the allowed range \[0, 4096\]"),
        ({"v_decay": 5000}, r"v_decay = 5000 .*\[0, 4096\]"),
        ({"v_th_mant": 131072}, r"v_th_mant = 131072 .*\[0, 131071\]"),
        ({"v_th_mant": -1}, r"v_th_mant = -1"),
        ({"ref_delay": 0}, r"ref_delay = 0 .*\[1, 63\]"),
        ({"wgt_exp": 8}, r"wgt_exp = 8 .*\[-8, 7\]"),
        ({"bias_mant": 4096}, r"bias_mant = 4096 .*\[-4096, 4095\]"),
        ({"i_decay": np.array([0, 10, 9000])}, r"i_decay = 9000"),
        ({"v_decay": float("nan")}, r"v_decay must be finite.*\[0, 4096\]"),
        ({"v_decay": 10.5}, r"v_decay must be a whole number"),
    ],
)
def test_cuba_params_out_of_range(kwargs, pattern):
    with pytest.raises(ParameterError, match=pattern):
        CubaParams(**kwargs)


def test_param_type_errors():
    with pytest.raises(ParameterTypeError, match="i_decay must be an integer"):
        CubaParams(i_decay="fast")
    with pytest.raises(ParameterTypeError, match="v_th_mant must be an integer"):
        CubaParams(v_th_mant=np.array([True]))
    with pytest.raises(ParameterError, match="activation"):
        SigmaDeltaParams(activation="tanh")
    with pytest.raises(ParameterError, match=r"spike_exp = 17 .*\[0, 16\]"):
        SigmaDeltaParams(spike_exp=17)


def test_integral_floats_are_accepted():
    p = CubaParams(i_decay=np.float32(4096.0), v_th_mant=torch.tensor(25.0))
    assert int(p.array("i_decay")) == 4096 and int(p.array("v_th_mant")) == 25


def test_kernel_input_errors():
    p = CubaParams()
    with pytest.raises(ParameterTypeError, match="a_in must hold integers.*float32"):
        fixed.cuba(np.zeros((3, 4), np.float32), p)
    with pytest.raises(ParameterTypeError, match="a_in must be a NumPy array or torch tensor"):
        fixed.cuba([[1, 2]], p)
    with pytest.raises(ParameterError, match="does not broadcast to the neuron shape"):
        fixed.cuba(np.zeros((3, 4), np.int64), CubaParams(i_decay=np.array([1, 2])))
    with pytest.raises(ParameterError, match="record: unknown trace 'w'"):
        fixed.cuba(np.zeros((3, 4), np.int64), p, record=("w",))
    with pytest.raises(ParameterError, match="backend = 'gpu'"):
        fixed.cuba(np.zeros((3, 4), np.int64), p, backend="gpu")
    with pytest.raises(ParameterError, match=r"reset must be a boolean array of shape \(4,\)"):
        fixed.cuba(np.zeros((3, 4), np.int64), p, reset=np.zeros(5, bool))
    with pytest.raises(ParameterError, match=r"state\['u'\] = 16777216 .*allowed range"):
        fixed.cuba(np.zeros((3, 4), np.int64), p, state={"u": np.full(3, 1 << 24)})
    with pytest.raises(ParameterError, match="mode = 'sum'"):
        fixed.sigma_delta(np.zeros((3, 4), np.int64), SigmaDeltaParams(), mode="sum")


def test_synapse_input_errors():
    x = np.zeros((4, 5), np.int64)
    with pytest.raises(ParameterError, match=r"mixed sign mode.*= 256 .*\[-256, 255\]"):
        fixed.dense(x, np.array([[256, -2, 0, 0]]))
    with pytest.raises(ParameterError, match=r"excitatory sign mode.*= 300 .*\[0, 255\]"):
        fixed.dense(x, np.array([[300, 2, 0, 0]]))
    with pytest.raises(ParameterError, match=r"inhibitory sign mode.*= -256 .*\[-255, 0\]"):
        fixed.dense(x, np.array([[-256, -2, 0, 0]]))
    with pytest.raises(ParameterError, match="x has 4 input neurons .* weight expects 3"):
        fixed.dense(x, np.ones((2, 3), np.int64))
    with pytest.raises(ParameterError, match=r"weight_exp = 9 .*\[-8, 7\]"):
        fixed.dense(x, np.ones((2, 4), np.int64), weight_exp=9)
    with pytest.raises(ParameterError, match="weight must be finite"):
        fixed.dense(x, np.full((2, 4), np.nan))
    with pytest.raises(ParameterError, match="groups = 2 does not fit"):
        fixed.conv2d(np.zeros((3, 5, 5, 2), np.int64), np.ones((4, 3, 3, 3), np.int64), groups=2)
    with pytest.raises(ParameterError, match="does not fit input"):
        fixed.conv2d(np.zeros((1, 2, 2, 2), np.int64), np.ones((1, 1, 3, 3), np.int64))


def test_inputs_are_not_modified():
    a = np.arange(12, dtype=np.int64).reshape(3, 4)
    state = {"u": np.array([5, 6, 7]), "v": np.zeros(3, np.int64)}
    before = a.copy(), state["u"].copy()
    for backend in ("reference", "cpu"):
        fixed.cuba(a, CubaParams(v_th_mant=1), state=state, backend=backend)
    np.testing.assert_array_equal(a, before[0])
    np.testing.assert_array_equal(state["u"], before[1])


def test_mixed_odd_weights_floor_to_the_chip_grid():
    # lava-nc truncate_weights: (W >> 1) << 1 for 8-bit mixed weights: 3 -> 2, -3 -> -4
    x = np.ones((2, 1), np.int64)
    assert fixed.dense(x, np.array([[3, 0], [-3, 0]]), latency=0).ravel().tolist() == [2, -4]
    # inhibitory weights are truncated in magnitude: 7 bits, -3 -> -2
    got = fixed.dense(x, np.array([[-3, 0]]), num_weight_bits=7, latency=0)
    assert got.ravel().tolist() == [-2]


def test_scalar_neuron_with_one_element_parameter_arrays_agrees_on_every_backend():
    """A neuron shape of () (input (T,)) with length-1 parameter arrays: the reference
    broadcast them like the kernels instead of raising (found by the fuzz suite)."""
    a = np.arange(6, dtype=np.int64) * 100
    params = fixed.CubaParams(bias_exp=[0], v_th_mant=[1], i_decay=[0])
    ref = fixed.cuba(a, params, backend="reference", record=("s", "u"))[0]
    cpu = fixed.cuba(a, params, backend="cpu", record=("s", "u"))[0]
    # by hand: iDecay 0 keeps u = 64 * sum(a); v > 64 from the second step on
    np.testing.assert_array_equal(ref["u"], 64 * np.cumsum(a))
    for k in ("s", "u"):
        np.testing.assert_array_equal(ref[k], cpu[k])

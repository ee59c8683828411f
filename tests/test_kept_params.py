"""Neuron parameters made once and kept: the emulator's per-layer parameters (remade
only when a record changes) and the kernels' parameter tables kept on the frozen
parameter objects (for the last mode and neuron shape).

Expected values come from the NumPy reference backend and from emulators built fresh
on the edited network, which the rest of the suite checks against the reference.
"""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
from test_emulator_fast import _mixed_network

from loihi_slayer import fixed
from loihi_slayer.emulate import Emulator
from loihi_slayer.emulate.emulator import _has_neuron
from loihi_slayer.models.base import NeuronModel

STEPS = 12


def test_replace_leaves_the_original_parameters_as_they_were():
    """``dataclasses.replace`` makes a new parameter set; the old one keeps its values
    (their validated arrays were once shared between the two and overwritten)."""
    cuba = fixed.CubaParams(v_th_mant=10, i_decay=[1, 2, 3])
    other = dataclasses.replace(cuba, v_th_mant=20, i_decay=7)
    assert int(cuba.array("v_th_mant")) == 10 and int(other.array("v_th_mant")) == 20
    np.testing.assert_array_equal(cuba.array("i_decay"), [1, 2, 3])
    sd = fixed.SigmaDeltaParams(v_th_mant=3, bias=[4, 5])
    sd2 = dataclasses.replace(sd, bias=-1)
    np.testing.assert_array_equal(sd.array("bias"), [4, 5])
    assert int(sd2.array("bias")) == -1


def test_cuba_tables_follow_the_neuron_shape():
    """One parameter set with per-channel values over neuron shapes A, B, A: each call
    the reference's result (a table kept for A would not broadcast to B)."""
    rng = np.random.default_rng(0)
    params = fixed.CubaParams(
        i_decay=rng.integers(0, 4097, (3, 1, 1)),
        v_decay=rng.integers(0, 4097, (3, 1, 1)),
        v_th_mant=rng.integers(1, 40, (3, 1, 1)),
        bias_mant=rng.integers(-50, 50, (3, 1, 1)),
    )
    for lead in ((3, 4, 5), (3, 2, 7), (3, 4, 5)):
        a = rng.integers(-300, 3000, lead + (20,)).astype(np.int32)
        want, _ = fixed.cuba(a, params, record=("s", "v"), backend="reference")
        got, _ = fixed.cuba(a, params, record=("s", "v"), backend="cpu")
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{lead} {k}")


def test_sigma_delta_tables_follow_the_mode():
    """One parameter set run in each mode in turn, and a second shape: each call the
    reference's result (the mode is a row of the table)."""
    rng = np.random.default_rng(1)
    params = fixed.SigmaDeltaParams(v_th_mant=rng.integers(0, 9, 6), bias=rng.integers(-3, 4, 6))
    for mode, lead in (
        ("sigma_delta", (6,)),
        ("sigma", (6,)),
        ("delta", (6,)),
        ("sigma_delta", (2, 6)),
        ("sigma_delta", (6,)),
    ):
        x = rng.integers(-5000, 5000, lead + (30,))
        want, _ = fixed.sigma_delta(x, params, mode=mode, backend="reference")
        got, _ = fixed.sigma_delta(x, params, mode=mode, backend="cpu")
        np.testing.assert_array_equal(got["s"], want["s"], err_msg=f"{mode} {lead}")


def test_pickled_parameters_carry_no_kept_table():
    params = fixed.CubaParams(v_th_mant=np.arange(1, 2001))
    a = np.ones((2000, 8), np.int32)
    fixed.cuba(a, params, backend="cpu")
    copy = pickle.loads(pickle.dumps(params))
    assert copy._tables == {}
    assert len(pickle.dumps(params)) < 2 * len(
        pickle.dumps(fixed.CubaParams(v_th_mant=copy.v_th_mant))
    )
    np.testing.assert_array_equal(
        fixed.cuba(a, copy, backend="cpu")[0]["s"],
        fixed.cuba(a, params, backend="reference")[0]["s"],
    )


def _spikes(emu: Emulator, x: np.ndarray) -> dict[int, np.ndarray]:
    traces = emu.run(x, STEPS, graded_input=True, record=("s",))
    return {i: traces[i, "s"].copy() for i in traces.layers}


@pytest.mark.parametrize("kind", ["cuba", "sdnn"])
def test_an_edited_neuron_record_takes_effect_in_the_next_run(kind, monkeypatch):
    """Runs before and after editing the shared neuron record (a field replaced, then a
    per-channel array edited in place): each run equals a fresh emulator's on the
    network as it is then, the edits change the spikes, and unchanged records are not
    made into parameters again."""
    net = _mixed_network(kind, False)
    x = np.random.default_rng(2).integers(0, 40, (2, 8, 8, 10))
    emu = Emulator(net)
    first = _spikes(emu, x)
    made = []
    real = NeuronModel.params_from_record

    def counted(self, neuron, ctx):
        made.append(ctx.index)
        return real(self, neuron, ctx)

    monkeypatch.setattr(NeuronModel, "params_from_record", counted)
    again = _spikes(emu, x)
    assert made == []  # nothing changed: the kept parameters
    for i in first:
        np.testing.assert_array_equal(again[i], first[i])

    neuron = net.layers[1].neuron
    neuron.v_th_mant = 2 if kind == "sdnn" else 1
    edited = _spikes(emu, x)
    assert sorted(set(made)) == [i for i, layer in enumerate(net.layers) if _has_neuron(layer)]
    for i, want in _spikes(Emulator(net), x).items():
        np.testing.assert_array_equal(edited[i], want, err_msg=f"layer {i}")
    assert any(not np.array_equal(edited[i], first[i]) for i in first)

    # a per-channel array of layer 1 (its own record), then one value edited in place
    net.layers[1].neuron = dataclasses.replace(neuron, v_th_mant=np.array([1, 2, 3, 4]))
    before = _spikes(emu, x)
    net.layers[1].neuron.v_th_mant[2] = 100_000  # channel 2 falls silent
    after = _spikes(emu, x)
    for i, want in _spikes(Emulator(net), x).items():
        np.testing.assert_array_equal(after[i], want, err_msg=f"layer {i}")
    assert not np.array_equal(after[1], before[1])

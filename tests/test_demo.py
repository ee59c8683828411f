"""The ``loihi-slayer demo`` job with a tiny budget: exit 0, zero gap, files written."""

from __future__ import annotations

import builtins
import logging

import numpy as np
import pytest
import torch
from helpers import bar_pieces, own_lines, root_console_handler

from loihi_slayer import cli, demo
from loihi_slayer.golden import load_case, verify_case
from loihi_slayer.hdf5 import load_network


def test_demo_cli_two_epochs(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = cli.main(["demo", "--out", str(out), "--epochs", "2", "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "gap: ZERO" in text and str(out / "network.net") in text
    net = load_network(out / "network.net")
    assert [layer.type_name for layer in net.layers] == ["dense", "dense"]
    assert net.layers[0].weight.shape == (256, 200)
    assert net.layers[0].neuron.v_th_mant == 6 and net.layers[0].neuron.i_decay == 4096
    assert (out / "raster.png").stat().st_size > 1000
    case = load_case(out / "golden.h5")
    assert case.num_steps == 2000
    assert verify_case(out / "golden.h5").ok


def test_run_demo_without_matplotlib(tmp_path, monkeypatch, caplog):
    real_import = builtins.__import__

    def no_mpl(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    res = demo.run_demo(tmp_path, epochs=1, seconds=None, progress=False)
    assert res.ok and res.plot is None
    assert "matplotlib is not installed" in caplog.text
    assert res.gap.compared == {0: 256 * 2000, 1: 200 * 2000}
    assert res.epochs == 1 and len(res.losses) == 1 and np.isfinite(res.losses[0])


def test_oxford_data_shapes():
    x, y = demo.oxford_data()
    assert x.shape == (1, 200, 2000) and y.shape == (1, 200, 2000)
    assert not x[..., 0].any()
    assert 1800 < int(x.sum()) <= 1881


def test_train_needs_a_budget():
    with pytest.raises(ValueError):
        demo.train(demo.Network(), *demo.oxford_data(50), epochs=None, seconds=None)


def test_cli_shows_the_compile_notice_without_verbose(monkeypatch):
    """The CLI logs at WARNING unless ``-v``, but the first compile's notice (INFO) shows
    either way, and ``-v`` adds each compile's time (DEBUG)."""
    from loihi_slayer import _numba_cache

    monkeypatch.setattr(_numba_cache.logger, "level", _numba_cache.logger.level)  # restored
    assert cli.main(["doctor", "--no-self-test"]) == 0
    assert _numba_cache.logger.getEffectiveLevel() == logging.INFO
    assert cli.main(["-v", "doctor", "--no-self-test"]) == 0
    assert _numba_cache.logger.getEffectiveLevel() == logging.DEBUG


def test_train_writes_log_records_above_its_bar(capsys):
    """A record logged during training (the first epoch's compile notice) is written on a
    line of its own, not glued to the progress bar's text."""

    class Noisy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = demo.Network()

        def forward(self, x):
            logging.getLogger("loihi_slayer.probe").warning("notice during training")
            return self.net(x)

    with root_console_handler() as handler:
        demo.train(Noisy(), *demo.oxford_data(50), epochs=2, seconds=None)
        assert handler in logging.getLogger().handlers
    err = capsys.readouterr().err
    assert own_lines(err, "notice during training") == 2
    assert any(part.startswith("training: 100%") for part in bar_pieces(err))

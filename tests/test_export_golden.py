"""Golden export check: lava-dl's Oxford network.pt -> our blocks -> network.net, bit for bit."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from loihi_slayer import block
from loihi_slayer.block import cuba

DATA = Path(__file__).parent / "data"
PARAMS = {"threshold": 0.1, "current_decay": 1, "voltage_decay": 0.1}


class OxfordNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(
            [cuba.Dense(PARAMS, 200, 256), cuba.Dense(PARAMS, 256, 200)]
        )


def _datasets(f: h5py.File) -> dict[str, h5py.Dataset]:
    out = {}
    f.visititems(
        lambda name, obj: out.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None
    )
    return out


def test_oxford_export_reproduces_golden_file(tmp_path):
    net = OxfordNet()
    state = torch.load(DATA / "network.pt", map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    out = tmp_path / "network.net"
    block.export_network(net, out)
    with h5py.File(out, "r") as a, h5py.File(DATA / "network.net", "r") as b:
        da, db = _datasets(a), _datasets(b)
        assert sorted(da) == sorted(db)
        assert len(db) == 22  # 11 datasets per layer
        for name, ref in db.items():
            got = da[name]
            assert got.dtype == ref.dtype, name
            assert got.shape == ref.shape, name
            assert np.array_equal(got[()], ref[()]), name
        assert not a.attrs and not b.attrs
    # export does not touch the model
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])

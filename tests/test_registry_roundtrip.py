"""Every registered neuron model goes the whole way: train, export, file, import, emulate, zero gap.

The test enumerates :func:`loihi_slayer.models.names`, so a model added to the
registry without a training neuron, a block module and an entry here fails.
Per-family details (every block type, ties, saturation, delays) live in the
family's own tests; this one proves that no step of the pipeline is missing.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from loihi_slayer import block, gap, hdf5, models

T = 32

#: neuron_params per model (lava-dl argument names) and the input kind
CASES = {
    "cuba": ({"threshold": 0.5, "current_decay": 0.25, "voltage_decay": 0.03}, "spikes"),
    "sigma_delta": ({"threshold": 0.1, "activation": torch.nn.functional.relu}, "graded"),
    "alif": (
        {
            "threshold": 0.4,
            "threshold_step": 0.1,
            "current_decay": 0.25,
            "voltage_decay": 0.05,
            "threshold_decay": 0.1,
            "refractory_decay": 0.2,
        },
        "spikes",
    ),
    "rf": ({"threshold": 0.1, "period": 8, "decay": 0.05}, "spikes"),
    "rf_iz": ({"threshold": 0.1, "period": 8, "decay": 0.05}, "spikes"),
    "adrf": (
        {
            "threshold": 0.1,
            "threshold_step": 0.05,
            "period": 8,
            "decay": 0.05,
            "threshold_decay": 0.1,
            "refractory_decay": 0.2,
        },
        "spikes",
    ),
    "adrf_iz": (
        {
            "threshold": 0.1,
            "threshold_step": 0.05,
            "period": 8,
            "decay": 0.05,
            "threshold_decay": 0.1,
            "refractory_decay": 0.2,
        },
        "spikes",
    ),
}


def test_every_registered_model_has_a_case():
    assert set(models.names()) == set(CASES), set(models.names()) ^ set(CASES)


def _input(kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if kind == "spikes":
        x = (torch.rand((2, 12, T), generator=g) < 0.4).float()
    else:  # graded, on the 1/4 grid so that x * 4096 is an integer
        x = torch.randint(0, 5, (2, 12, T), generator=g).float() / 4
    x[..., 0] = 0
    return x


@pytest.mark.parametrize("name", sorted(CASES))
def test_train_export_import_emulate_zero_gap(name, tmp_path):
    params, kind = CASES[name]
    family = importlib.import_module(f"loihi_slayer.block.{name}")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        family.Dense(params, 12, 10, weight_scale=4),
        family.Dense(params, 10, 6, weight_scale=4),
    )
    x = _input(kind)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(2):
        loss = ((net(x) - 0.2) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path / f"{name}.net"
    block.export_network(net, path)
    loaded = hdf5.load_network(path)
    assert isinstance(block.network_record(net), hdf5.Network)
    rep = block.compare_with_emulator(net, x, loaded)
    assert rep.compared and rep.ok and not rep.skipped, rep.summary()
    outs = gap._eval_outputs(list(net), x)
    assert sum(int((o != 0).sum()) for o in outs) > 0, f"{name}: no events to compare"

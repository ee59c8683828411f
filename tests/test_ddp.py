"""DistributedDataParallel: 2 gloo processes on CPU train exactly like one process on the
global batch; blocks create every parameter and buffer before the first forward."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from loihi_slayer.block import cuba, sigma_delta

WORLD = 2
STEPS = 3
BATCH = 4  # global batch; each rank takes BATCH // WORLD samples


def _cuba_net() -> torch.nn.Sequential:
    p = {
        "threshold": 0.3,
        "current_decay": 0.25,
        "voltage_decay": 0.05,
        "requires_grad": True,
        "shared_param": False,
    }
    return torch.nn.Sequential(
        cuba.Conv(p, 2, 3, 3, weight_scale=3, input_shape=(6, 6)),
        cuba.Flatten(),
        cuba.Dense(p, 3 * 4 * 4, 5, weight_scale=3, delay=True),
    )


def _sdnn_net() -> torch.nn.Sequential:
    p = {"threshold": 0.05, "activation": F.relu, "requires_grad": True}
    return torch.nn.Sequential(
        sigma_delta.Input(p, shape=(2, 6, 6)),
        sigma_delta.Conv(p, 2, 3, 3, weight_scale=3, input_shape=(6, 6)),
        sigma_delta.Flatten(),
        sigma_delta.Dense(p, 3 * 4 * 4, 5, weight_scale=3),
    )


NETS = {"cuba": _cuba_net, "sigma_delta": _sdnn_net}


def _data(kind: str):
    g = torch.Generator().manual_seed(1)
    if kind == "cuba":
        x = (torch.rand(BATCH, 2, 6, 6, 16, generator=g) < 0.4).float()
    else:
        x = torch.rand(BATCH, 2, 6, 6, 16, generator=g, dtype=torch.float64)
    return x, torch.rand(BATCH, 5, 16, generator=g, dtype=x.dtype)


def _train(model, params, kind: str, rows: slice) -> None:
    opt = torch.optim.SGD(params, lr=0.05)
    x, y = _data(kind)
    for _ in range(STEPS):
        loss = F.mse_loss(model(x[rows]), y[rows])  # mean: DDP's gradient average matches
        opt.zero_grad()
        loss.backward()
        opt.step()


def _worker(rank: int, port: int, out_dir: str) -> None:
    import numba
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)  # 2 processes on 2 cores: no oversubscription
    numba.set_num_threads(1)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        per = BATCH // WORLD
        for kind, make in NETS.items():
            torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
            net = make()
            ddp = DistributedDataParallel(net)
            _train(ddp, ddp.parameters(), kind, slice(rank * per, (rank + 1) * per))
            if rank == 0:
                torch.save(net.state_dict(), os.path.join(out_dir, f"{kind}.pt"))
        # both ranks done before the teardown: a rank that destroys the group while the
        # other still talks to it can abort in gloo's threads ("terminate called without
        # an active exception", about one run in four here)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_equal_one_process_on_the_global_batch(tmp_path):
    import torch.multiprocessing as mp

    ctx = mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 600
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail("DDP workers did not finish in 600 s")
    for kind, make in NETS.items():
        torch.manual_seed(0)  # rank 0's initial weights
        net = make()
        start = {k: v.clone() for k, v in net.state_dict().items()}
        _train(net, net.parameters(), kind, slice(0, BATCH))
        ddp_state = torch.load(tmp_path / f"{kind}.pt")
        assert ddp_state.keys() == net.state_dict().keys()
        moved = 0
        for k, v in net.state_dict().items():
            # same global-batch gradient; only the all-reduce summation order differs
            torch.testing.assert_close(ddp_state[k], v, rtol=1e-5, atol=1e-6, msg=f"{kind} {k}")
            moved += int(not torch.equal(v, start[k]))
        assert moved >= 2, f"{kind}: training changed nothing"


@pytest.mark.parametrize("kind", sorted(NETS))
def test_forward_creates_no_parameters_or_buffers(kind):
    """What DDP registers at wrap time is everything the forward uses."""
    net = NETS[kind]()
    before = {k: v.shape for k, v in (*net.named_parameters(), *net.named_buffers())}
    x, _ = _data(kind)
    net(x)
    after = {k: v.shape for k, v in (*net.named_parameters(), *net.named_buffers())}
    assert before == after


ROOT = Path(__file__).resolve().parents[1]
NMNIST = ROOT.parent / "shared" / "datasets" / "nmnist-small"


@pytest.mark.skipif(not NMNIST.is_dir(), reason="shared/datasets/nmnist-small is absent")
def test_ddp_nmnist_example_under_torchrun(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port",
        str(_free_port()),
        str(ROOT / "examples" / "ddp_nmnist.py"),
        "--quick",
        "--out",
        str(tmp_path),
    ]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "emulator gap: zero" in res.stdout
    assert (tmp_path / "nmnist_ddp.net").is_file()

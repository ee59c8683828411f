"""OpenMP wait policy set by ``import loihi_slayer`` (loihi_slayer._threads)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from helpers import run_python

from loihi_slayer import _threads

ROOT = Path(__file__).resolve().parents[1]


def test_sets_passive_when_nothing_is_chosen_and_torch_is_not_loaded():
    env: dict[str, str] = {}
    assert _threads.configure(env, {}) == "PASSIVE"
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}


@pytest.mark.parametrize(
    ("env", "modules"),
    [
        ({"OMP_WAIT_POLICY": "active"}, {}),  # the user's choice wins
        ({"GOMP_SPINCOUNT": "3000"}, {}),  # a bounded spin is a choice too
        ({_threads.ENV: "keep"}, {}),  # opt-out
        ({_threads.ENV: " Keep "}, {}),
        ({}, {"torch": object()}),  # runtime already started: the variable would do nothing
    ],
)
def test_leaves_the_environment_alone(env, modules):
    before = dict(env)
    assert _threads.configure(env, modules) is None
    assert env == before


def test_override_value_and_bad_value(caplog):
    env = {_threads.ENV: "active"}
    assert _threads.configure(env, {}) == "ACTIVE"
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"
    bad = {_threads.ENV: "fast"}
    with caplog.at_level(logging.WARNING, logger="loihi_slayer._threads"):
        assert _threads.configure(bad, {}) is None
    assert "OMP_WAIT_POLICY" not in bad
    assert _threads.ENV in caplog.text and "'fast'" in caplog.text and "PASSIVE" in caplog.text


def _policy_after(code: str, **extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", _threads.ENV)}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    out = run_python(code, env=env, check=True)
    return out.stdout.strip()


def test_import_sets_the_policy_for_the_process_and_its_children():
    code = (
        "import os, subprocess, sys, loihi_slayer\n"
        "print(subprocess.run([sys.executable, '-c', "
        "'import os; print(os.environ.get(\"OMP_WAIT_POLICY\"))'], capture_output=True, "
        "text=True).stdout.strip())"
    )
    assert _policy_after(code) == "PASSIVE"
    assert _policy_after(code, **{_threads.ENV: "keep"}) == "None"
    assert _policy_after(code, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"


def _first_import_line(tree, top: str) -> int | None:
    import ast

    lines = [
        node.lineno
        for node in tree.body
        if (isinstance(node, ast.Import) and any(a.name.split(".")[0] == top for a in node.names))
        or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == top)
    ]
    return min(lines, default=None)


def test_examples_import_loihi_slayer_before_torch():
    """Every example that imports both loads loihi_slayer first, so that the passive wait
    policy is set before torch loads the OpenMP runtime (examples/ruff.toml keeps it so)."""
    import ast

    root = Path(__file__).resolve().parents[1] / "examples"
    checked = 0
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        ours = _first_import_line(tree, "loihi_slayer")
        first_torch = _first_import_line(tree, "torch")
        if ours is not None and first_torch is not None:
            assert ours < first_torch, f"{path.name}: torch imported before loihi_slayer"
            checked += 1
    assert checked >= 6


_FOLLOW = """
import json, numpy as np, torch, numba
from loihi_slayer.neuron import cuba

neuron = cuba.Neuron(threshold=0.5, current_decay=0.25, voltage_decay=0.03)
z = torch.rand(4, 4096, 64)  # above the parallel threshold
torch.set_num_threads(1)
neuron(z)  # the first parallel kernel starts numba's pool
seen = [(torch.get_num_threads(), numba.get_num_threads())]
neuron(z)
seen.append((torch.get_num_threads(), numba.get_num_threads()))
torch.set_num_threads(2)
neuron(z)
seen.append((torch.get_num_threads(), numba.get_num_threads()))
from loihi_slayer._threads import torch_threads
with torch_threads(1):  # single-threaded GEMMs beside parallel neurons
    numba.set_num_threads(1)
    neuron(z)
    seen.append((torch.get_num_threads(), numba.get_num_threads()))
seen.append((torch.get_num_threads(), numba.get_num_threads()))
print(json.dumps([seen, numba.config.NUMBA_NUM_THREADS]))
"""


def test_kernels_keep_and_follow_torchs_thread_count():
    """``torch.set_num_threads(1)`` survives the first parallel kernel (a training
    neuron's, which starts numba's OpenMP pool), numba's regions follow torch's count
    (capped by numba's), and inside ``torch_threads(1)`` they keep the count set outside
    it."""
    import json

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    env.pop("NUMBA_NUM_THREADS", None)
    out = run_python(_FOLLOW, env=env, check=True).stdout
    seen, numba_max = json.loads(out.strip().splitlines()[-1])
    two = min(2, numba_max)
    assert seen == [[1, 1], [1, 1], [2, two], [1, two], [2, two]]


_ONE = """
import json, numpy as np, torch, numba
from numba import njit, prange
from loihi_slayer._threads import on_one_thread

@njit(parallel=True)
def where(ids):  # each iteration's thread and the region's thread count
    for i in prange(ids.shape[0]):
        ids[i] = numba.get_thread_id() + 100 * numba.get_num_threads()
    return ids

torch.set_num_threads(1)
one = on_one_thread(where, np.zeros(4096, np.int64))  # starts numba's pool
after_first = [torch.get_num_threads(), numba.get_num_threads()]
torch.set_num_threads(2)
numba.set_num_threads(2)
again = on_one_thread(where, np.zeros(4096, np.int64))
after = [torch.get_num_threads(), numba.get_num_threads()]
both = where(np.zeros(4096, np.int64))
print(json.dumps([sorted(set(one.tolist())), after_first, sorted(set(again.tolist())), after,
                  sorted(set(both.tolist()))]))
"""


def test_on_one_thread_runs_a_parallel_kernel_alone_and_restores_the_count():
    """``on_one_thread`` (the serial twin of a parallel kernel, the same compiled code)
    runs every ``prange`` iteration on the calling thread with a region of one thread,
    then restores numba's count; its first call starts numba's pool without undoing
    ``torch.set_num_threads``. The same kernel called directly uses both threads."""
    import json

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    env["NUMBA_NUM_THREADS"] = "2"
    out = run_python(_ONE, env=env, check=True).stdout
    one, after_first, again, after, both = json.loads(out.strip().splitlines()[-1])
    assert one == [100] and again == [100]  # thread 0, a region of one thread
    assert after_first == [1, 2]  # torch's count kept, numba's (its default) restored
    assert after == [2, 2]
    assert both == [200, 201]


@pytest.mark.parametrize(
    ("env", "passive"),
    [
        ({"OMP_WAIT_POLICY": "PASSIVE"}, True),
        ({"OMP_WAIT_POLICY": " passive "}, True),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, False),
        ({"GOMP_SPINCOUNT": "3000"}, False),
        ({}, False),
    ],
)
def test_waits_passively_reads_the_policy(env, passive):
    assert _threads.waits_passively(env) is passive


@pytest.mark.parametrize("policy", ["PASSIVE", "ACTIVE", None])
def test_light_kernels_need_more_work_for_a_region_only_where_workers_sleep(monkeypatch, policy):
    """A light kernel's work counts ``LIGHT_COST`` times less where idle workers sleep
    (N-MNIST's narrow product, 32 x 128 rows of 60 steps, and its operand pass, 32 x 578
    rows, then run on the calling thread); a neuron kernel's limit, and every limit with
    spinning workers, stay the same."""
    from loihi_slayer.autograd import _dispatch

    if policy is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", policy)
    limit = _dispatch.PARALLEL_MIN_WORK
    light = _dispatch.LIGHT_COST
    assert light == 32
    assert _dispatch.use_parallel(32 * 128, 60)  # 245 760 >= 65 536
    assert _dispatch.use_parallel(32 * 128, 60, light=True) is (policy != "PASSIVE")
    assert _dispatch.use_parallel(32 * 578, 60, light=True) is (policy != "PASSIVE")
    assert _dispatch.use_parallel(limit // 60 + 1, 60)
    assert not _dispatch.use_parallel(limit // 60 - 1, 60)
    # light work at LIGHT_COST times the limit takes a region with sleeping workers too
    assert _dispatch.use_parallel(light * limit, 1, light=True)
    assert _dispatch.use_parallel(light * limit - light, 1, light=True) is (policy != "PASSIVE")


@pytest.mark.parametrize("policy", ["PASSIVE", None])
def test_small_torch_ops_run_on_one_thread_only_where_workers_sleep(monkeypatch, policy):
    import torch

    if policy is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", policy)
    before = torch.get_num_threads()
    with _threads.small_torch_ops():
        inside = torch.get_num_threads()
    assert inside == (1 if policy == "PASSIVE" else before)
    assert torch.get_num_threads() == before

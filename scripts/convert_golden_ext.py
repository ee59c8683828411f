"""Convert the lava-dl golden cases of ``shared/golden-ext`` into golden case files.

Each upstream criterion of ``golden-ext/CATALOG.md`` becomes one case in
``golden/`` that ``loihi-slayer verify`` reproduces exactly. Orientation: the
upstream arrays are Lava XYZ(T) or slayer NCHWT; the cases use PyTorch (C, H, W)
order, flattened C-order per layer, with columns at explicit Lava steps.

Usage::

    python scripts/convert_golden_ext.py [--src ../shared/golden-ext] [--out golden]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from loihi_slayer.golden import Expectation, GoldenCase, save_case
from loihi_slayer.hdf5 import (
    ConvLayer,
    DenseLayer,
    InputLayer,
    Network,
    SigmaDeltaNeuron,
    load_network,
    save_network,
)

ROOT = Path(__file__).resolve().parents[1]


def net_bytes(network: Network) -> bytes:
    """Serialize a schema network to netx ``.net`` bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.net"
        save_network(network, path)
        return path.read_bytes()


def flat(a: np.ndarray) -> np.ndarray:
    """(*neurons, T) -> (neurons, T) int64."""
    return np.asarray(a).reshape(-1, a.shape[-1]).astype(np.int64)


def xyz_to_chw(a: np.ndarray) -> np.ndarray:
    """Lava (X, Y, Z[, T]) -> PyTorch (C, H, W[, T])."""
    return a.transpose((2, 1, 0) + tuple(range(3, a.ndim)))


def lava_kernel_to_torch(k: np.ndarray) -> np.ndarray:
    """Lava conv kernel (out, kx, ky, in) -> PyTorch (out, in, kH, kW) (undo netx's flip)."""
    return k.transpose(0, 3, 2, 1)[:, :, ::-1, ::-1].copy()


def tinynet_cases(src: Path) -> dict[str, GoldenCase]:
    d = src / "tinynet"
    tiny_bytes = (d / "tiny.net").read_bytes()
    tiny = load_network(d / "tiny.net")
    bias = xyz_to_chw(np.load(d / "input_bias.npy")).astype(np.int64)  # (3, 16, 16)
    spikes_in = np.load(d / "input.npy")[0]  # (3, 16, 16, 16) NCHWT
    out = np.load(d / "output.npy")[0]  # (36, 1, 1, 16)
    layer1 = np.load(d / "layer1.npy")[0]  # (24, 6, 6, 16)
    current = np.load(d / "current.npy")[0]  # (24, 6, 6, 16), u_hw / 64
    cases = {}

    # test_hdf5.py::test_tinynet: io.reset.Reset(interval=17, offset=i-1) on block i
    # zeroes the state *after* step t when (t-1) % 17 == (i-1) % 17, i.e. at the start
    # of step t+1.
    steps = np.arange(1, 21)
    resets = {i: (steps - 2) % 17 == (i - 1) % 17 for i in range(3)}
    cases["tinynet_netx"] = GoldenCase(
        num_steps=20,
        network_bytes=tiny_bytes,
        input_mode="bias",
        input=bias,
        resets=resets,
        expectations=[
            Expectation(2, "s", flat(out[..., 1:16]), first_step=3, name="output spikes"),
        ],
        checks={"layer/0/weight": np.float32([36.0]), "layer/0/bias": np.float32([34.0])},
        description=(
            "lava-dl test_hdf5.py::test_tinynet: tiny.net with per-pixel input bias and "
            "Reset(interval=17, offset=i-1) on u and v of block i; output steps 3..17 equal "
            "slayer output indices 1..15 (depth 2). Also test_input_transform: the input "
            "layer stores weight 36 and bias 34."
        ),
        source="lava-nc/lava-dl@d825ac5 tests/lava/lib/dl/netx/{tiny.net,gts/tinynet}",
    )

    # test_hdf5_nx.py::test_tinynet: Network(reset_interval=16): LIFReset offsets 1, 2, 3
    steps = np.arange(1, 20)
    cases["tinynet_netx_reset_interval"] = GoldenCase(
        num_steps=19,
        network_bytes=tiny_bytes,
        input_mode="bias",
        input=bias,
        resets={i: steps % 16 == (1 + i) % 16 for i in range(3)},
        expectations=[
            Expectation(2, "s", flat(out[..., 1:16]), first_step=3, name="output spikes"),
        ],
        description=(
            "lava-dl test_hdf5_nx.py::test_tinynet (Loihi 2 test, reproduced on the "
            "emulator): netx reset_interval=16 gives LIFReset offsets 1, 2, 3 (state zeroed "
            "at the start of step t when t % 16 == offset); 19 steps; same criterion."
        ),
        source="lava-nc/lava-dl@d825ac5 tests/lava/lib/dl/netx/{tiny.net,gts/tinynet}",
    )

    # test_blocks.py::TestLIFBlocks::test_input: input block alone, step t <-> index t
    cases["tinynet_input_block"] = GoldenCase(
        num_steps=15,
        network_bytes=tiny_bytes,
        num_layers=1,
        input_mode="bias",
        input=bias,
        expectations=[Expectation(0, "s", flat(spikes_in[..., 1:16]), name="input spikes")],
        checks={"num_layers": np.int64(1)},
        description=(
            "lava-dl test_blocks.py::TestLIFBlocks::test_input: Input(LIF vth=25, du=4095, "
            "dv=1024, bias_exp=6, bias=input_bias) for 15 steps equals slayer input spikes "
            "indices 1..15."
        ),
        source="lava-nc/lava-dl@d825ac5 tests/lava/lib/dl/netx/gts/tinynet",
    )

    # test_hdf5.py::test_num_layers: Network(num_layers=2) builds at most 2 blocks
    cases["tinynet_num_layers"] = GoldenCase(
        num_steps=15,
        network_bytes=tiny_bytes,
        num_layers=2,
        input_mode="bias",
        input=bias,
        expectations=[Expectation(0, "s", flat(spikes_in[..., 1:16]), name="input spikes")],
        checks={"num_layers": np.int64(2)},
        description="lava-dl test_hdf5.py::test_num_layers: num_layers=2 builds 2 layers.",
        source="lava-nc/lava-dl@d825ac5 tests/lava/lib/dl/netx/tiny.net",
    )

    # test_blocks.py::TestLIFBlocks::test_conv: conv block fed by a source
    conv_net = Network([InputLayer((3, 16, 16)), tiny.layers[1]])
    reset_after_step_1 = np.zeros(16, bool)
    reset_after_step_1[1] = True  # "after step 1" = start of step 2
    s_mask = np.ones((24 * 6 * 6, 16), bool)
    s_mask[:, 0] = False  # the test zeroes s[..., 0] before comparing
    cases["tinynet_conv_block"] = GoldenCase(
        num_steps=16,
        network_bytes=net_bytes(conv_net),
        input_mode="inject",
        input=spikes_in[..., 1:16].astype(np.int64),  # RingBuffer wraps to column 0 at 16
        cyclic=True,
        resets={1: reset_after_step_1},
        expectations=[
            Expectation(1, "s", flat(layer1), mask=s_mask, name="conv spikes"),
            Expectation(1, "u", 64 * flat(current), name="conv current"),
        ],
        description=(
            "lava-dl test_blocks.py::TestLIFBlocks::test_conv: Conv(24x6x6, stride 2, "
            "tiny.net layer 1 kernel and bias) fed with slayer input indices 1..15 (the "
            "ring buffer replays column 0 at step 16); u and v zeroed after step 1; "
            "spikes (step 1 masked, as the test zeroes it) and u = 64*current over 16 steps."
        ),
        source="lava-nc/lava-dl@d825ac5 tests/lava/lib/dl/netx/gts/tinynet",
    )
    return cases


def sdnn_cases(src: Path) -> dict[str, GoldenCase]:
    d = src / "tinynet_sdnn"
    in_bias = np.load(d / "input_bias.npy")  # XYZ (16, 16, 3)
    expected_in = np.load(d / "input.npy")  # XYZT (16, 16, 3, 15)
    kernel = lava_kernel_to_torch(np.load(d / "layer1_kernel.npy"))
    bias1 = np.load(d / "layer1_bias.npy")
    layer1 = np.load(d / "layer1.npy")  # XYZT (6, 6, 24, 16)
    w2 = np.load(d / "layer2_weight.npy")  # (100, 864)
    layer2 = np.load(d / "layer2.npy")  # (100, 16)
    cases = {}

    t = np.arange(15)
    x = (in_bias[..., None] * np.sin(2 * np.pi * t / 15)).astype(int)  # int() truncates
    net = Network([InputLayer((3, 16, 16), neuron=SigmaDeltaNeuron(v_th_mant=20))])
    cases["tinynet_sdnn_input"] = GoldenCase(
        num_steps=15,
        network_bytes=net_bytes(net),
        input_mode="inject",
        input=xyz_to_chw(x).astype(np.int64),
        expectations=[Expectation(0, "s", flat(xyz_to_chw(expected_in)), name="delta output")],
        description=(
            "lava-dl test_blocks.py::TestSDNBlocks::test_input: Delta(vth=20, spike_exp=6, "
            "state_exp=6) driven at a_in by int(input_bias*sin(2*pi*t/15)); 15 steps, no "
            "offset."
        ),
        source="lava-nc/lava-dl@d825ac5 tests/lava/lib/dl/netx/gts/tinynet_sdnn",
    )

    net = Network(
        [
            InputLayer((3, 16, 16)),
            ConvLayer(
                (24, 6, 6),
                kernel,
                (2, 2),
                (0, 0),
                (1, 1),
                1,
                neuron=SigmaDeltaNeuron(v_th_mant=20),
                bias=bias1,
            ),
        ]
    )
    cases["tinynet_sdnn_conv"] = GoldenCase(
        num_steps=1,
        network_bytes=net_bytes(net),
        input_mode="inject",
        input=xyz_to_chw(expected_in).astype(np.int64),
        graded_input=False,  # input_message_bits unset: the synapse casts to bool
        expectations=[
            Expectation(1, "s", flat(xyz_to_chw(layer1)[..., :1]), name="sigma-delta conv")
        ],
        description=(
            "lava-dl test_blocks.py::TestSDNBlocks::test_conv: SigmaDelta conv (vth=20, "
            "bias) run for one step; the bias-driven output equals layer1.npy column 0 "
            "(the other 15 sink columns are never written upstream)."
        ),
        source="lava-nc/lava-dl@d825ac5 tests/lava/lib/dl/netx/gts/tinynet_sdnn",
    )

    net = Network([DenseLayer((100,), w2, neuron=SigmaDeltaNeuron(sigma_output=True))])
    cases["tinynet_sdnn_dense"] = GoldenCase(
        num_steps=16,
        network_bytes=net_bytes(net),
        input_mode="inject",
        input=layer1.reshape(-1, 16).astype(np.int64),  # Lava XYZ C-order, as the weight
        graded_input=False,
        expectations=[Expectation(0, "s", flat(layer2), name="sigma output")],
        description=(
            "lava-dl test_blocks.py::TestSDNBlocks::test_dense: Dense(100, Sigma) with "
            "binary input (cast to bool) from layer1.npy reshaped to (864, 16); 16 steps."
        ),
        source="lava-nc/lava-dl@d825ac5 tests/lava/lib/dl/netx/gts/tinynet_sdnn",
    )
    return cases


def dense_case(src: Path) -> dict[str, GoldenCase]:
    d = src / "dense"
    return {
        "oxford_dense": GoldenCase(
            num_steps=2000,
            network_bytes=(src / "oxford" / "network.net").read_bytes(),
            num_layers=1,
            input_mode="inject",
            input=np.load(d / "in.npy").astype(np.int64),
            expectations=[
                Expectation(0, "s", flat(np.load(d / "out.npy")), name="layer 0 spikes"),
                Expectation(0, "u", 64 * flat(np.load(d / "current.npy")), name="layer 0 u"),
            ],
            checks={"layer/0/weight": np.load(d / "weight.npy").astype(np.float32)},
            description=(
                "lava-dl test_blocks.py::TestLIFBlocks::test_dense: oxford network.net "
                "layer 0 (LIF vth=6, iDecay 4096, vDecay 415) fed with in.npy for 2000 "
                "steps; spikes equal out.npy with no offset; u equals 64*current.npy "
                "(index k = u after step k+1); weight.npy equals the file's layer 0 weight."
            ),
            source="lava-nc/lava-dl@d825ac5 tests/lava/lib/dl/netx/gts/dense",
        )
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=ROOT.parent / "shared" / "golden-ext")
    ap.add_argument("--out", type=Path, default=ROOT / "golden")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cases = {**tinynet_cases(args.src), **sdnn_cases(args.src), **dense_case(args.src)}
    for name, case in cases.items():
        path = save_case(case, args.out / f"{name}.h5")
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

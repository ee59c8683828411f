"""The ``loihi-slayer`` command line.

Subcommands
-----------
verify CASE...
    Run golden cases and compare traces bit for bit. Exit status 0 when every
    case is bit-exact, 1 when a trace differs, 2 when a file is unreadable or
    invalid (the message says what is wrong).
emulate NETWORK INPUT -o OUT
    Run a netx ``.net`` file on an integer input (``.npy``) and write the
    recorded traces as a golden case (so ``verify OUT`` re-checks them).
inspect NETWORK [--resources]
    Print a table of layers, shapes and neuron parameters; with ``--resources``
    the chip resource report (exit status 1 when the network does not fit).
doctor
    Versions, numba threading and cache, CUDA, and a kernel self-test (exit
    status 1 when a kernel differs from the reference).
demo [--out DIR] [--epochs N] [--seconds S]
    Train the Oxford CUBA network briefly, export it, emulate it and check that
    the train-to-chip gap is zero. Exit status 0 only if it is.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._version import __version__
from .errors import FormatError, LoihiSlayerError

log = logging.getLogger("loihi_slayer.cli")

EXIT_OK, EXIT_MISMATCH, EXIT_INVALID = 0, 1, 2


def _out(text: str = "") -> None:
    """Write one line of command output to stdout (the CLI's product)."""
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


# ---------------------------------------------------------------------------- verify


def cmd_verify(args: argparse.Namespace) -> int:
    from .golden import verify_case

    status = EXIT_OK
    for path in args.cases:
        try:
            report = verify_case(path, backend=args.backend)
        except FileNotFoundError as exc:
            _err(f"ERROR {path}: no such file ({exc.filename})")
            status = EXIT_INVALID
            continue
        except (LoihiSlayerError, OSError) as exc:
            _err(f"ERROR {path}: {exc}")
            status = EXIT_INVALID
            continue
        _out(report.summary())
        if not report.ok and status == EXIT_OK:
            status = EXIT_MISMATCH
    return status


# ---------------------------------------------------------------------------- emulate


def _load_input(path: Path) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(2, "No such input file", str(path))
    try:
        if path.suffix == ".npz":
            with np.load(path) as z:
                if "input" not in z:
                    raise FormatError("an .npz input needs an array named 'input'", file=path)
                return z["input"]
        return np.load(path, allow_pickle=False)
    except FormatError:
        raise
    except Exception as exc:
        raise FormatError(f"cannot read input array: {exc}", file=path) from None


def _shape_arg(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise FormatError(f"--input-shape {text!r}: expected integers like 2,34,34") from None
    if not shape or min(shape) < 1:
        raise FormatError(f"--input-shape {text!r}: expected positive integers like 2,34,34")
    return shape


def cmd_emulate(args: argparse.Namespace) -> int:
    from .golden import record_case, save_case

    data = _load_input(Path(args.input))
    record = tuple(v.strip() for v in args.record.split(",") if v.strip())
    case = record_case(
        args.network,
        data,
        args.steps,
        record=record,
        num_layers=args.num_layers,
        input_shape=_shape_arg(args.input_shape),
        input_mode=args.input_mode,
        graded_input=args.graded,
        cyclic=not args.no_cycle,
        reset_interval=args.reset_interval,
        reset_offset=args.reset_offset,
        backend=args.backend,
    )
    out = save_case(case, args.output)
    _out(f"ran {case.num_steps} steps of {args.network}; traces written to {out}")
    for e in case.expectations:
        if e.variable == "s":
            _out(f"  layer {e.layer}: {int((e.data != 0).sum())} spikes / events")
    return EXIT_OK


# ---------------------------------------------------------------------------- inspect


def _fmt(value) -> str:
    if value is None:
        return "-"
    arr = np.asarray(value)
    if arr.ndim == 0:
        return str(arr.item())
    if arr.size <= 4:
        return str(arr.tolist())
    return f"[{arr.min()}..{arr.max()}]"


#: the common neuron columns: header -> record attribute (generic records: the netx field)
_NEURON_COLUMNS = {"iDecay": "i_decay", "vDecay": "v_decay", "vThMant": "v_th_mant",
                   "refDelay": "ref_delay"}  # fmt: skip


def _neuron_fields(neuron) -> tuple[list[str], str]:
    """The common neuron columns, and every other field of a generic (registry) record."""
    if neuron is None:
        return ["-"] * len(_NEURON_COLUMNS), "-"
    generic = getattr(neuron, "params", None)
    if not isinstance(generic, dict):
        return [_fmt(getattr(neuron, a, None)) for a in _NEURON_COLUMNS.values()], "-"
    common = [_fmt(generic.get(f)) for f in _NEURON_COLUMNS]
    other = [f"{k}={_fmt(v)}" for k, v in generic.items() if k not in _NEURON_COLUMNS]
    return common, " ".join(other) or "-"


def cmd_resources(args: argparse.Namespace) -> int:
    """``inspect --resources``: the chip resource report of a network file."""
    from .hdf5 import load_network
    from .resources import resource_report

    report = resource_report(load_network(args.network, num_layers=args.num_layers))
    _out(f"{args.network}: chip resources")
    _out(report.table())
    return EXIT_OK if all(report.fits(c) for c in ("loihi1", "loihi2")) else EXIT_MISMATCH


def cmd_inspect(args: argparse.Namespace) -> int:
    from .hdf5 import load_network

    if getattr(args, "resources", False):
        return cmd_resources(args)

    net = load_network(args.network, num_layers=args.num_layers)
    header = ("#", "type", "shape", "neuron", *_NEURON_COLUMNS, "weight", "w range", "bias",
              "delay", "other neuron fields")  # fmt: skip
    rows = []
    for i, layer in enumerate(net.layers):
        neuron = getattr(layer, "neuron", None)
        w = getattr(layer, "weight", None)
        w_arr = None if w is None else np.asarray(w)
        common, other = _neuron_fields(neuron)
        rows.append(
            (
                str(i),
                layer.type_name,
                "x".join(str(d) for d in layer.shape),
                "-" if neuron is None else str(getattr(neuron, "type", "?")),
                *common,
                "-" if w_arr is None else "x".join(str(d) for d in w_arr.shape) or "scalar",
                "-" if w_arr is None or w_arr.size == 0 else f"{w_arr.min()}..{w_arr.max()}",
                _fmt(getattr(layer, "bias", None)),
                _fmt(getattr(layer, "delay", None)),
                other,
            )
        )
    widths = [max(len(r[k]) for r in rows + [header]) for k in range(len(header))]
    _out(f"{args.network}: {len(net.layers)} layer(s)")
    _out("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for r in rows:
        _out("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    if net.simulation is not None:
        _out(f"simulation: Ts={net.simulation.ts} tSample={net.simulation.t_sample}")
    return EXIT_OK


# ---------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    seconds = None if args.seconds is not None and args.seconds <= 0 else args.seconds
    if args.epochs is not None and args.seconds is None:
        seconds = None
    elif args.seconds is None:
        seconds = 60.0
    result = run_demo(
        args.out, epochs=args.epochs, seconds=seconds, lr=args.lr, seed=args.seed,
        plot=not args.no_plot, progress=not args.no_progress,
    )  # fmt: skip
    _out(f"trained {result.epochs} epoch(s) in {result.seconds:.1f} s; "
         f"final loss {result.losses[-1]:.2f}")  # fmt: skip
    _out(f"output spikes {result.output_spikes} (target {result.target_spikes})")
    _out(f"network:     {result.network}")
    _out(f"golden case: {result.golden}")
    _out(f"raster plot: {result.plot if result.plot else '(skipped: no matplotlib)'}")
    _out(result.gap.summary())
    if result.ok:
        _out("train-to-chip gap: ZERO (training forward == emulator, every layer)")
        return EXIT_OK
    _out("train-to-chip gap: NOT ZERO")
    return EXIT_MISMATCH


# ---------------------------------------------------------------------------- doctor


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import diagnose

    diag = diagnose(run_self_test=not args.no_self_test)
    for line in diag.lines():
        _out(line)
    return EXIT_OK if diag.ok else EXIT_MISMATCH


# ---------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``loihi-slayer``."""
    p = argparse.ArgumentParser(
        prog="loihi-slayer",
        description="Bit-accurate Loihi emulation, golden-trace verification and SNN training.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("verify", help="check golden cases bit for bit")
    v.add_argument("cases", nargs="+", help="golden case files (.h5)")
    v.add_argument("--backend", default="cpu", choices=("cpu", "cuda", "reference"))
    v.set_defaults(func=cmd_verify)

    e = sub.add_parser("emulate", help="run a network file and write traces")
    e.add_argument("network", help="netx .net file")
    e.add_argument("input", help="integer input array (.npy, or .npz with 'input')")
    e.add_argument("-o", "--output", required=True, help="output golden case file (.h5)")
    e.add_argument("--steps", type=int, default=None, help="steps to run (default: input length)")
    e.add_argument("--input-mode", default="inject", choices=("inject", "bias"))
    e.add_argument("--graded", action="store_true", help="graded input into the first synapse")
    e.add_argument("--no-cycle", action="store_true", help="do not replay a short input")
    e.add_argument("--record", default="s", help="comma-separated variables, e.g. s,u,v")
    e.add_argument("--num-layers", type=int, default=None)
    e.add_argument("--input-shape", default=None,
                   help="C,H,W input shape when the network has no input layer")  # fmt: skip
    e.add_argument("--reset-interval", type=int, default=None)
    e.add_argument("--reset-offset", type=int, default=0)
    e.add_argument("--backend", default="cpu", choices=("cpu", "cuda", "reference"))
    e.set_defaults(func=cmd_emulate)

    i = sub.add_parser("inspect", help="print layers and neuron parameters")
    i.add_argument("network", help="netx .net file")
    i.add_argument("--num-layers", type=int, default=None)
    i.add_argument("--resources", action="store_true",
                   help="chip resources per layer and cores under Loihi 1/2 limits")  # fmt: skip
    i.set_defaults(func=cmd_inspect)

    dr = sub.add_parser("doctor", help="versions, numba/CUDA setup and a kernel self-test")
    dr.add_argument("--no-self-test", action="store_true", help="skip the kernel self-test")
    dr.set_defaults(func=cmd_doctor)

    d = sub.add_parser("demo", help="train, export, emulate, check the train-to-chip gap")
    d.add_argument("--out", default="demo_out", help="output directory (default ./demo_out)")
    d.add_argument("--epochs", type=int, default=None, help="training epochs (default: time)")
    d.add_argument(
        "--seconds", type=float, default=None, help="training time budget (default 60; 0: none)"
    )
    d.add_argument("--lr", type=float, default=0.001, help="Adam learning rate")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--no-plot", action="store_true", help="skip the raster plot")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``loihi-slayer`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except FileNotFoundError as exc:
        _err(f"error: no such file: {exc.filename}")
        return EXIT_INVALID
    except (LoihiSlayerError, OSError) as exc:
        _err(f"error: {exc}")
        return EXIT_INVALID


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

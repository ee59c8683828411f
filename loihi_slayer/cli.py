"""The ``loihi-slayer`` command line.

Subcommands
-----------
verify CASE...
    Run golden cases and compare traces bit for bit.
emulate NETWORK INPUT -o OUT
    Run a netx ``.net`` file on an integer input (``.npy``) and write the
    recorded traces as a golden case (so ``verify OUT`` re-checks them).
inspect NETWORK [--resources]
    Print a table of layers, shapes and neuron parameters; warn about values
    outside the hardware ranges. With ``--resources`` the chip resource report
    (exit status 1 when the network does not fit).
doctor
    Versions, numba threading and cache, CUDA, and a kernel self-test (exit
    status 1 when a kernel differs from the reference).
demo [--out DIR] [--epochs N] [--seconds S]
    Train the Oxford CUBA network briefly, export it, emulate it and check that
    the train-to-chip gap is zero.

Exit status (the contract, also printed by ``--help``)
------------------------------------------------------
0 success; 1 verification mismatch (or a non-zero train-to-chip gap); 2 usage
error; 3 invalid input file (or an output file that cannot be written);
4 internal error (a one-line message; rerun with ``--debug`` for the
traceback); 130 interrupted (Ctrl-C). Errors go to stderr and name the file.

Ctrl-C stops any subcommand within a second: run from the command line, the
subcommand runs in a child process; the first Ctrl-C is passed on to it (Python
cleanup runs: no temporary file is left) and if it has not ended a second later
(e.g. inside a compiled kernel) it is killed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ._numba_cache import logger as _compile_log
from ._version import __version__
from .errors import FormatError, LoihiSlayerError
from .safety.npy import load_array

log = logging.getLogger("loihi_slayer.cli")

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_INVALID, EXIT_INTERNAL = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
EXIT_CODES_HELP = """exit status:
  0  success
  1  verification mismatch (verify), non-zero train-to-chip gap (demo)
  2  usage error (bad arguments)
  3  invalid input file, or an output file that cannot be written
  4  internal error (rerun with --debug for the traceback)
  130 interrupted (Ctrl-C)
errors go to stderr and name the file they concern."""


class InputError(LoihiSlayerError):
    """An input (or output) file is unusable; the message names the file."""


def _out(text: str = "") -> None:
    """Write one line of command output to stdout (the CLI's product)."""
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


@contextlib.contextmanager
def _about(*paths: object) -> Iterator[None]:
    """Turn bad-input errors into :class:`InputError` naming the file(s)."""
    try:
        yield
    except InputError:
        raise
    except (LoihiSlayerError, OSError) as exc:
        msg = _one_line(exc)
        if isinstance(exc, FileNotFoundError) and exc.filename:
            msg = f"file {str(exc.filename)!r}: no such file"
        elif isinstance(exc, OSError) and not isinstance(exc, LoihiSlayerError) and exc.filename:
            msg = f"file {str(exc.filename)!r}: {exc.strerror or msg}"
        names = [str(p) for p in paths if p is not None]
        if names and not any(n in msg or os.path.normpath(n) in msg for n in names):
            where = ", ".join(repr(n) for n in names)
            msg = f"{'file' if len(names) == 1 else 'files'} {where}: {msg}"
        raise InputError(msg) from exc


# ---------------------------------------------------------------------------- verify


def cmd_verify(args: argparse.Namespace) -> int:
    from .golden import verify_case

    status = EXIT_OK
    for path in args.cases:
        try:
            with _about(path):
                report = verify_case(path, backend=args.backend)
        except InputError as exc:
            _err(f"error: {exc}")
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
    if path.is_dir():
        raise FormatError("is a directory, not an input array file", file=path)
    data = load_array(path, "input" if path.suffix == ".npz" else None)
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "biuf":
        raise FormatError(f"input must be a numeric array, got dtype {data.dtype}", file=path)
    if data.ndim == 0 or data.shape[-1] == 0:
        raise FormatError(
            f"input has no time axis (shape {data.shape}); expected (*input_shape, T), T >= 1",
            file=path,
        )
    return data


def _shape_arg(text: str) -> tuple[int, ...]:
    """``--input-shape`` value: positive integers like ``2,34,34``."""
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected integers like 2,34,34") from None
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected 1 or 3 positive integers like 2,34,34"
        )
    return shape


def _float_arg(minimum: float, *, open_min: bool = False):
    """argparse type: a finite real number >= ``minimum`` (> when ``open_min``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < minimum or (open_min and value == minimum):
            raise argparse.ArgumentTypeError(
                f"{text} must be a finite number {'>' if open_min else '>='} {minimum:g}"
            )
        return value

    parse.__name__ = f"number >= {minimum:g}"
    return parse


def _int_arg(minimum: int):
    """argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be >= {minimum}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def cmd_emulate(args: argparse.Namespace) -> int:
    from .golden import record_case, save_case

    with _about(args.input):
        data = _load_input(Path(args.input))
    record = tuple(v.strip() for v in args.record.split(",") if v.strip())
    with _about(args.network, args.input):
        case = record_case(
            args.network,
            data,
            args.steps,
            record=record,
            num_layers=args.num_layers,
            input_shape=args.input_shape,
            input_mode=args.input_mode,
            graded_input=args.graded,
            cyclic=not args.no_cycle,
            reset_interval=args.reset_interval,
            reset_offset=args.reset_offset,
            backend=args.backend,
        )
    with _about(args.output):
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
_NEURON_COLUMNS = {
    "iDecay": "i_decay",
    "vDecay": "v_decay",
    "vThMant": "v_th_mant",
    "refDelay": "ref_delay",
}


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


#: Neuron record attribute -> (file field name, range key in fixed.params).
_NEURON_FIELDS = (
    ("i_decay", "iDecay"),
    ("v_decay", "vDecay"),
    ("v_th_mant", "vThMant"),
    ("ref_delay", "refDelay"),
)


def _range_problems(net) -> list[str]:
    """Neuron parameters and weights outside the hardware ranges, one line each."""
    from . import models
    from .fixed.params import CUBA_RANGES, SDNN_RANGES
    from .hdf5 import WEIGHT_RANGE, CubaNeuron, SigmaDeltaNeuron

    problems = []
    for i, layer in enumerate(net.layers):
        neuron = getattr(layer, "neuron", None)
        ranges = CUBA_RANGES if isinstance(neuron, CubaNeuron) else SDNN_RANGES
        model = models.by_netx_type(getattr(neuron, "type", ""))
        if model is not None and isinstance(getattr(neuron, "params", None), dict):
            # any other registered model: its declared fields and ranges
            for prm in model.params:
                arr = np.asarray(neuron.params.get(prm.field, prm.lo))
                if (
                    arr.dtype.kind in "iuf"
                    and arr.size
                    and (arr.min() < prm.lo or arr.max() > prm.hi)
                ):
                    bad = arr[(arr < prm.lo) | (arr > prm.hi)].reshape(-1)[0]
                    problems.append(
                        f"layer {i} ({layer.type_name}): neuron {prm.field} = {bad} "
                        f"is outside the hardware range [{prm.lo}, {prm.hi}]"
                    )
        if isinstance(neuron, (CubaNeuron, SigmaDeltaNeuron)):
            for attr, field in _NEURON_FIELDS:
                value = getattr(neuron, attr, None)
                if value is None or attr not in ranges:
                    continue
                lo, hi = ranges[attr]
                arr = np.asarray(value)
                if arr.size and (arr.min() < lo or arr.max() > hi):
                    bad = arr[(arr < lo) | (arr > hi)].reshape(-1)[0]
                    problems.append(
                        f"layer {i} ({layer.type_name}): neuron {field} = {bad} is "
                        f"outside the hardware range [{lo}, {hi}]"
                    )
        w = getattr(layer, "weight", None)
        if w is not None and layer.type_name in ("dense", "dense_rec", "conv", "convT", "kwta"):
            arr = np.asarray(w)
            lo, hi = WEIGHT_RANGE
            if arr.size and (arr.min() < lo or arr.max() > hi):
                problems.append(
                    f"layer {i} ({layer.type_name}): weight range {arr.min()}.."
                    f"{arr.max()} is outside [{lo}, {hi}]"
                )
    return problems


def cmd_inspect(args: argparse.Namespace) -> int:
    from .hdf5 import load_network

    if getattr(args, "resources", False):
        with _about(args.network):
            return cmd_resources(args)

    with _about(args.network):
        net = load_network(args.network, num_layers=args.num_layers)
    header = (
        "#",
        "type",
        "shape",
        "neuron",
        *_NEURON_COLUMNS,
        "weight",
        "w range",
        "bias",
        "delay",
        "other neuron fields",
    )
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
    problems = _range_problems(net)
    for p in problems:
        _err(f"warning: file {args.network!r}: {p}; the emulator and the chip refuse it")
    return EXIT_INVALID if problems else EXIT_OK


# ---------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    seconds = None if args.seconds is not None and args.seconds <= 0 else args.seconds
    if args.epochs is not None and args.seconds is None:
        seconds = None
    elif args.seconds is None:
        seconds = 60.0
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError(f"file {args.out!r}: --out must be a directory, found a file")
    with _about(args.out):
        result = run_demo(
            args.out,
            epochs=args.epochs,
            seconds=seconds,
            lr=args.lr,
            seed=args.seed,
            plot=not args.no_plot,
            progress=not args.no_progress,
        )
    _out(
        f"trained {result.epochs} epoch(s) in {result.seconds:.1f} s; "
        f"final loss {result.losses[-1]:.2f}"
    )
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


class _Parser(argparse.ArgumentParser):
    """Usage errors exit with :data:`EXIT_USAGE` and a one-line message."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: usage error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``loihi-slayer``."""
    p = _Parser(
        prog="loihi-slayer",
        description="Bit-accurate Loihi emulation, golden-trace verification and SNN training.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--debug", action="store_true", help="print the traceback of internal errors")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = {"epilog": EXIT_CODES_HELP, "formatter_class": argparse.RawDescriptionHelpFormatter}

    v = sub.add_parser("verify", help="check golden cases bit for bit", **common)
    v.add_argument("cases", nargs="+", help="golden case files (.h5)")
    v.add_argument("--backend", default="cpu", choices=("cpu", "cuda", "reference"))
    v.set_defaults(func=cmd_verify)

    e = sub.add_parser("emulate", help="run a network file and write traces", **common)
    e.add_argument("network", help="netx .net file")
    e.add_argument("input", help="integer input array (.npy, or .npz with 'input')")
    e.add_argument("-o", "--output", required=True, help="output golden case file (.h5)")
    e.add_argument(
        "--steps", type=_int_arg(1), default=None, help="steps to run (default: input length)"
    )
    e.add_argument("--input-mode", default="inject", choices=("inject", "bias"))
    e.add_argument("--graded", action="store_true", help="graded input into the first synapse")
    e.add_argument("--no-cycle", action="store_true", help="do not replay a short input")
    e.add_argument("--record", default="s", help="comma-separated variables, e.g. s,u,v")
    e.add_argument("--num-layers", type=_int_arg(1), default=None)
    e.add_argument(
        "--input-shape",
        type=_shape_arg,
        default=None,
        help="C,H,W input shape when the network has no input layer",
    )
    e.add_argument("--reset-interval", type=_int_arg(1), default=None)
    e.add_argument("--reset-offset", type=_int_arg(0), default=0)
    e.add_argument("--backend", default="cpu", choices=("cpu", "cuda", "reference"))
    e.set_defaults(func=cmd_emulate)

    i = sub.add_parser("inspect", help="print layers and neuron parameters", **common)
    i.add_argument("network", help="netx .net file")
    i.add_argument("--num-layers", type=_int_arg(1), default=None)
    i.add_argument(
        "--resources",
        action="store_true",
        help="chip resources per layer and cores under Loihi 1/2 limits",
    )
    i.set_defaults(func=cmd_inspect)

    dr = sub.add_parser(
        "doctor", help="versions, numba/CUDA setup and a kernel self-test", **common
    )
    dr.add_argument("--no-self-test", action="store_true", help="skip the kernel self-test")
    dr.set_defaults(func=cmd_doctor)

    d = sub.add_parser("demo", help="train, export, emulate, check the train-to-chip gap", **common)
    d.add_argument("--out", default="demo_out", help="output directory (default ./demo_out)")
    d.add_argument(
        "--epochs", type=_int_arg(1), default=None, help="training epochs (default: time)"
    )
    d.add_argument(
        "--seconds",
        type=_float_arg(0.0),
        default=None,
        help="training time budget (default 60; 0: none)",
    )
    d.add_argument(
        "--lr", type=_float_arg(0.0, open_min=True), default=0.001, help="Adam learning rate"
    )
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--no-plot", action="store_true", help="skip the raster plot")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_demo)
    return p


def _run(args: argparse.Namespace) -> int:
    """Run a parsed subcommand; map every outcome to the exit-code contract."""
    try:
        return args.func(args)
    except InputError as exc:
        _err(f"error: {exc}")
        return EXIT_INVALID
    except KeyboardInterrupt:
        _err(f"interrupted: loihi-slayer {args.command} stopped")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        names = ("network", "input", "output", "cases", "out")
        files = [str(v) for k, v in vars(args).items() if k in names and v is not None]
        where = f" (files: {', '.join(files)})" if files else ""
        _err(f"internal error: {type(exc).__name__}: {_one_line(exc)}{where}")
        if not args.debug:
            _err("hint: rerun with --debug for the traceback and report it")
        return EXIT_INTERNAL


def _supervised(args: argparse.Namespace) -> int:
    """Run the subcommand in a child process so that Ctrl-C always stops it.

    The child gets its own process group, so only this parent passes Ctrl-C on
    (once). If the child has not ended one second later it is killed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = EXIT_INTERNAL
        try:
            os.setpgid(0, 0)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            code = _run(args)
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    interrupted = False

    def on_sigint(*_: object) -> None:
        nonlocal interrupted
        interrupted = True
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, on_sigint)
    deadline = None
    try:
        while True:  # poll: a blocking waitpid would be resumed after the handler (PEP 475)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if interrupted and deadline is None:
                deadline = time.monotonic() + 1.0
            if deadline is not None and time.monotonic() > deadline:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                _err(f"interrupted: loihi-slayer {args.command} killed after 1 s")
                return EXIT_INTERRUPTED
            time.sleep(0.02)
    finally:
        signal.signal(signal.SIGINT, previous)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    sig = os.WTERMSIG(status)
    _err(
        f"internal error: loihi-slayer {args.command} died of signal "
        f"{signal.Signals(sig).name}; rerun with --debug"
    )
    return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None, *, supervise: bool | None = None) -> int:
    """Entry point of the ``loihi-slayer`` console script.

    Parameters
    ----------
    argv
        Arguments (default: ``sys.argv[1:]``).
    supervise
        Run the subcommand in a child process so that Ctrl-C stops it within a
        second even inside compiled code. Default: only when ``argv`` is None
        (the console script) and the platform can fork.

    Returns
    -------
    int
        The exit status (see the module docstring).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted: loihi-slayer stopped")
        return EXIT_INTERRUPTED
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # the first compile's notice shows without --verbose (a new machine's first demo
    # otherwise waits up to a minute at epoch 0 in silence); -v adds each compile's time
    _compile_log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    sig = getattr(signal, "SIGXFSZ", None)
    if sig is not None:  # a file size limit must give an error, not kill the process
        with contextlib.suppress(ValueError, OSError):
            signal.signal(sig, signal.SIG_IGN)
    if supervise is None:
        supervise = argv is None and hasattr(os, "fork")
    return _supervised(args) if supervise else _run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

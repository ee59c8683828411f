"""Public entry points of the fixed-point kernels: validate, then dispatch.

Every function takes time-last arrays (NumPy, torch CPU tensors, or CUDA
arrays/tensors through ``__cuda_array_interface__``) and runs one of three
backends that agree bit for bit:

``'reference'``
    the slow NumPy int64 spec (:mod:`.reference`);
``'cpu'``
    numba ``njit`` kernels (:mod:`.cpu`);
``'cuda'``
    numba.cuda kernels (:mod:`.cuda`).

``backend='auto'`` picks ``'cuda'`` for data in GPU memory and ``'cpu'`` otherwise.
Results come back in the library of the input (torch in, torch out; CPU torch
tensors share memory with the kernel output, CUDA tensors stay on the device).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import ParameterError, ParameterTypeError
from . import dynamics, reference, workers
from ._arrays import (
    check_integer_array,
    dtype_kind,
    empty_like_kind,
    from_numpy_like,
    host_view,
    is_torch,
    on_gpu,
)
from .codegen import KernelSpec
from .params import STATE_MAX, CubaParams, SigmaDeltaParams, int_param

BACKENDS = ("auto", "reference", "cpu", "cuda")
CUBA_TRACES = ("s", "u", "v", "v_pre")
SDNN_TRACES = ("s", "sigma", "act", "residue")
SDNN_MODES = {"delta": 0, "sigma_delta": 1, "sigma": 2}
_CUBA_DTYPES = {"s": np.int8, "u": np.int32, "v": np.int32, "v_pre": np.int32}
_CUBA_STATES = ("u", "v", "rc")
_STATE_RANGES = {
    "u": (-STATE_MAX, STATE_MAX + 1),
    "v": (-STATE_MAX, STATE_MAX),
    "rc": (0, 62),
}
_SDNN_STATE_RANGE = (-(1 << 62), 1 << 62)

#: sigma-delta's kernel: ``sdnn_step`` takes the mode first, so it is a spec, not a model
SDNN_KERNEL = KernelSpec(
    name="sigma_delta",
    step=dynamics.sdnn_step,
    states=("sigma", "act", "residue", "error"),
    inputs=("x",),
    params=("mode", "v_th", "bias", "shift", "state_exp", "relu", "cum_error"),
    traces=SDNN_TRACES,
    state_traces=("sigma", "act", "residue"),
    step_args=(
        "mode",
        "x",
        "sigma",
        "act",
        "residue",
        "error",
        "v_th",
        "bias",
        "shift",
        "state_exp",
        "relu",
        "cum_error",
    ),
)


def _backend(backend: str, x: Any) -> str:
    if backend not in BACKENDS:
        raise ParameterError(f"backend = {backend!r} is not one of {BACKENDS}")
    if backend == "auto":
        return "cuda" if on_gpu(x) else "cpu"
    if backend != "cuda" and on_gpu(x):
        raise ParameterTypeError(f"input is in GPU memory but backend = {backend!r}")
    return backend


def _record(record: Iterable[str] | str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    names = (record,) if isinstance(record, str) else tuple(record)
    for name in names:
        if name not in allowed:
            raise ParameterError(f"record: unknown trace {name!r}; allowed: {allowed}")
    return names


def _param_vector(name: str, arr: np.ndarray, lead: tuple[int, ...]) -> np.ndarray:
    """Length-1 (shared) or per-neuron int64 vector: always a fresh, writable,
    C-contiguous array, so numba compiles one kernel signature for all cases."""
    if arr.size == 1:
        return np.array(arr, dtype=np.int64).reshape(1)
    try:
        full = np.broadcast_to(arr, lead)
    except ValueError:
        raise ParameterError(
            f"{name} has shape {arr.shape}, which does not broadcast to the neuron shape {lead}"
        ) from None
    return np.array(full, dtype=np.int64, order="C").reshape(-1)


def _kept_table(params: Any, key: Any, build: Callable[[], np.ndarray]) -> np.ndarray:
    """``build()``, the kernels' ``(P, 1 or N)`` parameter table, kept on the (frozen)
    parameter object for the last ``key`` (mode, neuron shape) only, so repeated calls
    skip making it (per-channel parameters broadcast to every neuron: megabytes). The
    object's validated arrays are private copies, so a kept table never goes stale; the
    kernels only read it."""
    tables = params._tables
    table = tables.get(key)
    if table is None:
        table = build()
        tables.clear()
        tables[key] = table
    return table


def _segments(reset: Any, steps: int) -> list[tuple[int, int, bool]]:
    """Split ``[0, steps)`` at reset steps: ``(start, stop, zero_state_first)``."""
    if reset is None:
        return [(0, steps, False)]
    r = host_view(reset, "reset")
    if r.shape != (steps,):
        raise ParameterError(f"reset must be a boolean array of shape ({steps},), got {r.shape}")
    if r.dtype.kind not in "biu":
        raise ParameterTypeError(f"reset must be boolean, got dtype {r.dtype}")
    marks = [int(t) for t in np.flatnonzero(r)]
    starts = sorted(set([0] + marks))
    stops = starts[1:] + [steps]
    return [(a, b, bool(r[a])) for a, b in zip(starts, stops, strict=True) if b > a or a == 0]


def _kernel_input(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """C-contiguous integer view for the njit kernels (a copy only when needed:
    strided, readonly or bool input), so each dtype compiles one signature."""
    if x.dtype == bool:
        x = x.view(np.uint8)
    if not x.flags.writeable:
        x = x.copy()
    return np.ascontiguousarray(x).reshape(shape)


def _shape(x: Any) -> tuple[tuple[int, ...], int]:
    shape = tuple(int(d) for d in x.shape)
    return shape[:-1], shape[-1]


def _initial_state(
    state: dict | None, names: tuple[str, ...], lead: tuple[int, ...], ranges: dict
) -> np.ndarray:
    """The ``(len(names), N)`` int64 initial state: zeros, with the rows ``state`` gives.

    One array, as the kernels take it (a dict of rows stacked afterwards had copied
    every neuron's state once more per call: 1.4 ms of a PilotNet-size emulator run)."""
    out = np.zeros((len(names), math.prod(lead)), np.int64)
    if state is None:
        return out
    unknown = set(state) - set(names)
    if unknown:
        raise ParameterError(f"state: unknown entries {sorted(unknown)}; allowed: {names}")
    for k, value in state.items():
        arr = int_param(f"state[{k!r}]", host_view(value, f"state[{k!r}]"), *ranges[k])
        try:
            out[names.index(k)] = np.broadcast_to(arr, lead).reshape(-1)
        except ValueError:
            raise ParameterError(
                f"state[{k!r}] has shape {arr.shape}, expected the neuron shape {lead}"
            ) from None
    return out


def _zeros_like(state: np.ndarray) -> Callable[[], np.ndarray]:
    """The rest state of :func:`_run_kernels` for models that reset to zeros."""
    return lambda: np.zeros_like(state)


def _gpu():
    try:
        from . import cuda as gpu
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "backend='cuda' needs numba-cuda: pip install 'loihi_slayer[cuda]'"
        ) from exc
    return gpu


class _Device:
    """Moves arrays to the GPU (or wraps GPU arrays) for one kernel call."""

    def __init__(self, ref: Any):
        from numba import cuda

        self.cuda = cuda
        self.ref = ref
        self.torch = is_torch(ref)
        self.stream = 0
        if self.torch and ref.is_cuda:
            import torch

            self.stream = cuda.external_stream(torch.cuda.current_stream(ref.device).cuda_stream)

    def input(self, x: Any, shape2d: tuple[int, ...]) -> Any:
        if is_torch(x):
            import torch

            t = x.detach()
            if t.dtype == torch.bool:
                t = t.to(torch.uint8)
            t = t.reshape(shape2d)
            if t.is_cuda:
                return self.cuda.as_cuda_array(t)
            return self.cuda.to_device(t.numpy(), stream=self.stream)
        if on_gpu(x):
            return self.cuda.as_cuda_array(x).reshape(shape2d)
        arr = np.asarray(x)
        if arr.dtype == bool:
            arr = arr.view(np.uint8)
        return self.cuda.to_device(np.ascontiguousarray(arr.reshape(shape2d)), stream=self.stream)

    def small(self, arr: np.ndarray) -> Any:
        return self.cuda.to_device(np.ascontiguousarray(arr), stream=self.stream)

    def output(self, shape: tuple[int, ...], dtype: Any) -> tuple[Any, Any]:
        """(kernel view, user-facing array)."""
        if self.torch and self.ref.is_cuda:
            t = empty_like_kind(self.ref, shape, dtype)
            return self.cuda.as_cuda_array(t), t
        dev = self.cuda.to_device(np.zeros(shape, dtype), stream=self.stream)
        return dev, dev

    def finish(self, user: Any) -> Any:
        """Bring a result to the user's side (host for host inputs)."""
        if self.torch and self.ref.is_cuda:
            return user
        host = user.copy_to_host(stream=self.stream)
        if self.stream:
            self.stream.synchronize()
        return from_numpy_like(self.ref, host)


def _out_arrays(
    out: Mapping[str, Any] | None,
    names: tuple[str, ...],
    shape: tuple[int, ...],
    dtypes: dict[str, Any],
    backend: str,
) -> dict[str, tuple[Any, np.ndarray]]:
    """Check caller-owned trace arrays: ``{name: (as given, writable NumPy view)}``.

    Each must be a recorded trace's exact shape and dtype, C-contiguous and writable
    (NumPy or a CPU torch tensor), so the kernel writes into it without a copy.
    Reusing them across calls skips allocating and first-touching fresh memory.
    """
    if not out:
        return {}
    if backend != "cpu":
        raise ParameterError(f"out= is supported on the 'cpu' backend, not {backend!r}")
    views = {}
    for k, arr in out.items():
        if k not in names:
            raise ParameterError(f"out[{k!r}]: {k!r} is not recorded (record = {names})")
        view = host_view(arr, f"out[{k!r}]")
        want = np.dtype(dtypes[k])
        if view.shape != shape or view.dtype != want:
            raise ParameterError(
                f"out[{k!r}] has shape {view.shape} and dtype {view.dtype}; "
                f"expected shape {shape} and dtype {want}"
            )
        if not (view.flags.c_contiguous and view.flags.writeable):
            raise ParameterError(f"out[{k!r}] must be C-contiguous and writable")
        views[k] = (arr, view)
    return views


def _run_kernels(
    spec: Any,
    xs: list[Any],
    table: np.ndarray,
    st: np.ndarray,
    rest: Callable[[], np.ndarray],
    segments: list[tuple[int, int, bool]],
    names: tuple[str, ...],
    dtypes: dict[str, Any],
    backend: str,
    label: str = "input",
    out: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Run the generated kernels of ``spec`` (a model or :class:`.codegen.KernelSpec`).

    ``xs``: the ``(*neurons, T)`` inputs; ``table``: the ``(P, 1 or N)`` int64
    parameter table; ``st``: the ``(S, N)`` int64 initial state (updated in place on
    the CPU); ``rest``: makes the state a reset returns to (called only where a
    segment resets: a ``(S, N)`` array per call costs fresh memory); ``out``: caller-owned trace
    arrays to write into (see :func:`_out_arrays`). Returns the recorded traces
    (in the inputs' library, ``(*neurons, T)``) and the final ``(S, N)`` state.
    """
    from .codegen import LANES, kernel_module

    lead, steps = _shape(xs[0])
    n = math.prod(lead)
    shapes = {k: (n, steps if k in names else 0) for k in spec.traces}
    given = _out_arrays(out, names, lead + (steps,), dtypes, backend)
    if backend == "cpu":
        mod = kernel_module(spec, "cpu")
        xk = [_kernel_input(host_view(a, label), (n, steps)) for a in xs]
        # the kernels write every recorded value (the segments cover [0, T)): uninitialised
        # memory, which NumPy maps on huge pages where it can; np.zeros' calloc maps 4 KB
        # pages that each fault on first write (0.8 GB of u/v traces: 1.0 s against 0.07)
        outs = {
            k: given[k][1].reshape(n, steps) if k in given else np.empty(shapes[k], dtypes[k])
            for k in spec.traces
        }
        rest_st = None
        for t0, t1, zero in segments:
            if zero:
                rest_st = rest() if rest_st is None else rest_st
                st[:] = rest_st
            args = (*xk, table, t0, t1, st, *outs.values())
            blocks = -(-n // LANES)
            work = n * (t1 - t0)
            workers.run_shared(mod.kernel, blocks, work, *args, parallel=mod.kernel_parallel)
        full = lead + (steps,)
        traces = {
            k: given[k][0] if k in given else from_numpy_like(xs[0], outs[k].reshape(full))
            for k in names
        }
        return traces, st

    gpu = _gpu()
    mod = kernel_module(spec, "cuda")
    dev = _Device(xs[0])
    xk = [dev.input(a, (n, steps)) for a in xs]
    pk = dev.small(table)
    sk = dev.small(st)
    outs = {k: dev.output(shapes[k], dtypes[k]) for k in spec.traces}
    launch = mod.kernel[(*gpu.launch_tiled(n), dev.stream)]
    for t0, t1, zero in segments:
        if zero:
            sk = dev.small(rest())
        launch(*xk, pk, t0, t1, sk, *(outs[k][0] for k in spec.traces))
    traces = {k: dev.finish(outs[k][1]).reshape(lead + (steps,)) for k in names}
    return traces, sk.copy_to_host(stream=dev.stream)


def cuba(
    a_in: Any,
    params: CubaParams | None = None,
    *,
    state: dict | None = None,
    reset: Any = None,
    record: Iterable[str] | str = ("s",),
    backend: str = "auto",
    out: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    r"""Run Loihi CUBA-LIF neurons on integer synaptic input.

    .. math::

        u[t] &= \operatorname{wrap}_{24}\big(\operatorname{rz}(u[t-1](4096-\mathrm{iDecay})
                / 4096) + 2^{6}\operatorname{shift}(a[t], \mathrm{wgtExp})\big)\\
        v[t] &= \operatorname{sat}_{24}\big(\operatorname{rz}(v[t-1](4096-\mathrm{vDecay})
                / 4096) + u[t] + \mathrm{bias}\big)\\
        s[t] &= v[t] > \mathrm{vThMant}\cdot 2^6,\quad v[t]\leftarrow 0 \text{ if } s[t]

    Parameters
    ----------
    a_in
        Integer synaptic sums :math:`a = \sum_i W_i s_i`, shape ``(*neurons, T)``.
    params
        :class:`CubaParams` (scalars or arrays broadcastable to ``neurons``).
    state
        Initial ``{'u', 'v', 'rc'}`` (current, voltage, remaining refractory steps);
        zeros when omitted. Not modified.
    reset
        Boolean ``(T,)`` mask: zero the state at the start of marked steps.
    record
        Any of ``'s'`` (spikes, int8), ``'u'``, ``'v'`` (after the reset, as the
        chip reports it) and ``'v_pre'`` (before the reset), int32.
    backend
        ``'auto'``, ``'reference'``, ``'cpu'`` or ``'cuda'``.
    out
        Optional ``{trace: array}`` to write recorded traces into instead of new
        arrays (``'cpu'`` backend; exact shape and dtype, C-contiguous, writable).
        Reusing them across calls saves allocating fresh memory each time.

    Returns
    -------
    traces, state
        Recorded ``(*neurons, T)`` arrays and the final int64 state.
    """
    params = CubaParams() if params is None else params
    if not isinstance(params, CubaParams):
        raise ParameterTypeError(f"params must be CubaParams, got {type(params).__name__}")
    check_integer_array(a_in, "a_in")
    names = _record(record, CUBA_TRACES)
    backend = _backend(backend, a_in)
    lead, steps = _shape(a_in)
    init = _initial_state(state, _CUBA_STATES, lead, _STATE_RANGES)
    segments = _segments(reset, steps)

    _out_arrays(out, names, lead + (steps,), _CUBA_DTYPES, backend)  # refuse before work
    if backend == "reference":
        x = host_view(a_in, "a_in").astype(np.int64)
        st = {k: init[i].reshape(lead) for i, k in enumerate(_CUBA_STATES)}
        r = None if reset is None else host_view(reset, "reset").astype(bool)
        traces, final = reference.cuba(x, params, st, r)
        return {k: traces[k] for k in names}, final

    def cuba_table() -> np.ndarray:
        vecs = [
            _param_vector("i_decay", params.array("i_decay"), lead),
            _param_vector("v_decay", params.array("v_decay"), lead),
            _param_vector("v_th_mant", params.v_th, lead),
            _param_vector("ref_delay", params.array("ref_delay"), lead),
            _param_vector("bias (bias_mant << bias_exp)", params.bias, lead),
            _param_vector("wgt_exp", params.array("wgt_exp"), lead),
        ]
        m = max(v.size for v in vecs)
        return np.stack([np.broadcast_to(v, (m,)) for v in vecs])  # (P, 1 or n)

    table = _kept_table(params, lead, cuba_table)
    traces, final = _run_kernels(
        _cuba_model(),
        [a_in],
        table,
        init,
        _zeros_like(init),
        segments,
        names,
        _CUBA_DTYPES,
        backend,
        "a_in",
        out,
    )
    return traces, {k: final[i].reshape(lead) for i, k in enumerate(_CUBA_STATES)}


def _cuba_model():
    """CUBA's registry declaration (imported late: :mod:`loihi_slayer.models` imports us)."""
    from ..models.cuba import MODEL

    return MODEL


def sigma_delta(
    x_in: Any,
    params: SigmaDeltaParams | None = None,
    *,
    mode: str = "sigma_delta",
    state: dict | None = None,
    reset: Any = None,
    record: Iterable[str] | str = ("s",),
    backend: str = "auto",
    out: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    r"""Run Loihi sigma-delta neurons (lava-nc's legacy residue model).

    .. math::

        \sigma[t] &= \sigma[t-1] + x[t], \qquad
        a[t] = \max(\sigma[t] + \mathrm{bias}\,2^{E+S}, 0)\\
        \Delta[t] &= a[t] - a[t-1] + r[t-1], \qquad
        s[t] = \Delta[t]\,\big[|\Delta[t]| \ge \mathrm{vThMant}\,2^{E+S}\big]\\
        r[t] &= \Delta[t] - s[t], \qquad y[t] = \lfloor s[t] / 2^{S} \rfloor

    Parameters
    ----------
    x_in
        Integer input ``(*neurons, T)``: graded synaptic sums (``'sigma_delta'``,
        ``'sigma'``) or input values with 6 fractional bits (``'delta'``, where
        :math:`a[t] = x[t]\,2^{E+S}`).
    params
        :class:`SigmaDeltaParams`.
    mode
        ``'sigma_delta'``, ``'delta'`` (input encoder) or ``'sigma'`` (accumulator,
        output = sigma).
    state
        Initial ``{'sigma', 'act', 'residue', 'error'}``; zeros when omitted.
    reset
        Boolean ``(T,)`` mask: zero the state at the start of marked steps.
    record
        Any of ``'s'`` (graded payload), ``'sigma'``, ``'act'``, ``'residue'`` (int64).
    backend
        ``'auto'``, ``'reference'``, ``'cpu'`` or ``'cuda'``.
    out
        Optional ``{trace: array}`` to write recorded traces into instead of new
        arrays (``'cpu'`` backend; exact shape and dtype, C-contiguous, writable).
        Reusing them across calls saves allocating fresh memory each time.

    Returns
    -------
    traces, state
    """
    params = SigmaDeltaParams() if params is None else params
    if not isinstance(params, SigmaDeltaParams):
        raise ParameterTypeError(f"params must be SigmaDeltaParams, got {type(params).__name__}")
    if mode not in SDNN_MODES:
        raise ParameterError(f"mode = {mode!r} is not one of {tuple(SDNN_MODES)}")
    check_integer_array(x_in, "x_in")
    names = _record(record, SDNN_TRACES)
    backend = _backend(backend, x_in)
    lead, steps = _shape(x_in)
    st_names = SDNN_KERNEL.states
    init = _initial_state(state, st_names, lead, dict.fromkeys(st_names, _SDNN_STATE_RANGE))
    segments = _segments(reset, steps)

    _out_arrays(out, names, lead + (steps,), dict.fromkeys(SDNN_TRACES, np.int64), backend)
    if backend == "reference":
        x = host_view(x_in, "x_in").astype(np.int64)
        st = {k: init[i].reshape(lead) for i, k in enumerate(st_names)}
        r = None if reset is None else host_view(reset, "reset").astype(bool)
        traces, final = reference.sigma_delta(x, params, mode, st, r)
        return {k: traces[k] for k in names}, final

    def sdnn_table() -> np.ndarray:
        vth = _param_vector("v_th_mant", params.v_th, lead)
        bias = _param_vector("bias", params.bias_scaled, lead)
        scalars = (
            params.shift,
            int(params.array("state_exp")),
            int(params.activation == "relu"),
            int(bool(params.cum_error)),
        )
        m = max(vth.size, bias.size)
        rows = [SDNN_MODES[mode], vth, bias, *scalars]
        return np.stack([np.broadcast_to(np.asarray(r, np.int64), (m,)) for r in rows])

    table = _kept_table(params, (mode, lead), sdnn_table)
    traces, final = _run_kernels(
        SDNN_KERNEL,
        [x_in],
        table,
        init,
        _zeros_like(init),
        segments,
        names,
        dict.fromkeys(SDNN_TRACES, np.int64),
        backend,
        "x_in",
        out,
    )
    return traces, {k: final[i].reshape(lead) for i, k in enumerate(st_names)}


def delta(x_in: Any, params: SigmaDeltaParams | None = None, **kwargs: Any):
    """Sigma-delta input encoder: :func:`sigma_delta` with ``mode='delta'``."""
    return sigma_delta(x_in, params, mode="delta", **kwargs)


def sigma(x_in: Any, params: SigmaDeltaParams | None = None, **kwargs: Any):
    """Sigma accumulator: :func:`sigma_delta` with ``mode='sigma'``."""
    return sigma_delta(x_in, params, mode="sigma", **kwargs)


# ----------------------------------------------------------------------------- synapses

WEIGHT_RANGES = {"mixed": (-256, 255), "excitatory": (0, 255), "inhibitory": (-255, 0)}


def _weights(weight: Any, sign_mode: str | None, num_weight_bits: int, name: str = "weight"):
    w = host_view(weight, name)
    if w.dtype.kind not in "iuf":
        raise ParameterTypeError(f"{name} must be an integer array, got dtype {w.dtype}")
    w = int_param(name, w, -(1 << 62), 1 << 62)  # finite whole numbers
    mode = sign_mode or reference.sign_mode_of(w)
    if mode not in WEIGHT_RANGES:
        raise ParameterError(f"sign_mode = {mode!r} is not one of {tuple(WEIGHT_RANGES)}")
    lo, hi = WEIGHT_RANGES[mode]
    int_param(f"{name} ({mode} sign mode, 8-bit mantissa)", w, lo, hi)
    nbits = int(int_param("num_weight_bits", num_weight_bits, 1, 8))
    return reference.quantize_weights(w, nbits, mode)


def _latency(a: Any, latency: int) -> Any:
    """Delay along time by ``latency`` steps with zero fill (the synaptic hop)."""
    if latency == 0:
        return a
    out = a.clone() if is_torch(a) else a.copy()
    out[..., latency:] = a[..., :-latency] if a.shape[-1] > latency else out[..., latency:]
    out[..., :latency] = 0
    return out


def _check_input(x: Any, name: str) -> None:
    check_integer_array(x, name, min_ndim=2)


def dense(
    x: Any,
    weight: Any,
    *,
    weight_exp: int = 0,
    num_weight_bits: int = 8,
    sign_mode: str | None = None,
    graded: bool = False,
    latency: int = 1,
    backend: str = "auto",
) -> Any:
    r"""Integer dense synapse (lava-nc bit-accurate Dense).

    .. math::

        a[o, t] = \operatorname{shift}\Big(\sum_i W'[o, i]\, x[i, t - \ell],\;
                  \mathrm{weight\_exp}\Big)

    where :math:`W'` is ``weight`` with its ``8 - num_weight_bits`` (+1 for
    mixed sign) lowest bits cleared as the chip stores it, and :math:`\ell` the
    synaptic latency (1 step per hop in lava-nc).

    Parameters
    ----------
    x
        Input ``(*batch, N_in, T)``; binary (cast to 0/1) unless ``graded``.
    weight
        Integer mantissas ``(N_out, N_in)`` in the sign mode's 8-bit range:
        mixed ``[-256, 255]``, excitatory ``[0, 255]``, inhibitory ``[-255, 0]``.
    weight_exp
        Exponent applied to the sum (floor for negative values), ``[-8, 7]``.
    num_weight_bits
        Mantissa precision ``[1, 8]``.
    sign_mode
        ``'mixed'``, ``'excitatory'``, ``'inhibitory'`` or None (from the weights).
    graded
        Multiply by the input values instead of casting them to spikes.
    latency
        Steps of synaptic delay (``>= 0``).
    backend
        ``'auto'``, ``'reference'``, ``'cpu'`` or ``'cuda'``.

    Returns
    -------
    int64 array ``(*batch, N_out, T)`` of the input's library.
    """
    _check_input(x, "x")
    w = _weights(weight, sign_mode, num_weight_bits)
    if w.ndim != 2:
        raise ParameterError(f"weight must be 2-D (N_out, N_in), got shape {w.shape}")
    if int(x.shape[-2]) != w.shape[1]:
        raise ParameterError(
            f"x has {int(x.shape[-2])} input neurons (axis -2 of shape {tuple(x.shape)}) but "
            f"weight expects {w.shape[1]}"
        )
    exp = int(int_param("weight_exp", weight_exp, -8, 7))
    lat = int(int_param("latency", latency, 0, 1 << 20))
    backend = _backend(backend, x)
    batch = tuple(int(d) for d in x.shape[:-2])
    n_in, steps = int(x.shape[-2]), int(x.shape[-1])
    nb = math.prod(batch)
    out_shape = batch + (w.shape[0], steps)
    if backend == "reference":
        return _latency(_dense_reference(x, w, exp, graded), lat)
    if backend == "cpu":
        from . import cpu

        xv = _kernel_input(host_view(x, "x"), (nb, n_in, steps))
        out = np.zeros((nb, w.shape[0], steps), np.int64)
        jobs = nb * w.shape[0]
        kern = cpu.dense_kernel
        par = cpu.PARALLEL[kern]
        workers.run_shared(kern, jobs, jobs * steps, xv, w, exp, bool(graded), out, parallel=par)
        return _latency(from_numpy_like(x, out.reshape(out_shape)), lat)
    gpu = _gpu()
    dev = _Device(x)
    xv = dev.input(x, (nb, n_in, steps))
    kout, user = dev.output((nb, w.shape[0], steps), np.int64)
    total = nb * w.shape[0] * steps
    gpu.dense_kernel[(*gpu.launch(total), dev.stream)](xv, dev.small(w), exp, bool(graded), kout)
    return _latency(dev.finish(user).reshape(out_shape), lat)


def _dense_reference(x: Any, w: np.ndarray, exp: int, graded: bool) -> np.ndarray:
    # ``w`` is already on the chip's grid (see _weights)
    xi = host_view(x, "x").astype(np.int64)
    if not graded:
        xi = (xi != 0).astype(np.int64)
    acc = np.einsum("oi,...it->...ot", w, xi)
    return reference.scale_by_exp(acc, np.int64(exp))


def _pair(name: str, value: Any, lo: int) -> tuple[int, int]:
    arr = int_param(name, value, lo, 1 << 16)
    if arr.ndim == 0:
        return int(arr), int(arr)
    if arr.shape != (2,):
        raise ParameterError(f"{name} must be an int or a pair (H, W), got {arr.tolist()}")
    return int(arr[0]), int(arr[1])


def conv_output_size(size: int, k: int, s: int, p: int, d: int) -> int:
    """Output length of a cross-correlation along one axis (PyTorch's formula)."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def conv2d(
    x: Any,
    weight: Any,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    weight_exp: int = 0,
    graded: bool = False,
    latency: int = 1,
    backend: str = "auto",
) -> Any:
    r"""Integer 2-D convolution synapse (lava-nc fixed-point Conv), time-last.

    .. math::

        a[c_o, y, x, t] = \operatorname{wrap}_{24}\Big(\operatorname{shift}\big(
        \sum_{c_i, k_y, k_x} W[c_o, c_i, k_y, k_x]\,
        x[c_i, y s_h - p_h + k_y d_h, x s_w - p_w + k_x d_w, t - \ell], e\big)\Big)

    PyTorch semantics (cross-correlation, weight ``(C_out, C_in/groups, kH, kW)``);
    the sum wraps to signed 24 bit as lava-nc's Conv model does.

    Parameters
    ----------
    x
        ``(C, H, W, T)`` or ``(B, C, H, W, T)``; binary unless ``graded``.
    weight
        Integer mantissas in ``[-256, 255]``.
    stride, padding, dilation
        Int or ``(H, W)`` pair.
    groups
        Channel groups; must divide ``C_in`` and ``C_out``.
    weight_exp, graded, latency, backend
        As in :func:`dense`.

    Returns
    -------
    int64 array ``(…, C_out, H_out, W_out, T)`` of the input's library.
    """
    return _conv(
        False, x, weight, stride, padding, dilation, groups, weight_exp, graded, latency, backend
    )


def conv_transpose2d(
    x: Any,
    weight: Any,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    weight_exp: int = 0,
    graded: bool = False,
    latency: int = 1,
    backend: str = "auto",
) -> Any:
    r"""Integer 2-D transposed convolution synapse, time-last.

    .. math::

        a[c_o, y, x, t] = \operatorname{wrap}_{24}\Big(\operatorname{shift}\big(
        \sum_{\substack{c_i, k_y, k_x:\ y = i_y s_h - p_h + k_y d_h\\
        x = i_x s_w - p_w + k_x d_w}} W[c_i, c_o, k_y, k_x]\, x[c_i, i_y, i_x, t - \ell],
        e\big)\Big)

    PyTorch ``conv_transpose2d`` semantics (output_padding 0), weight
    ``(C_in, C_out/groups, kH, kW)``; output size ``(H-1) s - 2p + d (k-1) + 1``.
    Parameters as :func:`conv2d`.
    """
    return _conv(
        True, x, weight, stride, padding, dilation, groups, weight_exp, graded, latency, backend
    )


def _depthwise(weight: Any, channels: int, name: str) -> np.ndarray:
    w = host_view(weight, name)
    w = int_param(f"{name} (8-bit mantissa)", w, -256, 255)
    if w.ndim == 2:
        w = w[None, None]
    if w.ndim != 4 or w.shape[:2] != (1, 1):
        raise ParameterError(f"{name} must be (kH, kW) or (1, 1, kH, kW), got shape {w.shape}")
    return np.ascontiguousarray(np.broadcast_to(w, (channels, 1) + w.shape[2:]))


def pool2d(
    x: Any,
    weight: Any,
    *,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    **kwargs: Any,
) -> Any:
    """Pooling synapse: every channel cross-correlated with one shared kernel.

    ``weight`` is the ``(1, 1, kH, kW)`` (or ``(kH, kW)``) mantissa kernel of a
    lava-dl ``Pool`` layer; ``stride`` defaults to the kernel size. Other keyword
    arguments as :func:`conv2d`.
    """
    check_integer_array(x, "x", min_ndim=4)
    c = int(x.shape[-4])
    w = _depthwise(weight, c, "weight")
    if stride is None:
        stride = tuple(w.shape[2:])
    return conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=c, **kwargs)


def unpool2d(
    x: Any,
    weight: Any,
    *,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    **kwargs: Any,
) -> Any:
    """Unpooling synapse: per-channel transposed convolution with one shared kernel.

    ``stride`` defaults to the kernel size. Other keyword arguments as
    :func:`conv_transpose2d`.
    """
    check_integer_array(x, "x", min_ndim=4)
    c = int(x.shape[-4])
    w = _depthwise(weight, c, "weight")
    if stride is None:
        stride = tuple(w.shape[2:])
    return conv_transpose2d(
        x, w, stride=stride, padding=padding, dilation=dilation, groups=c, **kwargs
    )


def conv_transpose_output_size(size: int, k: int, s: int, p: int, d: int) -> int:
    """Output length of a transposed convolution along one axis (output_padding 0)."""
    return (size - 1) * s - 2 * p + d * (k - 1) + 1


def _conv(
    transpose, x, weight, stride, padding, dilation, groups, weight_exp, graded, latency, backend
):
    check_integer_array(x, "x", min_ndim=4)
    if len(x.shape) not in (4, 5):
        raise ParameterError(f"x must be (C, H, W, T) or (B, C, H, W, T), got shape {x.shape}")
    w = host_view(weight, "weight")
    if w.dtype.kind not in "iuf":
        raise ParameterTypeError(f"weight must be an integer array, got dtype {w.dtype}")
    w = np.ascontiguousarray(int_param("weight (8-bit mantissa)", w, -256, 255))
    layout = "(C_in, C_out/groups, kH, kW)" if transpose else "(C_out, C_in/groups, kH, kW)"
    if w.ndim != 4:
        raise ParameterError(f"weight must be 4-D {layout}, got {w.shape}")
    sh, sw = _pair("stride", stride, 1)
    ph, pw = _pair("padding", padding, 0)
    dh, dw = _pair("dilation", dilation, 1)
    g = int(int_param("groups", groups, 1, 1 << 16))
    squeeze = len(x.shape) == 4
    b = 1 if squeeze else int(x.shape[0])
    c_in, h, wd, steps = (int(d) for d in x.shape[-4:])
    kh, kw = w.shape[2:]
    if transpose:
        c_out = w.shape[1] * g
        ok = w.shape[0] == c_in and c_in % g == 0
        h_out = conv_transpose_output_size(h, kh, sh, ph, dh)
        w_out = conv_transpose_output_size(wd, kw, sw, pw, dw)
    else:
        c_out = w.shape[0]
        ok = c_in % g == 0 and c_out % g == 0 and w.shape[1] * g == c_in
        h_out = conv_output_size(h, kh, sh, ph, dh)
        w_out = conv_output_size(wd, kw, sw, pw, dw)
    if not ok:
        raise ParameterError(
            f"groups = {g} does not fit C_in = {c_in} and weight shape {w.shape} "
            f"(weight layout {layout})"
        )
    if h_out < 1 or w_out < 1:
        raise ParameterError(f"kernel {(kh, kw)} does not fit input {(h, wd)} with this padding")
    exp = int(int_param("weight_exp", weight_exp, -8, 7))
    lat = int(int_param("latency", latency, 0, 1 << 20))
    backend = _backend(backend, x)
    out_shape = (c_out, h_out, w_out, steps) if squeeze else (b, c_out, h_out, w_out, steps)
    geometry = ((sh, sw), (ph, pw), (dh, dw), g, exp, bool(graded))
    if backend == "reference":
        op = reference.conv_transpose2d if transpose else reference.conv2d
        return _latency(op(host_view(x, "x"), w, *geometry), lat)
    shape5 = (b, c_in, h, wd, steps)
    flat = (sh, sw, ph, pw, dh, dw, g, exp, bool(graded))
    if backend == "cpu":
        from . import cpu

        xv = _kernel_input(host_view(x, "x"), shape5)
        out = np.zeros((b, c_out, h_out, w_out, steps), np.int64)
        kernel = cpu.conv_transpose2d_kernel if transpose else cpu.conv2d_kernel
        par = cpu.PARALLEL[kernel]
        workers.run_shared(kernel, b * c_out, out.size, xv, w, *flat, out, parallel=par)
        return _latency(from_numpy_like(x, out.reshape(out_shape)), lat)
    gpu = _gpu()
    dev = _Device(x)
    xv = dev.input(x, shape5)
    kout, user = dev.output((b, c_out, h_out, w_out, steps), np.int64)
    total = b * c_out * h_out * w_out * steps
    kernel = gpu.conv_transpose2d_kernel if transpose else gpu.conv2d_kernel
    kernel[(*gpu.launch(total), dev.stream)](xv, dev.small(w), *flat, kout)
    return _latency(dev.finish(user).reshape(out_shape), lat)


def integer_kind(x: Any) -> bool:
    """True if ``x`` holds integers or booleans."""
    return dtype_kind(x) in "iub"

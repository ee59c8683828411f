"""Synapse layers (lava-dl ``slayer.synapse`` API), time-last tensors.

Weights are 5-D ``(out, in/groups, kH, kW, 1)`` and applied with ``conv3d``
(a 1-long time kernel), as lava-dl does; ``Dense`` is the 1x1 case. The
forward uses ``pre_hook_fx(weight)`` — set it to the neuron's
``quantize_8bit`` so that the weights seen in training are exactly the
exported mantissas divided by the scale.

``exact=True`` accumulates in float64 and returns float64. This is what a
sigma-delta neuron needs for bit exactness (payloads have 12 fractional bits,
weights 5, so float32 partial sums are exact only below about 2**6); for
binary spikes into CUBA neurons float32 is exact while ``|Σ W·s| < 2**24``.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..autograd.op import check_finite
from ..errors import ParameterError, ParameterTypeError
from ..quantize import int8_grid, refuses_non_finite
from ..safety.arguments import (
    check_conv_memory,
    check_layer_size,
    conv_args,
    int_pair,
    neurons_arg,
    size_arg,
)
from ._int_product import int_product_plan
from ._narrow_product import NARROW_MAX, Refused, narrow_plan


def _pair(v, name: str) -> tuple[int, int]:
    if isinstance(v, int):
        v = (v, v)
    try:
        a, b = (int(x) for x in v)
    except (TypeError, ValueError):
        raise ParameterTypeError(f"{name} must be an int or a pair of ints, got {v!r}") from None
    return a, b


def _check_finite(
    module: str, what: str, t: torch.Tensor, reaches: torch.Tensor | None = None
) -> None:
    """Refuse NaN/inf in ``t``. One reduction instead of isfinite's four passes: a sum is
    finite only if every term is (NaN and inf propagate); an overflowing finite sum falls
    through to the full check of ``t``. ``reaches``: a result that every NaN/inf of ``t``
    reaches (a synapse's output: 0 * inf is NaN, and the weights are finite); the smaller
    of the two is summed."""
    small = t if reaches is None or reaches.numel() >= t.numel() else reaches
    if not torch.compiler.is_compiling() and bool(torch.isfinite(small.detach().sum())):
        return
    check_finite(t, f"{module}: {what} contains NaN/inf")


def _dead() -> None:
    return None


class _WeakKey:
    """Equal to another for the same live object (a weak reference, compared by identity:
    a tensor's ``==`` compares values)."""

    __slots__ = ("ref",)

    def __init__(self, obj: object | None) -> None:
        self.ref = _dead if obj is None else weakref.ref(obj)

    def __reduce__(self) -> tuple:  # pickled (a saved module): equal to nothing
        return (_WeakKey, (None,))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _WeakKey) and self.ref() is not None and (self.ref() is other.ref())
        )

    __hash__ = None


class _Synapse:
    """Mixin: pre-hook, mask, exact accumulation, checks."""

    pre_hook_fx: Callable | None
    exact: bool

    def _init_common(self, weight_scale, weight_norm, pre_hook_fx, mask, exact) -> None:
        self.weight_scale = weight_scale
        self.pre_hook_fx = pre_hook_fx
        self.exact = bool(exact)
        if mask is not None:
            mask = torch.as_tensor(mask, dtype=torch.float32)
            try:
                mask = mask.reshape(self.weight.shape)
            except RuntimeError:
                raise ParameterError(
                    f"{type(self).__name__}: mask of shape {tuple(mask.shape)} does not match "
                    f"the weight shape {tuple(self.weight.shape)}"
                ) from None
            self.register_buffer("mask", mask)
        else:
            self.mask = None
        self._weight_norm = False
        if weight_norm:
            self.enable_weight_norm()
        self._register_load_state_dict_pre_hook(_weight_norm_keys, with_module=True)

    def enable_weight_norm(self) -> None:
        """Reparametrize the weight as ``g * v / |v|`` (per output channel)."""
        if not self._weight_norm:
            torch.nn.utils.parametrizations.weight_norm(self, name="weight", dim=0)
            self._weight_norm = True

    def disable_weight_norm(self) -> None:
        """Fold the weight norm back into a plain weight."""
        if self._weight_norm:
            torch.nn.utils.parametrize.remove_parametrizations(self, "weight")
            self._weight_norm = False

    @property
    def grad_norm(self) -> float:
        """lava-dl's gradient monitor: ``|grad| / numel`` of the weight (its norm ``g`` with
        weight norm), 0 before the first backward."""
        p = self.parametrizations.weight.original0 if self._weight_norm else self.weight
        g = p.grad
        return 0.0 if g is None else float(torch.linalg.vector_norm(g)) / g.numel()

    @property
    def pre_hook_weight(self) -> torch.Tensor:
        """The weight the forward uses: ``pre_hook_fx(weight * mask)``; NaN/inf weights are
        refused (by the hook itself where it does that: the default quantizer)."""
        w = self.weight if self.mask is None else self.weight * self.mask
        hook = self.pre_hook_fx
        if hook is None or not refuses_non_finite(hook):
            _check_finite(type(self).__name__, "weight", w)
            return w if hook is None else hook(w)
        try:
            return hook(w)
        except ParameterError:  # the hook's message, in the synapse's words
            raise ParameterError(f"{type(self).__name__}: weight contains NaN/inf") from None

    def _prepare(
        self, x: torch.Tensor, channels: int, check: bool = True, unfolds: bool = True
    ) -> tuple[torch.Tensor, bool]:
        name = f"synapse.{type(self).__name__}"
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ParameterTypeError(f"{name}: input must be a float tensor, got {type(x)}")
        if x.dim() == 3:
            if x.shape[1] != channels:
                raise ParameterError(
                    f"{name}: expected input (N, {channels}, T), found {tuple(x.shape)}"
                )
            squeeze = True
            x = x.reshape(x.shape[0], x.shape[1], 1, 1, x.shape[2])
        elif x.dim() == 5:
            if x.shape[1] != channels:
                raise ParameterError(
                    f"{name}: expected input (N, {channels}, H, W, T), found {tuple(x.shape)}"
                )
            squeeze = False
        else:
            raise ParameterError(
                f"{name}: expected input (N, {channels}, T) or (N, {channels}, H, W, T), "
                f"found {tuple(x.shape)}"
            )
        if x.shape[-1] == 0:
            raise ParameterError(f"{name}: the input's time axis is empty, shape {tuple(x.shape)}")
        if check:
            _check_finite(name, "input", x)
        # before PyTorch unfolds a huge kernel (``unfolds``: the forward may; a traced graph
        # has fixed, checked shapes)
        if unfolds and not torch.compiler.is_compiling():
            check_conv_memory(name, self, x.shape)
        if self.exact:
            x = x.to(torch.float64)
        return x, squeeze

    def _weight(self, x: torch.Tensor) -> torch.Tensor:
        w = self.pre_hook_weight
        return w.to(x.dtype)


#: lava-dl's weight-norm names (``torch.nn.utils.weight_norm``) -> the parametrization's.
_LAVA_WEIGHT_NORM = {
    "weight_g": "parametrizations.weight.original0",
    "weight_v": "parametrizations.weight.original1",
}


def _weight_norm_keys(module, state_dict, prefix, *_) -> None:
    """Accept a lava-dl state dict (``weight_g``/``weight_v``) with ``strict=True``."""
    if module._weight_norm:
        for old, new in _LAVA_WEIGHT_NORM.items():
            if prefix + old in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)


def _geometry_3d(kernel_size, stride, padding, dilation) -> dict:
    """PyTorch 3-D conv geometry for a 2-D kernel over (H, W) with a 1-long time kernel."""
    kh, kw = int_pair("synapse", "kernel_size", kernel_size, 1)
    sh, sw = int_pair("synapse", "stride", stride if stride is not None else kernel_size, 1)
    ph, pw = int_pair("synapse", "padding", padding, 0)
    dh, dw = int_pair("synapse", "dilation", dilation, 1)
    check_layer_size("synapse", (kh, kw), f"kernel_size = {(kh, kw)}")  # pool weights too
    return {
        "kernel_size": (kh, kw, 1),
        "stride": (sh, sw, 1),
        "padding": (ph, pw, 0),
        "dilation": (dh, dw, 1),
    }


def _require_5d(x: torch.Tensor, name: str, channels: Any) -> None:
    if x.dim() != 5:
        raise ParameterError(
            f"synapse.{name}: expected input (N, {channels}, H, W, T), found {tuple(x.shape)}"
        )


def exact_dense_plan(
    x3: torch.Tensor,
    w2: torch.Tensor,
    owner: object | None = None,
    time_major: bool = False,
    grid: tuple[torch.Tensor, float, int] | None = None,
) -> tuple[type[torch.autograd.Function], tuple] | None:
    """The exact product a dense synapse takes for ``w2 @ x3`` (``(O, I)`` by time-last
    ``(B, I, T)``), as ``(Function, its arguments)``, or None (the float GEMM): the int8
    operand's product (:func:`~._int_product.int_product_plan`), else, for few outputs (a
    classifier layer) on the time-last layout, the narrow product
    (:func:`~._narrow_product.narrow_plan`, whose forward may still raise
    :class:`~._narrow_product.Refused`). ``grid``: ``w2``'s int8 grid where known."""
    plan = int_product_plan(x3, w2, owner, time_major, grid)
    if plan is None and w2.shape[0] <= NARROW_MAX and not time_major:
        plan = narrow_plan(x3, w2, grid)
    return plan


class Dense(_Synapse, torch.nn.Conv3d):
    """Dense synapse ``y[n, o, t] = Σ_i w[o, i] x[n, i, t]`` (no bias).

    Parameters
    ----------
    in_neurons
        Input neurons (int, or a shape tuple that is flattened).
    out_neurons
        Output neurons.
    weight_scale
        Initial weight scale factor.
    weight_norm
        Use weight normalization.
    pre_hook_fx
        Weight quantizer (e.g. ``neuron.quantize_8bit``).
    mask
        Optional 0/1 connectivity mask of shape ``(out, in)``.
    exact
        float64 accumulation (for sigma-delta layers).

    The output is time-last ``(N, out, T)``; a consumer that steps through time (the
    recurrent blocks) sets ``time_major_output`` and gets a time-last view of time-major
    ``(T, N, out)`` memory instead (the same values, no transpose before its time loop,
    none of its gradient before the weight gradient).
    """

    #: make the output a view of time-major memory (see the class docstring)
    time_major_output: bool = False

    def __init__(
        self,
        in_neurons: int | Sequence[int],
        out_neurons: int,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        mask: torch.Tensor | None = None,
        *,
        exact: bool = False,
    ) -> None:
        n_in = neurons_arg("synapse.Dense", "in_neurons", in_neurons)
        size_arg("synapse.Dense", "out_neurons", out_neurons)
        given = f"in_neurons = {in_neurons}, out_neurons = {out_neurons}"
        check_layer_size("synapse.Dense", (out_neurons, n_in), given)
        super().__init__(n_in, out_neurons, (1, 1, 1), bias=False)
        if weight_scale != 1:
            with torch.no_grad():
                self.weight.mul_(weight_scale)
        self.in_neurons = n_in
        self.out_neurons = out_neurons
        self._init_common(weight_scale, weight_norm, pre_hook_fx, mask, exact)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in, T)`` or ``(N, C, H, W, T)`` with ``C*H*W = in`` -> ``(N, out, T)``."""
        if x.dim() == 5 and x.shape[1] * x.shape[2] * x.shape[3] == self.in_neurons:
            x = x.reshape(x.shape[0], self.in_neurons, x.shape[-1])
        # the input check waits: the int8 product reads every value and refuses NaN/inf;
        # a matrix product unfolds nothing (the memory check took 25 us a call)
        x5, _ = self._prepare(x, self.in_neurons, check=False, unfolds=False)
        w = self._weight(x5)
        # a matrix product, not a 1x1x1 conv3d: the same sums, and faster forward and
        # backward on CPU (exact either way for spikes on the weight grid). The result is
        # a time-last view of neuron-last memory, as the product leaves it: a consumer
        # that wants time-major rows (the fused recurrence) gets them without a transpose
        x3 = x5.reshape(x5.shape[0], self.in_neurons, x5.shape[-1])
        w2 = w.reshape(w.shape[0], self.in_neurons)
        # spikes by 8-bit weights: the exact product from an int8 operand where it applies
        # (int8 GEMM or sgemm by CPU; this synapse keeps the operand's float copy's memory
        # across steps)
        grid = int8_grid(w)  # the quantizer's mantissas, where it made w
        if grid is not None:
            grid = (grid[0].reshape(w2.shape), *grid[1:])
        plan = exact_dense_plan(x3, w2, self, self.time_major_output, grid)
        if plan is not None:
            try:
                return plan[0].apply(*plan[1])
            except Refused:  # an input the narrow product cannot take: the float GEMM
                pass
        # one GEMM on the rows of all batch items and steps, in a copy: matmul would take a
        # transposed 3-D operand as a batch of small GEMMs (N-MNIST's dense 128 -> 10 at
        # batch 32: 1.1-2.5 ms against 0.25 ms for the copy and one GEMM)
        n_b, n_i, steps = x3.shape
        n_o = w2.shape[0]
        if self.time_major_output:
            rows = x3.permute(2, 0, 1).reshape(steps * n_b, n_i)
            z = (rows @ w2.t()).view(steps, n_b, n_o).permute(1, 2, 0)
        else:
            rows = x3.transpose(1, 2).reshape(n_b * steps, n_i)
            z = (rows @ w2.t()).view(n_b, steps, n_o).transpose(1, 2)
        # NaN/inf in an input row reaches every output of its row: the smaller is summed
        # (the check of N-MNIST's dense 128 -> 10 input took 60-100 us a step)
        _check_finite(f"synapse.{type(self).__name__}", "input", x3, reaches=z)
        return z


class Conv(_Synapse, torch.nn.Conv3d):
    """2-D convolution synapse over ``(N, C, H, W, T)`` (time kernel 1, no bias)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        mask: torch.Tensor | None = None,
        *,
        exact: bool = False,
    ) -> None:
        geometry = _geometry_3d(kernel_size, stride, padding, dilation)
        conv_args(type(self).__name__, in_features, out_features, groups, geometry["kernel_size"])
        super().__init__(in_features, out_features, groups=groups, bias=False, **geometry)
        if weight_scale != 1:
            with torch.no_grad():
                self.weight.mul_(weight_scale)
        self._init_common(weight_scale, weight_norm, pre_hook_fx, mask, exact)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, H, W, T)`` -> ``(N, C_out, H', W', T)``."""
        _require_5d(x, "Conv", self.in_channels)
        x5, _ = self._prepare(x, self.in_channels)
        return F.conv3d(
            x5, self._weight(x5), None, self.stride, self.padding, self.dilation, self.groups
        )


class ConvTranspose(_Synapse, torch.nn.ConvTranspose3d):
    """Transposed 2-D convolution synapse (time kernel 1, no bias)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        mask: torch.Tensor | None = None,
        *,
        exact: bool = False,
    ) -> None:
        geometry = _geometry_3d(kernel_size, stride, padding, dilation)
        conv_args(type(self).__name__, in_features, out_features, groups, geometry["kernel_size"])
        super().__init__(in_features, out_features, groups=groups, bias=False, **geometry)
        if weight_scale != 1:
            with torch.no_grad():
                self.weight.mul_(weight_scale)
        self._init_common(weight_scale, weight_norm, pre_hook_fx, mask, exact)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, H, W, T)`` -> ``(N, C_out, H', W', T)``."""
        _require_5d(x, "ConvTranspose", self.in_channels)
        x5, _ = self._prepare(x, self.in_channels)
        return F.conv_transpose3d(
            x5, self._weight(x5), None, self.stride, self.padding, 0, self.groups, self.dilation
        )


class Pool(_Synapse, torch.nn.Conv3d):
    """Sum pooling per channel with a fixed weight ``weight_scale`` (quantized by the hook)."""

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        *,
        exact: bool = False,
    ) -> None:
        super().__init__(1, 1, bias=False, **_geometry_3d(kernel_size, stride, padding, dilation))
        with torch.no_grad():
            self.weight.fill_(float(weight_scale))
        self.weight.requires_grad_(False)
        self._init_common(weight_scale, weight_norm, pre_hook_fx, None, exact)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W, T)`` -> ``(N, C, H', W', T)``, channels pooled independently."""
        _require_5d(x, "Pool", "C")
        n, c = x.shape[:2]
        # a pool that reads every input value once checks its (smaller) output instead:
        # NaN or inf in the input reaches an output sum (0 * inf is NaN too)
        tiled = self._tiles(x.shape[2:4]) and not torch.compiler.is_compiling()
        x5, _ = self._prepare(x.reshape(n * c, 1, *x.shape[2:]), 1, check=not tiled)
        w = self._weight(x5)
        if math.prod(self.kernel_size) > _SLICE_POOL_MAX:
            y = F.conv3d(x5, w, None, self.stride, self.padding, self.dilation)
        else:
            y = _slice_pool(x5, w, self.stride, self.padding, self.dilation)
        if tiled:
            _check_finite(f"synapse.{type(self).__name__}", "input", x, reaches=y)
        return y.reshape(n, c, *y.shape[2:])

    def tiled_sum(self, x: torch.Tensor) -> tuple[tuple[int, int], float] | None:
        """``((kH, kW), w)`` when this pool's forward on ``x`` is the plain sum of exactly
        tiling windows times one weight ``w`` (float32 input, one value on every tap, no
        gradient to any of it): the sum a neuron kernel can form on its own input pass
        (``block.cuba.Pool``); else None."""
        kernel = tuple(self.kernel_size[:2])
        if (
            self.exact
            or x.dtype != torch.float32
            or x.dim() != 5
            or x.numel() == 0  # (an empty time axis is the unfused path's error)
            or math.prod(kernel) > _SLICE_POOL_MAX
            or not self._tiles(x.shape[2:4])
            or self._forward_hooks
            or self._forward_pre_hooks
        ):
            return None
        if torch.is_grad_enabled() and x.requires_grad:
            return None
        key = self._fixed_weight_key()
        if key is None or self._tap_memo[0] != key:
            w = self._weight(x)
            if torch.is_grad_enabled() and w.requires_grad:
                return None
            taps = w.detach().reshape(-1)
            tap = float(taps[0]) if bool((taps == taps[0]).all()) else None
            self._tap_memo = (key, tap)
        tap = self._tap_memo[1]
        return None if tap is None else (kernel, tap)

    #: the last :meth:`tiled_sum`'s weight key and tap (hooking the weight and checking
    #: its taps took 75 us a call)
    _tap_memo: tuple = (None, None)

    def _fixed_weight_key(self) -> tuple | None:
        """A key that changes whenever the hooked weight may: the plain weight (a weak
        reference: a new parameter is another weight) and its version (in-place changes,
        ``load_state_dict``), the hook (none, or a registered quantizer: its output depends
        on the weight and its neuron's scale only) and that scale; None for a trainable
        weight, a weight norm, a mask or the user's own hook."""
        hook, w = self.pre_hook_fx, self.weight
        if (
            self._weight_norm
            or self.mask is not None
            or w.requires_grad
            or not (hook is None or refuses_non_finite(hook))
        ):
            return None
        scale = getattr(getattr(hook, "__self__", None), "w_scale", None)
        return (_WeakKey(w), w._version, hook, scale)

    def _tiles(self, hw: tuple[int, int]) -> bool:
        """Whether the pool's windows tile the ``(H, W)`` input exactly (stride = kernel,
        no padding or dilation): every input value then enters exactly one output."""
        return all(
            k == s and p == 0 and d == 1 and size % k == 0
            for k, s, p, d, size in zip(
                self.kernel_size[:2],
                self.stride[:2],
                self.padding[:2],
                self.dilation[:2],
                hw,
                strict=True,
            )
        )


#: largest pool kernel (kH * kW) summed as strided slices; larger ones use conv3d
_SLICE_POOL_MAX = 16


def _slice_pool(x5: torch.Tensor, w: torch.Tensor, stride, padding, dilation) -> torch.Tensor:
    r"""Sum pool of ``(M, 1, H, W, T)`` as ``kH·kW`` strided slices (no unfolding).

    .. math::

        y[m, i, j, t] = \sum_{a, b} w[a, b]\, x[m, s_h i + d_h a - p_h, s_w j + d_w b - p_w, t]

    with zero padding: exactly the sums of ``conv3d`` with a ``(kH, kW, 1)`` kernel, each
    a few contiguous passes over the time axis (several times faster than PyTorch's CPU
    conv3d on pooling work). Differentiable in ``x`` and ``w``.
    """
    kh, kw = w.shape[2], w.shape[3]
    (sh, sw, _), (ph, pw, _), (dh, dw, _) = stride, padding, dilation
    if ph or pw:
        x5 = F.pad(x5, (0, 0, pw, pw, ph, ph))
    ho = (x5.shape[2] - dh * (kh - 1) - 1) // sh + 1
    wo = (x5.shape[3] - dw * (kw - 1) - 1) // sw + 1
    if ho <= 0 or wo <= 0:  # input smaller than the kernel: PyTorch's own error
        return F.conv3d(x5, w, None, stride, 0, dilation)
    taps = w.reshape(kh, kw)
    if (
        kh * kw > 1
        and not taps.requires_grad
        and not torch.compiler.is_compiling()
        and bool((taps == taps[0, 0]).all())
    ):
        # equal taps (the pool's fixed weight): sum the columns, then the rows, and scale
        # once: kH + kW passes over shrinking data instead of kH * kW over the input (a
        # traced graph keeps the per-tap sum: the compare is data-dependent, and the
        # compiler fuses the taps itself)
        cols = _tap_sum(x5, 3, kw, sw, dw, wo)
        y = _tap_sum(cols, 2, kh, sh, dh, ho)
        return y.mul_(taps[0, 0]) if kh > 1 else y * taps[0, 0]
    y = None
    for a in range(kh):
        for b in range(kw):
            part = x5[
                :,
                :,
                a * dh : a * dh + sh * (ho - 1) + 1 : sh,
                b * dw : b * dw + sw * (wo - 1) + 1 : sw,
            ]
            y = part * taps[a, b] if y is None else torch.addcmul(y, part, taps[a, b])
    return y


def _tap_sum(x: torch.Tensor, dim: int, k: int, stride: int, dilation: int, n: int):
    """``sum_a x[..., stride * i + dilation * a, ...]`` along ``dim`` for ``i < n``, ``a < k``
    (a view of ``x`` when ``k == 1``, else a new tensor)."""

    def part(a: int) -> torch.Tensor:
        return x.narrow(dim, a * dilation, stride * (n - 1) + 1)[
            (slice(None),) * dim + (slice(None, None, stride),)
        ]

    y = part(0)
    for a in range(1, k):
        y = y + part(a) if a == 1 else y.add_(part(a))
    return y


class Unpool(_Synapse, torch.nn.ConvTranspose3d):
    """Sum unpooling per channel (transposed pool) with a fixed weight ``weight_scale``."""

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        weight_scale: float = 1,
        weight_norm: bool = False,
        pre_hook_fx: Callable | None = None,
        *,
        exact: bool = False,
    ) -> None:
        super().__init__(1, 1, bias=False, **_geometry_3d(kernel_size, stride, padding, dilation))
        with torch.no_grad():
            self.weight.fill_(float(weight_scale))
        self.weight.requires_grad_(False)
        self._init_common(weight_scale, weight_norm, pre_hook_fx, None, exact)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W, T)`` -> ``(N, C, H', W', T)``."""
        _require_5d(x, "Unpool", "C")
        n, c = x.shape[:2]
        x5, _ = self._prepare(x.reshape(n * c, 1, *x.shape[2:]), 1)
        y = F.conv_transpose3d(
            x5, self._weight(x5), None, self.stride, self.padding, 0, 1, self.dilation
        )
        return y.reshape(n, c, *y.shape[2:])

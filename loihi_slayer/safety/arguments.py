"""Checks of sizes and geometry arguments where they enter a constructor.

A string size, a negative size, ``stride=0`` or a layer too big for memory must
give a :class:`~loihi_slayer.errors.ParameterError` naming the argument, its
value and the allowed range, not a ``ZeroDivisionError`` or an allocator error
from deep inside PyTorch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from ..errors import ParameterError, ParameterTypeError
from .memory import check_allocation

__all__ = [
    "check_conv_memory",
    "check_layer_size",
    "conv_args",
    "int_pair",
    "neurons_arg",
    "size_arg",
]


def size_arg(owner: str, name: str, value: Any, minimum: int = 1) -> int:
    """An integer size ``>= minimum`` (bools, strings and floats refused).

    Parameters
    ----------
    owner
        Class or function name for the message.
    name
        Argument name.
    value
        The value given.
    minimum
        Smallest allowed value.

    Returns
    -------
    int
        The size.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterTypeError(
            f"{owner}: {name} must be an integer >= {minimum}, got {type(value).__name__} {value!r}"
        )
    if int(value) < minimum:
        raise ParameterError(f"{owner}: {name} = {int(value)} must be >= {minimum}")
    return int(value)


def neurons_arg(owner: str, name: str, value: Any) -> int:
    """A neuron count given as an int or a shape (its product), each entry >= 1."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if len(value) == 0:
            raise ParameterError(f"{owner}: {name} = {value!r} must not be empty")
        return math.prod(size_arg(owner, f"{name}[{k}]", v) for k, v in enumerate(value))
    return size_arg(owner, name, value)


def int_pair(owner: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    """An int or an (H, W) pair of ints, each ``>= minimum``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        items: Any = (value, value)
    elif not isinstance(value, (str, bytes)) and hasattr(value, "__len__") and len(value) == 2:
        items = tuple(value)
    else:
        raise ParameterTypeError(
            f"{owner}: {name} must be an int or an (H, W) pair of ints >= {minimum}, got {value!r}"
        )
    a, b = (size_arg(owner, name, v, minimum) for v in items)
    return a, b


def check_layer_size(owner: str, shape: Sequence[int], given: str = "", itemsize: int = 4) -> None:
    """Refuse a weight of ``shape`` that would not fit the memory budget.

    ``given`` names the arguments that size it (``"in_neurons = 10, ..."``).
    """
    what = f"{owner}: {given + ' give ' if given else ''}a weight of shape {tuple(shape)}"
    check_allocation(what, [tuple(shape)], itemsize)


def conv_args(
    owner: str, in_features: Any, out_features: Any, groups: Any, kernel: Sequence[int]
) -> None:
    """Check the channel counts and groups of a convolution and its weight's memory."""
    cin = size_arg(owner, "in_features", in_features)
    cout = size_arg(owner, "out_features", out_features)
    g = size_arg(owner, "groups", groups)
    if cin % g or cout % g:
        raise ParameterError(
            f"{owner}: in_features = {cin} and out_features = {cout} must both be divisible by "
            f"groups = {g}"
        )
    given = (
        f"in_features = {cin}, out_features = {cout}, groups = {g}, "
        f"kernel_size = {tuple(kernel[:2])}"
    )
    check_layer_size(owner, (cout, cin // g, *kernel), given)


def check_conv_memory(owner: str, module: Any, shape: Sequence[int], itemsize: int = 8) -> None:
    """Refuse a (transposed) convolution whose working arrays would not fit memory.

    For an input ``(N, C, H, W, T)`` PyTorch unfolds ``C * kH * kW`` values per
    output position (H', W', T), so a huge kernel, padding or dilation needs
    memory far beyond the input's. ``module`` is a ``torch.nn.Conv3d`` or
    ``ConvTranspose3d`` (``kernel_size``, ``stride``, ``padding``, ``dilation``).
    """
    n, c, *spatial = (int(v) for v in shape)
    k = module.kernel_size
    transposed = bool(getattr(module, "transposed", False))
    out = []
    for axis, size in enumerate(spatial):
        s, p, d = module.stride[axis], module.padding[axis], module.dilation[axis]
        if transposed:
            out.append(max((size - 1) * s - 2 * p + d * (k[axis] - 1) + 1, 0))
        else:
            out.append(max((size + 2 * p - d * (k[axis] - 1) - 1) // s + 1, 0))
    unfold = (n, c * math.prod(k), *out)

    def what() -> str:  # formatted only for the error (this check runs on every forward)
        given = ", ".join(
            f"{a} = {tuple(getattr(module, a)[:2])}"
            for a in ("kernel_size", "stride", "padding", "dilation")
        )
        return f"{owner}: {given} on an input of shape {tuple(shape)}"

    check_allocation(what, [unfold], itemsize)

"""Validated integer parameter sets of the Loihi neuron models.

Every parameter may be a scalar or an integer array broadcastable to the neuron
shape (per-neuron or per-channel parameters). Values are checked against the
hardware ranges once, here, so that the kernels never see a value they cannot
represent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ParameterError, ParameterTypeError, describe

#: Largest magnitude of the 24-bit neuron state (voltage saturates here).
STATE_MAX = (1 << 23) - 1
#: Decays are 12-bit fractions of 4096; 4096 means "full decay".
DECAY_MAX = 4096
#: vThMant is an unsigned 17-bit mantissa.
VTH_MANT_MAX = (1 << 17) - 1

CUBA_RANGES: dict[str, tuple[int, int]] = {
    "i_decay": (0, DECAY_MAX),
    "v_decay": (0, DECAY_MAX),
    "v_th_mant": (0, VTH_MANT_MAX),
    "ref_delay": (1, 63),
    "bias_mant": (-(1 << 12), (1 << 12) - 1),
    "bias_exp": (-8, 7),
    "wgt_exp": (-8, 7),
}

SDNN_RANGES: dict[str, tuple[int, int]] = {
    "v_th_mant": (0, VTH_MANT_MAX),
    "bias": (-(1 << 15), (1 << 15) - 1),
    "spike_exp": (0, 16),
    "state_exp": (0, 16),
}

ACTIVATIONS = ("relu", "unit")


def int_param(name: str, value: Any, lo: int, hi: int) -> np.ndarray:
    """Check one integer parameter and return it as an int64 array.

    Parameters
    ----------
    name
        Parameter name used in error messages.
    value
        Scalar or array-like of integers. Floats are accepted only when every
        element is a finite whole number (HDF5 files store integers in float32).
    lo, hi
        Inclusive allowed range.

    Raises
    ------
    ParameterTypeError
        If the value is not numeric (strings, objects, complex, bool arrays).
    ParameterError
        If the value is NaN/infinite, not a whole number, or outside ``[lo, hi]``.
    """
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ParameterTypeError(f"{name}: cannot convert {value!r} to an integer array") from exc
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise ParameterTypeError(
            f"{name} must be an integer (or integer array), got {describe(value)} "
            f"of dtype {arr.dtype}; allowed range [{lo}, {hi}]"
        )
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ParameterError(
                f"{name} must be finite, got {describe(value)}; allowed range [{lo}, {hi}]"
            )
        if not np.all(arr == np.trunc(arr)):
            raise ParameterError(
                f"{name} must be a whole number, got {describe(value)}; allowed range [{lo}, {hi}]"
            )
    if arr.ndim and arr.size == 0:  # an empty array would broadcast to nothing
        raise ParameterError(f"{name} is an empty array; allowed range [{lo}, {hi}]")
    out = arr.astype(np.int64)
    if out.size and (out.min() < lo or out.max() > hi):
        bad = out[(out < lo) | (out > hi)].ravel()[0]
        raise ParameterError(f"{name} = {int(bad)} is outside the allowed range [{lo}, {hi}]")
    return out


def _validated(values: dict[str, Any], ranges: dict[str, tuple[int, int]]) -> dict[str, Any]:
    return {k: int_param(k, v, *ranges[k]) for k, v in values.items()}


@dataclass(frozen=True)
class CubaParams:
    r"""Parameters of the Loihi CUBA leaky integrate-and-fire neuron.

    .. math::

        u[t] &= \operatorname{wrap}_{24}\left(\operatorname{rz}\!\left(
                \frac{u[t-1]\,(4096 - \mathrm{iDecay})}{4096}\right)
                + 2^{6}\,\operatorname{shift}(a[t], \mathrm{wgtExp})\right)\\
        v[t] &= \operatorname{sat}_{24}\left(\operatorname{rz}\!\left(
                \frac{v[t-1]\,(4096 - \mathrm{vDecay})}{4096}\right) + u[t]
                + \mathrm{bias}\right)\\
        s[t] &= v[t] > \mathrm{vThMant}\cdot 2^{6}, \qquad v[t] \leftarrow 0
                \text{ if } s[t]

    where :math:`\operatorname{rz}` rounds toward zero, ``bias = bias_mant <<
    bias_exp`` and a spike holds ``v`` at 0 for ``ref_delay - 1`` further steps.

    Attributes
    ----------
    i_decay, v_decay
        12-bit decays in ``[0, 4096]`` (4096 = full decay, 0 = no decay).
    v_th_mant
        Threshold mantissa, unsigned 17 bit; compared as ``vThMant << 6``.
    ref_delay
        Refractory delay ``R >= 1``; ``R = 1`` means no refractory period.
    bias_mant, bias_exp
        Signed 13-bit bias mantissa and its exponent (netx uses 6).
    wgt_exp
        Weight exponent: synaptic sums are shifted by it (floor for negative
        values) before the ``<< 6`` MSB alignment.
    integrator_only
        Never spike (``v_th_mant`` is ignored). This is netx's default neuron for
        a dense layer without a neuron group, whose ``vThMant = 1 << 17`` lies
        above every saturated voltage.
    """

    i_decay: Any = 4096
    v_decay: Any = 4096
    v_th_mant: Any = 1
    ref_delay: Any = 1
    bias_mant: Any = 0
    bias_exp: Any = 6
    wgt_exp: Any = 0
    integrator_only: bool = False
    _arrays: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    #: the kernels' parameter table of the last neuron shape (see ``fixed.api``)
    _tables: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        checked = _validated(
            {k: getattr(self, k) for k in CUBA_RANGES},
            CUBA_RANGES,
        )
        self._arrays.update(checked)

    def array(self, name: str) -> np.ndarray:
        """The validated int64 array of parameter ``name``."""
        return self._arrays[name]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tables": {}}  # kept tables are made again, not pickled

    @property
    def bias(self) -> np.ndarray:
        """Effective bias ``bias_mant << bias_exp`` (arithmetic shift right if negative)."""
        m, e = np.broadcast_arrays(self.array("bias_mant"), self.array("bias_exp"))
        return np.where(e >= 0, m << np.maximum(e, 0), m >> np.maximum(-e, 0))

    @property
    def v_th(self) -> np.ndarray:
        """Effective threshold ``vThMant << 6`` (``2**23`` if ``integrator_only``)."""
        if self.integrator_only:
            return np.int64(1 << 23)
        return self.array("v_th_mant") << 6


@dataclass(frozen=True)
class SigmaDeltaParams:
    r"""Parameters of the Loihi sigma-delta neuron (legacy residue model).

    With :math:`E` = ``spike_exp`` and :math:`S` = ``state_exp``:

    .. math::

        \sigma[t] &= \sigma[t-1] + a[t] \\
        x[t] &= \max(\sigma[t] + \mathrm{bias}\cdot 2^{E+S}, 0) \\
        \Delta[t] &= x[t] - x[t-1] + r[t-1] \\
        s[t] &= \Delta[t]\,[\,|\Delta[t]| \ge \mathrm{vThMant}\cdot 2^{E+S}\,], \quad
        r[t] = \Delta[t] - s[t] \\
        y[t] &= \lfloor s[t] / 2^{S} \rfloor

    Attributes
    ----------
    v_th_mant
        Delta threshold mantissa (scaled by ``2^(E+S)``).
    bias
        Bias mantissa (scaled by ``2^(E+S)``), added inside the activation.
    spike_exp, state_exp
        ``E`` and ``S`` (netx: 6 and 6).
    activation
        ``'relu'`` or ``'unit'`` (identity).
    cum_error
        Accumulate the error and fire when ``|error| >= threshold``.
    """

    v_th_mant: Any = 0
    bias: Any = 0
    spike_exp: Any = 6
    state_exp: Any = 6
    activation: str = "relu"
    cum_error: bool = False
    _arrays: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    #: the kernels' parameter table of the last mode and neuron shape (see ``fixed.api``)
    _tables: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        checked = _validated({k: getattr(self, k) for k in SDNN_RANGES}, SDNN_RANGES)
        for k in ("spike_exp", "state_exp"):
            if checked[k].ndim != 0:
                raise ParameterTypeError(f"{k} must be a scalar, got shape {checked[k].shape}")
        if self.activation not in ACTIVATIONS:
            raise ParameterError(
                f"activation = {self.activation!r} is not supported; allowed: {ACTIVATIONS}"
            )
        if not isinstance(self.cum_error, (bool, np.bool_)):
            raise ParameterTypeError(f"cum_error must be a bool, got {self.cum_error!r}")
        self._arrays.update(checked)

    def array(self, name: str) -> np.ndarray:
        """The validated int64 array of parameter ``name``."""
        return self._arrays[name]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tables": {}}  # kept tables are made again, not pickled

    @property
    def shift(self) -> int:
        """``E + S``: the left shift applied to thresholds, bias and Delta inputs."""
        return int(self.array("spike_exp")) + int(self.array("state_exp"))

    @property
    def v_th(self) -> np.ndarray:
        """Effective threshold ``vThMant << (E + S)``."""
        return self.array("v_th_mant") << self.shift

    @property
    def bias_scaled(self) -> np.ndarray:
        """Effective bias ``bias << (E + S)``."""
        return self.array("bias") << self.shift

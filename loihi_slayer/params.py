"""YAML parameter files with dictionary access (slayerPytorch ``yamlParams``).

Examples
--------
>>> p = Params({'neuron': {'theta': 10}, 'simulation': {'Ts': 1.0}})
>>> p['neuron']['theta']
10
>>> p.validate(SLAYER_SCHEMA)  # unknown keys and bad values raise ParameterError
"""

from __future__ import annotations

import copy
import math
import numbers
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from .errors import FormatError, ParameterError, ParameterTypeError
from .fixed.params import DECAY_MAX, VTH_MANT_MAX
from .safety.atomic import atomic_write_bytes
from .safety.memory import check_allocation

__all__ = ["ANY", "Number", "Params", "SLAYER_SCHEMA", "Text", "check_descriptors"]

#: Schema marker: any value (no further key checking below this point).
ANY = None


@dataclass(frozen=True)
class Number:
    """Schema leaf: a finite real number in a range.

    Parameters
    ----------
    lo, hi
        Allowed range, inclusive (``lo`` exclusive when ``lo_open``).
    lo_open
        Exclude ``lo`` itself (e.g. a time constant must be > 0).
    integer
        Require a whole number.
    """

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        """The allowed range as text, e.g. ``'(0, 1e+06]'``."""
        kind = "an integer" if self.integer else "a number"
        lo, hi = (int(v) if math.isfinite(v) and v == int(v) else v for v in (self.lo, self.hi))
        return f"{kind} in {'(' if self.lo_open else '['}{lo}, {hi}]"

    def check(self, value: Any, where: str) -> None:
        """Raise :class:`ParameterError` naming ``where`` unless ``value`` fits."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ParameterError(
                f"parameter {where!r} = {value!r} must be {self.describe()}, got "
                f"{type(value).__name__}"
            )
        v = float(value)
        bad = not math.isfinite(v) or v > self.hi or v < self.lo or (self.lo_open and v == self.lo)
        if bad or (self.integer and v != int(v)):
            raise ParameterError(f"parameter {where!r} = {value!r} must be {self.describe()}")


@dataclass(frozen=True)
class Text:
    """Schema leaf: a string (optionally one of ``choices``)."""

    choices: tuple[str, ...] | None = None

    def check(self, value: Any, where: str) -> None:
        """Raise :class:`ParameterError` naming ``where`` unless ``value`` fits."""
        if not isinstance(value, str) or (self.choices is not None and value not in self.choices):
            allowed = "a string" if self.choices is None else f"one of {list(self.choices)}"
            raise ParameterError(f"parameter {where!r} = {value!r} must be {allowed}")


#: Largest time constant, sampling time or duration (ms) a descriptor may give.
_TIME_MAX = 1e9
_POSITIVE_TIME = Number(0, _TIME_MAX, lo_open=True)
_SCALE = Number(0, 1e6)

#: Allowed keys of a slayerPytorch style network parameter file. A dict maps
#: allowed keys to sub-schemas, :data:`ANY` accepts any value and a one-element
#: list applies its schema to every item of a list value.
SLAYER_SCHEMA: dict[str, Any] = {
    "simulation": {
        "Ts": _POSITIVE_TIME,
        "tSample": _POSITIVE_TIME,
        "nSample": Number(1, 1e9, integer=True),
    },
    "neuron": {
        "type": Text(),
        # the threshold must fit the 24-bit neuron state (vThMant << 6 for Loihi neurons)
        "theta": Number(0, float(1 << 24), lo_open=True),
        "tauSr": _POSITIVE_TIME,
        "tauRef": _POSITIVE_TIME,
        "scaleRef": _SCALE,
        "tauRho": Number(0, 1e6, lo_open=True),
        "scaleRho": _SCALE,
        "vThMant": Number(0, VTH_MANT_MAX, integer=True),
        "vDecay": Number(0, DECAY_MAX, integer=True),
        "iDecay": Number(0, DECAY_MAX, integer=True),
        "refDelay": Number(1, 63, integer=True),
        "wgtExp": Number(-8, 7, integer=True),
    },
    "layer": [{"dim": ANY, "wScale": Number(-1e6, 1e6), "delay": ANY}],
    "training": {
        "error": {
            "type": ANY,
            "probSlidingWin": ANY,
            "tgtSpikeRegion": {"start": ANY, "stop": ANY},
            "tgtSpikeCount": {True: ANY, False: ANY},
        },
        "learning": ANY,
        "path": ANY,
        "testing": ANY,
    },
}


class Params:
    """Parameters loaded from a YAML file (``yaml.safe_load``) or a mapping.

    Parameters
    ----------
    source
        path of a YAML file, or a mapping (deep-copied).
    schema
        optional schema to validate against immediately (see :meth:`validate`).

    Raises
    ------
    FormatError
        if the file is not valid YAML or its top level is not a mapping.
    """

    def __init__(
        self,
        source: str | os.PathLike | Mapping[str, Any] | None = None,
        schema: Mapping[Any, Any] | None = None,
    ) -> None:
        self.path: str | None = None
        if source is None:
            self.parameters: dict[Any, Any] = {}
        elif isinstance(source, Mapping):
            self.parameters = copy.deepcopy(dict(source))
        elif isinstance(source, str | os.PathLike):
            self.path = os.fspath(source)
            if os.path.isdir(self.path):
                raise FormatError("is a directory, not a YAML file", file=source)
            try:
                with open(source, "rb") as fh:
                    loaded = yaml.safe_load(fh.read().decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise FormatError(f"not UTF-8 text: {exc}", file=source) from None
            except (yaml.YAMLError, RecursionError) as exc:
                raise FormatError(f"invalid YAML: {exc}", file=source) from None
            if loaded is None:
                loaded = {}
            if not isinstance(loaded, dict):
                raise FormatError(
                    f"top level must be a mapping, got {type(loaded).__name__}", file=source
                )
            self.parameters = loaded
        else:
            raise ParameterTypeError(
                f"source must be a path or a mapping, got {type(source).__name__}"
            )
        if schema is not None:
            self.validate(schema)

    # dictionary access
    def __getitem__(self, key: Any) -> Any:
        return self.parameters[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.parameters[key] = value

    def __delitem__(self, key: Any) -> None:
        del self.parameters[key]

    def __contains__(self, key: object) -> bool:
        return key in self.parameters

    def __iter__(self) -> Iterator[Any]:
        return iter(self.parameters)

    def __len__(self) -> int:
        return len(self.parameters)

    def __repr__(self) -> str:
        origin = f"{self.path!r}, " if self.path else ""
        return f"Params({origin}{self.parameters!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Params):
            return self.parameters == other.parameters
        if isinstance(other, Mapping):
            return self.parameters == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def get(self, key: Any, default: Any = None) -> Any:
        """``dict.get`` on the top level."""
        return self.parameters.get(key, default)

    def keys(self) -> Any:
        """Top-level keys."""
        return self.parameters.keys()

    def items(self) -> Any:
        """Top-level items."""
        return self.parameters.items()

    def to_dict(self) -> dict[Any, Any]:
        """Deep copy of the parameters as plain dicts."""
        return copy.deepcopy(self.parameters)

    def save(self, path: str | os.PathLike) -> None:
        """Write the parameters as YAML (``yaml.safe_dump``, key order kept).

        The write is atomic: on failure a :class:`~loihi_slayer.safety.WriteError`
        is raised and an existing file is left unchanged.
        """
        try:
            text = yaml.safe_dump(self.parameters, sort_keys=False, default_flow_style=None)
        except yaml.YAMLError as exc:
            raise ParameterTypeError(f"parameters cannot be written as YAML: {exc}") from None
        atomic_write_bytes(path, text.encode("utf-8"))

    def validate(self, schema: Mapping[Any, Any]) -> None:
        """Check every key and value against ``schema``.

        Parameters
        ----------
        schema
            nested mapping of allowed keys; a value :data:`ANY` (``None``)
            accepts anything below, a mapping is checked recursively, a
            one-element list checks every item of a list value, a
            :class:`Number` or :class:`Text` checks the value. Missing keys
            are not errors.

        Raises
        ------
        ParameterError
            naming the first unknown key or bad value (with its dotted path),
            the value and the allowed keys or range.
        """
        _validate(self.parameters, schema, "")


def _key_name(key: Any) -> str:
    return str(key).lower() if isinstance(key, bool) else str(key)


def _validate(value: Any, schema: Any, where: str) -> None:
    if schema is ANY:
        return
    if isinstance(schema, (Number, Text)):
        schema.check(value, where)
        return
    if isinstance(schema, list):
        if len(schema) != 1:
            raise ParameterTypeError(f"list schemas must have exactly one item, at {where!r}")
        if not isinstance(value, list):
            raise ParameterError(
                f"parameter {where!r} must be a list, got {type(value).__name__} {value!r}"
            )
        for index, item in enumerate(value):
            _validate(item, schema[0], f"{where}[{index}]")
        return
    if not isinstance(schema, Mapping):
        raise ParameterTypeError(f"invalid schema entry at {where!r}: {schema!r}")
    if not isinstance(value, Mapping):
        raise ParameterError(
            f"parameter {where or '<root>'!r} must be a mapping with keys "
            f"{[_key_name(k) for k in schema]}, got {type(value).__name__} {value!r}"
        )
    for key, sub in value.items():
        if key not in schema:
            path = f"{where}.{_key_name(key)}" if where else _key_name(key)
            allowed = ", ".join(_key_name(k) for k in schema)
            raise ParameterError(
                f"unknown parameter key {path!r}; allowed keys"
                f"{' under ' + repr(where) if where else ''}: {allowed}"
            )
        _validate(sub, schema[key], f"{where}.{_key_name(key)}" if where else _key_name(key))


def check_descriptors(neuron: Any, simulation: Any) -> None:
    """Check slayerPytorch neuron and simulation descriptors where they enter.

    Parameters
    ----------
    neuron, simulation
        Mappings (``netParams['neuron']``, ``netParams['simulation']``).

    Raises
    ------
    ParameterError
        A known key's value is outside its range or of the wrong type (the
        message names the key, the value and the allowed range), or the
        ``tSample / Ts`` time bins would need more memory than allowed.
    """
    for name, desc in (("neuron", neuron), ("simulation", simulation)):
        if not isinstance(desc, Mapping):
            raise ParameterError(
                f"parameter {name!r} must be a mapping, got {type(desc).__name__} {desc!r}"
            )
        schema = SLAYER_SCHEMA[name]
        for key, value in desc.items():  # slayerPytorch ignores unknown keys; so do we
            if key in schema:
                _validate(value, schema[key], f"{name}.{_key_name(key)}")
    ts, t_sample = simulation.get("Ts"), simulation.get("tSample")
    if ts is not None and t_sample is not None:
        bins = math.ceil(float(t_sample) / float(ts))
        check_allocation(
            f"simulation tSample / Ts = {t_sample} / {ts} = {bins} time bins", [(bins,)] * 4, 4
        )

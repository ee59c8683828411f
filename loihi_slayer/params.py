"""YAML parameter files with dictionary access (slayerPytorch ``yamlParams``).

Examples
--------
>>> p = Params({'neuron': {'theta': 10}, 'simulation': {'Ts': 1.0}})
>>> p['neuron']['theta']
10
>>> p.validate(SLAYER_SCHEMA)  # unknown keys raise ParameterError
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from .errors import FormatError, ParameterError, ParameterTypeError

__all__ = ["Params", "SLAYER_SCHEMA", "ANY"]

#: Schema marker: any value (no further key checking below this point).
ANY = None

#: Allowed keys of a slayerPytorch style network parameter file. A dict maps
#: allowed keys to sub-schemas, :data:`ANY` accepts any value and a one-element
#: list applies its schema to every item of a list value.
SLAYER_SCHEMA: dict[str, Any] = {
    "simulation": {"Ts": ANY, "tSample": ANY, "nSample": ANY},
    "neuron": {
        "type": ANY,
        "theta": ANY,
        "tauSr": ANY,
        "tauRef": ANY,
        "scaleRef": ANY,
        "tauRho": ANY,
        "scaleRho": ANY,
        "vThMant": ANY,
        "vDecay": ANY,
        "iDecay": ANY,
        "refDelay": ANY,
        "wgtExp": ANY,
    },
    "layer": [{"dim": ANY, "wScale": ANY, "delay": ANY}],
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
            with open(source, encoding="utf-8") as fh:
                try:
                    loaded = yaml.safe_load(fh)
                except yaml.YAMLError as exc:
                    raise FormatError(f"invalid YAML: {exc}", file=source) from exc
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
        """Write the parameters as YAML (``yaml.safe_dump``, key order kept)."""
        text = yaml.safe_dump(self.parameters, sort_keys=False, default_flow_style=None)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)

    def validate(self, schema: Mapping[Any, Any]) -> None:
        """Check that every key is allowed by ``schema``.

        Parameters
        ----------
        schema
            nested mapping of allowed keys; a value :data:`ANY` (``None``)
            accepts anything below, a mapping is checked recursively, a
            one-element list checks every item of a list value. Missing keys
            are not errors.

        Raises
        ------
        ParameterError
            naming the first unknown key (with its dotted path) and listing the
            allowed keys at that level.
        """
        _validate(self.parameters, schema, "")


def _key_name(key: Any) -> str:
    return str(key).lower() if isinstance(key, bool) else str(key)


def _validate(value: Any, schema: Any, where: str) -> None:
    if schema is ANY:
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

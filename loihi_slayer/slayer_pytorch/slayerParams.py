"""slayerPytorch's ``slayerParams`` module: ``yamlParams`` (``snn.params``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..params import Params

__all__ = ["yamlParams"]


class yamlParams(Params):
    """Network parameters from a YAML file or a dict (slayerPytorch ``yamlParams``).

    Parameters
    ----------
    parameter_file_path
        YAML file; when None, ``dict`` is used.
    dict
        Parameter mapping (slayerPytorch's keyword, copied).
    """

    def __init__(
        self,
        parameter_file_path: str | os.PathLike | None = None,
        dict: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(parameter_file_path if parameter_file_path is not None else (dict or {}))

"""The base of an algorithm's own hyperparameters: a frozen dataclass in `softac/algos/<name>/params.py`,
one documented field each (`softac.fields.doc_field`) with the authors' default, and a `validate`.

The command line shows the fields as flags of `softac train` (`--n-quantiles 25`), `config.json` records
them under `algo_params`, and presets and `softac sweep --grid` reach them by name, all through
`SACConfig` (its field `algo_params` and its `replace`). Light: no JAX here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AlgorithmParams:
    """Hyperparameters of one algorithm; subclasses add fields and override `validate`."""

    def validate(self) -> None:
        """Raise SoftacError, one sentence, for the first invalid value."""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

"""Documented, validated dataclass fields: what `SACConfig` and every algorithm's own hyperparameters
(`softac.algos.<name>.params`) are made of. Imports nothing heavy (no JAX), so the command line can build
its flags and check values before it loads the library."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from softac.errors import SoftacError


def doc_field(text: str, **kwargs: Any):
    """A dataclass field whose one-line documentation is the CLI help."""
    return dataclasses.field(metadata={"help": text}, **kwargs)


def check(condition: bool, message: str) -> None:
    """SoftacError(message), one sentence, unless `condition`."""
    if not condition:
        raise SoftacError(message)


def is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_positive_int(name: str, value: Any) -> None:
    check(isinstance(value, int) and not isinstance(value, bool) and value > 0,
          f"{name} must be a positive integer, got {value!r}.")


def check_non_negative_int(name: str, value: Any) -> None:
    check(isinstance(value, int) and not isinstance(value, bool) and value >= 0,
          f"{name} must be a non-negative integer, got {value!r}.")


def check_in_range(name: str, value: Any, low: float, high: float, *, low_open: bool = False,
                   high_open: bool = True) -> None:
    """`value` a finite number in [low, high) (brackets as the flags say)."""
    ok = is_finite_number(value) and (value > low if low_open else value >= low) and (
        value < high if high_open else value <= high)
    brackets = ("(" if low_open else "[") + f"{low:g}, {high:g}" + (")" if high_open else "]")
    check(ok, f"{name} must be in {brackets}, got {value!r}.")

"""From a searcher's suggestion to a trial's run config: the values Optuna draws for a search space
(`softac.algos.search_space`) are decoded and applied to the study's base config, in the driver (to
check and show them) and inside the Ray Tune trial that trains them (`softac.distributed`).

Optuna's categorical choices are numbers, strings, booleans or None, so a tuple choice such as
hidden_sizes (256, 256) travels as the string "256,256" and is decoded here by the field's type.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from softac.algos.search_space import Dimension
from softac.config import SACConfig, field_hints
from softac.errors import SoftacError

TRIAL_PREFIX = "trial"  # a study trial's Tune name and run directories: trial0007, runs/trial0007__seed0


def is_tuple_field(name: str) -> bool:
    hint = field_hints().get(name)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) is tuple


def encode_choice(value: Any) -> Any:
    """A choice as Optuna stores it: a tuple becomes "256,256"; numbers, strings and booleans stay."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


def decode_value(name: str, value: Any) -> Any:
    """A drawn value as the config field `name` takes it ("256,256" -> (256, 256) for a tuple field)."""
    if isinstance(value, str) and is_tuple_field(name):
        return tuple(int(part) for part in value.split(",") if part)
    return value


def config_changes(space: tuple[Dimension, ...], params: dict[str, Any]) -> dict[str, Any]:
    """The config fields that a suggestion sets: each drawn value, decoded, and the fields tied to it."""
    tied = {d.name: d.also_sets for d in space}
    changes: dict[str, Any] = {}
    for name, value in params.items():
        decoded = decode_value(name, value)
        changes[name] = decoded
        for other in tied.get(name, ()):
            changes[other] = decoded
    return changes


def trial_run_name(number: int, seeds: tuple[int, ...]) -> str:
    """runs/trial0007__seed3 for a trial of one seed; runs/trial0007 (a directory per seed inside) for several."""
    name = f"{TRIAL_PREFIX}{number:04d}"
    return name if len(seeds) > 1 else f"{name}__seed{seeds[0]}"


def suggested_config(base: SACConfig, number: int, changes: dict[str, Any]) -> SACConfig:
    """The run config of study trial `number`: `base` with a suggestion's changes (`config_changes`) and its
    own run name."""
    try:
        return base.replace(**changes, run_name=trial_run_name(number, base.seed_list))
    except SoftacError as exc:
        raise SoftacError(f"trial {number}: {exc}") from None


def suggestion_label(space: tuple[Dimension, ...], params: dict[str, Any]) -> str:
    """learning_rate=0.00031,batch_size=128 (floats to 3 significant digits), for progress lines."""
    parts = []
    for d in space:
        if d.name in params:
            value = params[d.name]
            parts.append(f"{d.name}={value:.3g}" if isinstance(value, float) else f"{d.name}={value}")
    return ",".join(parts)


def trial_key(config: dict) -> str:
    """The name of a trial from its Tune config: a sweep's or benchmark's own name, or trial0007 for study
    trial 7 of `softac tune` (whose config carries the searcher's suggestion under "search")."""
    search = config.get("search")
    if search is not None:
        return f"{TRIAL_PREFIX}{search['number']:04d}"
    return config["trial"]["name"]

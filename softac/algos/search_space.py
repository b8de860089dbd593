"""Search spaces of hyperparameter optimisation (`softac tune`): one `Dimension` per config field, and the
space every twin-critic algorithm shares, after the RL Baselines3 Zoo's SAC space (`rl_zoo3/hyperparams_opt.py`).

An algorithm declares its default space in its registry entry (`AlgorithmSpec.search_space`): the shared
space, narrowed or extended with its own fields (TQC's atoms, DroQ's dropout, ...). `softac tune --space
FILE.toml` replaces it (`softac.optimize.read_space_file`). Light on purpose: no JAX, no Optuna here.

Kinds of dimension, each a distribution of Optuna's:
- "log": a float drawn log-uniformly from [low, high] (FloatDistribution(log=True)), for rates;
- "uniform": a float drawn uniformly from [low, high] (FloatDistribution);
- "int": an integer from low to high, both included (IntDistribution);
- "choice": one of `choices` (CategoricalDistribution); a tuple value (hidden_sizes) is one choice.
`also_sets` names fields that take the same value: the Zoo ties gradient_steps to train_freq (one
gradient step per env step on average, whatever the interval), as `train_every` does here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

KINDS = ("log", "uniform", "int", "choice")


@dataclass(frozen=True)
class Dimension:
    """One searched config field: its kind, its range (`low`, `high`) or its `choices`, and the fields tied to it."""

    name: str
    kind: str
    low: Optional[float] = None
    high: Optional[float] = None
    choices: tuple = ()
    also_sets: tuple[str, ...] = ()

    def describe(self) -> str:
        """`learning_rate: log [1e-05, 0.003]` or `batch_size: choice (64, 128)`, for tables and --help."""
        tied = f" (also sets {', '.join(self.also_sets)})" if self.also_sets else ""
        if self.kind == "choice":
            return f"{self.name}: choice ({', '.join(_text(c) for c in self.choices)}){tied}"
        return f"{self.name}: {self.kind} [{_text(self.low)}, {_text(self.high)}]{tied}"

    def to_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {"kind": self.kind}
        if self.kind == "choice":
            values["choices"] = [list(c) if isinstance(c, tuple) else c for c in self.choices]
        else:
            values["low"], values["high"] = self.low, self.high
        if self.also_sets:
            values["also_sets"] = list(self.also_sets)
        return {self.name: values}

    @classmethod
    def from_dict(cls, name: str, values: dict[str, Any]) -> "Dimension":
        choices = tuple(tuple(c) if isinstance(c, list) else c for c in values.get("choices", ()))
        return cls(name, values["kind"], values.get("low"), values.get("high"), choices,
                   tuple(values.get("also_sets", ())))


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


# The RL Zoo's SAC space (sample_sac_params), with its widest ranges narrowed to what trains at all here:
# the Zoo draws the learning rate from [1e-5, 1] and buffer sizes and warm-ups that a short trial cannot use.
# gamma, batch size, tau and the network sizes are the Zoo's choices (net_arch small/medium/big).
SHARED_SEARCH_SPACE: tuple[Dimension, ...] = (
    Dimension("gamma", "choice", choices=(0.95, 0.98, 0.99, 0.995, 0.999)),
    Dimension("learning_rate", "log", 1e-5, 3e-3),
    Dimension("batch_size", "choice", choices=(64, 128, 256, 512)),
    Dimension("tau", "choice", choices=(0.001, 0.005, 0.01, 0.02, 0.05)),
    Dimension("train_every", "choice", choices=(1, 2, 4, 8), also_sets=("gradient_steps",)),
    Dimension("hidden_sizes", "choice", choices=((64, 64), (256, 256), (400, 300))),
)


def without(space: tuple[Dimension, ...], *names: str) -> tuple[Dimension, ...]:
    """`space` less the dimensions of `names` (an algorithm that fixes them, such as a UTD-20 algorithm's train_every)."""
    return tuple(d for d in space if d.name not in names)


def dimension_names(space: tuple[Dimension, ...]) -> tuple[str, ...]:
    """Every field a space sets: its dimensions and the fields tied to them."""
    return tuple(n for d in space for n in (d.name, *d.also_sets))

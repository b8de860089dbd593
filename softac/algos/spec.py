"""The registry entry that declares an algorithm (`AlgorithmSpec`), and the defaults every algorithm shares.

Light on purpose (no JAX): the command line, the config's validation and `softac train --help` read the
registry before anything heavy is imported. An algorithm's agent class is named by its import path and
imported when an agent is first made.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Optional

from softac.algos.params import AlgorithmParams
from softac.algos.search_space import SHARED_SEARCH_SPACE, Dimension


@dataclass(frozen=True)
class AlgorithmSpec:
    """One registered algorithm: the registry (`softac.algos.registry.REGISTRY`) is the one place it is named.

    name: the value of `--algo`; agent: "module:Class" of its agent (implements `softac.algos.base.Agent`);
    discrete: True if it handles Discrete action spaces, False for Box; metrics: the names its update may
    return, each a column of metrics.csv (an update returning any other name is an error); summary: one
    line for `--help`; config_defaults: values of the shared `SACConfig` fields whose default is None ("the
    algorithm's default") that this algorithm uses when the user does not set them; params: the dataclass
    of its own hyperparameters (softac.algos.params.AlgorithmParams), or None if it has none; search_space:
    the fields `softac tune` searches by default (softac.algos.search_space), after the RL Zoo's SAC space.
    """

    name: str
    agent: str
    discrete: bool
    metrics: tuple[str, ...]
    summary: str
    config_defaults: dict[str, Any] = field(default_factory=dict)
    params: Optional[type[AlgorithmParams]] = None
    search_space: tuple[Dimension, ...] = SHARED_SEARCH_SPACE

    def agent_class(self):
        """The agent class (imports its module, and with it JAX)."""
        module, _, name = self.agent.partition(":")
        return getattr(importlib.import_module(module), name)

    def param_names(self) -> tuple[str, ...]:
        return self.params.field_names() if self.params is not None else ()


# The metrics of the twin-critic algorithms with a learned temperature (alpha_loss only when it is learned).
SOFT_ACTOR_CRITIC_METRICS = ("critic_loss", "q_mean", "actor_loss", "entropy", "alpha_loss", "alpha")

# What every algorithm uses unless its spec says otherwise (the published SAC v2 settings).
COMMON_DEFAULTS = {"learning_rate": 3e-4, "adam_beta1": 0.9, "critic_hidden_sizes": None, "network_init": "flax",
                   "gradient_steps": 1,
                   "initial_alpha": 1.0}

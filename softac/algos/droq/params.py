"""DroQ's own hyperparameters, as SBX configures it (Hiraoka et al., ICLR 2022)."""

from __future__ import annotations

from dataclasses import dataclass

from softac.algos.params import AlgorithmParams
from softac.algos.search_space import SHARED_SEARCH_SPACE, Dimension, without
from softac.fields import check, check_in_range, check_positive_int, doc_field


@dataclass(frozen=True)
class DroQParams(AlgorithmParams):
    dropout_rate: float = doc_field("Dropout rate of the critics' hidden layers, in [0, 1) (the authors' 0.01).",
                                    default=0.01)
    layer_norm: bool = doc_field("Layer normalisation after the dropout of every critic hidden layer.", default=True)
    policy_delay: int = doc_field("Critic steps per actor and temperature step (20: once per env step at 20 "
                                  "gradient steps per env step, as SBX runs DroQ).", default=20)

    def validate(self) -> None:
        check_in_range("dropout_rate", self.dropout_rate, 0.0, 1.0)
        check(isinstance(self.layer_norm, bool), f"layer_norm must be true or false, got {self.layer_norm!r}.")
        check_positive_int("policy_delay", self.policy_delay)

# UTD (gradient_steps, the actor once per env step: policy_delay tied to it) and the dropout rate; train_every
# stays 1, as in SBX's DroQ.
SEARCH_SPACE = without(SHARED_SEARCH_SPACE, "train_every") + (
    Dimension("gradient_steps", "choice", choices=(5, 10, 20), also_sets=("policy_delay",)),
    Dimension("dropout_rate", "log", 1e-3, 1e-1),
)

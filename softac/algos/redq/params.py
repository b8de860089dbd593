"""REDQ's own hyperparameters, with the authors' defaults (Chen et al., ICLR 2021)."""

from __future__ import annotations

from dataclasses import dataclass

from softac.algos.params import AlgorithmParams
from softac.algos.search_space import SHARED_SEARCH_SPACE, Dimension, without
from softac.fields import check, check_positive_int, doc_field


@dataclass(frozen=True)
class REDQParams(AlgorithmParams):
    n_critics: int = doc_field("Number N of critics in the ensemble (the authors' 10).", default=10)
    target_subset_size: int = doc_field("Number M of target critics drawn, without replacement, for each update's "
                                        "minimum in the target (the authors' 2).", default=2)
    policy_delay: int = doc_field("Critic steps per actor and temperature step (the authors' 20: once per env step "
                                  "at 20 gradient steps per env step).", default=20)

    def validate(self) -> None:
        check_positive_int("n_critics", self.n_critics)
        check_positive_int("target_subset_size", self.target_subset_size)
        check(self.target_subset_size <= self.n_critics,
              f"target_subset_size ({self.target_subset_size}) cannot be larger than n_critics ({self.n_critics}).")
        check_positive_int("policy_delay", self.policy_delay)

# UTD (gradient_steps, the actor once per env step: policy_delay tied to it) and the ensemble's size; train_every
# stays 1, as the authors run it.
SEARCH_SPACE = without(SHARED_SEARCH_SPACE, "train_every") + (
    Dimension("gradient_steps", "choice", choices=(5, 10, 20), also_sets=("policy_delay",)),
    Dimension("n_critics", "choice", choices=(5, 10)),
)

"""SAC v1's own hyperparameters (Haarnoja et al. 2018a, Algorithm 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from softac.algos.params import AlgorithmParams
from softac.algos.search_space import SHARED_SEARCH_SPACE, Dimension
from softac.fields import check, is_finite_number, doc_field


@dataclass(frozen=True)
class SACV1Params(AlgorithmParams):
    value_learning_rate: Optional[float] = doc_field("Learning rate of the state-value network V (lambda_V); "
                                                     "default learning_rate.", default=None)

    def validate(self) -> None:
        value = self.value_learning_rate
        check(value is None or (is_finite_number(value) and value > 0),
              f"value_learning_rate must be positive, got {value!r}.")

# The shared space and the 2018a paper's reward scale (its fixed temperature is 1 / reward_scale).
SEARCH_SPACE = SHARED_SEARCH_SPACE + (Dimension("reward_scale", "log", 1.0, 20.0),)

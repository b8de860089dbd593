"""Discrete SAC's own hyperparameters (Christodoulou 2019)."""

from __future__ import annotations

from dataclasses import dataclass

from softac.algos.params import AlgorithmParams
from softac.algos.search_space import SHARED_SEARCH_SPACE, Dimension
from softac.fields import check_in_range, doc_field


@dataclass(frozen=True)
class SACDiscreteParams(AlgorithmParams):
    target_entropy_scale: float = doc_field("Target entropy as a fraction of the uniform policy's, log|A| (the "
                                            "paper's 0.98 is less stable than 0.5).", default=0.5)

    def validate(self) -> None:
        check_in_range("target_entropy_scale", self.target_entropy_scale, 0.0, 1.0, low_open=True)

# The shared space and the target entropy as a fraction of the uniform policy's.
SEARCH_SPACE = SHARED_SEARCH_SPACE + (Dimension("target_entropy_scale", "uniform", 0.2, 0.9),)

"""TQC's own hyperparameters (Kuznetsov, Shvechikov, Grishin, Vetrov, ICML 2020, "Controlling
Overestimation Bias with Truncated Mixture of Continuous Distributional Quantile Critics").

The defaults are those of sb3-contrib and SBX: 2 critics of 25 atoms, 2 atoms dropped per critic. The
authors use 5 critics and tune the atoms dropped per critic by environment (5 on Hopper, 0 on
HalfCheetah, 2 on most others).
"""

from __future__ import annotations

from dataclasses import dataclass

from softac.algos.params import AlgorithmParams
from softac.algos.search_space import SHARED_SEARCH_SPACE, Dimension
from softac.fields import check, check_non_negative_int, check_positive_int, doc_field


@dataclass(frozen=True)
class TQCParams(AlgorithmParams):
    n_critics: int = doc_field("Number N of quantile critic networks (the authors use 5).", default=2)
    n_quantiles: int = doc_field("Number M of atoms (quantiles) each critic outputs.", default=25)
    top_quantiles_to_drop: int = doc_field(
        "Atoms d dropped per critic network from the top of the pooled, sorted target atoms: the target keeps "
        "the smallest N*(M - d) (the authors drop 5 on Hopper, 0 on HalfCheetah).", default=2)

    def validate(self) -> None:
        check_positive_int("n_critics", self.n_critics)
        check_positive_int("n_quantiles", self.n_quantiles)
        check_non_negative_int("top_quantiles_to_drop", self.top_quantiles_to_drop)
        check(self.top_quantiles_to_drop < self.n_quantiles,
              f"top_quantiles_to_drop ({self.top_quantiles_to_drop}) must be smaller than n_quantiles "
              f"({self.n_quantiles}).")

# The shared space and the quantile fields (sb3-contrib's TQC space in the RL Zoo adds top_quantiles_to_drop_per_net).
SEARCH_SPACE = SHARED_SEARCH_SPACE + (
    Dimension("n_quantiles", "choice", choices=(10, 25, 50)),
    Dimension("top_quantiles_to_drop", "int", 0, 5),
    Dimension("n_critics", "choice", choices=(2, 5)),
)

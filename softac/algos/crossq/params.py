"""CrossQ's own hyperparameters, with the authors' defaults (Bhatt et al., ICLR 2024)."""

from __future__ import annotations

from dataclasses import dataclass

from softac.algos.params import AlgorithmParams
from softac.algos.search_space import SHARED_SEARCH_SPACE, Dimension, without
from softac.fields import check_in_range, check_non_negative_int, check_positive_int, doc_field


@dataclass(frozen=True)
class CrossQParams(AlgorithmParams):
    policy_delay: int = doc_field("Critic steps per actor and temperature step (the authors' 3).", default=3)
    batch_norm_momentum: float = doc_field("Momentum m of the running statistics of Batch Renormalization "
                                           "(mu <- m mu + (1 - m) mu_batch).", default=0.99)
    renorm_warmup_steps: int = doc_field("Training passes of each Batch Renormalization layer before it corrects "
                                         "towards the running statistics (plain batch normalisation until then).",
                                         default=100_000)

    def validate(self) -> None:
        check_positive_int("policy_delay", self.policy_delay)
        check_in_range("batch_norm_momentum", self.batch_norm_momentum, 0.0, 1.0)
        check_non_negative_int("renorm_warmup_steps", self.renorm_warmup_steps)

# CrossQ has no target networks (tau does nothing); its critics' width and policy delay are searched instead.
SEARCH_SPACE = without(SHARED_SEARCH_SPACE, "tau", "learning_rate") + (
    Dimension("learning_rate", "log", 1e-4, 3e-3),
    Dimension("policy_delay", "choice", choices=(1, 3)),
    Dimension("critic_hidden_sizes", "choice", choices=((256, 256), (512, 512), (2048, 2048))),
    Dimension("batch_norm_momentum", "choice", choices=(0.9, 0.99)),
)

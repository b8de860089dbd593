"""SimbaV2's own hyperparameters, with the authors' defaults (Lee et al., 2025; github dojeon-ai/SimbaV2,
configs/agent/simbaV2.yaml and configs/env/mujoco.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from softac.algos.params import AlgorithmParams
from softac.algos.search_space import SHARED_SEARCH_SPACE, Dimension, without
from softac.fields import check, check_positive_int, doc_field, is_finite_number


@dataclass(frozen=True)
class SimbaV2Params(AlgorithmParams):
    """The network sizes are these fields (hidden_sizes and critic_hidden_sizes do not apply), and the kernels are
    orthogonal and projected onto the unit sphere (network_init does not apply)."""

    actor_num_blocks: int = doc_field("Residual (LERP) blocks of the actor (SimbaV2 ignores hidden_sizes).", default=1)
    actor_hidden_dim: int = doc_field("Width of the actor's hyperspherical embedding and blocks.", default=128)
    critic_num_blocks: int = doc_field("Residual (LERP) blocks of each critic (SimbaV2 ignores critic_hidden_sizes).",
                                       default=2)
    critic_hidden_dim: int = doc_field("Width of each critic's hyperspherical embedding and blocks.", default=512)
    clipped_double_q: bool = doc_field("Two critics and the clipped double-Q target (the authors' setting for "
                                       "episodic tasks such as MuJoCo; one critic for DMC).", default=True)
    num_bins: int = doc_field("Atoms of the critic's categorical return distribution on [v_min, v_max].",
                              default=101)
    v_min: float = doc_field("Lowest atom of the critic's support (the authors' -G_max).", default=-5.0)
    v_max: float = doc_field("Highest atom of the critic's support (the authors' G_max).", default=5.0)
    shift_constant: float = doc_field("The constant c_shift appended to the input before its L2 normalisation.",
                                      default=3.0)
    final_learning_rate: float = doc_field("Learning rate at the last update; every learning rate decays "
                                           "linearly to it over the training's updates.", default=5e-5)
    normalize_observations: bool = doc_field("Normalise observations with their running mean and variance.",
                                             default=True)
    normalize_rewards: bool = doc_field("Scale rewards by the running statistics of the discounted return.",
                                        default=True)
    return_bound: float = doc_field("G_max: the reward scale is at least max|G| / G_max, so scaled returns stay "
                                    "within [-G_max, G_max].", default=5.0)

    def validate(self) -> None:
        for name in ("actor_num_blocks", "actor_hidden_dim", "critic_num_blocks", "critic_hidden_dim"):
            check_positive_int(name, getattr(self, name))
        check(isinstance(self.num_bins, int) and not isinstance(self.num_bins, bool) and self.num_bins >= 2,
              f"num_bins must be an integer of at least 2, got {self.num_bins!r}.")
        check(is_finite_number(self.v_min) and is_finite_number(self.v_max) and self.v_min < self.v_max,
              f"v_min must be below v_max (both finite), got v_min {self.v_min!r} and v_max {self.v_max!r}.")
        check(is_finite_number(self.shift_constant) and self.shift_constant > 0,
              f"shift_constant must be a positive number, got {self.shift_constant!r}.")
        check(is_finite_number(self.final_learning_rate) and self.final_learning_rate > 0,
              f"final_learning_rate must be a positive number, got {self.final_learning_rate!r}.")
        check(is_finite_number(self.return_bound) and self.return_bound > 0,
              f"return_bound must be a positive number, got {self.return_bound!r}.")
        for name in ("clipped_double_q", "normalize_observations", "normalize_rewards"):
            check(isinstance(getattr(self, name), bool), f"{name} must be true or false, got {getattr(self, name)!r}.")

# SimbaV2's widths replace hidden_sizes; its learning rate decays to final_learning_rate, so it stays the authors'.
SEARCH_SPACE = without(SHARED_SEARCH_SPACE, "hidden_sizes", "learning_rate") + (
    Dimension("critic_hidden_dim", "choice", choices=(128, 256, 512)),
    Dimension("actor_hidden_dim", "choice", choices=(64, 128)),
)

"""TQC's critic (docs/algorithms.md, "TQC (Kuznetsov et al., ICML 2020)"): a quantile critic, one MLP whose
M outputs are the atoms theta^1..theta^M of the return distribution Z(s, a), and their ensemble."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from softac.networks import MLP, CriticEnsemble, critic_ensemble


class QuantileCritic(nn.Module):
    """Z(s, a) as M atoms: [..., n_quantiles] from the concatenation of observation and action (ReLU MLP)."""

    hidden_sizes: Sequence[int]
    n_quantiles: int
    initialization: str = "flax"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        return MLP(self.hidden_sizes, self.n_quantiles, self.initialization)(jnp.concatenate([obs, action], axis=-1))


def quantile_critic_ensemble(hidden_sizes: Sequence[int], n_critics: int, n_quantiles: int,
                             initialization: str = "flax") -> CriticEnsemble:
    """N quantile critics as one vmapped network: `(obs [B, obs_dim], action [B, A])` -> atoms [N, B, M]."""
    return critic_ensemble(hidden_sizes, num_critics=n_critics, critic=QuantileCritic, n_quantiles=n_quantiles,
                           initialization=initialization)

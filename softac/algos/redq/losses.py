"""REDQ's two departures from SAC v2 (Chen et al., ICLR 2021; docs/algorithms.md, "REDQ (Chen et al., ICLR 2021)"),
as pure functions: the random subset of the target ensemble whose minimum makes the target, and the actor loss
on the mean of the whole ensemble. The target itself is SAC v2's `soft_q_target` over the subset's values, the
critic loss SAC v2's `critic_loss` over all N critics. Shapes: N critics, M in the subset, B the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def critic_subset(key: jax.Array, num_critics: int, subset_size: int) -> jax.Array:
    """The indices of M = subset_size of the N = num_critics critics, drawn uniformly without replacement: [M] int32."""
    return jax.random.choice(key, num_critics, (subset_size,), replace=False).astype(jnp.int32)


def ensemble_members(ensemble_params, indices: jax.Array):
    """The parameters of the critics `indices` ([M]) of an ensemble whose leaves have a leading axis N: leading axis M."""
    return jax.tree_util.tree_map(lambda leaf: leaf[indices], ensemble_params)


def ensemble_mean_actor_loss(q: jax.Array, log_prob: jax.Array, alpha: jax.Array) -> tuple[jax.Array, dict]:
    """J_pi = E_s[ sg(alpha) log pi(a|s) - (1/N) sum_i Q_i(s, a) ], a ~ pi(.|s) reparameterised.

    q: [N, B] every critic at the sampled actions, log_prob: [B].
    """
    loss = jnp.mean(jax.lax.stop_gradient(alpha) * log_prob - jnp.mean(q, axis=0))
    return loss, {"actor_loss": loss, "entropy": -jnp.mean(log_prob)}

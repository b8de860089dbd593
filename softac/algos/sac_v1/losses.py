"""The losses of SAC v1 (Haarnoja et al. 2018a, Algorithm 1) that v2 does not have.

docs/algorithms.md, "SAC v1 (2018a, Algorithm 1)". Shapes: B the batch size, N the number of Q networks (2). The policy
loss J_pi and the Q loss's squared error are v2's (`softac.algos.sac.losses.actor_loss`, `critic_loss`);
what differs is where the targets come from: a state-value network V_psi and its slowly tracking
copy V_psibar.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def soft_value_target(q: jax.Array, log_prob: jax.Array, alpha: jax.Array) -> jax.Array:
    """E_{a~pi}[ min_i Q_i(s,a) - alpha log pi(a|s) ], one sample a ~ pi(.|s) per state.

    q: [N, B] the Q networks at the sampled actions, log_prob: [B]. Returns [B], a constant target
    (no gradient reaches the Q networks or the policy through it).
    """
    return jax.lax.stop_gradient(jnp.min(q, axis=0) - alpha * log_prob)


def value_loss(v: jax.Array, target: jax.Array) -> tuple[jax.Array, dict]:
    """J_V = E_s[ 1/2 (V_psi(s) - target(s))^2 ]; v, target: [B]."""
    loss = 0.5 * jnp.mean((v - jax.lax.stop_gradient(target)) ** 2)
    return loss, {"value_loss": loss, "v_mean": jnp.mean(v)}


def value_based_q_target(reward: jax.Array, terminated: jax.Array, next_target_v: jax.Array, gamma: float | jax.Array) -> jax.Array:
    """Qhat(s,a) = r + gamma (1 - terminated) V_psibar(s'); all [B].

    Only `terminated` cuts the bootstrap; a time-limit cut-off bootstraps from V_psibar of its true
    final observation.
    """
    return reward + gamma * (1.0 - terminated) * next_target_v

"""CrossQ's critic objective (Bhatt et al., ICLR 2024; docs/algorithms.md, "CrossQ (Bhatt et al., ICLR 2024)").

Its actor and temperature losses are SAC v2's (`softac.algos.sac.losses`); what differs is the critic:
no target network, the next value comes from the online critics themselves, evaluated in the same
forward pass (and so with the same batch statistics) as Q(s, a).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from softac.algos.sac import losses as sac_losses


def split_joint_q(q_joint: jax.Array) -> tuple[jax.Array, jax.Array]:
    """[N, 2B] critics over concat((s, a), (s', a')) -> (Q(s, a) [N, B], Q(s', a') [N, B])."""
    q, next_q = jnp.split(q_joint, 2, axis=1)
    return q, next_q


def crossq_critic_loss(q_joint: jax.Array, reward: jax.Array, terminated: jax.Array, next_log_prob: jax.Array,
                       alpha: jax.Array, gamma: float | jax.Array) -> tuple[jax.Array, dict]:
    """J_Q = sum_i E[ 1/2 (Q_i(s, a) - sg(y))^2 ],  y = r + gamma (1 - terminated) (min_i Q_i(s', a') - alpha log pi(a'|s')).

    q_joint: [N, 2B] the online critics over the joint batch; reward, terminated, next_log_prob: [B].
    sg is stop-gradient: y is a constant of the update, though it comes from the critics being trained.
    """
    q, next_q = split_joint_q(q_joint)
    target = sac_losses.soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma)
    return sac_losses.critic_loss(q, jax.lax.stop_gradient(target))

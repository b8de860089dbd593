"""The losses of SAC for discrete actions (Christodoulou 2019) as pure functions of arrays.

docs/algorithms.md, "Discrete SAC (Christodoulou 2019)". The policy is categorical, so every expectation over
actions is an exact sum (no sampling, no reparameterisation). Shapes: B the batch size, A the
number of actions, N the number of critics (2). probs and log_probs are pi(.|s) and log pi(.|s),
[B, A]; critics output Q(s, .) for all actions, [N, B, A].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def soft_state_value(probs: jax.Array, log_probs: jax.Array, q: jax.Array, alpha: jax.Array) -> jax.Array:
    """V(s) = pi(s)^T [ min_i Q_i(s, .) - alpha log pi(s) ]. q: [N, B, A] -> [B]."""
    return jnp.sum(probs * (jnp.min(q, axis=0) - alpha * log_probs), axis=-1)


def discrete_soft_q_target(reward, terminated, next_probs, next_log_probs, next_target_q, alpha, gamma):
    """y = r + gamma (1 - terminated) V(s') with V(s') the exact soft value under the target critics.

    reward, terminated: [B]; next_probs, next_log_probs: [B, A] (current policy at s');
    next_target_q: [N, B, A]. Only `terminated` cuts the bootstrap. Returns [B].
    """
    return reward + gamma * (1.0 - terminated) * soft_state_value(next_probs, next_log_probs, next_target_q, alpha)


def taken_action_q(q: jax.Array, action: jax.Array) -> jax.Array:
    """Q_i(s, a) of the stored actions: q [N, B, A], action [B, 1] (float index) -> [N, B]."""
    index = action[..., 0].astype(jnp.int32)
    return jnp.take_along_axis(q, index[None, :, None], axis=-1)[..., 0]


def discrete_actor_loss(probs, log_probs, q, alpha) -> tuple[jax.Array, dict]:
    """J_pi = E_s[ pi(s)^T (alpha log pi(s) - min_i Q_i(s, .)) ] with the critics and alpha constant."""
    q = jax.lax.stop_gradient(jnp.min(q, axis=0))
    loss = jnp.mean(jnp.sum(probs * (jax.lax.stop_gradient(alpha) * log_probs - q), axis=-1))
    return loss, {"actor_loss": loss, "entropy": jnp.mean(policy_entropy(probs, log_probs))}


def policy_entropy(probs: jax.Array, log_probs: jax.Array) -> jax.Array:
    """H(pi(.|s)) = -pi(s)^T log pi(s): [B, A] -> [B]."""
    return -jnp.sum(probs * log_probs, axis=-1)

"""The losses of SAC v2 (Haarnoja et al. 2018b) as pure functions of arrays.

Equations: docs/algorithms.md, "SAC v2 (2018b)". Shapes: B is the batch size, A the action
dimension, N the number of critics (2). Every loss returns (scalar loss, info dict).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def soft_q_target(
    reward: jax.Array,
    terminated: jax.Array,
    next_target_q: jax.Array,
    next_log_prob: jax.Array,
    alpha: jax.Array,
    gamma: float | jax.Array,
) -> jax.Array:
    """Soft Bellman target y = r + gamma (1 - terminated) (min_i Qbar_i(s', a') - alpha log pi(a'|s')).

    reward, terminated, next_log_prob: [B]; next_target_q: [N, B] (target critics at a' ~ pi(.|s')); gamma a
    scalar, or [B] per transition (gamma^k for an n-step target, with r the discounted k-step reward).
    Only `terminated` cuts the bootstrap: a transition cut off by a time limit (truncated) is stored
    with terminated = 0 and bootstraps from its true next observation. Returns [B].
    """
    next_soft_value = jnp.min(next_target_q, axis=0) - alpha * next_log_prob
    return reward + gamma * (1.0 - terminated) * next_soft_value


def critic_loss(q: jax.Array, target: jax.Array) -> tuple[jax.Array, dict]:
    """J_Q = sum_i E[ 1/2 (Q_i(s,a) - y)^2 ]; q: [N, B], target: [B] (treated as a constant)."""
    target = jax.lax.stop_gradient(target)
    loss = 0.5 * jnp.mean(jnp.sum((q - target[None]) ** 2, axis=0))
    return loss, {"critic_loss": loss, "q_mean": jnp.mean(q)}


def actor_loss(q: jax.Array, log_prob: jax.Array, alpha: jax.Array) -> tuple[jax.Array, dict]:
    """J_pi = E_s[ alpha log pi(a|s) - min_i Q_i(s,a) ], a ~ pi(.|s) reparameterised.

    q: [N, B] critics at the sampled actions, log_prob: [B]. alpha is a constant here.
    """
    loss = jnp.mean(jax.lax.stop_gradient(alpha) * log_prob - jnp.min(q, axis=0))
    return loss, {"actor_loss": loss, "entropy": -jnp.mean(log_prob)}


def temperature_loss(log_alpha: jax.Array, log_prob: jax.Array, target_entropy: float) -> tuple[jax.Array, dict]:
    """Temperature loss in the log-alpha form: J(log alpha) = E_a~pi[ -log alpha (log pi(a|s) + Hbar) ].

    The paper writes J(alpha) = E[-alpha (log pi + Hbar)]. Both are minimised by the same alpha
    (the gradient has the same sign, -(log pi + Hbar) times alpha or times 1): alpha rises when
    the entropy -log pi is below the target Hbar and falls when above. We differentiate with
    respect to log alpha, the parameter that keeps alpha positive, and use the form whose gradient
    does not shrink with alpha, as Stable-Baselines3, CleanRL and softlearning do, so that a
    small alpha can still move at the learning rate. log_prob: [B] (a constant here).
    """
    entropy_gap = jax.lax.stop_gradient(log_prob + target_entropy)
    loss = -jnp.mean(log_alpha * entropy_gap)
    return loss, {"alpha_loss": loss}


def polyak_update(target_params, online_params, tau: float):
    """psibar <- tau * psi + (1 - tau) * psibar, leaf by leaf."""
    return jax.tree_util.tree_map(lambda t, o: tau * o + (1.0 - tau) * t, target_params, online_params)

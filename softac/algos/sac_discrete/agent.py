"""SAC for discrete actions (Christodoulou 2019, "Soft Actor-Critic for Discrete Action Settings").

A categorical actor pi(.|s) and two critics that output Q(s, .) for every action, with
Polyak-averaged targets. The state has the same shape as v2's (`softac.agent.AgentState`).
One gradient step, in v2's order:
    critic:  Q_i(s, a) towards y = r + gamma (1 - terminated) pi(s')^T [min_i Qbar_i(s', .) - alpha log pi(s')]
    actor:   minimise E_s[ pi(s)^T (alpha log pi(s) - min_i Q_i(s, .)) ] against the updated critics
    alpha:   log alpha towards the target entropy Hbar = target_entropy_scale * log|A|, with the
             exact entropy -pi(s)^T log pi(s) in place of a sampled -log pi(a|s)
    targets: Polyak step
All expectations over actions are exact sums; nothing is sampled inside the update. Actions are
stored in the replay buffer as one float holding the index.
Equations: docs/algorithms.md, "Discrete SAC (Christodoulou 2019)".
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

from softac.algos.base import AgentBase, Batch, adam, apply_gradients, bootstrap_discount
from softac.algos.sac import losses
from softac.algos.sac.agent import AgentState, fresh_twin_critic_state
from softac.algos.sac_discrete import losses as losses_discrete
from softac.networks import CategoricalActor, critic_ensemble

if TYPE_CHECKING:
    from softac.config import SACConfig


class SACDiscrete(AgentBase):
    """Discrete-action SAC; `action_dim` is the number of actions. Implements `softac.algos.base.Agent`."""

    def __init__(self, cfg: "SACConfig", obs_dim: int, action_dim: int):
        super().__init__(cfg, obs_dim, action_dim)
        self.actor = CategoricalActor(tuple(cfg.hidden_sizes), action_dim, cfg.network_init)
        self.critic = critic_ensemble(cfg.critic_sizes, num_actions=action_dim, initialization=cfg.network_init)
        self.actor_optimizer = adam(cfg, cfg.actor_lr)
        self.critic_optimizer = adam(cfg, cfg.critic_lr)

    def default_target_entropy(self) -> float:
        """Hbar = target_entropy_scale * log|A| (a fraction of the uniform policy's entropy)."""
        return self.cfg.algo_config.target_entropy_scale * math.log(self.action_dim)

    def policy(self, actor_params, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(pi(.|s), log pi(.|s)), each [..., A]."""
        log_probs = jax.nn.log_softmax(self.actor.apply({"params": actor_params}, obs), axis=-1)
        return jnp.exp(log_probs), log_probs

    def init(self, key: jax.Array) -> AgentState:
        actor_key, critic_key, key = jax.random.split(key, 3)
        obs = jnp.zeros((1, self.obs_dim), jnp.float32)
        actor_params = self.actor.init(actor_key, obs)["params"]
        critic_params = self.critic.init(critic_key, obs)["params"]
        return fresh_twin_critic_state(self, actor_params, critic_params, key)

    def sample_action(self, actor_params, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """a ~ pi(.|obs) as a float index [..., 1], with log pi(a|obs) [...]."""
        logits = self.actor.apply({"params": actor_params}, obs)
        index = jax.random.categorical(key, logits, axis=-1)
        log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), index[..., None], axis=-1)[..., 0]
        return index[..., None].astype(jnp.float32), log_prob

    def deterministic_action(self, actor_params, obs: jax.Array) -> jax.Array:
        """The most probable action, as a float index [..., 1] (used for evaluation)."""
        logits = self.actor.apply({"params": actor_params}, obs)
        return jnp.argmax(logits, axis=-1)[..., None].astype(jnp.float32)

    def update(self, state: AgentState, batch: Batch) -> tuple[AgentState, dict]:
        alpha = jnp.exp(state.log_alpha)

        next_probs, next_log_probs = self.policy(state.actor_params, batch.next_obs)
        next_target_q = self.critic.apply({"params": state.target_critic_params}, batch.next_obs)
        target = losses_discrete.discrete_soft_q_target(batch.reward, batch.terminated, next_probs, next_log_probs,
                                                        next_target_q, alpha, bootstrap_discount(batch, self.cfg.gamma))

        def critic_objective(critic_params):
            q = self.critic.apply({"params": critic_params}, batch.obs)
            return losses.critic_loss(losses_discrete.taken_action_q(q, batch.action), target)

        critic_grads, critic_info = jax.grad(critic_objective, has_aux=True)(state.critic_params)
        critic_params, critic_opt_state = apply_gradients(self.critic_optimizer, state.critic_params,
                                                          state.critic_opt_state, critic_grads)

        q = self.critic.apply({"params": critic_params}, batch.obs)

        def actor_objective(actor_params):
            probs, log_probs = self.policy(actor_params, batch.obs)
            loss, info = losses_discrete.discrete_actor_loss(probs, log_probs, q, alpha)
            return loss, (info, jnp.sum(probs * log_probs, axis=-1))

        actor_grads, (actor_info, expected_log_prob) = jax.grad(actor_objective, has_aux=True)(state.actor_params)
        actor_params, actor_opt_state = apply_gradients(self.actor_optimizer, state.actor_params,
                                                        state.actor_opt_state, actor_grads)

        log_alpha, alpha_opt_state, alpha_info = self.temperature_step(
            state.log_alpha, state.alpha_opt_state, jax.lax.stop_gradient(expected_log_prob))

        new_state = state.replace(
            actor_params=actor_params, actor_opt_state=actor_opt_state,
            critic_params=critic_params, critic_opt_state=critic_opt_state,
            target_critic_params=losses.polyak_update(state.target_critic_params, critic_params, self.cfg.tau),
            log_alpha=log_alpha, alpha_opt_state=alpha_opt_state,
            num_updates=state.num_updates + 1,
        )
        return new_state, {**critic_info, **actor_info, **alpha_info, "alpha": alpha}

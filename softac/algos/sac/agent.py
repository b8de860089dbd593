"""The SAC v2 agent (Haarnoja et al. 2018b): its state pytree and the pure functions that update it.

`SAC` wires the networks, the optimisers and the static hyperparameters together; it holds no
state the update depends on. Everything that changes during training is in `AgentState`.
Equations: docs/algorithms.md, "SAC v2 (2018b)".
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import flax
import jax
import jax.numpy as jnp
import optax

from softac.algos.base import Batch, SquashedGaussianAgent, adam, apply_gradients, bootstrap_discount
from softac.algos.sac import losses
from softac.networks import SquashedGaussianActor, critic_ensemble

if TYPE_CHECKING:
    from softac.config import SACConfig


@flax.struct.dataclass
class AgentState:
    """Everything an update reads and writes (one seed; the trainer adds a leading seed axis)."""

    actor_params: dict
    critic_params: dict
    target_critic_params: dict
    log_alpha: jax.Array  # scalar; alpha = exp(log_alpha)
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    alpha_opt_state: optax.OptState
    key: jax.Array
    num_updates: jax.Array  # scalar int32, gradient steps taken


def fresh_twin_critic_state(agent, actor_params, critic_params, key: jax.Array) -> AgentState:
    """An AgentState at the start of training: target critics equal to (a separate copy of) the
    critics, fresh optimiser states, alpha at its initial value, no updates yet."""
    log_alpha = jnp.asarray(math.log(agent.initial_alpha), jnp.float32)
    return AgentState(
        actor_params=actor_params,
        critic_params=critic_params,
        # A separate copy: the target must not share buffers with the online critics.
        target_critic_params=jax.tree_util.tree_map(jnp.copy, critic_params),
        log_alpha=log_alpha,
        actor_opt_state=agent.actor_optimizer.init(actor_params),
        critic_opt_state=agent.critic_optimizer.init(critic_params),
        alpha_opt_state=agent.alpha_optimizer.init(log_alpha),
        key=key,
        num_updates=jnp.zeros((), jnp.int32),
    )


class SAC(SquashedGaussianAgent):
    """SAC with twin Q targets and a learned temperature (Haarnoja et al. 2018b, Algorithm 1).

    One gradient step (`update`) does, in order: the critic step towards the soft Bellman target,
    the actor step against the updated critics, the temperature step with the log-probabilities
    of the actor step, and the Polyak update of the target critics.
    """

    def __init__(self, cfg: "SACConfig", obs_dim: int, action_dim: int):
        super().__init__(cfg, obs_dim, action_dim)
        self.actor = SquashedGaussianActor(tuple(cfg.hidden_sizes), action_dim, cfg.network_init)
        self.critic = critic_ensemble(cfg.critic_sizes, initialization=cfg.network_init)
        self.actor_optimizer = adam(cfg, cfg.actor_lr)
        self.critic_optimizer = adam(cfg, cfg.critic_lr)

    def init(self, key: jax.Array) -> AgentState:
        """A fresh agent state from one PRNG key."""
        actor_key, critic_key, key = jax.random.split(key, 3)
        obs = jnp.zeros((1, self.obs_dim), jnp.float32)
        action = jnp.zeros((1, self.action_dim), jnp.float32)
        actor_params = self.actor.init(actor_key, obs)["params"]
        critic_params = self.critic.init(critic_key, obs, action)["params"]
        return fresh_twin_critic_state(self, actor_params, critic_params, key)

    def q_values(self, critic_params, obs: jax.Array, action: jax.Array) -> jax.Array:
        """Q_i(s, a) of every critic: [N, B]."""
        return self.critic.apply({"params": critic_params}, obs, action)

    def update(self, state: AgentState, batch: Batch) -> tuple[AgentState, dict]:
        """One gradient step of critics, actor and temperature, then the target critics' Polyak step."""
        key, next_key, actor_key = jax.random.split(state.key, 3)
        alpha = jnp.exp(state.log_alpha)

        # Critic: y = r + gamma (1 - terminated) (min_i Qbar_i(s', a') - alpha log pi(a'|s')), a' ~ pi(.|s').
        next_action, next_log_prob = self.sample_action(state.actor_params, batch.next_obs, next_key)
        next_target_q = self.q_values(state.target_critic_params, batch.next_obs, next_action)
        target = losses.soft_q_target(batch.reward, batch.terminated, next_target_q, next_log_prob,
                                      alpha, bootstrap_discount(batch, self.cfg.gamma))
        critic_grads, critic_info = jax.grad(
            lambda p: losses.critic_loss(self.q_values(p, batch.obs, batch.action), target), has_aux=True
        )(state.critic_params)
        critic_params, critic_opt_state = apply_gradients(self.critic_optimizer, state.critic_params,
                                                          state.critic_opt_state, critic_grads)

        # Actor: minimise E[alpha log pi(a|s) - min_i Q_i(s, a)] with a reparameterised, against the new critics.
        def actor_objective(actor_params):
            action, log_prob = self.sample_action(actor_params, batch.obs, actor_key)
            loss, info = losses.actor_loss(self.q_values(critic_params, batch.obs, action), log_prob, alpha)
            return loss, (info, log_prob)

        actor_grads, (actor_info, log_prob) = jax.grad(actor_objective, has_aux=True)(state.actor_params)
        actor_params, actor_opt_state = apply_gradients(self.actor_optimizer, state.actor_params,
                                                        state.actor_opt_state, actor_grads)

        # Temperature: move log alpha so that the policy's entropy approaches the target.
        log_alpha, alpha_opt_state, alpha_info = self.temperature_step(state.log_alpha, state.alpha_opt_state, log_prob)

        new_state = state.replace(
            actor_params=actor_params, actor_opt_state=actor_opt_state,
            critic_params=critic_params, critic_opt_state=critic_opt_state,
            target_critic_params=losses.polyak_update(state.target_critic_params, critic_params, self.cfg.tau),
            log_alpha=log_alpha, alpha_opt_state=alpha_opt_state,
            key=key, num_updates=state.num_updates + 1,
        )
        return new_state, {**critic_info, **actor_info, **alpha_info, "alpha": alpha}

"""The DroQ agent (Hiraoka et al., ICLR 2022): SAC v2 at a high replay ratio, its twin critics regularised by
dropout and layer normalisation. Equations: docs/algorithms.md, "DroQ (Hiraoka et al., ICLR 2022)".

One gradient step (`update`), numbered by the update count u (as SBX runs DroQ: SAC with dropout_rate 0.01,
layer_norm and policy_delay 20, at 20 gradient steps per env step):
    critic:  y = r + gamma (1 - terminated) (min_i Qbar_Dr,i(s', a') - alpha log pi(a'|s')), a' ~ pi(.|s'),
             the target critics with dropout (a key of their own), towards which the online critics, with
             dropout (another key), step; then the Polyak step of the targets
    actor and temperature, when u mod policy_delay = policy_delay - 1 (once per env step, after its last
             critic step): SAC v2's losses against the updated critics, dropout on (a third key)
The actor is SAC's squashed Gaussian without dropout, so acting, evaluation and export are SAC's.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import flax
import jax
import jax.numpy as jnp
import optax

from softac.algos.base import Batch, DelayedActorAgent, adam, apply_gradients, bootstrap_discount
from softac.algos.droq.networks import DropoutCritic
from softac.algos.sac import losses as sac_losses
from softac.networks import SquashedGaussianActor, critic_ensemble

if TYPE_CHECKING:
    from softac.config import SACConfig


@flax.struct.dataclass
class DroQState:
    """Everything a DroQ update reads and writes (one seed; the trainer adds a leading seed axis)."""

    actor_params: dict
    critic_params: dict
    target_critic_params: dict
    log_alpha: jax.Array
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    alpha_opt_state: optax.OptState
    actor_info: dict  # metrics of the last actor step
    key: jax.Array
    num_updates: jax.Array


class DroQ(DelayedActorAgent):
    """DroQ. Implements `softac.algos.base.Agent`; its policy is the actor's parameters."""

    def __init__(self, cfg: "SACConfig", obs_dim: int, action_dim: int):
        super().__init__(cfg, obs_dim, action_dim)
        params = cfg.algo_config
        self.actor = SquashedGaussianActor(tuple(cfg.hidden_sizes), action_dim, cfg.network_init)
        self.critic = critic_ensemble(cfg.critic_sizes, critic=DropoutCritic, dropout_rate=params.dropout_rate,
                                      layer_norm=params.layer_norm, initialization=cfg.network_init)
        self.actor_optimizer = adam(cfg, cfg.actor_lr)
        self.critic_optimizer = adam(cfg, cfg.critic_lr)
        self.policy_delay = params.policy_delay
        self.actor_step_offset = params.policy_delay - 1

    def init(self, key: jax.Array) -> DroQState:
        actor_key, critic_key, dropout_key, key = jax.random.split(key, 4)
        obs = jnp.zeros((1, self.obs_dim), jnp.float32)
        action = jnp.zeros((1, self.action_dim), jnp.float32)
        actor_params = self.actor.init(actor_key, obs)["params"]
        critic_params = self.critic.init({"params": critic_key, "dropout": dropout_key}, obs, action)["params"]
        log_alpha = jnp.asarray(math.log(self.initial_alpha), jnp.float32)
        return DroQState(
            actor_params=actor_params, critic_params=critic_params,
            target_critic_params=jax.tree_util.tree_map(jnp.copy, critic_params),  # a separate copy
            log_alpha=log_alpha,
            actor_opt_state=self.actor_optimizer.init(actor_params),
            critic_opt_state=self.critic_optimizer.init(critic_params),
            alpha_opt_state=self.alpha_optimizer.init(log_alpha),
            actor_info=self.initial_actor_info(), key=key, num_updates=jnp.zeros((), jnp.int32),
        )

    def q_values(self, critic_params, obs: jax.Array, action: jax.Array, dropout_key: jax.Array) -> jax.Array:
        """Q_Dr,i(s, a) of both critics, dropout drawn from `dropout_key` (each critic its own masks): [2, B]."""
        return self.critic.apply({"params": critic_params}, obs, action, rngs={"dropout": dropout_key})

    def critic_step(self, state: DroQState, batch: Batch, key: jax.Array) -> tuple[DroQState, dict]:
        """SAC v2's critic step with dropout in the target and the online critics, then the Polyak step."""
        next_key, target_dropout_key, dropout_key = jax.random.split(key, 3)
        alpha = jnp.exp(state.log_alpha)
        next_action, next_log_prob = self.sample_action(state.actor_params, batch.next_obs, next_key)
        next_target_q = self.q_values(state.target_critic_params, batch.next_obs, next_action, target_dropout_key)
        target = sac_losses.soft_q_target(batch.reward, batch.terminated, next_target_q, next_log_prob, alpha,
                                          bootstrap_discount(batch, self.cfg.gamma))
        critic_grads, critic_info = jax.grad(
            lambda p: sac_losses.critic_loss(self.q_values(p, batch.obs, batch.action, dropout_key), target),
            has_aux=True)(state.critic_params)
        critic_params, critic_opt_state = apply_gradients(self.critic_optimizer, state.critic_params,
                                                          state.critic_opt_state, critic_grads)
        target_critic_params = sac_losses.polyak_update(state.target_critic_params, critic_params, self.cfg.tau)
        return state.replace(critic_params=critic_params, critic_opt_state=critic_opt_state,
                             target_critic_params=target_critic_params), critic_info

    def actor_step(self, state: DroQState, batch: Batch, key: jax.Array) -> DroQState:
        """SAC v2's actor step against the updated critics (dropout on), then the temperature step."""
        action_key, dropout_key = jax.random.split(key)
        alpha = jnp.exp(state.log_alpha)

        def actor_objective(actor_params):
            action, log_prob = self.sample_action(actor_params, batch.obs, action_key)
            q = self.q_values(state.critic_params, batch.obs, action, dropout_key)
            loss, info = sac_losses.actor_loss(q, log_prob, alpha)
            return loss, (info, log_prob)

        actor_grads, (actor_info, log_prob) = jax.grad(actor_objective, has_aux=True)(state.actor_params)
        actor_params, actor_opt_state = apply_gradients(self.actor_optimizer, state.actor_params,
                                                        state.actor_opt_state, actor_grads)
        log_alpha, alpha_opt_state, alpha_info = self.temperature_step(state.log_alpha, state.alpha_opt_state,
                                                                       log_prob)
        return state.replace(actor_params=actor_params, actor_opt_state=actor_opt_state, log_alpha=log_alpha,
                             alpha_opt_state=alpha_opt_state, actor_info={**actor_info, **alpha_info})

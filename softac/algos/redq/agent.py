"""The REDQ agent (Chen et al., ICLR 2021): SAC at a high replay ratio with an ensemble of N critics, the target
the minimum of a random subset of M of them. Equations: docs/algorithms.md, "REDQ (Chen et al., ICLR 2021)".

One gradient step (`update`), numbered by the update count u (the authors' REDQ-SAC: N = 10, M = 2, 20 gradient
steps per env step, one actor step per env step):
    critic:  a subset S of M target critics drawn without replacement (a key of its own, so a new subset every
             update); y = r + gamma (1 - terminated) (min_{i in S} Qbar_i(s', a') - alpha log pi(a'|s')),
             a' ~ pi(.|s'); every one of the N critics steps towards y; then the Polyak step of all N targets
    actor and temperature, when u mod policy_delay = policy_delay - 1 (once per env step, after its last critic
             step, as the authors' code): J_pi on the mean of the N updated critics, and SAC v2's temperature loss
The N critics are one vmapped module (`softac.networks.critic_ensemble`); the target evaluates only the M drawn
members, their parameters gathered from the ensemble's. The actor is SAC's, so acting and export are SAC's.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import flax
import jax
import jax.numpy as jnp
import optax

from softac.algos.base import Batch, DelayedActorAgent, adam, apply_gradients, bootstrap_discount
from softac.algos.redq import losses
from softac.algos.sac import losses as sac_losses
from softac.networks import SquashedGaussianActor, critic_ensemble

if TYPE_CHECKING:
    from softac.config import SACConfig


@flax.struct.dataclass
class REDQState:
    """Everything a REDQ update reads and writes (one seed; the trainer adds a leading seed axis)."""

    actor_params: dict
    critic_params: dict  # leaves with a leading axis N
    target_critic_params: dict
    log_alpha: jax.Array
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    alpha_opt_state: optax.OptState
    actor_info: dict  # metrics of the last actor step
    target_subset: jax.Array  # [M] int32: the target critics whose minimum made the last update's target
    key: jax.Array
    num_updates: jax.Array


class REDQ(DelayedActorAgent):
    """REDQ. Implements `softac.algos.base.Agent`; its policy is the actor's parameters."""

    def __init__(self, cfg: "SACConfig", obs_dim: int, action_dim: int):
        super().__init__(cfg, obs_dim, action_dim)
        params = cfg.algo_config
        self.num_critics = params.n_critics
        self.subset_size = params.target_subset_size
        self.actor = SquashedGaussianActor(tuple(cfg.hidden_sizes), action_dim, cfg.network_init)
        self.critic = critic_ensemble(cfg.critic_sizes, num_critics=self.num_critics, initialization=cfg.network_init)
        # The same member network over M of the N parameter sets (gathered by `losses.ensemble_members`).
        self.critic_subset = critic_ensemble(cfg.critic_sizes, num_critics=self.subset_size,
                                             initialization=cfg.network_init)
        self.actor_optimizer = adam(cfg, cfg.actor_lr)
        self.critic_optimizer = adam(cfg, cfg.critic_lr)
        self.policy_delay = params.policy_delay
        self.actor_step_offset = params.policy_delay - 1

    def init(self, key: jax.Array) -> REDQState:
        actor_key, critic_key, key = jax.random.split(key, 3)
        obs = jnp.zeros((1, self.obs_dim), jnp.float32)
        action = jnp.zeros((1, self.action_dim), jnp.float32)
        actor_params = self.actor.init(actor_key, obs)["params"]
        critic_params = self.critic.init(critic_key, obs, action)["params"]
        log_alpha = jnp.asarray(math.log(self.initial_alpha), jnp.float32)
        return REDQState(
            actor_params=actor_params, critic_params=critic_params,
            target_critic_params=jax.tree_util.tree_map(jnp.copy, critic_params),  # a separate copy
            log_alpha=log_alpha,
            actor_opt_state=self.actor_optimizer.init(actor_params),
            critic_opt_state=self.critic_optimizer.init(critic_params),
            alpha_opt_state=self.alpha_optimizer.init(log_alpha),
            actor_info=self.initial_actor_info(), target_subset=jnp.arange(self.subset_size, dtype=jnp.int32),
            key=key, num_updates=jnp.zeros((), jnp.int32),
        )

    def q_values(self, critic_params, obs: jax.Array, action: jax.Array) -> jax.Array:
        """Q_i(s, a) of all N critics: [N, B]."""
        return self.critic.apply({"params": critic_params}, obs, action)

    def subset_q_values(self, critic_params, indices: jax.Array, obs: jax.Array, action: jax.Array) -> jax.Array:
        """Q_i(s, a) of the critics `indices` ([M]) only: [M, B], row k the critic indices[k]."""
        return self.critic_subset.apply({"params": losses.ensemble_members(critic_params, indices)}, obs, action)

    def subset_target(self, target_critic_params, indices: jax.Array, batch: Batch, next_action: jax.Array,
                      next_log_prob: jax.Array, alpha: jax.Array) -> jax.Array:
        """y = r + gamma (1 - terminated) (min_{i in indices} Qbar_i(s', a') - alpha log pi(a'|s')): [B]."""
        next_target_q = self.subset_q_values(target_critic_params, indices, batch.next_obs, next_action)
        return sac_losses.soft_q_target(batch.reward, batch.terminated, next_target_q, next_log_prob, alpha,
                                        bootstrap_discount(batch, self.cfg.gamma))

    def critic_step(self, state: REDQState, batch: Batch, key: jax.Array) -> tuple[REDQState, dict]:
        """Every critic towards the subset-minimum target, then the Polyak step of the N targets."""
        next_key, subset_key = jax.random.split(key)
        alpha = jnp.exp(state.log_alpha)
        indices = losses.critic_subset(subset_key, self.num_critics, self.subset_size)
        next_action, next_log_prob = self.sample_action(state.actor_params, batch.next_obs, next_key)
        target = self.subset_target(state.target_critic_params, indices, batch, next_action, next_log_prob, alpha)
        critic_grads, critic_info = jax.grad(
            lambda p: sac_losses.critic_loss(self.q_values(p, batch.obs, batch.action), target),
            has_aux=True)(state.critic_params)
        critic_params, critic_opt_state = apply_gradients(self.critic_optimizer, state.critic_params,
                                                          state.critic_opt_state, critic_grads)
        target_critic_params = sac_losses.polyak_update(state.target_critic_params, critic_params, self.cfg.tau)
        return state.replace(critic_params=critic_params, critic_opt_state=critic_opt_state,
                             target_critic_params=target_critic_params, target_subset=indices), critic_info

    def actor_step(self, state: REDQState, batch: Batch, key: jax.Array) -> REDQState:
        """The actor on the mean of the N updated critics, then SAC v2's temperature step."""
        alpha = jnp.exp(state.log_alpha)

        def actor_objective(actor_params):
            action, log_prob = self.sample_action(actor_params, batch.obs, key)
            loss, info = losses.ensemble_mean_actor_loss(self.q_values(state.critic_params, batch.obs, action),
                                                         log_prob, alpha)
            return loss, (info, log_prob)

        actor_grads, (actor_info, log_prob) = jax.grad(actor_objective, has_aux=True)(state.actor_params)
        actor_params, actor_opt_state = apply_gradients(self.actor_optimizer, state.actor_params,
                                                        state.actor_opt_state, actor_grads)
        log_alpha, alpha_opt_state, alpha_info = self.temperature_step(state.log_alpha, state.alpha_opt_state,
                                                                       log_prob)
        return state.replace(actor_params=actor_params, actor_opt_state=actor_opt_state, log_alpha=log_alpha,
                             alpha_opt_state=alpha_opt_state, actor_info={**actor_info, **alpha_info})

"""SAC v1 (Haarnoja et al. 2018a, Algorithm 1): policy, two Q networks, a state-value network V_psi
and its target V_psibar.

Per gradient step, with every gradient taken at the parameters before the step (the three
updates of Algorithm 1 are simultaneous, as in the authors' implementation, where they ran in one
graph execution):
    psi     <- psi     - lambda_V  grad J_V(psi)        target min_i Q_i(s,a) - alpha log pi(a|s), a ~ pi
    theta_i <- theta_i - lambda_Q  grad J_Q(theta_i)    target r + gamma (1 - terminated) V_psibar(s')
    phi     <- phi     - lambda_pi grad J_pi(phi)       reparameterised, against min_i Q_i
    psibar  <- tau psi + (1 - tau) psibar
One action sample a ~ pi(.|s) per state serves both the value target and the policy loss.
The temperature is fixed (alpha = 1/reward_scale); learning it (`learn_alpha`) uses v2's
temperature loss, a combination the paper did not use. Equations: docs/algorithms.md, "SAC v1 (2018a, Algorithm 1)".
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
from softac.algos.sac_v1 import losses as losses_v1
from softac.networks import MLP, SquashedGaussianActor, critic_ensemble

if TYPE_CHECKING:
    from softac.config import SACConfig


@flax.struct.dataclass
class SACV1State:
    """Everything a v1 update reads and writes (one seed; the trainer adds a leading seed axis)."""

    actor_params: dict
    critic_params: dict
    value_params: dict
    target_value_params: dict
    log_alpha: jax.Array
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    value_opt_state: optax.OptState
    alpha_opt_state: optax.OptState
    key: jax.Array
    num_updates: jax.Array


class SACV1(SquashedGaussianAgent):
    """SAC with a state-value network (2018a). Implements `softac.algos.base.Agent`."""

    def __init__(self, cfg: "SACConfig", obs_dim: int, action_dim: int):
        super().__init__(cfg, obs_dim, action_dim)
        self.actor = SquashedGaussianActor(tuple(cfg.hidden_sizes), action_dim, cfg.network_init)
        self.critic = critic_ensemble(cfg.critic_sizes, initialization=cfg.network_init)
        self.value = MLP(tuple(cfg.critic_sizes), 1, cfg.network_init)
        self.actor_optimizer = adam(cfg, cfg.actor_lr)
        self.critic_optimizer = adam(cfg, cfg.critic_lr)
        self.value_optimizer = adam(cfg, cfg.algo_config.value_learning_rate or cfg.base_learning_rate)

    def state_value(self, value_params, obs: jax.Array) -> jax.Array:
        """V(s): [..., obs_dim] -> [...]."""
        return self.value.apply({"params": value_params}, obs)[..., 0]

    def init(self, key: jax.Array) -> SACV1State:
        actor_key, critic_key, value_key, key = jax.random.split(key, 4)
        obs = jnp.zeros((1, self.obs_dim), jnp.float32)
        action = jnp.zeros((1, self.action_dim), jnp.float32)
        actor_params = self.actor.init(actor_key, obs)["params"]
        critic_params = self.critic.init(critic_key, obs, action)["params"]
        value_params = self.value.init(value_key, obs)["params"]
        log_alpha = jnp.asarray(math.log(self.initial_alpha), jnp.float32)
        return SACV1State(
            actor_params=actor_params,
            critic_params=critic_params,
            value_params=value_params,
            target_value_params=jax.tree_util.tree_map(jnp.copy, value_params),
            log_alpha=log_alpha,
            actor_opt_state=self.actor_optimizer.init(actor_params),
            critic_opt_state=self.critic_optimizer.init(critic_params),
            value_opt_state=self.value_optimizer.init(value_params),
            alpha_opt_state=self.alpha_optimizer.init(log_alpha),
            key=key,
            num_updates=jnp.zeros((), jnp.int32),
        )

    def update(self, state: SACV1State, batch: Batch) -> tuple[SACV1State, dict]:
        """One simultaneous gradient step of V, Q, pi (and alpha if learned), then psibar's Polyak step."""
        key, actor_key = jax.random.split(state.key)
        alpha = jnp.exp(state.log_alpha)

        # J_pi at (phi, theta): E[alpha log pi(a|s) - min_i Q_i(s, a)], a ~ pi(.|s) reparameterised.
        def actor_objective(actor_params):
            action, log_prob = self.sample_action(actor_params, batch.obs, actor_key)
            q = self.critic.apply({"params": state.critic_params}, batch.obs, action)
            loss, info = losses.actor_loss(q, log_prob, alpha)
            return loss, (info, q, log_prob)

        actor_grads, (actor_info, q_pi, log_prob) = jax.grad(actor_objective, has_aux=True)(state.actor_params)

        # J_V at psi, towards min_i Q_i(s, a) - alpha log pi(a|s) with the same a ~ pi(.|s).
        value_target = losses_v1.soft_value_target(q_pi, log_prob, alpha)
        value_grads, value_info = jax.grad(
            lambda p: losses_v1.value_loss(self.state_value(p, batch.obs), value_target), has_aux=True
        )(state.value_params)

        # J_Q at theta, towards r + gamma (1 - terminated) V_psibar(s').
        q_target = losses_v1.value_based_q_target(
            batch.reward, batch.terminated, self.state_value(state.target_value_params, batch.next_obs), bootstrap_discount(batch, self.cfg.gamma))
        critic_grads, critic_info = jax.grad(
            lambda p: losses.critic_loss(self.critic.apply({"params": p}, batch.obs, batch.action), q_target),
            has_aux=True,
        )(state.critic_params)

        actor_params, actor_opt_state = apply_gradients(self.actor_optimizer, state.actor_params,
                                                        state.actor_opt_state, actor_grads)
        critic_params, critic_opt_state = apply_gradients(self.critic_optimizer, state.critic_params,
                                                          state.critic_opt_state, critic_grads)
        value_params, value_opt_state = apply_gradients(self.value_optimizer, state.value_params,
                                                        state.value_opt_state, value_grads)
        log_alpha, alpha_opt_state, alpha_info = self.temperature_step(state.log_alpha, state.alpha_opt_state, log_prob)

        new_state = state.replace(
            actor_params=actor_params, actor_opt_state=actor_opt_state,
            critic_params=critic_params, critic_opt_state=critic_opt_state,
            value_params=value_params, value_opt_state=value_opt_state,
            target_value_params=losses.polyak_update(state.target_value_params, value_params, self.cfg.tau),
            log_alpha=log_alpha, alpha_opt_state=alpha_opt_state,
            key=key, num_updates=state.num_updates + 1,
        )
        return new_state, {**value_info, **critic_info, **actor_info, **alpha_info, "alpha": alpha}

"""The SimbaV2 agent (Lee et al., 2025): SAC with hyperspherical networks, a categorical critic and
normalised observations and rewards. Equations: docs/algorithms.md, "SimbaV2 (Lee et al., 2025)".

Follows the authors' code (github dojeon-ai/SimbaV2, scale_rl/agents/simbaV2): one gradient step
(`update`) does, in this order,
    actor:        min_i E[Z_i(s, a)] against the current critics, a ~ pi(.|s) reparameterised;
    temperature:  J(alpha) = alpha (H - Hbar) with the actor step's entropy, Hbar = -|A| / 2;
    critic:       cross-entropy towards the categorical projection of r~ + gamma (1 - terminated)
                  (z - alpha log pi(a'|s')), a' from the updated actor, alpha the updated temperature, the
                  atoms z of the target critic with the lowest expected value (clipped double Q);
    target:       Polyak averaging of the critics;
with every HyperDense kernel projected back onto the unit sphere after its network's optimiser step. The
observations of the batch are normalised with the running statistics, and r~ = r / reward_scale. Every
learning rate decays linearly to final_learning_rate over the updates of the whole training (Adam).

The statistics change with every env step (`observe`): the observation's running mean and variance (part
of the policy: acting, evaluation and export normalise with them) and the discounted return's.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import flax
import jax
import jax.numpy as jnp
import optax

from softac.algos.base import Batch, SquashedGaussianAgent, apply_gradients, bootstrap_discount
from softac.algos.sac import losses as sac_losses
from softac.algos.simbav2 import losses, running_stats
from softac.algos.simbav2.export import simbav2_actor_layers
from softac.algos.simbav2.networks import SimbaV2Actor, SimbaV2Critic, normalize_observation, project_weights
from softac.networks import CriticEnsemble

if TYPE_CHECKING:
    from softac.config import SACConfig


@flax.struct.dataclass
class SimbaV2State:
    """Everything a SimbaV2 update reads and writes (one seed; the trainer adds a leading seed axis)."""

    actor_params: dict
    critic_params: dict
    target_critic_params: dict
    log_alpha: jax.Array
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    alpha_opt_state: optax.OptState
    obs_stats: dict  # running mean [obs_dim], var [obs_dim] and count of the observations
    return_stats: dict  # discounted return [num_envs], its running moments, the max |G| seen
    key: jax.Array
    num_updates: jax.Array


def updates_in_training(cfg: "SACConfig") -> int:
    """The gradient steps of a whole training: `gradient_steps` at every env step t in [max(learning_starts, 1),
    total_steps - 1] that is a multiple of train_every (the loops' schedule)."""
    first, last = max(cfg.learning_starts, 1), cfg.total_steps - 1
    if last < first:
        return 0
    return cfg.gradient_steps * (last // cfg.train_every - (first - 1) // cfg.train_every)


class SimbaV2(SquashedGaussianAgent):
    """SimbaV2. Implements `softac.algos.base.Agent`; its policy is the actor's parameters and the observation
    statistics, and its `observe` updates the running statistics."""

    policy_fields = ("actor_params", "obs_stats")

    def __init__(self, cfg: "SACConfig", obs_dim: int, action_dim: int):
        super().__init__(cfg, obs_dim, action_dim)
        params = self.params = cfg.algo_config
        self.actor = SimbaV2Actor(params.actor_num_blocks, params.actor_hidden_dim, action_dim, params.shift_constant,
                                  params.normalize_observations)
        self.critic = CriticEnsemble(SimbaV2Critic, {"num_blocks": params.critic_num_blocks,
                                                     "hidden_dim": params.critic_hidden_dim,
                                                     "num_bins": params.num_bins, "shift": params.shift_constant},
                                     num_critics=2 if params.clipped_double_q else 1)
        self.atoms = losses.support(params.num_bins, params.v_min, params.v_max)
        self.total_updates = updates_in_training(cfg)

        def decaying_adam(learning_rate: float) -> optax.GradientTransformation:
            schedule = optax.linear_schedule(learning_rate, params.final_learning_rate, max(self.total_updates, 1))
            return optax.adam(schedule, b1=cfg.beta1)

        self.actor_optimizer = decaying_adam(cfg.actor_lr)
        self.critic_optimizer = decaying_adam(cfg.critic_lr)
        self.alpha_optimizer = decaying_adam(cfg.alpha_lr)

    def default_target_entropy(self) -> float:
        """Hbar = -|A| / 2 (the authors' temp_target_entropy_coef -0.5)."""
        return -0.5 * float(self.action_dim)

    # ----------------------------------------------------------------------------------- state and policy
    def init(self, key: jax.Array) -> SimbaV2State:
        actor_key, critic_key, key = jax.random.split(key, 3)
        obs = jnp.zeros((1, self.obs_dim), jnp.float32)
        action = jnp.zeros((1, self.action_dim), jnp.float32)
        actor_params = project_weights(self.actor.init(actor_key, obs)["params"])
        critic_params = project_weights(self.critic.init(critic_key, obs, action)["params"])
        log_alpha = jnp.asarray(math.log(self.initial_alpha), jnp.float32)
        return SimbaV2State(
            actor_params=actor_params, critic_params=critic_params,
            target_critic_params=jax.tree_util.tree_map(jnp.copy, critic_params), log_alpha=log_alpha,
            actor_opt_state=self.actor_optimizer.init(actor_params),
            critic_opt_state=self.critic_optimizer.init(critic_params),
            alpha_opt_state=self.alpha_optimizer.init(log_alpha),
            obs_stats=running_stats.initial_moments((self.obs_dim,)),
            return_stats=running_stats.initial_return_stats(self.cfg.num_envs),
            key=key, num_updates=jnp.zeros((), jnp.int32))

    def policy_of(self, state: SimbaV2State) -> dict:
        """The actor's flax variables: its parameters and the observation statistics it normalises with."""
        return {"params": state.actor_params,
                "obs_stats": {"mean": state.obs_stats["mean"], "var": state.obs_stats["var"]}}

    def actor_variables(self, policy) -> dict:
        return policy

    def policy_layers(self, policy) -> list[dict]:
        p = self.params
        return simbav2_actor_layers(policy["params"], policy["obs_stats"], p.actor_num_blocks, p.actor_hidden_dim,
                                    p.shift_constant, p.normalize_observations)

    def observe(self, state: SimbaV2State, obs, reward, terminated, truncated) -> SimbaV2State:
        """The running observation statistics (with the observations the policy acts on next) and the
        discounted return's (G <- gamma (1 - done) G + r), after one env step of E environments."""
        obs_stats, return_stats = state.obs_stats, state.return_stats
        if self.params.normalize_observations:
            obs_stats = running_stats.update_moments(obs_stats, jnp.asarray(obs, jnp.float32))
        if self.params.normalize_rewards:
            done = jnp.maximum(jnp.asarray(terminated, jnp.float32), jnp.asarray(truncated, jnp.float32))
            return_stats = running_stats.update_return_stats(return_stats, jnp.asarray(reward, jnp.float32), done,
                                                             self.cfg.gamma)
        return state.replace(obs_stats=obs_stats, return_stats=return_stats)

    # ----------------------------------------------------------------------------------- update
    def q_logits(self, critic_params, obs: jax.Array, action: jax.Array) -> jax.Array:
        """The critics' logits [N, B, K] over the atoms, for normalised observations."""
        return self.critic.apply({"params": critic_params}, obs, action)

    def temperature_step(self, log_alpha, alpha_opt_state, log_prob):
        """One step of the authors' temperature loss alpha (H - Hbar) on log alpha (a no-op when alpha is fixed)."""
        if not self.learn_alpha:
            return log_alpha, alpha_opt_state, {}
        grad, info = jax.grad(losses.temperature_loss, has_aux=True)(log_alpha, log_prob, self.target_entropy)
        log_alpha, alpha_opt_state = apply_gradients(self.alpha_optimizer, log_alpha, alpha_opt_state, grad)
        return log_alpha, alpha_opt_state, info

    def update(self, state: SimbaV2State, batch: Batch) -> tuple[SimbaV2State, dict]:
        """Actor, temperature, critic and target steps, in the authors' order (module docstring)."""
        key, actor_key, next_key = jax.random.split(state.key, 3)
        stats = state.obs_stats
        if self.params.normalize_observations:
            obs, next_obs = (normalize_observation(o, stats["mean"], stats["var"]) for o in (batch.obs, batch.next_obs))
        else:
            obs, next_obs = batch.obs, batch.next_obs
        scale = (running_stats.reward_scale(state.return_stats, self.params.return_bound)
                 if self.params.normalize_rewards else jnp.ones((), jnp.float32))
        reward = batch.reward / scale
        alpha = jnp.exp(state.log_alpha)
        obs_stats = self.policy_of(state)["obs_stats"]

        # Actor: minimise E[alpha log pi(a|s) - min_i Q_i(s, a)], Q_i the expected value of critic i's atoms.
        def actor_objective(actor_params):
            action, log_prob = self.sample_action({"params": actor_params, "obs_stats": obs_stats}, batch.obs,
                                                  actor_key)
            q = losses.expected_value(self.q_logits(state.critic_params, obs, action), self.atoms)
            loss, info = sac_losses.actor_loss(q, log_prob, alpha)
            return loss, (info, log_prob)

        actor_grads, (actor_info, log_prob) = jax.grad(actor_objective, has_aux=True)(state.actor_params)
        actor_params, actor_opt_state = apply_gradients(self.actor_optimizer, state.actor_params,
                                                        state.actor_opt_state, actor_grads)
        actor_params = project_weights(actor_params)

        # Temperature, with the entropy of the actor step's actions.
        log_alpha, alpha_opt_state, alpha_info = self.temperature_step(state.log_alpha, state.alpha_opt_state, log_prob)
        new_alpha = jnp.exp(log_alpha)

        # Critic: the projected target distribution from the updated actor and temperature.
        next_action, next_log_prob = self.sample_action({"params": actor_params, "obs_stats": obs_stats},
                                                        batch.next_obs, next_key)
        next_probs = losses.min_q_distribution(self.q_logits(state.target_critic_params, next_obs, next_action),
                                               self.atoms)
        target = losses.categorical_projection(next_probs, reward, batch.terminated, new_alpha * next_log_prob,
                                               bootstrap_discount(batch, self.cfg.gamma), self.atoms)
        critic_grads, critic_info = jax.grad(
            lambda p: losses.categorical_critic_loss(self.q_logits(p, obs, batch.action), target, self.atoms),
            has_aux=True)(state.critic_params)
        critic_params, critic_opt_state = apply_gradients(self.critic_optimizer, state.critic_params,
                                                          state.critic_opt_state, critic_grads)
        critic_params = project_weights(critic_params)
        target_critic_params = sac_losses.polyak_update(state.target_critic_params, critic_params, self.cfg.tau)

        state = state.replace(actor_params=actor_params, critic_params=critic_params,
                              target_critic_params=target_critic_params, log_alpha=log_alpha,
                              actor_opt_state=actor_opt_state, critic_opt_state=critic_opt_state,
                              alpha_opt_state=alpha_opt_state, key=key, num_updates=state.num_updates + 1)
        return state, {**critic_info, **actor_info, **alpha_info, "alpha": alpha, "reward_divisor": scale}

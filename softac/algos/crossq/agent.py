"""The CrossQ agent (Bhatt et al., ICLR 2024): SAC without target networks, with Batch Renormalization
in the critics and the actor. Equations: docs/algorithms.md, "CrossQ (Bhatt et al., ICLR 2024)".

One gradient step (`update`), numbered by the update count u:
    critic:  one forward pass of the critics in train mode over concat((s, a), (s', a')), a' ~ pi(.|s')
             from the actor with its running statistics, so the batch statistics cover both; loss
             towards sg(r + gamma (1 - terminated) (min_i Q_i(s', a') - alpha log pi(a'|s')))
    actor and temperature, when u % policy_delay == 0: SAC v2's losses against the updated critics
             (critics in eval mode, actor in train mode)
Adam with beta1 = adam_beta1 (the authors' 0.5). Acting and evaluation use the running statistics.

The numbering, the branch and the metrics of the last actor step (`actor_info`, kept in the state) are
`softac.algos.base.DelayedActorAgent`'s.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import flax
import jax
import jax.numpy as jnp
import optax

from softac.algos.base import Batch, DelayedActorAgent, adam, apply_gradients, bootstrap_discount
from softac.algos.crossq import losses
from softac.algos.crossq.export import normalised_mlp_layers
from softac.algos.crossq.networks import BatchRenorm, NormalisedCritic, NormalisedSquashedGaussianActor
from softac.algos.sac import losses as sac_losses
from softac.distributions import squashed_gaussian_sample
from softac.networks import critic_ensemble

if TYPE_CHECKING:
    from softac.config import SACConfig


@flax.struct.dataclass
class CrossQState:
    """Everything a CrossQ update reads and writes (one seed; the trainer adds a leading seed axis)."""

    actor_params: dict
    actor_batch_stats: dict  # running statistics of the actor's BatchRenorm layers
    critic_params: dict
    critic_batch_stats: dict
    log_alpha: jax.Array
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    alpha_opt_state: optax.OptState
    actor_info: dict  # metrics of the last actor step
    key: jax.Array
    num_updates: jax.Array


class CrossQ(DelayedActorAgent):
    """CrossQ. Implements `softac.algos.base.Agent`; its policy is the actor's parameters and running statistics."""

    policy_fields = ("actor_params", "actor_batch_stats")

    def __init__(self, cfg: "SACConfig", obs_dim: int, action_dim: int):
        super().__init__(cfg, obs_dim, action_dim)
        params = cfg.algo_config
        norm = {"momentum": params.batch_norm_momentum, "warmup_steps": params.renorm_warmup_steps,
                "initialization": cfg.network_init}
        actor_sizes = tuple(cfg.hidden_sizes)
        self.actor = NormalisedSquashedGaussianActor(actor_sizes, action_dim, train=False, **norm)
        self.actor_train = NormalisedSquashedGaussianActor(actor_sizes, action_dim, train=True, **norm)
        self.critic = critic_ensemble(cfg.critic_sizes, critic=NormalisedCritic, train=False, **norm)
        self.critic_train = critic_ensemble(cfg.critic_sizes, critic=NormalisedCritic, train=True, **norm)
        self.actor_optimizer = adam(cfg, cfg.actor_lr)
        self.critic_optimizer = adam(cfg, cfg.critic_lr)
        self.policy_delay = params.policy_delay

    def policy_of(self, state: CrossQState) -> dict:
        return {"params": state.actor_params, "batch_stats": state.actor_batch_stats}

    def actor_variables(self, policy) -> dict:
        return policy

    def policy_layers(self, policy) -> list[dict]:
        """The actor's NormalisedMLP in evaluation mode (its running statistics) as numpy layers."""
        return normalised_mlp_layers(policy["params"]["NormalisedMLP_0"], policy["batch_stats"]["NormalisedMLP_0"],
                                     len(self.cfg.hidden_sizes), BatchRenorm.epsilon)

    def init(self, key: jax.Array) -> CrossQState:
        actor_key, critic_key, key = jax.random.split(key, 3)
        obs = jnp.zeros((1, self.obs_dim), jnp.float32)
        action = jnp.zeros((1, self.action_dim), jnp.float32)
        actor_vars = self.actor_train.init(actor_key, obs)
        critic_vars = self.critic_train.init(critic_key, obs, action)
        log_alpha = jnp.asarray(math.log(self.initial_alpha), jnp.float32)
        return CrossQState(
            actor_params=actor_vars["params"], actor_batch_stats=actor_vars["batch_stats"],
            critic_params=critic_vars["params"], critic_batch_stats=critic_vars["batch_stats"],
            log_alpha=log_alpha,
            actor_opt_state=self.actor_optimizer.init(actor_vars["params"]),
            critic_opt_state=self.critic_optimizer.init(critic_vars["params"]),
            alpha_opt_state=self.alpha_optimizer.init(log_alpha),
            actor_info=self.initial_actor_info(), key=key, num_updates=jnp.zeros((), jnp.int32),
        )

    # ----------------------------------------------------------------------------------- update
    def critic_step(self, state: CrossQState, batch: Batch, key: jax.Array) -> tuple[CrossQState, dict]:
        """The critic step: one train-mode forward pass over concat((s, a), (s', a')), a' ~ pi(.|s') (key)."""
        alpha = jnp.exp(state.log_alpha)
        next_action, next_log_prob = self.sample_action(self.policy_of(state), batch.next_obs, key)

        def critic_objective(critic_params):
            q_joint, changed = self.critic_train.apply(
                {"params": critic_params, "batch_stats": state.critic_batch_stats},
                jnp.concatenate([batch.obs, batch.next_obs]), jnp.concatenate([batch.action, next_action]),
                mutable=["batch_stats"])
            loss, info = losses.crossq_critic_loss(q_joint, batch.reward, batch.terminated, next_log_prob,
                                                   alpha, bootstrap_discount(batch, self.cfg.gamma))
            return loss, (info, changed["batch_stats"])

        critic_grads, (critic_info, critic_batch_stats) = jax.grad(critic_objective, has_aux=True)(
            state.critic_params)
        critic_params, critic_opt_state = apply_gradients(self.critic_optimizer, state.critic_params,
                                                          state.critic_opt_state, critic_grads)
        return state.replace(critic_params=critic_params, critic_batch_stats=critic_batch_stats,
                             critic_opt_state=critic_opt_state), critic_info

    def actor_step(self, state: CrossQState, batch: Batch, key: jax.Array) -> CrossQState:
        """SAC v2's actor and temperature steps: actor in train mode, the updated critics in eval mode."""
        alpha = jnp.exp(state.log_alpha)

        def actor_objective(actor_params):
            (mean, log_std), changed = self.actor_train.apply(
                {"params": actor_params, "batch_stats": state.actor_batch_stats}, batch.obs,
                mutable=["batch_stats"])
            action, log_prob = squashed_gaussian_sample(key, mean, log_std)
            q = self.critic.apply({"params": state.critic_params, "batch_stats": state.critic_batch_stats},
                                  batch.obs, action)
            loss, info = sac_losses.actor_loss(q, log_prob, alpha)
            return loss, (info, log_prob, changed["batch_stats"])

        actor_grads, (actor_info, log_prob, actor_batch_stats) = jax.grad(actor_objective, has_aux=True)(
            state.actor_params)
        actor_params, actor_opt_state = apply_gradients(self.actor_optimizer, state.actor_params,
                                                        state.actor_opt_state, actor_grads)
        log_alpha, alpha_opt_state, alpha_info = self.temperature_step(state.log_alpha, state.alpha_opt_state,
                                                                       log_prob)
        return state.replace(actor_params=actor_params, actor_batch_stats=actor_batch_stats,
                             actor_opt_state=actor_opt_state, log_alpha=log_alpha,
                             alpha_opt_state=alpha_opt_state, actor_info={**actor_info, **alpha_info})

"""The TQC agent (Kuznetsov et al., ICML 2020): a squashed Gaussian actor, N quantile critics of M atoms with
Polyak-averaged targets, and a learned temperature. Equations: docs/algorithms.md, "TQC (Kuznetsov et al.,
ICML 2020)".

One gradient step (`update`), in order:
    critic:      the quantile Huber loss of every critic's atoms at (s, a) against the target atoms
                 y_i = r + gamma (1 - terminated) (z_(i) - alpha log pi(a'|s')), a' ~ pi(.|s'), where z_(i) are
                 the smallest N (M - d) of the target critics' N M pooled atoms at (s', a')
    actor:       alpha log pi(a|s) minus the mean of all N M atoms, against the updated critics
    temperature: towards the target entropy -|A|, with the actor step's log pi
    targets:     psibar <- tau psi + (1 - tau) psibar
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import flax
import jax
import jax.numpy as jnp
import optax

from softac.algos.base import Batch, SquashedGaussianAgent, adam, apply_gradients, bootstrap_discount
from softac.algos.sac.losses import polyak_update  # the family's one Polyak step
from softac.algos.tqc import losses
from softac.algos.tqc.networks import quantile_critic_ensemble
from softac.networks import SquashedGaussianActor

if TYPE_CHECKING:
    from softac.config import SACConfig


@flax.struct.dataclass
class TQCState:
    """Everything a TQC update reads and writes (one seed; the trainer adds a leading seed axis)."""

    actor_params: dict
    critic_params: dict  # N quantile critics, leading axis N on every leaf
    target_critic_params: dict
    log_alpha: jax.Array  # scalar; alpha = exp(log_alpha)
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    alpha_opt_state: optax.OptState
    key: jax.Array
    num_updates: jax.Array  # scalar int32, gradient steps taken


class TQC(SquashedGaussianAgent):
    """TQC. Implements `softac.algos.base.Agent`; its policy is the actor's parameters (exported as inherited)."""

    def __init__(self, cfg: "SACConfig", obs_dim: int, action_dim: int):
        super().__init__(cfg, obs_dim, action_dim)
        params = cfg.algo_config
        self.n_critics = params.n_critics
        self.n_quantiles = params.n_quantiles
        self.top_quantiles_to_drop = params.top_quantiles_to_drop
        self.actor = SquashedGaussianActor(tuple(cfg.hidden_sizes), action_dim, cfg.network_init)
        self.critic = quantile_critic_ensemble(cfg.critic_sizes, self.n_critics, self.n_quantiles, cfg.network_init)
        self.actor_optimizer = adam(cfg, cfg.actor_lr)
        self.critic_optimizer = adam(cfg, cfg.critic_lr)

    def init(self, key: jax.Array) -> TQCState:
        """A fresh agent state from one PRNG key: target critics a separate copy of the critics, alpha initial."""
        actor_key, critic_key, key = jax.random.split(key, 3)
        obs = jnp.zeros((1, self.obs_dim), jnp.float32)
        action = jnp.zeros((1, self.action_dim), jnp.float32)
        actor_params = self.actor.init(actor_key, obs)["params"]
        critic_params = self.critic.init(critic_key, obs, action)["params"]
        log_alpha = jnp.asarray(math.log(self.initial_alpha), jnp.float32)
        return TQCState(
            actor_params=actor_params,
            critic_params=critic_params,
            # A separate copy: the target must not share buffers with the online critics.
            target_critic_params=jax.tree_util.tree_map(jnp.copy, critic_params),
            log_alpha=log_alpha,
            actor_opt_state=self.actor_optimizer.init(actor_params),
            critic_opt_state=self.critic_optimizer.init(critic_params),
            alpha_opt_state=self.alpha_optimizer.init(log_alpha),
            key=key,
            num_updates=jnp.zeros((), jnp.int32),
        )

    def atoms(self, critic_params, obs: jax.Array, action: jax.Array) -> jax.Array:
        """theta^m_n(s, a) of every critic n and atom m: [N, B, M]."""
        return self.critic.apply({"params": critic_params}, obs, action)

    def update(self, state: TQCState, batch: Batch) -> tuple[TQCState, dict]:
        """One gradient step of critics, actor and temperature, then the target critics' Polyak step."""
        key, next_key, actor_key = jax.random.split(state.key, 3)
        alpha = jnp.exp(state.log_alpha)

        # Critic: pool the target critics' atoms at (s', a'), drop the d N largest, regress every atom on the rest.
        next_action, next_log_prob = self.sample_action(state.actor_params, batch.next_obs, next_key)
        next_atoms = self.atoms(state.target_critic_params, batch.next_obs, next_action)
        kept = losses.truncated_target_atoms(next_atoms, self.top_quantiles_to_drop)
        target = losses.target_atoms(batch.reward, batch.terminated, kept, next_log_prob, alpha,
                                     bootstrap_discount(batch, self.cfg.gamma))
        critic_grads, critic_info = jax.grad(
            lambda p: losses.quantile_huber_loss(self.atoms(p, batch.obs, batch.action), target), has_aux=True
        )(state.critic_params)
        critic_params, critic_opt_state = apply_gradients(self.critic_optimizer, state.critic_params,
                                                          state.critic_opt_state, critic_grads)

        # Actor: minimise E[alpha log pi(a|s) - mean of all atoms] with a reparameterised, against the new critics.
        def actor_objective(actor_params):
            action, log_prob = self.sample_action(actor_params, batch.obs, actor_key)
            loss, info = losses.actor_loss(self.atoms(critic_params, batch.obs, action), log_prob, alpha)
            return loss, (info, log_prob)

        actor_grads, (actor_info, log_prob) = jax.grad(actor_objective, has_aux=True)(state.actor_params)
        actor_params, actor_opt_state = apply_gradients(self.actor_optimizer, state.actor_params,
                                                        state.actor_opt_state, actor_grads)

        # Temperature: move log alpha so that the policy's entropy approaches the target.
        log_alpha, alpha_opt_state, alpha_info = self.temperature_step(state.log_alpha, state.alpha_opt_state, log_prob)

        new_state = state.replace(
            actor_params=actor_params, actor_opt_state=actor_opt_state,
            critic_params=critic_params, critic_opt_state=critic_opt_state,
            target_critic_params=polyak_update(state.target_critic_params, critic_params, self.cfg.tau),
            log_alpha=log_alpha, alpha_opt_state=alpha_opt_state,
            key=key, num_updates=state.num_updates + 1,
        )
        return new_state, {**critic_info, **actor_info, **alpha_info, "alpha": alpha}

"""The SAC v2 agent: its state pytree and the pure functions that update it and act with it.

`SAC` wires the networks, the optimisers and the static hyperparameters together; it holds no
state the update depends on. Everything that changes during training is in `AgentState`, so an
update is `state, batch -> new_state, metrics` and several seeds are `jax.vmap` over a leading
axis of the state (see `softac.train`). The update's PRNG key lives in the state: an update splits
it (so it takes no separate key argument); acting uses a key stream of its own.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import flax
import jax
import jax.numpy as jnp
import optax

from softac import distributions, losses
from softac.config import SACConfig
from softac.networks import CriticEnsemble, SquashedGaussianActor


class Batch(NamedTuple):
    """A minibatch of transitions; leading axis B. Actions are in the policy's [-1, 1] space."""

    obs: jax.Array  # [B, obs_dim]
    action: jax.Array  # [B, action_dim]
    reward: jax.Array  # [B]
    next_obs: jax.Array  # [B, obs_dim]
    terminated: jax.Array  # [B], 1.0 where the episode ended in a terminal state (not a time limit)


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


class AgentBase:
    """What every SAC variant shares: the temperature settings and step, and the fused `update_many`.

    Subclasses define `init(key)`, `update(state, batch)`, `explore`, `sample_action` and
    `deterministic_action`; their state has fields `actor_params`, `log_alpha`, `alpha_opt_state`.
    """

    def __init__(self, cfg: SACConfig, obs_dim: int, action_dim: int):
        self.cfg = cfg
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        fixed_alpha = cfg.fixed_alpha
        self.learn_alpha = fixed_alpha is None
        self.initial_alpha = cfg.initial_alpha if fixed_alpha is None else fixed_alpha
        self.target_entropy = float(self.default_target_entropy() if cfg.target_entropy is None else cfg.target_entropy)
        self.alpha_optimizer = optax.adam(cfg.learning_rate)

    def default_target_entropy(self) -> float:
        """Hbar = -|A| for continuous actions (2018b)."""
        return -float(self.action_dim)

    def explore(self, actor_params, key: jax.Array, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(a ~ pi(.|obs), next key): a stochastic action, in the replay buffer's form, for the training
        environment. The acting key is a stream of its own (kept by the trainer), separate from the update's.
        """
        key, action_key = jax.random.split(key)
        action, _ = self.sample_action(actor_params, obs, action_key)
        return action, key

    def temperature_step(self, log_alpha, alpha_opt_state, log_prob):
        """One step of the temperature loss on log alpha (a no-op when alpha is fixed).

        log_prob: [B] log pi(a|s) of actions from the current policy, or its exact expectation
        sum_a pi(a|s) log pi(a|s) = -H(pi(.|s)) for discrete actions.
        """
        if not self.learn_alpha:
            return log_alpha, alpha_opt_state, {}
        alpha_grad, info = jax.grad(losses.temperature_loss, has_aux=True)(log_alpha, log_prob, self.target_entropy)
        updates, alpha_opt_state = self.alpha_optimizer.update(alpha_grad, alpha_opt_state)
        return optax.apply_updates(log_alpha, updates), alpha_opt_state, info

    def sample_action(self, actor_params, obs: jax.Array, key: jax.Array):
        raise NotImplementedError

    def update(self, state, batch: Batch):
        raise NotImplementedError

    def update_many(self, state, batches: Batch):
        """`G` gradient steps fused in one lax.scan; batches have a leading axis G. Metrics are means over G."""
        state, infos = jax.lax.scan(self.update, state, batches)
        return state, jax.tree_util.tree_map(jnp.mean, infos)


class SquashedGaussianAgent(AgentBase):
    """Continuous SAC variants: the squashed-Gaussian actor and its acting."""

    def __init__(self, cfg: SACConfig, obs_dim: int, action_dim: int):
        super().__init__(cfg, obs_dim, action_dim)
        self.actor = SquashedGaussianActor(tuple(cfg.hidden_sizes), action_dim)

    def sample_action(self, actor_params, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """a ~ pi(.|obs) in [-1, 1] with its log-probability. obs [..., obs_dim]."""
        mean, log_std = self.actor.apply({"params": actor_params}, obs)
        return distributions.squashed_gaussian_sample(key, mean, log_std)

    def deterministic_action(self, actor_params, obs: jax.Array) -> jax.Array:
        """tanh(mean), the action used for evaluation, in [-1, 1]. obs [..., obs_dim]."""
        mean, _ = self.actor.apply({"params": actor_params}, obs)
        return distributions.squashed_gaussian_mode(mean)


class SAC(SquashedGaussianAgent):
    """SAC with twin Q targets and a learned temperature (Haarnoja et al. 2018b, Algorithm 1).

    One gradient step (`update`) does, in order: the critic step towards the soft Bellman target,
    the actor step against the updated critics, the temperature step with the log-probabilities
    of the actor step, and the Polyak update of the target critics.
    """

    def __init__(self, cfg: SACConfig, obs_dim: int, action_dim: int):
        super().__init__(cfg, obs_dim, action_dim)
        self.critic = CriticEnsemble(tuple(cfg.hidden_sizes))
        self.actor_optimizer = optax.adam(cfg.actor_lr)
        self.critic_optimizer = optax.adam(cfg.critic_lr)

    def init(self, key: jax.Array) -> AgentState:
        """A fresh agent state from one PRNG key."""
        actor_key, critic_key, key = jax.random.split(key, 3)
        obs = jnp.zeros((1, self.obs_dim), jnp.float32)
        action = jnp.zeros((1, self.action_dim), jnp.float32)
        actor_params = self.actor.init(actor_key, obs)["params"]
        critic_params = self.critic.init(critic_key, obs, action)["params"]
        return fresh_twin_critic_state(self, actor_params, critic_params, key)

    # ----------------------------------------------------------------------------------- update
    def update(self, state: AgentState, batch: Batch) -> tuple[AgentState, dict]:
        """One gradient step of critics, actor and temperature, then the target critics' Polyak step."""
        key, next_key, actor_key = jax.random.split(state.key, 3)
        alpha = jnp.exp(state.log_alpha)

        # Critic: y = r + gamma (1 - terminated) (min_i Qbar_i(s', a') - alpha log pi(a'|s')), a' ~ pi(.|s').
        next_action, next_log_prob = self.sample_action(state.actor_params, batch.next_obs, next_key)
        next_target_q = self.critic.apply({"params": state.target_critic_params}, batch.next_obs, next_action)
        target = losses.soft_q_target(batch.reward, batch.terminated, next_target_q, next_log_prob,
                                      alpha, self.cfg.gamma)

        def critic_objective(critic_params):
            q = self.critic.apply({"params": critic_params}, batch.obs, batch.action)
            return losses.critic_loss(q, target)

        critic_grads, critic_info = jax.grad(critic_objective, has_aux=True)(state.critic_params)
        critic_updates, critic_opt_state = self.critic_optimizer.update(critic_grads, state.critic_opt_state)
        critic_params = optax.apply_updates(state.critic_params, critic_updates)

        # Actor: minimise E[alpha log pi(a|s) - min_i Q_i(s, a)] with a reparameterised.
        def actor_objective(actor_params):
            action, log_prob = self.sample_action(actor_params, batch.obs, actor_key)
            q = self.critic.apply({"params": critic_params}, batch.obs, action)
            loss, info = losses.actor_loss(q, log_prob, alpha)
            return loss, (info, log_prob)

        actor_grads, (actor_info, log_prob) = jax.grad(actor_objective, has_aux=True)(state.actor_params)
        actor_updates, actor_opt_state = self.actor_optimizer.update(actor_grads, state.actor_opt_state)
        actor_params = optax.apply_updates(state.actor_params, actor_updates)

        # Temperature: move log alpha so that the policy's entropy approaches the target.
        log_alpha, alpha_opt_state, alpha_info = self.temperature_step(state.log_alpha, state.alpha_opt_state, log_prob)

        target_critic_params = losses.polyak_update(state.target_critic_params, critic_params, self.cfg.tau)
        new_state = AgentState(
            actor_params=actor_params,
            critic_params=critic_params,
            target_critic_params=target_critic_params,
            log_alpha=log_alpha,
            actor_opt_state=actor_opt_state,
            critic_opt_state=critic_opt_state,
            alpha_opt_state=alpha_opt_state,
            key=key,
            num_updates=state.num_updates + 1,
        )
        return new_state, {**critic_info, **actor_info, **alpha_info, "alpha": alpha}

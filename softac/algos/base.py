"""What every algorithm shares: the minibatch, the agent interface the trainer relies on, the one
optimiser step, the temperature step and the export of a policy as layers (the registry entry that
declares an algorithm is `softac.algos.spec`).

An agent is a set of pure functions over a state pytree (a `flax.struct.dataclass`): everything
that changes during training is in the state, so an update is `state, batch -> new_state, metrics`
and several seeds are `jax.vmap` over a leading axis of the state (see `softac.train`). The
update's PRNG key lives in the state; acting uses a key stream of its own, kept by the trainer.
Equations: docs/algorithms.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Protocol

import jax
import jax.numpy as jnp
import optax

from softac.algos.sac import losses as sac_losses
from softac.distributions import squashed_gaussian_mode, squashed_gaussian_sample
from softac.export_layers import mlp_layers

if TYPE_CHECKING:
    from softac.config import SACConfig


class Batch(NamedTuple):
    """A minibatch of transitions; leading axis B. Actions are in the stored form: the policy's [-1, 1]
    space for Box actions, a float index [B, 1] for Discrete ones."""

    obs: jax.Array  # [B, obs_dim]
    action: jax.Array  # [B, action_dim]
    reward: jax.Array  # [B]
    next_obs: jax.Array  # [B, obs_dim]
    terminated: jax.Array  # [B], 1.0 where the episode ended in a terminal state (not a time limit)
    #: [B] the discount of the bootstrap, gamma^k for a target k env steps ahead (n-step returns); None: gamma
    #: for every transition (one-step targets). Losses take it in place of gamma (`bootstrap_discount`).
    discount: Optional[jax.Array] = None


def bootstrap_discount(batch: Batch, gamma: float):
    """The discount of each transition's bootstrap: batch.discount ([B], gamma^k for an n-step target that
    spans k env steps) or, for one-step batches, the scalar gamma."""
    return gamma if batch.discount is None else batch.discount


class Agent(Protocol):
    """The interface `softac.train`, `softac.evaluate` and the checkpoints rely on.

    `policy` below is what acting needs (`policy_of(state)`): the actor's parameters, plus the
    running normalisation statistics for CrossQ. Every method is a pure function that jit and vmap.
    """

    cfg: "SACConfig"
    obs_dim: int
    action_dim: int
    #: Fields of the state that make up the policy: written to the checkpoint's policy file, the only
    #: part `softac eval` and `load_agent` read.
    policy_fields: tuple[str, ...]

    def init(self, key: jax.Array) -> Any:
        """A fresh agent state from one PRNG key."""

    def update(self, state: Any, batch: Batch) -> tuple[Any, dict]:
        """One gradient step: (new state, metrics of scalars)."""

    def update_many(self, state: Any, batches: Batch, first_update_index: Any = None) -> tuple[Any, dict]:
        """`G` gradient steps in one lax.scan over batches with a leading axis G; metrics are means over G.
        first_update_index: the number of the first of them (default state.num_updates); the trainer passes
        it unbatched, the same for every seed, so schedules over updates branch instead of select."""

    def policy_of(self, state: Any) -> Any:
        """The policy pytree of `state` (built from its `policy_fields`)."""

    def explore(self, policy: Any, key: jax.Array, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(a ~ pi(.|obs) in the stored form, next acting key)."""

    def sample_action(self, policy: Any, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(a ~ pi(.|obs) in the stored form, log pi(a|obs))."""

    def deterministic_action(self, policy: Any, obs: jax.Array) -> jax.Array:
        """The evaluation action in the stored form: tanh(mean) for Box actions, argmax for Discrete."""

    def policy_layers(self, policy: Any) -> list[dict]:
        """The actor network of `policy` as the layer list of softac/numpy_policy.py: obs -> the actor's output
        (mean and log-std side by side for Box actions, logits for Discrete); `softac export` writes it."""

    def observe(self, state: Any, obs: jax.Array, reward: jax.Array, terminated: jax.Array,
                truncated: jax.Array) -> Any:
        """The state after the env step that just happened (optional; `AgentBase`'s is the identity): for
        statistics of the data stream that an agent keeps in its state (running observation or return
        statistics), so that checkpoints and exact resume hold them. Both training loops call it once per env
        step, warm-up included, after the step and any reset, with E = the environments of one seed:
        obs [E, obs_dim] the observation each environment is in now (the reset one where an episode ended:
        the one the policy acts on next), reward, terminated, truncated [E] float32 of the transition."""


def apply_gradients(optimizer: optax.GradientTransformation, params, opt_state, grads):
    """One optimiser step, theta <- theta + optimizer(grad): returns (new params, new optimiser state)."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def adam(cfg: "SACConfig", learning_rate: float) -> optax.GradientTransformation:
    """Adam with the config's beta1 (0.9 for SAC; CrossQ's authors use 0.5)."""
    return optax.adam(learning_rate, b1=cfg.beta1)


def observes_env_steps(agent: Agent) -> bool:
    """True if `agent` has an `observe` of its own; the loops call it only then (the identity would cost the
    Gymnasium loop a dispatch per env step)."""
    method = getattr(type(agent), "observe", None)
    return method is not None and method is not AgentBase.observe


class AgentBase:
    """The temperature settings and step, acting, and the fused `update_many` that all agents share.

    Subclasses define `init`, `update`, `sample_action`, `deterministic_action` and `policy_fields`;
    their state has fields `log_alpha` and `alpha_opt_state`.
    """

    policy_fields: tuple[str, ...] = ("actor_params",)

    def __init__(self, cfg: "SACConfig", obs_dim: int, action_dim: int):
        cfg = cfg.with_algorithm_defaults()  # every algorithm-dependent setting concrete (registry.make_agent's)
        self.cfg = cfg
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        fixed_alpha = cfg.fixed_alpha
        self.learn_alpha = fixed_alpha is None
        self.initial_alpha = cfg.initial_alpha if fixed_alpha is None else fixed_alpha
        self.target_entropy = float(self.default_target_entropy() if cfg.target_entropy is None else cfg.target_entropy)
        self.alpha_optimizer = adam(cfg, cfg.alpha_lr)

    def observe(self, state, obs: jax.Array, reward: jax.Array, terminated: jax.Array, truncated: jax.Array):
        """No statistics of the data stream: the state unchanged (the loops skip the call, `observes_env_steps`)."""
        return state

    def policy_layers(self, policy) -> list[dict]:
        """The actor as numpy layers: the `MLP` of SquashedGaussianActor / CategoricalActor (agents with another
        actor override this)."""
        return mlp_layers(policy["MLP_0"], len(self.cfg.hidden_sizes))

    def default_target_entropy(self) -> float:
        """Hbar = -|A| for continuous actions (2018b)."""
        return -float(self.action_dim)

    def policy_of(self, state):
        """The actor's parameters (agents with more to their policy override this and `policy_fields`)."""
        return state.actor_params

    def explore(self, policy, key: jax.Array, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(a ~ pi(.|obs), next key): a stochastic action, in the replay buffer's form, for the training
        environment. The acting key is a stream of its own (kept by the trainer), separate from the update's.
        """
        key, action_key = jax.random.split(key)
        action, _ = self.sample_action(policy, obs, action_key)
        return action, key

    def temperature_step(self, log_alpha, alpha_opt_state, log_prob):
        """One step of the temperature loss on log alpha (a no-op when alpha is fixed).

        log_prob: [B] log pi(a|s) of actions from the current policy, or its exact expectation
        sum_a pi(a|s) log pi(a|s) = -H(pi(.|s)) for discrete actions.
        """
        if not self.learn_alpha:
            return log_alpha, alpha_opt_state, {}
        alpha_grad, info = jax.grad(sac_losses.temperature_loss, has_aux=True)(log_alpha, log_prob,
                                                                               self.target_entropy)
        log_alpha, alpha_opt_state = apply_gradients(self.alpha_optimizer, log_alpha, alpha_opt_state, alpha_grad)
        return log_alpha, alpha_opt_state, info

    def sample_action(self, policy, obs: jax.Array, key: jax.Array):
        raise NotImplementedError

    def deterministic_action(self, policy, obs: jax.Array):
        raise NotImplementedError

    def update(self, state, batch: Batch):
        raise NotImplementedError

    def update_many(self, state, batches: Batch, first_update_index=None):
        """`G` gradient steps fused in one lax.scan; batches have a leading axis G. Metrics are means over G.
        (first_update_index numbers the updates for algorithms with a schedule, such as CrossQ's policy delay.)"""
        state, infos = jax.lax.scan(self.update, state, batches)
        return state, jax.tree_util.tree_map(jnp.mean, infos)


class SquashedGaussianAgent(AgentBase):
    """Continuous-action agents whose actor is the squashed Gaussian (docs/algorithms.md, "Squashed
    Gaussian policy"); `self.actor` returns (mean, log_std) from `actor.apply(variables, obs)`."""

    def actor_variables(self, policy) -> dict:
        """The flax variables of the actor for acting (parameters only; CrossQ adds its statistics)."""
        return {"params": policy}

    def sample_action(self, policy, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """a ~ pi(.|obs) in [-1, 1] with its log-probability. obs [..., obs_dim]."""
        mean, log_std = self.actor.apply(self.actor_variables(policy), obs)
        return squashed_gaussian_sample(key, mean, log_std)

    def deterministic_action(self, policy, obs: jax.Array) -> jax.Array:
        """tanh(mean), the action used for evaluation, in [-1, 1]. obs [..., obs_dim]."""
        mean, _ = self.actor.apply(self.actor_variables(policy), obs)
        return squashed_gaussian_mode(mean)


class DelayedActorAgent(SquashedGaussianAgent):
    """Agents whose actor and temperature step once per `policy_delay` critic steps (the "Policy delay" of their
    sections in docs/algorithms.md), such as the high-replay-ratio ones that take many critic steps per env step.

    One `update` numbered u: the critic step (`critic_step`, the subclass's), then, when
    u mod policy_delay = actor_step_offset, the actor and temperature step (`actor_step`, the subclass's)
    against the updated critics. The number u comes from outside the seeds' vmap when `update_many` runs
    (`first_update_index`), so the actor step is a real branch (lax.cond) rather than a select that would
    compute it on every update. The metrics of the last actor step are kept in the state (`actor_info`), so
    every update reports the last actor loss, entropy and temperature loss, whether or not the actor stepped.

    Subclasses set `self.policy_delay` (and `self.actor_step_offset` if not 0) and define `critic_step` and
    `actor_step`; their state has fields `key`, `num_updates` and `actor_info` (start: `initial_actor_info()`).
    """

    policy_delay: int = 1
    #: The actor steps on the updates u with u mod policy_delay equal to this: 0, the first update of each
    #: group of policy_delay; policy_delay - 1, the last.
    actor_step_offset: int = 0

    def initial_actor_info(self) -> dict:
        """The actor metrics reported before the first actor step: zeros."""
        zero = jnp.zeros((), jnp.float32)
        return {"actor_loss": zero, "entropy": zero, **({"alpha_loss": zero} if self.learn_alpha else {})}

    def critic_step(self, state, batch: Batch, key: jax.Array) -> tuple[Any, dict]:
        """The critic step (and what goes with it, e.g. the Polyak step of targets): (state, metrics)."""
        raise NotImplementedError

    def actor_step(self, state, batch: Batch, key: jax.Array):
        """The actor and temperature step against the state's (updated) critics; sets `actor_info`."""
        raise NotImplementedError

    def update(self, state, batch: Batch, update_index: Optional[jax.Array] = None):
        """One critic step, then the actor and temperature step when `update_index` mod policy_delay =
        actor_step_offset. update_index: the number of this update, state.num_updates unless given."""
        update_index = state.num_updates if update_index is None else update_index
        key, critic_key, actor_key = jax.random.split(state.key, 3)
        alpha = jnp.exp(state.log_alpha)
        state, critic_info = self.critic_step(state, batch, critic_key)
        state = state.replace(key=key, num_updates=state.num_updates + 1)
        actor_due = update_index % self.policy_delay == self.actor_step_offset
        state = jax.lax.cond(actor_due, lambda s: self.actor_step(s, batch, actor_key), lambda s: s, state)
        return state, {**critic_info, **state.actor_info, "alpha": alpha}

    def update_many(self, state, batches: Batch, first_update_index: Optional[jax.Array] = None):
        """`G` updates in one lax.scan, numbered from `first_update_index` (state.num_updates if not given)."""
        first = state.num_updates if first_update_index is None else first_update_index
        indices = first + jnp.arange(batches.reward.shape[0], dtype=jnp.int32)
        state, infos = jax.lax.scan(lambda s, xs: self.update(s, *xs), state, (batches, indices))
        return state, jax.tree_util.tree_map(jnp.mean, infos)

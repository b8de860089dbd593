"""The compiled training loop (PureJaxRL's shape): `make_train(cfg, env, agent)` gives pure functions

    init(seeds) -> TrainState
    train_chunk(state, num_steps) -> (state, row_stats)      one jitted loop over num_steps env steps
    evaluate(state, base_seeds) -> returns [N, eval_episodes]  deterministic episodes, inside XLA too

The train state holds, for every seed on a leading axis, the agent state, the environment state, the
current observation, the PRNG key streams and the episode counters; the replay buffers
(softac.compiled.replay: [N, capacity, ...] arrays, one write position), the env step count and the
number of gradient steps taken are shared by every seed (the seeds run in lockstep, as on the Gymnasium
loop), so a write to the buffers is in place and the update schedule branches
(`lax.cond` on an unbatched predicate) instead of computing the update on every step and selecting.

One env step, for every seed at once, in the order of the Gymnasium loop (softac.train):
1. when gradient steps are due (step > 0, step >= learning_starts, step % train_every == 0): sample
   `gradient_steps` minibatches and run `agent.update_many` (numbered from the updates done so far);
2. the action: uniform in stored form during the first `learning_starts` steps, else
   `agent.explore` on the acting key stream;
3. the environment step without reset, the transition stored with `terminated` as the bootstrap's cut, the
   true next observation (a time-limit cut-off bootstraps) and `truncated` (n-step targets stop at it), then a
   reset where the episode ended, and the step passed to the agent's `observe` (agents that keep running
   statistics of the data in their state).

Key streams of seed s: the agent's own key (in its state, `agent.init(PRNGKey(s))`), the acting
stream fold_in(PRNGKey(s), 1) (both as on the Gymnasium loop), and the loop stream
fold_in(PRNGKey(s), 3) for warm-up actions, replay indices, env steps and resets. Evaluation episode e
of a seed is reset with PRNGKey(base_seed + e), so every evaluation along a curve starts from the same
states. `num_steps` is a traced argument: chunks of any length share one compiled program, and a
run stopped at step k and resumed runs exactly the operations of an uninterrupted run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import struct

from softac.algos.base import observes_env_steps
from softac.compiled import replay
from softac.compiled.envs import JaxEnv

# The per-seed counters summarised in a metrics row (reset after each row by `start_row`).
ROW_STATS = ("row_return_sum", "row_length_sum", "row_episodes")


@struct.dataclass
class SeedState:
    """One seed's part of the train state (a leading seed axis when several seeds train together)."""

    agent: Any
    env_state: Any
    obs: jax.Array  # the observation the next action is chosen for
    key: jax.Array  # the loop stream: warm-up actions, replay indices, env steps and resets
    action_key: jax.Array  # the acting stream (Agent.explore)
    episode_return: jax.Array  # of the episode in progress
    episode_length: jax.Array
    episodes: jax.Array  # finished
    last_episode_return: jax.Array  # NaN before the first episode ends
    row_return_sum: jax.Array  # over the episodes finished since the last metrics row
    row_length_sum: jax.Array
    row_episodes: jax.Array
    nonfinite_at: jax.Array  # int32: the first env step that returned a non-finite observation or reward, or -1
    metrics: dict  # of the last update (NaN before the first)


@struct.dataclass
class TrainState:
    """Every seed's state (leading axis N) and the counters the seeds share."""

    seeds: SeedState
    buffer: replay.DeviceBuffer  # every seed's replay buffer, one write position
    step: jax.Array  # int32: env steps taken (per seed)
    updates_done: jax.Array  # int32: gradient steps taken (per seed)


@dataclass(frozen=True, eq=False)
class CompiledTrain:
    """The pure functions of one config (see the module docstring); `train_chunk`, `evaluate` and
    `start_row` are jitted; `step` is one env step (unjitted) and `update_step` one env step after the warm-up
    with its updates due, without the branches: what the benchmark's FLOP count per env step lowers."""

    init: Callable[[Sequence[int]], TrainState]
    train_chunk: Callable[[TrainState, Any], tuple[TrainState, dict]]
    evaluate: Callable[[TrainState, Any], jax.Array]
    start_row: Callable[[TrainState], TrainState]
    step: Callable[[TrainState], TrainState]
    update_step: Callable[[TrainState], TrainState]


def make_train(cfg, env: JaxEnv, agent, metric_names: Sequence[str]) -> CompiledTrain:
    """The compiled loop of `cfg` (algorithm resolved) for `env` and `agent`; `metric_names`: the update's
    metrics (the algorithm's AlgorithmSpec), NaN in the state until the first update."""
    spec = env.spec
    G, B = cfg.gradient_steps, cfg.batch_size
    observes = observes_env_steps(agent)

    def init_seed(seed) -> SeedState:
        base = jax.random.PRNGKey(seed)
        key = jax.random.fold_in(base, 3)
        key, reset_key = jax.random.split(key)
        obs, env_state = env.reset(reset_key)
        f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        return SeedState(
            agent=agent.init(base), env_state=env_state, obs=obs, key=key, action_key=jax.random.fold_in(base, 1),
            episode_return=f32(0.0), episode_length=jnp.int32(0), episodes=jnp.int32(0),
            last_episode_return=f32(jnp.nan), row_return_sum=f32(0.0), row_length_sum=f32(0.0),
            row_episodes=jnp.int32(0), nonfinite_at=jnp.int32(-1),
            metrics={name: f32(jnp.nan) for name in metric_names})

    def init(seeds: Sequence[int]) -> TrainState:
        # Strong types throughout (an agent's initial leaf may be weakly typed, its updated value is not): the
        # state after a chunk then has the types of the first, and the chunk compiles once.
        strong = lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype)  # noqa: E731
        make = jax.jit(jax.vmap(lambda seed: jax.tree_util.tree_map(strong, init_seed(seed))))
        seeds_state = make(jnp.asarray(list(seeds), jnp.int32))
        buffer = replay.empty_buffer(len(seeds), cfg.buffer_size, env.obs_dim, spec.stored_dim)
        return TrainState(seeds=seeds_state, buffer=buffer, step=jnp.int32(0), updates_done=jnp.int32(0))

    # ----------------------------------------------------------------- one env step of one seed
    def update_seed(s: SeedState, batches, first_update_index) -> SeedState:
        agent_state, metrics = agent.update_many(s.agent, batches, first_update_index)
        metrics = {name: jnp.asarray(metrics[name], jnp.float32) if name in metrics else s.metrics[name]
                   for name in s.metrics}
        return s.replace(agent=agent_state, metrics=metrics)

    def minibatches(seeds: SeedState, buffer: replay.DeviceBuffer):
        """(each seed's next loop key, its G minibatches [N, G, B, ...] drawn with the key split off)."""
        keys = jax.vmap(jax.random.split)(seeds.key)  # [N, 2, 2]: (next loop key, sampling key) of each seed
        return keys[:, 0], replay.sample(buffer, keys[:, 1], B, G, cfg.n_steps, cfg.gamma)

    def update_all(seeds: SeedState, next_keys, batches, first_update_index) -> SeedState:
        """The gradient steps due now, every seed, on its minibatches; the seeds' loop keys move on."""
        return jax.vmap(update_seed, in_axes=(0, 0, None))(seeds.replace(key=next_keys), batches, first_update_index)

    def uniform_action(s: SeedState):
        key, action_key = jax.random.split(s.key)
        if spec.discrete:
            action = jax.random.randint(action_key, (1,), 0, spec.dim).astype(jnp.float32)
        else:
            action = jax.random.uniform(action_key, (spec.dim,), jnp.float32, -1.0, 1.0)
        return action, s.replace(key=key)

    def policy_action(s: SeedState):
        action, action_key = agent.explore(agent.policy_of(s.agent), s.action_key, s.obs)
        return action.astype(jnp.float32), s.replace(action_key=action_key)

    def env_step(s: SeedState, action) -> tuple[SeedState, tuple]:
        """(the seed after one env step, reset where the episode ended; the transition to store)."""
        key, step_key, reset_key = jax.random.split(s.key, 3)
        next_obs, env_state, reward, terminated, truncated = env.step(step_key, s.env_state, env.to_env(action))
        transition = (s.obs, action, reward, next_obs, terminated.astype(jnp.float32), truncated.astype(jnp.float32))
        done = terminated | truncated
        reset_obs, reset_state = env.reset(reset_key)
        episode_return = s.episode_return + reward
        episode_length = s.episode_length + 1
        where = lambda a, b: jnp.where(done, a, b)  # noqa: E731
        obs = where(reset_obs, next_obs)
        agent_state = s.agent
        if observes:  # the agent's statistics of the data stream (one environment per seed: E = 1)
            f32 = lambda x: jnp.asarray(x, jnp.float32)[None]  # noqa: E731
            agent_state = agent.observe(agent_state, obs[None], f32(reward), f32(terminated), f32(truncated))
        return s.replace(
            agent=agent_state, env_state=jax.tree_util.tree_map(where, reset_state, env_state), obs=obs, key=key,
            episode_return=where(0.0, episode_return), episode_length=where(0, episode_length),
            episodes=s.episodes + done, last_episode_return=where(episode_return, s.last_episode_return),
            row_return_sum=s.row_return_sum + where(episode_return, 0.0),
            row_length_sum=s.row_length_sum + where(episode_length.astype(jnp.float32), 0.0),
            row_episodes=s.row_episodes + done), transition

    # ----------------------------------------------------------------- one env step of every seed
    def collect(state: TrainState) -> tuple[TrainState, tuple]:
        """One env step of every seed, its transition [N, ...] returned, not yet stored."""
        t, seeds = state.step, state.seeds
        due = (t > 0) & (t >= cfg.learning_starts) & (t % cfg.train_every == 0)
        # The minibatches are gathered on every step (G x B rows, cheap) and only they enter the branch: a branch
        # that took the buffer would make XLA copy it on every step.
        next_keys, batches = minibatches(seeds, state.buffer)
        seeds = jax.lax.cond(due, update_all, lambda s, *_: s, seeds, next_keys, batches, state.updates_done)
        actions, seeds = jax.lax.cond(t < cfg.learning_starts, jax.vmap(uniform_action), jax.vmap(policy_action),
                                      seeds)
        seeds, transition = jax.vmap(env_step)(seeds, actions)
        seeds = seeds.replace(nonfinite_at=first_nonfinite(seeds.nonfinite_at, transition, t + 1))
        return state.replace(seeds=seeds, step=t + 1, updates_done=state.updates_done + jnp.where(due, G, 0)), \
            transition

    def first_nonfinite(nonfinite_at, transition, env_step_number):
        """Each seed's first env step with a non-finite next observation or reward (-1 while there is none);
        the host stops training there, as the Gymnasium loop does, keeping the last good checkpoint."""
        _, _, reward, next_obs, _, _ = transition
        bad = ~(jnp.all(jnp.isfinite(next_obs), axis=-1) & jnp.isfinite(reward))
        return jnp.where((nonfinite_at < 0) & bad, env_step_number, nonfinite_at)

    def step(state: TrainState) -> TrainState:
        """One env step of every seed, its transition stored."""
        state, transition = collect(state)
        return state.replace(buffer=replay.add(state.buffer, *transition))

    def update_step(state: TrainState) -> TrainState:
        seeds = update_all(state.seeds, *minibatches(state.seeds, state.buffer), state.updates_done)
        actions, seeds = jax.vmap(policy_action)(seeds)
        seeds, transition = jax.vmap(env_step)(seeds, actions)
        return TrainState(seeds=seeds, buffer=replay.add(state.buffer, *transition), step=state.step + 1,
                          updates_done=state.updates_done + G)

    def train_chunk(state: TrainState, num_steps) -> tuple[TrainState, dict]:
        """`num_steps` env steps of every seed; returns the state and the row statistics [N] of each seed.

        Each iteration first stores the previous iteration's transition, then samples and steps: the buffer is
        written before it is read within an iteration, which lets XLA write it in place (storing it at the end
        of the iteration, after the minibatch reads, made XLA copy the whole buffer on every step). The result
        is that of `num_steps` calls of `step`."""
        _, pending = jax.eval_shape(collect, state)
        pending = jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), pending)

        def body(_, carry):
            state, pending, valid = carry
            state = state.replace(buffer=replay.add_where(state.buffer, valid, *pending))
            state, pending = collect(state)
            return state, pending, jnp.bool_(True)

        state, pending, valid = jax.lax.fori_loop(0, num_steps, body, (state, pending, jnp.bool_(False)))
        state = state.replace(buffer=replay.add_where(state.buffer, valid, *pending))
        return state, row_stats(state.seeds)

    def row_stats(s: SeedState) -> dict:
        return {"episodes": s.episodes, "row_return_sum": s.row_return_sum, "row_length_sum": s.row_length_sum,
                "row_episodes": s.row_episodes, "last_episode_return": s.last_episode_return,
                "nonfinite_at": s.nonfinite_at, **s.metrics}

    def start_row(state: TrainState) -> TrainState:
        """The state with the row statistics cleared (after a metrics row is written)."""
        s = state.seeds
        return state.replace(seeds=s.replace(row_return_sum=jnp.zeros_like(s.row_return_sum),
                                             row_length_sum=jnp.zeros_like(s.row_length_sum),
                                             row_episodes=jnp.zeros_like(s.row_episodes)))

    def evaluate(state: TrainState, base_seeds) -> jax.Array:
        """Deterministic returns [N, eval_episodes]: episode e of seed n reset with PRNGKey(base_seeds[n] + e)."""
        policies = agent.policy_of(state.seeds.agent)
        return evaluate_policies(env, agent, policies, base_seeds, cfg.eval_episodes)

    return CompiledTrain(init=init, train_chunk=jax.jit(train_chunk, donate_argnums=0),
                         evaluate=jax.jit(evaluate), start_row=jax.jit(start_row, donate_argnums=0), step=step,
                         update_step=update_step)


def evaluate_policies(env: JaxEnv, agent, policies, base_seeds, episodes: int) -> jax.Array:
    """Returns [N, episodes] of deterministic episodes (agent.deterministic_action) of N policies (a leading
    axis), all in lockstep in one loop of the time limit's length; episode e of policy n is reset with
    PRNGKey(base_seeds[n] + e) and runs until terminated or truncated."""

    def episode(policy, seed):
        key = jax.random.PRNGKey(seed)
        obs, env_state = env.reset(key)

        def body(_, carry):
            obs, env_state, key, total, running = carry
            key, step_key = jax.random.split(key)
            action = agent.deterministic_action(policy, obs)
            next_obs, env_state, reward, terminated, truncated = env.step(step_key, env_state, env.to_env(action))
            total = total + jnp.where(running, reward, 0.0)
            return next_obs, env_state, key, total, running & ~(terminated | truncated)

        carry = (obs, env_state, jax.random.fold_in(key, 1), jnp.float32(0.0), jnp.bool_(True))
        return jax.lax.fori_loop(0, env.max_episode_steps, body, carry)[3]

    seeds = jnp.asarray(base_seeds, jnp.int32)[:, None] + jnp.arange(episodes, dtype=jnp.int32)[None, :]
    per_policy = jax.vmap(episode, in_axes=(None, 0))
    return jax.vmap(per_policy)(policies, seeds)

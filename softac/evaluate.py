"""Deterministic evaluation, and loading a trained agent from a run directory (`load_agent`: an `Agent`, or
for a gymnax/Brax run a `CompiledAgent`, whose evaluation runs compiled).

Evaluation runs all episodes of all seeds in lockstep: one jitted call of the deterministic
policy tanh(mean) per environment step for every (seed, episode) pair at once. Episode i of an
evaluation is reset with seed `base_seed + i`, so every evaluation of a run starts from the same
initial states and evaluation returns along a learning curve are comparable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from softac.algos.base import Agent as AgentBase
from softac.algos.registry import make_agent
from softac.checkpoint import read_checkpoint_agent, read_checkpoint_policy
from softac.compiled import is_jax_env
from softac.compiled.envs import JaxEnv, make_jax_env
from softac.compiled.loop import evaluate_policies
from softac.config import SACConfig
from softac.envs import ActionSpec, action_spec, make_config_env, space_dims
from softac.rundir import read_run_config


def run_episodes(
    act: Callable[[np.ndarray], np.ndarray],
    envs: Sequence[Sequence[gym.Env]],
    base_seeds: Sequence[int],
) -> np.ndarray:
    """Returns [N, E] of one episode in each envs[n][e], reset with seed base_seeds[n] + e.

    `act` maps observations [N, E, obs_dim] to stored-form policy actions [N, E, ...] (see ActionSpec).
    """
    num_seeds, num_episodes = len(envs), len(envs[0])
    obs = np.stack([np.stack([env.reset(seed=base + e)[0] for e, env in enumerate(row)])
                    for row, base in zip(envs, base_seeds)]).astype(np.float32)
    returns = np.zeros((num_seeds, num_episodes))
    running = np.ones((num_seeds, num_episodes), bool)
    spec = action_spec(envs[0][0].action_space)
    while running.any():
        actions = act(obs)
        for n, e in zip(*np.nonzero(running)):
            next_obs, reward, terminated, truncated, _ = envs[n][e].step(spec.to_env(actions[n, e]))
            returns[n, e] += float(reward)
            obs[n, e] = next_obs
            if terminated or truncated:
                running[n, e] = False
    return returns


def make_deterministic_policy(agent: AgentBase) -> Callable:
    """jit(vmap over seeds) of the deterministic policy (tanh(mean), or argmax for discrete actions):
    (policy [N, ...] (see Agent.policy_of), obs [N, E, obs_dim]) -> stored-form actions [N, E, ...]."""
    return jax.jit(jax.vmap(agent.deterministic_action))


class Agent:
    """A trained SAC policy loaded from a run directory (see `load_agent`).

    Holds the policy (the actor's parameters, and CrossQ's running statistics); `state`, the whole agent
    state (critics, optimiser states, ...), is read from the checkpoint the first time it is asked for.
    """

    def __init__(self, config: SACConfig, sac: AgentBase, policy, action_space: gym.Space,
                 run_dir: Optional[Path] = None):
        self.config = config
        self.policy = policy
        self.run_dir = run_dir
        self._state = None
        self.action_space = action_space
        self.action_spec: ActionSpec = action_spec(action_space)
        self.algorithm = sac
        self._deterministic = jax.jit(sac.deterministic_action)
        self._sample = jax.jit(sac.sample_action)
        self._key = jax.random.PRNGKey(config.seed)

    @property
    def state(self):
        """The agent state of the checkpoint (policy and agent files; never the replay buffer)."""
        if self._state is None:
            self._state = read_checkpoint_agent(self.run_dir, jax.jit(self.algorithm.init)(jax.random.PRNGKey(0)),
                                                self.algorithm.policy_fields)
        return self._state

    def act(self, obs: np.ndarray, deterministic: bool = True):
        """The environment's action for `obs` [obs_dim] (or actions for [B, obs_dim]): within the bounds
        of a Box action space, an integer of a Discrete one."""
        obs = jnp.asarray(obs, jnp.float32)
        if deterministic:
            action = self._deterministic(self.policy, obs)
        else:
            self._key, key = jax.random.split(self._key)
            action, _ = self._sample(self.policy, obs, key)
        action = np.asarray(action)
        if action.ndim == 1:
            return self.action_spec.to_env(action)
        return np.array([self.action_spec.to_env(a) for a in action])

    def evaluate(self, episodes: int = 10, seed: int = 0) -> np.ndarray:
        """Returns of `episodes` deterministic episodes; episode i is reset with seed `seed + i`."""
        envs = [[make_config_env(self.config) for _ in range(episodes)]]
        policy = jax.jit(self.algorithm.deterministic_action)
        returns = run_episodes(lambda obs: np.asarray(policy(self.policy, obs)), envs, [seed])
        for env in envs[0]:
            env.close()
        return returns[0]


def load_agent(run_dir: str | Path) -> Agent:
    """The agent of a run directory's latest checkpoint, ready to `act(obs, deterministic=True)`."""
    config = read_run_config(run_dir)
    if is_jax_env(config.env):  # gymnax:/brax: runs evaluate with the compiled episodes
        return load_compiled_agent(run_dir, config)
    env = make_config_env(config)
    obs_dim, action_dim = space_dims(env)
    sac = make_agent(config, obs_dim, action_dim)
    state = read_checkpoint_policy(run_dir, jax.jit(sac.init)(jax.random.PRNGKey(0)), sac.policy_fields)
    action_space = env.action_space
    env.close()
    return Agent(config, sac, sac.policy_of(state), action_space, Path(run_dir))


class CompiledAgent(Agent):
    """`Agent` for a gymnax/Brax run (softac.compiled): acts the same; `evaluate` runs the episodes compiled."""

    def __init__(self, config: SACConfig, sac: AgentBase, policy, env: JaxEnv, run_dir: Optional[Path] = None):
        super().__init__(config, sac, policy, env.action_space, run_dir)
        self.env = env

    def evaluate(self, episodes: int = 10, seed: int = 0) -> np.ndarray:
        """Returns of `episodes` deterministic episodes; episode i is reset with PRNGKey(seed + i)."""
        policies = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], self.policy)
        returns = jax.jit(lambda p, s: evaluate_policies(self.env, self.algorithm, p, s, episodes))(
            policies, jnp.asarray([seed], jnp.int32))
        return np.asarray(returns[0], np.float64)


def load_compiled_agent(run_dir: str | Path, config: SACConfig) -> CompiledAgent:
    """The agent of a compiled run's latest checkpoint (what `load_agent` returns for it)."""
    env = make_jax_env(config.env, config.env_kwargs_dict, config.flatten_obs)
    sac = make_agent(config, env.obs_dim, env.spec.dim)
    state = read_checkpoint_policy(run_dir, sac.init(jax.random.PRNGKey(0)), sac.policy_fields)
    return CompiledAgent(config, sac, sac.policy_of(state), env, Path(run_dir))

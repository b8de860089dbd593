"""Shared fixtures: a tiny config, and small custom environments that exercise bad input."""

from __future__ import annotations

import os
import tempfile

import gymnasium as gym
import jax
import numpy as np
import pytest

from softac import SACConfig


# Many tests train tiny agents with identical shapes: a persistent compilation cache lets them share
# XLA's compiled programs instead of compiling each again (compiling dominates such short runs).
# The same settings go into the environment, so the CLIs the tests start as subprocesses and the Ray workers of
# the sweep and tune tests (JAX reads its flags from JAX_* variables) share the cache too.
JAX_CACHE_SETTINGS = {
    "JAX_COMPILATION_CACHE_DIR": os.environ.get("SOFTAC_TEST_JAX_CACHE",
                                                os.path.join(tempfile.gettempdir(), "softac-test-jax-cache")),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
}
os.environ.update(JAX_CACHE_SETTINGS)
jax.config.update("jax_compilation_cache_dir", JAX_CACHE_SETTINGS["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


#: The network sizes of algorithms whose widths are hyperparameters of their own (not hidden_sizes), for tiny runs.
SMALL_NETWORKS = {"simbav2": dict(actor_hidden_dim=16, critic_hidden_dim=16, critic_num_blocks=1)}


def tiny_config(tmp_path, **changes) -> SACConfig:
    """A few hundred Pendulum steps with small networks: seconds, not minutes."""
    base = dict(env="Pendulum-v1", total_steps=400, learning_starts=100, hidden_sizes=(32, 32), batch_size=32,
                buffer_size=10_000, eval_every=200, eval_episodes=2, log_every=100, checkpoint_every=0,
                run_root=str(tmp_path / "runs"), progress=False, tensorboard=False,
                **SMALL_NETWORKS.get(changes.get("algo"), {}))
    base.update(changes)
    return SACConfig.build(**base)


class NaNAfterEnv(gym.Env):
    """A 2-D point whose observation turns NaN at step `nan_at` (counted over the env's lifetime)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, nan_at: int = 150):
        self.nan_at, self.t = nan_at, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.full(2, np.nan if self.t >= self.nan_at else 0.1 * self.t, np.float32)
        return obs, -float(np.sum(np.square(action))), False, self.t % 50 == 0, {}


class ImageObsEnv(NaNAfterEnv):
    observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)


class UnboundedActionEnv(NaNAfterEnv):
    action_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)


def _register(env_id: str, entry_point: str) -> None:
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, disable_env_checker=True)


@pytest.fixture(scope="session", autouse=True)
def test_envs():
    _register("softac-test/NaNAfter-v0", "tests.conftest:NaNAfterEnv")
    _register("softac-test/ImageObs-v0", "tests.conftest:ImageObsEnv")
    _register("softac-test/UnboundedAction-v0", "tests.conftest:UnboundedActionEnv")
    _register("softac-test/FiniteMDP-v0", "tests.conftest:FiniteMDPEnv")


class FiniteMDPEnv(gym.Env):
    """softac.tabular.random_mdp(n_states, n_actions, seed) as a Gymnasium env with one-hot observations.

    Episodes start in a uniformly random state and are cut off (truncated, never terminated) after
    `horizon` steps, so with bootstrapping through the cut-off the learner faces the infinite-horizon
    discounted MDP (P, R, gamma) that the tabular solvers solve.
    """

    def __init__(self, n_states: int = 4, n_actions: int = 3, mdp_seed: int = 0, horizon: int = 20):
        from softac.tabular import random_mdp

        self.P, self.R = random_mdp(n_states, n_actions, mdp_seed)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (n_states,), np.float32)
        self.action_space = gym.spaces.Discrete(n_actions)
        self.horizon, self.state, self.t = horizon, 0, 0

    def _obs(self):
        return np.eye(len(self.R), dtype=np.float32)[self.state]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state, self.t = int(self.np_random.integers(len(self.R))), 0
        return self._obs(), {}

    def step(self, action):
        reward = float(self.R[self.state, action])
        self.state = int(self.np_random.choice(len(self.R), p=self.P[self.state, action]))
        self.t += 1
        return self._obs(), reward, False, self.t >= self.horizon, {}


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test`), the longest work first: the Ray tests (one xdist group, run by one worker)
    and the slow-marked learning tests, so that no worker is left with a long test at the end while the other
    idles. The order within each part is the collection order; a run in one process keeps that order."""
    if not getattr(config.option, "numprocesses", None):
        return

    def rank(item) -> int:
        if item.get_closest_marker("xdist_group") is not None:
            return 0
        return 1 if item.get_closest_marker("slow") is not None else 2

    items.sort(key=rank)  # stable

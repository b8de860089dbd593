"""JAX-native environments behind one interface: gymnax (`gymnax:<id>`) and Brax (`brax:<name>`).

`JaxEnv.step` never resets: it returns the true next observation with `terminated` (a terminal state:
no bootstrap) and `truncated` (the time limit cut the episode off: bootstrap from that observation)
apart, so the compiled loop stores exactly what the Gymnasium loop stores and resets by hand.

- gymnax: `env.step_env` (no auto-reset; its `done` is the natural termination, gymnax >= 1.0) and
  `env.is_truncated(state, params)` (`state.time >= params.max_steps_in_episode`); `env.reset_env`.
- Brax: the environment wrapped in `brax.envs.wrappers.training.EpisodeWrapper` (1,000 steps, action
  repeat 1): `state.done` is termination or the time limit and `state.info["truncation"]` says which.
  Its physics backend is `BRAX_BACKEND` (on a CPU, 'positional' compiles and runs fastest of those that
  work for the locomotion tasks; see the README).

Spaces are checked as the Gymnasium path checks them (softac.envs.check_spaces): flat Box observations,
Discrete or 1-D finite Box actions; anything else is one SoftacError sentence.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Optional

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from softac.envs import ActionSpec, action_spec, check_spaces
from softac.errors import SoftacError

BRAX_BACKEND = "positional"
BRAX_EPISODE_LENGTH = 1000


@dataclass(frozen=True, eq=False)
class JaxEnv:
    """A JAX environment as the compiled loop uses it; every function is pure and jittable.

    reset(key) -> (obs [obs_dim] float32, env_state)
    step(key, env_state, env_action) -> (next_obs, env_state, reward, terminated, truncated): no reset.
    observation_space / action_space: the Gymnasium spaces equal to the environment's (for the checks,
    `softac.evaluate.load_agent` and ActionSpec); max_episode_steps: the time limit.
    """

    env_id: str
    observation_space: gym.spaces.Box
    action_space: gym.Space
    max_episode_steps: int
    reset: Callable[[jax.Array], tuple[jax.Array, Any]]
    step: Callable[..., tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array]]

    @property
    def obs_dim(self) -> int:
        return int(self.observation_space.shape[0])

    @property
    def spec(self) -> ActionSpec:
        return action_spec(self.action_space)

    def to_env(self, action: jax.Array) -> jax.Array:
        """The environment's action for one stored-form action (softac.envs.ActionSpec.to_env, in jax):
        [-1, 1]^d mapped affinely onto [low, high] (clipped), or the index of a Discrete space."""
        spec = self.spec
        if spec.discrete:
            return action[0].astype(jnp.int32) + spec.start
        low, high = jnp.asarray(spec.low, jnp.float32), jnp.asarray(spec.high, jnp.float32)
        return jnp.clip(low + 0.5 * (action + 1.0) * (high - low), low, high)


def make_jax_env(env_id: str, env_kwargs: Optional[dict] = None, flatten_obs: bool = False) -> JaxEnv:
    """The JaxEnv of `gymnax:<id>` or `brax:<name>`; SoftacError (one sentence) for unknown ids and spaces
    softac cannot handle. env_kwargs: gymnax EnvParams fields to change (e.g. max_steps_in_episode), or keyword
    arguments of Brax's get_environment; flatten_obs: observations of any shape reshaped to one flat vector."""
    kind, _, name = env_id.partition(":")
    if kind == "gymnax":
        return _gymnax_env(env_id, name, env_kwargs or {}, flatten_obs)
    if kind == "brax":
        return _brax_env(env_id, name, env_kwargs or {})
    raise SoftacError(f"{env_id!r} is not a gymnax: or brax: environment id.")


def _close_matches(name: str, names, prefix: str) -> str:
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(prefix + c for c in close)}?" if close else "."


def _import(module: str, env_id: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise SoftacError(f"{env_id} needs {module.split('.')[0]}, which is not installed; "
                          "install softac[jax-envs].") from None


def _gym_box(low, high, shape, env_id: str, what: str) -> gym.spaces.Box:
    try:
        shape = tuple(int(s) for s in shape)
        low = np.broadcast_to(np.asarray(low, np.float32), shape).copy()
        high = np.broadcast_to(np.asarray(high, np.float32), shape).copy()
        return gym.spaces.Box(low, high, shape, np.float32)
    except (TypeError, ValueError):
        raise SoftacError(f"{env_id} has a {what} space softac cannot read (shape {shape!r}).") from None


def _gymnax_space(space, env_id: str, what: str) -> gym.Space:
    """The Gymnasium space equal to a gymnax Box or Discrete space; SoftacError for any other."""
    from gymnax.environments import spaces

    if isinstance(space, spaces.Discrete):
        return gym.spaces.Discrete(int(space.n))
    if isinstance(space, spaces.Box):
        return _gym_box(space.low, space.high, space.shape, env_id, what)
    raise SoftacError(f"{env_id} has {what} space {type(space).__name__}; softac needs a flat Box observation "
                      "space and a Discrete or 1-D Box action space.")


def _gymnax_env(env_id: str, name: str, env_kwargs: dict, flatten_obs: bool) -> JaxEnv:
    gymnax = _import("gymnax", env_id)
    if name not in gymnax.registered_envs:
        raise SoftacError(f"Unknown gymnax environment {name!r}" + _close_matches(name, gymnax.registered_envs,
                                                                                   "gymnax:"))
    env, params = gymnax.make(name)
    unknown = sorted(set(env_kwargs) - set(vars(params)))
    if unknown:
        raise SoftacError(f"{env_id} has no parameter {', '.join(unknown)}; its parameters are "
                          f"{', '.join(sorted(vars(params)))}.")
    params = params.replace(**env_kwargs)
    observation_space = _gymnax_space(env.observation_space(params), env_id, "observation")
    if not isinstance(observation_space, gym.spaces.Box):
        raise SoftacError(f"{env_id} has a Discrete observation space; softac needs a flat (1-D) Box observation "
                          "space.")
    # Observation bounds may be infinite; only the shape matters to softac.
    shape = (int(np.prod(observation_space.shape)),) if flatten_obs else observation_space.shape
    observation_space = gym.spaces.Box(-np.inf, np.inf, shape, np.float32)
    action_space = _gymnax_space(env.action_space(params), env_id, "action")
    check_spaces(observation_space, action_space, env_id)
    obs_dim = int(observation_space.shape[0])

    def reset(key):
        obs, state = env.reset_env(key, params)
        return jnp.asarray(obs, jnp.float32).reshape(obs_dim), state

    def step(key, state, action):
        obs, state, reward, terminated, _ = env.step_env(key, state, action, params)
        truncated = env.is_truncated(state, params)
        return (jnp.asarray(obs, jnp.float32).reshape(obs_dim), state, jnp.asarray(reward, jnp.float32).reshape(()),
                jnp.asarray(terminated, bool).reshape(()), jnp.asarray(truncated, bool).reshape(()))

    return JaxEnv(env_id, observation_space, action_space, int(params.max_steps_in_episode), reset, step)


def _brax_env(env_id: str, name: str, env_kwargs: dict) -> JaxEnv:
    envs = _import("brax.envs", env_id)
    from brax.envs.wrappers.training import EpisodeWrapper

    names = sorted(envs._envs)
    if name not in names:
        raise SoftacError(f"Unknown Brax environment {name!r}" + _close_matches(name, names, "brax:"))
    try:
        base = envs.get_environment(name, **{"backend": BRAX_BACKEND, **env_kwargs})
        env = EpisodeWrapper(base, BRAX_EPISODE_LENGTH, 1)
    except Exception as exc:  # Brax raises many kinds of errors for a backend that cannot build a system
        raise SoftacError(f"Cannot create {env_id} with Brax's {BRAX_BACKEND} backend "
                          f"({type(exc).__name__}: {exc}).") from None
    obs_dim, action_dim = int(env.observation_size), int(env.action_size)
    observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)  # Brax's actuators take [-1, 1]
    check_spaces(observation_space, action_space, env_id)

    def reset(key):
        state = env.reset(key)
        return state.obs.astype(jnp.float32), state

    def step(key, state, action):
        del key  # Brax's dynamics are deterministic
        state = env.step(state, action)
        truncated = state.info["truncation"] > 0
        terminated = (state.done > 0) & ~truncated
        return state.obs.astype(jnp.float32), state, state.reward.astype(jnp.float32), terminated, truncated

    return JaxEnv(env_id, observation_space, action_space, BRAX_EPISODE_LENGTH, reset, step)

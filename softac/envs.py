"""Gymnasium environments: construction, checks of spaces, action rescaling, and env state for resume.

softac steps every environment itself, one `env.step` at a time, and resets it by hand after
`terminated or truncated`, so the transition stored for a time-limit cut-off carries the true
final observation and `terminated = False` (it bootstraps); no vector-env autoreset is involved.

Environment state in checkpoints (`capture_env_state` / `restore_env_state`), plain data only
(numbers, strings, arrays: nothing that runs code when read back):
- MuJoCo environments: the full integration state (mj_getState with mjSTATE_INTEGRATION: time,
  qpos, qvel, actuator state, warm-start accelerations, ...), the env's np_random state and the
  TimeLimit step counter, so the episode in progress continues exactly.
- Gymnasium's classic-control environments (Pendulum, CartPole, MountainCar, Acrobot, ...): their
  `state` array (and CartPole's `steps_beyond_terminated`, Pendulum's `last_u`), the env's np_random
  state and the TimeLimit step counter; the episode in progress continues exactly.
- The DeepMind Control Suite (`dm_control/<domain>-<task>-v0`, softac.dmc): the physics' integration
  state, the model fields tasks randomise per episode, the task's RandomState and dm_control's step
  counter (its time limit); the episode in progress continues exactly.
- Others (e.g. Box2D or your own environments): not captured; on resume the episode in progress is
  dropped and the environment is reset with a seed derived from the run's seed and step. Resume is
  then exact for the agent, buffer and RNGs but not for that episode.
"""

from __future__ import annotations

import difflib
import importlib
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import gymnasium as gym
import numpy as np

from softac import dmc
from softac.errors import SoftacError

if TYPE_CHECKING:
    from softac.config import SACConfig


def check_env_id(env_id: str) -> None:
    """Raise SoftacError naming close matches when `env_id` is not a registered Gymnasium id.

    `module:Id` (Gymnasium's form for environments registered by your own package) imports `module`
    first, so that its registrations are seen, then checks `Id`. A `dm_control/` id imports shimmy
    (softac.dmc.register), which registers the DeepMind Control Suite.
    """
    if env_id in gym.registry:
        return
    if dmc.is_dmc_id(env_id):
        dmc.register(env_id)
        if env_id in gym.registry:
            return
        raise dmc.unknown_id_error(env_id)
    from softac.compiled import is_jax_env

    if is_jax_env(env_id):  # gymnax:/brax: would otherwise import as module:id and find Gymnasium's namesake
        raise SoftacError(f"{env_id} is a JAX-native environment, trained inside XLA (softac.compiled); this needs a "
                          "Gymnasium environment (videos, softac bench and vectorised collection use Gymnasium).")
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SoftacError(f"Cannot import module {module!r} named in environment {env_id!r} ({exc}).") from None
        except Exception as exc:  # the user's module failed while importing
            raise SoftacError(f"Importing module {module!r} for environment {env_id!r} failed "
                              f"({type(exc).__name__}: {exc}).") from None
        if name in gym.registry:
            return
        close = difflib.get_close_matches(name, list(gym.registry.keys()), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "."
        raise SoftacError(f"Module {module!r} was imported but registers no environment {name!r}{hint}")
    close = difflib.get_close_matches(env_id, list(gym.registry.keys()), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "."
    raise SoftacError(f"Unknown environment id {env_id!r}{hint}")


_MUJOCO_WARNINGS_SEEN: set[str] = set()


def _warn_once(message: str) -> None:
    """MuJoCo warning handler: each distinct message once per process, as a Python warning."""
    text = message.strip()
    if text not in _MUJOCO_WARNINGS_SEEN:
        _MUJOCO_WARNINGS_SEEN.add(text)
        warnings.warn(f"MuJoCo: {text}", RuntimeWarning, stacklevel=2)


def quiet_repeated_mujoco_warnings() -> None:
    """Route MuJoCo's C-level warnings through `warnings.warn`, each distinct message once.

    MuJoCo's default handler prints every warning and appends it to MUJOCO_LOG.TXT in the current
    directory; Gymnasium's bundled HalfCheetah model triggers a deprecation warning on every
    construction, i.e. once per training and evaluation env. A handler the user installed is kept.
    """
    try:
        import mujoco
    except Exception:  # not installed, or unusable here (e.g. MUJOCO_GL=osmesa without libOSMesa: AttributeError)
        return
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_warn_once)


def make_env(env_id: str, env_kwargs: Optional[dict[str, Any]] = None, flatten_obs: bool = False,
             render_mode: Optional[str] = None, action_repeat: int = 1) -> gym.Env:
    """gym.make(env_id, **env_kwargs) with its spaces checked; errors a user can cause become SoftacError.

    A DeepMind Control Suite environment's Dict observation is flattened in its observation spec's order
    (softac.dmc.flatten), with or without `flatten_obs`. `flatten_obs` wraps the environment in Gymnasium's
    FlattenObservation (a Dict or Tuple observation space becomes one flat Box); `render_mode` is passed to
    gym.make (videos use "rgb_array"); `action_repeat` > 1 wraps it in ActionRepeat (outermost).
    An environment whose module fails to import or whose constructor raises is one SoftacError naming the
    module and the error.
    """
    check_env_id(env_id)
    quiet_repeated_mujoco_warnings()
    kwargs = dict(env_kwargs or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        env = gym.make(env_id, **kwargs)
    except (gym.error.Error, ImportError) as exc:
        raise SoftacError(f"Cannot create environment {env_id!r}: {exc}") from None
    except TypeError as exc:  # an env_kwargs key the environment does not take
        raise SoftacError(f"Cannot create environment {env_id!r} with env_kwargs {env_kwargs!r}: {exc}.") from None
    except Exception as exc:  # the environment's module or constructor failed (e.g. dm_control on an unsupported MuJoCo)
        raise construction_error(env_id, exc) from None
    env = dmc.flatten(env)
    if flatten_obs:
        env = gym.wrappers.FlattenObservation(env)
    check_spaces(env.observation_space, env.action_space, env_id)
    if action_repeat > 1:
        env = ActionRepeat(env, action_repeat)
    return env


def construction_error(env_id: str, exc: Exception) -> SoftacError:
    """One sentence for an environment whose constructor (or a module it imports) raised `exc`: the module of its
    entry point, the module the error came from when that is another, and the error."""
    entry = gym.registry[env_id].entry_point if env_id in gym.registry else None
    if isinstance(entry, str):
        module = entry.partition(":")[0]
    else:
        func = getattr(entry, "func", entry)  # functools.partial (shimmy's ids) or a callable
        module = getattr(func, "__module__", None) or "?"
    tb, origin = exc.__traceback__, None
    while tb is not None:
        origin, tb = tb.tb_frame.f_globals.get("__name__"), tb.tb_next
    where = f"module {module!r}" + (f" (raised in {origin!r})" if origin and origin != module else "")
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
    hint = f"; {dmc.INSTALL} installs versions that work together" if dmc.is_dmc_id(env_id) else ""
    return SoftacError(f"Cannot create environment {env_id!r}: {where} failed with {type(exc).__name__}: "
                       f"{text}{hint}.")


ENV_STEPS_INFO = "env_steps"  # ActionRepeat's info key: env steps the agent step took


class ActionRepeat(gym.Wrapper):
    """Each action is repeated `repeat` env steps and their rewards summed (float64); it stops early at
    termination or truncation, so a time limit (counted in env steps by the TimeLimit inside) still cuts the
    episode at its env step. The step's info is the last env step's, with `info["env_steps"]` the env steps taken.
    """

    def __init__(self, env: gym.Env, repeat: int):
        super().__init__(env)
        if not (isinstance(repeat, int) and repeat >= 1):
            raise SoftacError(f"action_repeat must be an integer >= 1, got {repeat!r}.")
        self.repeat = repeat
        if env.metadata.get("render_fps"):  # one frame per agent step: videos still play in real time
            self.metadata = {**env.metadata, "render_fps": env.metadata["render_fps"] / repeat}

    def step(self, action):
        total = 0.0
        for taken in range(1, self.repeat + 1):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, {**info, ENV_STEPS_INFO: taken}


def make_config_env(cfg: "SACConfig", render_mode: Optional[str] = None) -> gym.Env:
    """The environment of a config: its `env` id, `env_kwargs`, `flatten_obs` and `action_repeat` (see make_env)."""
    return make_env(cfg.env, cfg.env_kwargs_dict, cfg.flatten_obs, render_mode, cfg.action_repeat)


def check_spaces(observation_space: gym.Space, action_space: gym.Space, env_id: str) -> None:
    """Accept flat Box observations and Discrete actions or 1-D Box actions with finite bounds."""
    if isinstance(observation_space, (gym.spaces.Dict, gym.spaces.Tuple)):
        raise SoftacError(
            f"{env_id} has observation space {observation_space}; softac needs a flat (1-D) Box observation space: "
            "pass --flatten-obs (Gymnasium's FlattenObservation wrapper) to flatten it.")
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        image = isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 3
        raise SoftacError(
            f"{env_id} has observation space {observation_space}; softac needs a flat (1-D) Box observation space"
            + (" (image observations need a convolutional encoder, which softac does not have)." if image else "."))
    if isinstance(action_space, gym.spaces.Discrete):
        if action_space.n < 2:
            raise SoftacError(f"{env_id} has a Discrete action space with {action_space.n} action; SAC needs two or more.")
        return
    if not isinstance(action_space, gym.spaces.Box) or len(action_space.shape) != 1:
        raise SoftacError(
            f"{env_id} has action space {action_space}; softac needs a Discrete or a 1-D Box action space.")
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise SoftacError(f"{env_id} has an action space with infinite bounds; SAC needs finite action bounds.")


def scale_action(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map a policy action in [-1, 1] affinely onto the box [low, high] (clipped against rounding)."""
    return np.clip(low + 0.5 * (action + 1.0) * (high - low), low, high)


@dataclass(frozen=True)
class ActionSpec:
    """How the policy's actions relate to a checked environment's action space.

    Continuous (Box): the policy acts in [-1, 1]^dim and `to_env` rescales onto [low, high].
    Discrete(n): the policy chooses an index, stored in the replay buffer as one float [1], and
    `dim` is n, the size of the policy's and critics' outputs.
    """

    discrete: bool
    dim: int  # action dimension (Box) or number of actions (Discrete)
    low: Optional[np.ndarray] = None
    high: Optional[np.ndarray] = None
    start: int = 0  # first action of a Discrete space

    @property
    def stored_dim(self) -> int:
        """Width of an action as the replay buffer stores it."""
        return 1 if self.discrete else self.dim

    def to_env(self, action: np.ndarray):
        """The environment's action for one stored-form policy action."""
        if self.discrete:
            return int(action[0]) + self.start
        return scale_action(action, self.low, self.high)

    def random(self, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random action in stored form (the warm-up's exploration)."""
        if self.discrete:
            return np.array([rng.integers(self.dim)], np.float32)
        return rng.uniform(-1.0, 1.0, self.dim).astype(np.float32)


def action_spec(action_space: gym.Space) -> ActionSpec:
    """The ActionSpec of a checked action space."""
    if isinstance(action_space, gym.spaces.Discrete):
        return ActionSpec(discrete=True, dim=int(action_space.n), start=int(action_space.start))
    return ActionSpec(discrete=False, dim=int(action_space.shape[0]), low=action_space.low, high=action_space.high)


def space_dims(env: gym.Env) -> tuple[int, int]:
    """(obs_dim, action_dim) of a checked environment; action_dim is the number of actions if Discrete."""
    return int(env.observation_space.shape[0]), action_spec(env.action_space).dim


def _time_limit(env: gym.Env) -> Optional[gym.wrappers.TimeLimit]:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def _is_mujoco(env: gym.Env) -> bool:
    try:
        from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
    except ImportError:  # MuJoCo not installed
        return False
    return isinstance(env.unwrapped, MujocoEnv)


# Attributes of a classic-control environment that change during an episode (besides np_random).
_CLASSIC_ATTRIBUTES = ("state", "steps_beyond_terminated", "last_u")


def _is_classic_control(env: gym.Env) -> bool:
    return type(env.unwrapped).__module__.startswith("gymnasium.envs.classic_control.")


def _plain(value: Any) -> Any:
    """A classic-control attribute as plain data: None, a number, or a float64 array (tuples marked)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"tuple": np.asarray(value, np.float64)}
    return np.array(value)


def _unplain(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(float(x) for x in np.asarray(value["tuple"], np.float64))
    if isinstance(value, np.ndarray):
        return value.copy()
    return value


def capture_env_state(env: gym.Env) -> Optional[dict[str, Any]]:
    """What `restore_env_state` needs to continue the episode in progress exactly, as plain data, or None."""
    time_limit = _time_limit(env)
    elapsed = None if time_limit is None or time_limit._elapsed_steps is None else int(time_limit._elapsed_steps)
    unwrapped = env.unwrapped
    if dmc.is_dmc_env(env):
        state = dmc.capture_state(env)
        return None if state is None else {**state, "elapsed_steps": elapsed}  # a TimeLimit from max_episode_steps
    if _is_mujoco(env):
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        physics = np.empty(mujoco.mj_stateSize(unwrapped.model, spec), np.float64)
        mujoco.mj_getState(unwrapped.model, unwrapped.data, physics, spec)
        return {"kind": "mujoco", "physics": physics, "np_random": unwrapped.np_random.bit_generator.state,
                "elapsed_steps": elapsed}
    if _is_classic_control(env):
        attributes = {name: _plain(getattr(unwrapped, name)) for name in _CLASSIC_ATTRIBUTES
                      if name in vars(unwrapped)}
        return {"kind": "classic_control", "attributes": attributes,
                "np_random": unwrapped.np_random.bit_generator.state, "elapsed_steps": elapsed}
    return None


def restore_env_state(cfg: "SACConfig", state: Optional[dict[str, Any]],
                      reset_seed: int) -> tuple[gym.Env, Optional[np.ndarray]]:
    """An environment continuing from `state`: (env, None), or (env, first_obs) when it had to be reset.

    The second element is the observation of a fresh episode (reset with `reset_seed`) when the
    state could not be captured; None means the saved episode continues. A state that does not fit
    the environment raises SoftacError.
    """
    env_id = cfg.env
    env = make_config_env(cfg)
    obs, _ = env.reset(seed=reset_seed)
    if state is None:
        return env, obs
    kind = state.get("kind") if isinstance(state, dict) else None
    expected = ("dm_control" if dmc.is_dmc_env(env) else "mujoco" if _is_mujoco(env)
                else "classic_control" if _is_classic_control(env) else None)
    if kind != expected:
        raise SoftacError(f"The checkpoint's environment state ({kind!r}) does not fit {env_id}.")
    unwrapped = env.unwrapped
    try:
        if kind == "dm_control":
            dmc.restore_state(env, state)
        elif kind == "mujoco":
            import mujoco

            physics = np.asarray(state["physics"], np.float64)
            spec = mujoco.mjtState.mjSTATE_INTEGRATION
            if physics.shape != (mujoco.mj_stateSize(unwrapped.model, spec),):
                raise ValueError("physics state of the wrong size")
            mujoco.mj_setState(unwrapped.model, unwrapped.data, physics, spec)
            mujoco.mj_forward(unwrapped.model, unwrapped.data)
        else:
            unknown = set(state["attributes"]) - set(_CLASSIC_ATTRIBUTES)
            if unknown:
                raise ValueError(f"unknown attributes {sorted(unknown)}")
            for name, value in state["attributes"].items():
                setattr(unwrapped, name, _unplain(value))
        if kind != "dm_control":  # dm_control's RandomState is the task's, restored above
            unwrapped.np_random.bit_generator.state = state["np_random"]
        time_limit = _time_limit(env)
        if time_limit is not None and state["elapsed_steps"] is not None:
            time_limit._elapsed_steps = int(state["elapsed_steps"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SoftacError(f"The checkpoint's environment state does not fit {env_id} ({exc}).") from None
    return env, None

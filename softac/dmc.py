"""The DeepMind Control Suite (dm_control) as Gymnasium environments, through shimmy's ids.

Ids are shimmy's: `dm_control/<domain>-<task>-v0`, e.g. `dm_control/cheetah-run-v0`,
`dm_control/walker-run-v0`, `dm_control/ball_in_cup-catch-v0` (every task of `dm_control.suite.ALL_TASKS`).
softac imports shimmy (which registers them) when an id starts with `dm_control/`; the extra
`pip install "softac[dmc]"` installs it with dm_control and a MuJoCo that dm_control runs on. Importing
dm_control chooses its OpenGL backend: softac sets MUJOCO_GL=egl first (headless) unless it is set.

Observations: dm_control returns an ordered dict of arrays (its observation spec). softac flattens it
into one float64 vector in the order of the task's observation spec (`env.observation_spec()`, e.g.
walker: orientations, height, velocity), each array raveled in C order: the order dm_control itself,
dmc2gym and SimbaV2 concatenate in, and the order to feed an exported policy from raw dm_control
observations. (Gymnasium's Dict space sorts its keys, so FlattenObservation on shimmy's Dict, as in CleanRL's
DMC scripts, gives the alphabetical order instead: height, orientations, velocity for walker.)

Episodes: dm_control's own time limit (1000 control steps for the suite's tasks) ends every episode as
`truncated` (discount 1); shimmy adds no Gymnasium TimeLimit. No suite task terminates early.

Exact resume (`capture_state` / `restore_state`, plain data only): the MuJoCo integration state of the
physics (mj_getState, mjSTATE_INTEGRATION), the model fields the suite's tasks randomise at the start of an
episode (target positions and sizes, wrap parameters, the escape terrain: `EPISODE_MODEL_FIELDS`), the
task's numpy RandomState and dm_control's step counter (its time limit).
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
import sys
from typing import Any, Optional

import gymnasium as gym
import numpy as np

from softac.errors import SoftacError

PREFIX = "dm_control/"
INSTALL = 'pip install "softac[dmc]"'

# mjModel fields that dm_control.suite tasks set at the start of an episode (reacher's and fish's targets,
# finger's target site, manipulator's and stacker's target bodies, swimmer's target and light, point_mass's
# wrap parameters, quadruped-escape's terrain): captured with the physics so that the episode continues.
EPISODE_MODEL_FIELDS = ("body_pos", "body_quat", "geom_pos", "geom_size", "site_pos", "site_size", "light_pos",
                        "wrap_prm", "hfield_data", "dof_damping")


def is_dmc_id(env_id: str) -> bool:
    """True for an id of the DeepMind Control Suite namespace (`dm_control/...`)."""
    return isinstance(env_id, str) and env_id.startswith(PREFIX)


def register(env_id: str) -> None:
    """Import dm_control and shimmy, which registers the `dm_control/` ids with Gymnasium.

    SoftacError, one sentence: naming `softac[dmc]` when one of them is not installed; naming the module and
    the error when one is installed but fails to import (e.g. a dm_control too old for the MuJoCo installed).
    """
    headless_rendering_default()
    for module in ("dm_control", "dm_control.suite", "shimmy"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            raise SoftacError(f"{env_id} needs the DeepMind Control Suite, which is not installed (no module "
                              f"{exc.name!r}): {INSTALL}.") from None
        except Exception as exc:  # installed but broken, e.g. dm_control on a MuJoCo it does not support
            raise SoftacError(f"Importing module {module!r} for environment {env_id!r} failed "
                              f"({type(exc).__name__}: {_first_line(exc)}); {INSTALL} installs versions that work "
                              "together.") from None


def headless_rendering_default() -> None:
    """MUJOCO_GL=egl (headless OpenGL) on Linux unless it is set: dm_control chooses its rendering backend once,
    when it is first imported (Gymnasium's MuJoCo environments only at their first frame), and its default, GLFW,
    needs a display; softac's videos render offscreen. Call it before dm_control is imported."""
    if sys.platform.startswith("linux") and "dm_control" not in sys.modules:
        os.environ.setdefault("MUJOCO_GL", "egl")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no message"


def unknown_id_error(env_id: str) -> SoftacError:
    """One sentence for a `dm_control/` id that is not registered: the unknown domain or task, and close matches."""
    known = sorted(k for k in gym.registry if is_dmc_id(k))
    close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "."
    match = re.fullmatch(r"(?P<domain>[^-]+)-(?P<task>.+)-v\d+", env_id[len(PREFIX):])
    try:
        from dm_control import suite

        tasks: dict[str, list[str]] = {}
        for domain, task in suite.ALL_TASKS:
            tasks.setdefault(domain, []).append(task)
    except Exception:
        tasks = {}
    if match is None or not tasks:
        return SoftacError(f"Unknown DeepMind Control Suite environment {env_id!r} (ids are "
                           f"dm_control/<domain>-<task>-v0){hint}")
    domain, task = match["domain"], match["task"]
    if domain not in tasks:
        domains = difflib.get_close_matches(domain, list(tasks), n=3, cutoff=0.5)
        near = [f"{PREFIX}{d}-{task if task in tasks[d] else tasks[d][0]}-v0" for d in domains]
        hint = f"; did you mean {', '.join(near)}?" if near else hint
        return SoftacError(f"The DeepMind Control Suite has no domain {domain!r} (in {env_id!r}){hint}")
    if task not in tasks[domain]:
        near = difflib.get_close_matches(task, tasks[domain], n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(f'{PREFIX}{domain}-{t}-v0' for t in near)}?" if near else "."
        return SoftacError(f"The DeepMind Control Suite domain {domain!r} has no task {task!r} (its tasks: "
                           f"{', '.join(tasks[domain])}){hint}")
    return SoftacError(f"Unknown DeepMind Control Suite environment {env_id!r}: shimmy registers version v0 only; "
                       f"did you mean {PREFIX}{domain}-{task}-v0?")


def is_dmc_env(env: gym.Env) -> bool:
    """True when `env` (through its wrappers) is a dm_control environment behind shimmy's compatibility layer."""
    unwrapped = env.unwrapped
    return type(unwrapped).__module__.startswith("shimmy.") and hasattr(unwrapped, "_env") and hasattr(
        unwrapped._env, "physics")


def observation_keys(env: gym.Env) -> list[str]:
    """The keys of a dm_control environment's observations, in the order of its observation spec."""
    return list(env.unwrapped._env.observation_spec().keys())


class FlattenSpecOrder(gym.ObservationWrapper):
    """A dm_control Dict observation as one float64 vector: the arrays of `keys` raveled and concatenated in
    that order (the observation spec's, see the module docstring)."""

    def __init__(self, env: gym.Env, keys: list[str]):
        super().__init__(env)
        self.keys = tuple(keys)
        spaces = [env.observation_space[k] for k in self.keys]
        low = np.concatenate([np.broadcast_to(s.low, s.shape).ravel() for s in spaces]).astype(np.float64)
        high = np.concatenate([np.broadcast_to(s.high, s.shape).ravel() for s in spaces]).astype(np.float64)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float64)
        # Real time for videos: one frame per control step (shimmy's render_fps is control_timestep * 1000).
        self.metadata = {**env.metadata, "render_fps": 1.0 / float(env.unwrapped._env.control_timestep())}

    def observation(self, observation: dict) -> np.ndarray:
        return np.concatenate([np.asarray(observation[k], np.float64).ravel() for k in self.keys])


def flatten(env: gym.Env) -> gym.Env:
    """`env` with its Dict observation flattened in the observation spec's order (unchanged if not a Dict)."""
    if isinstance(env.observation_space, gym.spaces.Dict) and is_dmc_env(env):
        return FlattenSpecOrder(env, observation_keys(env))
    return env


def _control_env(env: gym.Env) -> Optional[Any]:
    """The dm_control.rl.control.Environment behind `env`, or None (composer tasks: locomotion, manipulation)."""
    from dm_control.rl import control

    inner = env.unwrapped._env
    return inner if isinstance(inner, control.Environment) else None


def capture_state(env: gym.Env) -> Optional[dict[str, Any]]:
    """The state of a dm_control suite environment's episode in progress as plain data, or None (composer tasks)."""
    import mujoco

    inner = _control_env(env)
    if inner is None:
        return None
    physics = inner.physics
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(physics.model.ptr, spec), np.float64)
    mujoco.mj_getState(physics.model.ptr, physics.data.ptr, state, spec)
    random_state = inner.task.random.get_state(legacy=False)  # {'bit_generator', 'state': {key, pos}, 'has_gauss', 'gauss'}
    return {"kind": "dm_control", "physics": state,
            "model": {name: np.array(getattr(physics.model, name)) for name in EPISODE_MODEL_FIELDS},
            "random": {"bit_generator": str(random_state["bit_generator"]),
                       "key": np.asarray(random_state["state"]["key"]), "pos": int(random_state["state"]["pos"]),
                       "has_gauss": int(random_state["has_gauss"]), "gauss": float(random_state["gauss"])},
            "step_count": int(inner._step_count), "reset_next_step": bool(inner._reset_next_step)}


def restore_state(env: gym.Env, state: dict[str, Any]) -> None:
    """Put a `capture_state` result into a freshly reset environment of the same task (ValueError, KeyError or
    TypeError when it does not fit)."""
    import mujoco

    inner = _control_env(env)
    if inner is None:
        raise ValueError("not a dm_control suite task")
    physics = inner.physics
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    values = np.asarray(state["physics"], np.float64)
    if values.shape != (mujoco.mj_stateSize(physics.model.ptr, spec),):
        raise ValueError("physics state of the wrong size")
    for name, saved in state["model"].items():
        if name not in EPISODE_MODEL_FIELDS:
            raise ValueError(f"unknown model field {name!r}")
        field = getattr(physics.model, name)
        saved = np.asarray(saved)
        if saved.shape != field.shape:
            raise ValueError(f"model field {name} of the wrong shape")
        field[...] = saved
    mujoco.mj_setState(physics.model.ptr, physics.data.ptr, values, spec)
    mujoco.mj_forward(physics.model.ptr, physics.data.ptr)
    random = state["random"]
    inner.task.random.set_state({"bit_generator": random["bit_generator"],
                                 "state": {"key": np.asarray(random["key"], np.uint32), "pos": int(random["pos"])},
                                 "has_gauss": int(random["has_gauss"]), "gauss": float(random["gauss"])})
    inner._step_count = int(state["step_count"])
    inner._reset_next_step = bool(state["reset_next_step"])

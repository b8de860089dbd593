"""Any registered environment: `module:Id`, `env_kwargs` and `flatten_obs`, recorded in the run directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from softac import load_agent, resume, train
from softac.cli import main
from softac.envs import make_config_env
from softac.evaluate import read_run_config
from tests.conftest import tiny_config

# A user's package: one module registering a Box-observation environment and a Dict-observation one.
USER_MODULE = textwrap.dedent('''
    import gymnasium as gym
    import numpy as np


    class Drift(gym.Env):
        """A 1-D point pushed by the action towards the target; reward -|x - target|, 50 steps."""

        def __init__(self, target=0.5, dict_obs=False):
            self.target, self.dict_obs = float(target), dict_obs
            box = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)
            self.observation_space = gym.spaces.Dict({"x": box, "t": gym.spaces.Box(0, 1, (1,), np.float32)}) \\
                if dict_obs else box
            self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

        def _obs(self):
            x = np.array([self.x, self.target], np.float32)
            return {"x": x, "t": np.array([self.t / 50], np.float32)} if self.dict_obs else x

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self.x, self.t = float(self.np_random.uniform(-1, 1)), 0
            return self._obs(), {}

        def step(self, action):
            self.x = float(np.clip(self.x + 0.1 * float(action[0]), -10, 10))
            self.t += 1
            return self._obs(), -abs(self.x - self.target), False, False, {}


    gym.register("Drift-v0", entry_point=Drift, max_episode_steps=50)
    gym.register("DriftDict-v0", entry_point=Drift, kwargs={"dict_obs": True}, max_episode_steps=50)
''')


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """A module `softac_user_envs` importable from tmp_path/pkg (as a user's own package would be)."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "softac_user_envs.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(package))
    yield package
    sys.modules.pop("softac_user_envs", None)
    import gymnasium as gym

    for env_id in ("Drift-v0", "DriftDict-v0"):
        gym.registry.pop(env_id, None)


def test_module_id_env_kwargs_and_the_run_directory_recreates_them(tmp_path, user_package):
    cfg = tiny_config(tmp_path, env="softac_user_envs:Drift-v0", env_kwargs={"target": -0.7}, total_steps=300)
    run_dir = train(cfg)[0]
    saved = read_run_config(run_dir)
    assert saved.env == "softac_user_envs:Drift-v0" and saved.env_kwargs_dict == {"target": -0.7}
    assert make_config_env(saved).unwrapped.target == -0.7
    resume([run_dir], total_steps=400)
    assert json.loads((run_dir / "config.json").read_text())["env_kwargs"] == '{"target": -0.7}'
    # A fresh process finds the module from the run directory's config alone (eval recreates the env).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(user_package), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "softac.cli", "eval", str(run_dir), "--episodes", "2"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "episodes 2" in out.stdout
    # The environment really is the one with the kwargs: the observation carries the target.
    agent_env = make_config_env(saved)
    obs, _ = agent_env.reset(seed=0)
    assert obs[1] == np.float32(-0.7)


def test_cli_takes_env_kwargs_as_json(tmp_path, capsys):
    code = main(["train", "--env", "Pendulum-v1", "--env-kwargs", '{"g": 2.5}', "--total-steps", "200",
                 "--learning-starts", "100", "--hidden-sizes", "32,32", "--batch-size", "32", "--eval-episodes", "1",
                 "--buffer-size", "1000", "--run-root", str(tmp_path), "--run-name", "g", "--no-progress",
                 "--no-tensorboard"])
    assert code == 0
    cfg = read_run_config(tmp_path / "g")
    assert cfg.env_kwargs_dict == {"g": 2.5} and make_config_env(cfg).unwrapped.g == 2.5
    assert load_agent(tmp_path / "g").evaluate(episodes=1).shape == (1,)


def test_dict_observations_name_the_wrapper_and_flatten_obs_trains(tmp_path, user_package):
    from softac import SoftacError

    cfg = tiny_config(tmp_path, env="softac_user_envs:DriftDict-v0", total_steps=200)
    with pytest.raises(SoftacError, match="--flatten-obs"):
        train(cfg)
    run_dir = train(cfg.replace(flatten_obs=True))[0]
    assert load_agent(run_dir).act(np.zeros(3, np.float32)).shape == (1,)


@pytest.mark.parametrize("args, message", [
    (["--env-kwargs", "[1, 2]"], "env_kwargs must be a JSON object"),
    (["--env-kwargs", "{not json"], "env_kwargs must be a JSON object"),
    (["--env-kwargs", '{"no_such_argument": 1}'], "Cannot create environment 'Pendulum-v1' with env_kwargs"),
    (["--env", "softac_no_such_module:Thing-v0"], "Cannot import module 'softac_no_such_module'"),
    (["--env", "json:Pendulum-v9"], "registers no environment 'Pendulum-v9'; did you mean"),
])
def test_bad_environment_options_are_one_sentence_and_status_2(tmp_path, capsys, args, message):
    code = main(["train", *args, "--total-steps", "200", "--run-root", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path.exists() and any(tmp_path.iterdir()))  # nothing created

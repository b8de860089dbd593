"""Vectorised collection (`num_envs` environments per seed): truncation, update schedule, exact resume."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from softac import SoftacError, load_agent, resume, train
from softac.envs import scale_action
from softac.logger import read_metrics
from softac.train import env_reset_seed
from tests.conftest import tiny_config
from tests.helpers import assert_trees_equal
from tests.test_train import checkpoint_state


def drop_wall(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_time", "steps_per_second")} for r in rows]


def test_truncation_bootstraps_in_every_environment(tmp_path):
    # Pendulum truncated after 30 steps (env_kwargs), 3 environments per seed: env j's transitions are the
    # buffer slots j, j + 3, ... Replaying each environment independently with its stored actions gives the
    # stored next observations, the cut-off transition included (its true final observation, not terminal).
    K, T = 3, 30
    cfg = tiny_config(tmp_path, num_envs=K, total_steps=K * 70, learning_starts=60, eval_every=0,
                      env_kwargs={"max_episode_steps": T})
    run_dir = train(cfg)[0]
    data = checkpoint_state(run_dir)[1]["data"]
    assert data["terminated"].sum() == 0
    for j in range(K):
        obs_j, action_j, next_j = (data[f][j::K] for f in ("obs", "action", "next_obs"))
        replay = gym.make("Pendulum-v1", max_episode_steps=T)
        obs, _ = replay.reset(seed=env_reset_seed(0, j))
        for i in range(2 * T + 5):
            np.testing.assert_allclose(obs_j[i], obs, atol=1e-5)  # float32 storage
            obs, _, terminated, truncated, _ = replay.step(scale_action(action_j[i], -2.0, 2.0))
            np.testing.assert_allclose(next_j[i], obs, atol=1e-5)
            assert truncated == (i % T == T - 1) and not terminated
            if truncated:
                assert not np.allclose(next_j[i], obs_j[i + 1])  # the next episode starts elsewhere
                obs = obs_j[i + 1]
                replay = _continue_from(obs, T)


def _continue_from(obs: np.ndarray, max_steps: int) -> gym.Env:
    """A fresh Pendulum whose state is the one the observation `obs` shows."""
    env = gym.make("Pendulum-v1", max_episode_steps=max_steps)
    env.reset(seed=0)
    env.unwrapped.state = np.array([np.arctan2(obs[1], obs[0]), obs[2]], np.float64)
    return env


def test_updates_per_env_step_do_not_depend_on_num_envs(tmp_path):
    # gradient_steps stays per env step: 4 environments take the updates of 1 (every train_every env steps
    # from learning_starts), in a quarter of the dispatches.
    for num_envs in (1, 4):
        cfg = tiny_config(tmp_path, num_envs=num_envs, total_steps=240, learning_starts=100, train_every=2,
                          gradient_steps=3, eval_every=0, run_name=f"k{num_envs}")
        run_dir = train(cfg)[0]
        loop = checkpoint_state(run_dir)[2]
        assert loop["updates_done"] == 3 * len([t for t in range(100, 240) if t % 2 == 0])
        assert loop["step"] == 240
        assert json.loads((run_dir / "config.json").read_text())["num_envs"] == num_envs


def test_resume_with_four_environments_is_exact(tmp_path):
    cfg = tiny_config(tmp_path, num_envs=4, seeds=(0, 1), total_steps=400, eval_every=200)
    straight = train(cfg.replace(run_name="straight"))
    stopped = train(cfg.replace(run_name="stopped", total_steps=240))
    assert checkpoint_state(stopped[0])[2]["step"] == 240
    resume(stopped, total_steps=400)
    for a_dir, b_dir in zip(straight, stopped):
        a_state, a_buffer, a_loop = checkpoint_state(a_dir)
        b_state, b_buffer, b_loop = checkpoint_state(b_dir)
        assert_trees_equal(a_state, b_state)
        for field in a_buffer["data"]:
            np.testing.assert_array_equal(a_buffer["data"][field], b_buffer["data"][field])
        np.testing.assert_array_equal(a_loop["obs"], b_loop["obs"])
        assert a_loop["obs"].shape == (4, 3) and a_loop["updates_done"] == b_loop["updates_done"]
        # The stopped run has one more row, the final row (and evaluation) of its first session at 240.
        resumed_rows = [r for r in read_metrics(b_dir) if r["env_step"] != 240]
        assert drop_wall(read_metrics(a_dir)) == drop_wall(resumed_rows)
    assert load_agent(stopped[0]).act(np.zeros(3, np.float32)).shape == (1,)


def test_a_checkpoint_from_before_num_envs_resumes(tmp_path):
    # Checkpoints written by the one-environment loop hold scalars where the loop now keeps one entry per
    # environment; they read as num_envs = 1 and continue exactly.
    from softac.checkpoint import LOOP

    cfg = tiny_config(tmp_path, total_steps=300, eval_every=0)
    straight = train(cfg.replace(run_name="straight"))[0]
    stopped = train(cfg.replace(run_name="stopped", total_steps=200))[0]
    path = stopped / "checkpoint" / LOOP
    loop = json.loads(path.read_text())
    loop["episode_return"], loop["episode_length"], loop["env"] = (loop["episode_return"][0],
                                                                    loop["episode_length"][0], loop["env"][0])
    path.write_text(json.dumps(loop))
    _rewrite_obs_as_one_environment(stopped)
    resume([stopped], total_steps=300)
    assert_trees_equal(checkpoint_state(straight)[0], checkpoint_state(stopped)[0])


def _rewrite_obs_as_one_environment(run_dir) -> None:
    """Store the checkpoint's observation as [obs_dim], as the one-environment loop wrote it (sizes in the manifest)."""
    import io

    from softac.checkpoint import LOOP_ARRAYS

    directory = run_dir / "checkpoint"
    arrays = dict(np.load(directory / LOOP_ARRAYS))
    arrays[".obs"] = arrays[".obs"][0]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (directory / LOOP_ARRAYS).write_bytes(buffer.getvalue())
    manifest = json.loads((directory / "manifest.json").read_text())
    for name in manifest["files"]:
        manifest["files"][name] = (directory / name).stat().st_size
    (directory / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("changes, message", [
    ({"num_envs": 0}, "num_envs must be a positive integer"),
    ({"num_envs": 3, "total_steps": 400}, "must be a multiple of num_envs"),
])
def test_bad_num_envs_is_one_sentence(tmp_path, changes, message):
    with pytest.raises(SoftacError, match=message):
        tiny_config(tmp_path, **changes)


def test_bench_measures_each_number_of_environments(capsys):
    from softac.cli import main

    code = main(["bench", "--env", "Pendulum-v1", "--algos", "sac", "--train-steps", "64", "--learning-starts", "64",
                 "--update-repeats", "5", "--num-envs", "1,2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "1 env(s) per seed" in out and "2 env(s) per seed" in out and "of the update-alone rate" in out


@pytest.mark.parametrize("args, message", [(["--algos", "sac,nope"], "--algos must name algorithms among"),
                                           (["--num-envs", "1,0"], "--num-envs must be comma-separated positive")])
def test_bench_bad_input_is_one_sentence(capsys, args, message):
    from softac.cli import main

    assert main(["bench", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1

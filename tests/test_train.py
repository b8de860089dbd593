"""The training loop: determinism, exact resume, several seeds, time limits, logs, non-finite data."""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest

from softac import SoftacError, load_agent, resume, train
from softac.algos.registry import make_agent
from softac.checkpoint import load_checkpoint
from softac.envs import make_config_env, space_dims
from softac.evaluate import read_run_config
from softac.logger import LOOP_COLUMNS, read_metrics
from tests.conftest import tiny_config
from tests.helpers import assert_trees_equal


def checkpoint_state(run_dir):
    """(agent state, buffer, loop state) of the run's checkpoint, read with the config the run saved
    (its algorithm resolved), not the config the test started from."""
    cfg = read_run_config(run_dir)
    env = make_config_env(cfg)
    agent = make_agent(cfg, *space_dims(env))
    return load_checkpoint(run_dir, agent.init(jax.random.PRNGKey(0)))


def test_same_seed_same_metrics_and_params(tmp_path):
    cfg = tiny_config(tmp_path, total_steps=300)
    first = train(cfg.replace(run_name="first"))[0]
    second = train(cfg.replace(run_name="second"))[0]
    drop_wall = lambda rows: [{k: v for k, v in r.items() if k not in ("wall_time", "steps_per_second")} for r in rows]
    assert drop_wall(read_metrics(first)) == drop_wall(read_metrics(second))
    assert_trees_equal(checkpoint_state(first)[0], checkpoint_state(second)[0])
    other = train(cfg.replace(run_name="other", seed=1))[0]
    assert drop_wall(read_metrics(other)) != drop_wall(read_metrics(first))


@pytest.mark.parametrize("env_id, algo", [("Pendulum-v1", "sac"), ("HalfCheetah-v5", "sac"), ("Pendulum-v1", "sac-v1")])
def test_resume_gives_the_parameters_of_an_uninterrupted_run(tmp_path, env_id, algo):
    # Stop at k = 250 (mid-episode, after updates started at 100), resume to n = 400.
    cfg = tiny_config(tmp_path, env=env_id, algo=algo, total_steps=400, eval_every=0)
    straight = train(cfg.replace(run_name="straight"))[0]
    stopped = train(cfg.replace(run_name="stopped", total_steps=250))[0]
    assert checkpoint_state(stopped)[2]["step"] == 250
    resume([stopped], total_steps=400)
    a_state, a_buffer, a_loop = checkpoint_state(straight)
    b_state, b_buffer, b_loop = checkpoint_state(stopped)
    assert_trees_equal(a_state, b_state)
    for field in a_buffer["data"]:
        np.testing.assert_array_equal(a_buffer["data"][field], b_buffer["data"][field])
    np.testing.assert_array_equal(a_loop["obs"], b_loop["obs"])
    assert a_loop["episodes"] == b_loop["episodes"] and a_loop["step"] == b_loop["step"] == 400
    # The resumed run's metrics continue the stopped one's and match the uninterrupted run's.
    steps = [r["env_step"] for r in read_metrics(stopped)]
    assert steps == sorted(steps) and steps[-1] == 400
    assert json.loads((stopped / "config.json").read_text())["total_steps"] == 400


def test_several_seeds_train_together_and_each_run_stands_alone(tmp_path):
    cfg = tiny_config(tmp_path, seeds=(0, 1), total_steps=300)
    run_dirs = train(cfg)
    assert len(run_dirs) == 2 and len(set(run_dirs)) == 2
    states = [checkpoint_state(d)[0] for d in run_dirs]
    assert not np.allclose(jax.tree_util.tree_leaves(states[0].actor_params)[0],
                           jax.tree_util.tree_leaves(states[1].actor_params)[0])
    for seed, run_dir in zip((0, 1), run_dirs):
        saved = json.loads((run_dir / "config.json").read_text())
        assert saved["seed"] == seed and saved["seeds"] is None
        agent = load_agent(run_dir)
        assert agent.act(np.zeros(3, np.float32)).shape == (1,)
    resume([run_dirs[1]], total_steps=350)  # one seed of a group resumes on its own
    assert checkpoint_state(run_dirs[1])[2]["step"] == 350


def test_a_seed_trained_in_a_group_matches_it_trained_alone(tmp_path):
    alone = train(tiny_config(tmp_path, total_steps=250, eval_every=0, run_name="alone"))[0]
    group = train(tiny_config(tmp_path, seeds=(0, 3), total_steps=250, eval_every=0, run_name="group"))
    a, b = checkpoint_state(alone), checkpoint_state(group[0])
    for field in a[1]["data"]:  # same data collected: same env stream, same warm-up and policy actions
        np.testing.assert_allclose(a[1]["data"][field], b[1]["data"][field], rtol=1e-4, atol=1e-4)
    for x, y in zip(jax.tree_util.tree_leaves(a[0].actor_params), jax.tree_util.tree_leaves(b[0].actor_params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-3, atol=1e-4)


def test_time_limit_truncation_is_not_stored_as_terminal(tmp_path):
    # Pendulum never terminates; its 200-step time limit truncates. No stored transition may be terminal,
    # and the transition at the cut-off keeps the true final observation, not the next episode's first one.
    import gymnasium as gym

    from softac.envs import scale_action

    run_dir = train(tiny_config(tmp_path, total_steps=450, eval_every=0))[0]
    _, buffer, _ = checkpoint_state(run_dir)
    data = buffer["data"]
    assert data["terminated"].sum() == 0
    replay = gym.make("Pendulum-v1")  # replay the first episode independently with the stored actions
    obs, _ = replay.reset(seed=0)
    for i in range(200):
        np.testing.assert_allclose(data["obs"][i], obs, rtol=1e-6)
        obs, _, terminated, truncated, _ = replay.step(scale_action(data["action"][i], -2.0, 2.0))
        np.testing.assert_allclose(data["next_obs"][i], obs, rtol=1e-6)
    assert truncated and not terminated  # the 200th transition was cut off by the time limit
    assert not np.allclose(data["next_obs"][199], data["obs"][200])  # the next episode starts elsewhere


def test_v1_runs_log_value_losses_and_evaluate_from_their_run_directory(tmp_path):
    run_dir = train(tiny_config(tmp_path, algo="sac-v1", total_steps=300, eval_every=0))[0]
    assert json.loads((run_dir / "config.json").read_text())["algo"] == "sac-v1"
    trained = [r for r in read_metrics(run_dir) if r["value_loss"] is not None]
    assert trained and all(r["alpha"] == pytest.approx(0.2) for r in trained)  # fixed: 1 / reward scale 5
    assert load_agent(run_dir).evaluate(episodes=2).shape == (2,)


def test_metrics_csv_has_evaluations_losses_and_alpha(tmp_path):
    run_dir = train(tiny_config(tmp_path, total_steps=400, tensorboard=True))[0]
    rows = read_metrics(run_dir)
    # The loop's columns, then exactly the metrics sac declares in the registry (no value_loss: that is sac-v1's).
    assert list(rows[0]) == list(LOOP_COLUMNS) + ["critic_loss", "q_mean", "actor_loss", "entropy", "alpha_loss", "alpha"]
    evals = [r for r in rows if r["eval_return_mean"] is not None]
    assert [r["env_step"] for r in evals] == [200, 400]
    trained = [r for r in rows if r["critic_loss"] is not None]
    assert trained and all(r["alpha"] > 0 and np.isfinite(r["entropy"]) for r in trained)
    assert any(p.name.startswith("events.out.tfevents") for p in run_dir.iterdir())
    assert (run_dir / "checkpoint" / "manifest.json").exists()


def test_non_finite_observation_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path, env="softac-test/NaNAfter-v0", total_steps=400, checkpoint_every=100, eval_every=0,
                      run_name="nan")
    with pytest.raises(SoftacError, match=r"non-finite .* env step 150.*step 100"):
        train(cfg)
    run_dir = tmp_path / "runs" / "nan"
    assert checkpoint_state(run_dir)[2]["step"] == 100


def test_training_stops_with_a_checkpoint_once_evaluation_reaches_the_threshold(tmp_path):
    run_dir = train(tiny_config(tmp_path, total_steps=400, eval_every=100, stop_at_eval_return=-1e9))[0]
    assert [r["env_step"] for r in read_metrics(run_dir)][-1] == 100
    assert checkpoint_state(run_dir)[2]["step"] == 100
    resume([run_dir], total_steps=200)  # a stopped run can go on
    assert checkpoint_state(run_dir)[2]["step"] == 200


def test_existing_run_directory_is_never_reused(tmp_path):
    cfg = tiny_config(tmp_path, total_steps=150, eval_every=0, run_name="mine")
    run_dir = train(cfg)[0]
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(SoftacError, match="already exists"):
        train(cfg)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_resume_refuses_a_finished_run_and_a_missing_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path, total_steps=150, eval_every=0, run_name="done")
    run_dir = train(cfg)[0]
    with pytest.raises(SoftacError, match="already at 150"):
        resume([run_dir])
    (run_dir / "checkpoint" / "replay.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(SoftacError, match="unreadable"):
        resume([run_dir], total_steps=300)
    shutil.rmtree(run_dir / "checkpoint")
    with pytest.raises(SoftacError, match="no checkpoint"):
        resume([run_dir], total_steps=300)

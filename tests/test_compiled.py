"""The compiled loop (softac.compiled) for JAX-native environments: gymnax and Brax trained inside XLA."""

from __future__ import annotations

import json

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softac.algos.base import Batch
from softac.algos.registry import get_spec, make_agent, resolve_algo
from softac.checkpoint import load_checkpoint
from softac.cli import main
from softac.compiled import is_jax_env, replay
from softac.compiled.envs import make_jax_env
from softac.compiled.loop import make_train
from softac.config import preset
from softac.errors import SoftacError
from softac.evaluate import load_agent, read_run_config
from softac.logger import read_metrics
from softac.replay import FIELDS, ReplayBuffer
from softac.train import resume, train
from tests.conftest import tiny_config
from tests.helpers import assert_trees_close, assert_trees_equal

PENDULUM = "gymnax:Pendulum-v1"
WALL_CLOCK = ("wall_time", "steps_per_second")


def program_of(cfg):
    """(resolved cfg, env, agent, compiled program) of a config."""
    env = make_jax_env(cfg.env)
    cfg = resolve_algo(cfg, env.spec)
    agent = make_agent(cfg, env.obs_dim, env.spec.dim)
    return cfg, env, agent, make_train(cfg, env, agent, get_spec(cfg.algo).metrics)


def checkpoint_of(run_dir):
    """(agent state, buffer state dict, loop state) of a compiled run's checkpoint."""
    cfg = read_run_config(run_dir)
    env = make_jax_env(cfg.env)
    agent = make_agent(cfg, env.obs_dim, env.spec.dim)
    return load_checkpoint(run_dir, agent.init(jax.random.PRNGKey(0)), agent.policy_fields)


def seed_slice(tree, k: int = 0):
    return jax.tree_util.tree_map(lambda x: np.asarray(x)[k], jax.device_get(tree))


def buffer_of(state, k: int = 0) -> Batch:
    """Seed k's replay arrays [capacity, ...] of a compiled train state."""
    buffer = jax.device_get(state.buffer)
    return Batch(*(np.asarray(getattr(buffer, f))[k] for f in FIELDS))


def test_the_env_id_prefix_chooses_the_compiled_path():
    assert is_jax_env("gymnax:Pendulum-v1") and is_jax_env("brax:hopper")
    assert not is_jax_env("Pendulum-v1") and not is_jax_env("mypackage:MyEnv-v0")


def test_gymnax_pendulum_has_the_dynamics_and_rewards_of_gymnasiums():
    """The compiled and the Gymnasium loop see the same environment: one step from the same state and action."""
    env = make_jax_env(PENDULUM)
    import gymnax.environments.classic_control.pendulum as gp

    gym_env = gym.make("Pendulum-v1").unwrapped
    gym_env.reset(seed=0)
    for theta, theta_dot, action in [(0.3, -0.5, 0.7), (-2.9, 4.0, -1.0), (3.0, 7.9, 1.0)]:
        gym_env.state = np.array([theta, theta_dot])
        gym_obs, gym_reward, *_ = gym_env.step(np.array([2.0 * action], np.float32))
        state = gp.EnvState(theta=jnp.float32(theta), theta_dot=jnp.float32(theta_dot), last_u=jnp.float32(0.0),
                            time=0)
        obs, _, reward, terminated, truncated = env.step(jax.random.PRNGKey(0), state,
                                                         env.to_env(jnp.array([action], jnp.float32)))
        np.testing.assert_allclose(obs, gym_obs, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(reward, gym_reward, rtol=1e-5)
        assert not terminated and not truncated


def test_first_update_equals_the_gymnasium_loops_given_the_same_replay_contents(tmp_path):
    """Both loops run the same agent functions on the same stored form; what differs is where random numbers
    come from: the Gymnasium loop draws replay indices and warm-up actions from a numpy Generator and steps
    Gymnasium's environments, the compiled loop draws them from jax.random and steps gymnax's. So the same seed
    fills the buffers differently and cannot give the same losses; given the same buffer contents and indices,
    the first minibatch update must. Here the compiled loop's buffer after its warm-up is loaded into the
    Gymnasium loop's ReplayBuffer (through the shared checkpoint format), the minibatch is gathered there with
    the indices the compiled loop draws, and the Gymnasium loop's jitted update gives the compiled loop's losses."""
    cfg, env, agent, program = program_of(tiny_config(tmp_path, env=PENDULUM, learning_starts=100))
    state = program.init([0])
    state, _ = program.train_chunk(state, jnp.int32(100))  # the warm-up: 100 uniform actions, no update
    seed = seed_slice(state.seeds)
    host_buffer = ReplayBuffer(1, cfg.buffer_size, env.obs_dim, env.spec.stored_dim)
    host_buffer.load_state_dicts([replay.state_dict(jax.device_get(state.buffer), 0)])
    _, sample_key = jax.random.split(seed.key)  # as the compiled loop's update_seed splits its loop key
    index = np.asarray(jax.random.randint(sample_key, (cfg.gradient_steps, cfg.batch_size), 0, 100))
    batch = Batch(*(getattr(host_buffer, f)[:, index] for f in FIELDS))  # [1, G, B, ...]
    gymnasium_update = jax.jit(jax.vmap(agent.update_many, in_axes=(0, 0, None)))  # the Trainer's
    _, expected = gymnasium_update(jax.device_get(state.seeds.agent), batch, jnp.int32(0))
    state, stats = program.train_chunk(state, jnp.int32(1))  # step 100: the first update
    assert int(state.updates_done) == cfg.gradient_steps
    for name, value in expected.items():
        np.testing.assert_allclose(stats[name], value, rtol=1e-5, err_msg=name)


def test_a_time_limit_cut_off_stores_the_true_final_observation_and_bootstraps(tmp_path):
    cfg, env, agent, program = program_of(tiny_config(tmp_path, env=PENDULUM, learning_starts=300))
    state, _ = program.train_chunk(program.init([0]), jnp.int32(202))
    buffer = buffer_of(state)
    assert buffer.terminated[:202].sum() == 0  # Pendulum never terminates; step 199 is the time limit
    np.testing.assert_array_equal(buffer.next_obs[:198], buffer.obs[1:199])  # within the episode: continuous
    assert not np.allclose(buffer.next_obs[199], buffer.obs[200])  # obs[200] is the new episode's first
    # next_obs[199] is the true successor of obs[199] under action[199] (the state is read off the observation).
    import gymnax.environments.classic_control.pendulum as gp

    cos, sin, theta_dot = buffer.obs[199]
    state199 = gp.EnvState(theta=jnp.float32(np.arctan2(sin, cos)), theta_dot=jnp.float32(theta_dot),
                           last_u=jnp.float32(0.0), time=199)
    obs, _, reward, terminated, truncated = env.step(jax.random.PRNGKey(0), state199,
                                                     env.to_env(jnp.asarray(buffer.action[199])))
    np.testing.assert_allclose(obs, buffer.next_obs[199], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(reward, buffer.reward[199], rtol=1e-4)
    assert bool(truncated) and not bool(terminated)
    assert int(seed_slice(state.seeds.episodes)) == 1


def test_resume_gives_the_run_of_an_uninterrupted_one_bitwise(tmp_path):
    # Stop at k = 250 (mid-episode, after updates started at 100), resume to n = 400.
    cfg = tiny_config(tmp_path, env=PENDULUM, total_steps=400, eval_every=0, log_every=100)
    straight = train(cfg.replace(run_name="straight"))[0]
    stopped = train(cfg.replace(run_name="stopped", total_steps=250))[0]
    assert checkpoint_of(stopped)[2]["step"] == 250
    resume([stopped], total_steps=400)
    a_state, a_buffer, a_loop = checkpoint_of(straight)
    b_state, b_buffer, b_loop = checkpoint_of(stopped)
    assert_trees_equal(a_state, b_state)
    for field in FIELDS:
        np.testing.assert_array_equal(a_buffer["data"][field], b_buffer["data"][field])
    assert (a_buffer["position"], a_buffer["size"]) == (b_buffer["position"], b_buffer["size"])
    for name in ("obs", "key", "action_key", "episode_return", "episodes", "updates_done", "step"):
        np.testing.assert_array_equal(a_loop[name], b_loop[name], err_msg=name)
    for x, y in zip(a_loop["env_state"], b_loop["env_state"]):
        np.testing.assert_array_equal(x, y)
    a_rows = {r["env_step"]: r for r in read_metrics(straight)}
    b_rows = {r["env_step"]: r for r in read_metrics(stopped)}
    assert sorted(b_rows) == [100, 200, 250, 300, 400] and sorted(a_rows) == [100, 200, 300, 400]
    for step, row in a_rows.items():
        assert {k: v for k, v in row.items() if k not in WALL_CLOCK} == \
               {k: v for k, v in b_rows[step].items() if k not in WALL_CLOCK}, step
    assert json.loads((stopped / "config.json").read_text())["total_steps"] == 400


def test_seeds_trained_together_match_each_seed_trained_alone(tmp_path):
    """Each seed's streams depend on its seed alone, so a seed collects the same warm-up data beside others;
    after the updates the batched matrix products of the vmapped update may round differently in the last bits,
    so the parameters are compared closely, not bitwise."""
    cfg = tiny_config(tmp_path, env=PENDULUM, total_steps=200, learning_starts=100)
    _, _, _, program = program_of(cfg)
    together, _ = program.train_chunk(program.init([0, 3]), jnp.int32(200))
    for k, seed in enumerate((0, 3)):
        alone, _ = program.train_chunk(program.init([seed]), jnp.int32(200))
        a, b = buffer_of(alone), buffer_of(together, k)
        np.testing.assert_array_equal(a.obs[:100], b.obs[:100])
        np.testing.assert_array_equal(a.action[:100], b.action[:100])
        np.testing.assert_allclose(a.obs[:200], b.obs[:200], rtol=1e-3, atol=1e-3)
        assert_trees_close(seed_slice(alone.seeds.agent.actor_params),
                           seed_slice(together.seeds.agent.actor_params, k), rtol=1e-3, atol=1e-4)
    assert not np.allclose(buffer_of(together, 0).obs[:100], buffer_of(together, 1).obs[:100])


def test_discrete_actions_train_with_sac_discrete(tmp_path):
    cfg = tiny_config(tmp_path, env="gymnax:CartPole-v1", total_steps=200, eval_every=0, run_name="cartpole")
    run_dir = train(cfg)[0]
    assert read_run_config(run_dir).algo == "sac-discrete"
    rows = read_metrics(run_dir)
    assert rows[-1]["env_step"] == 200 and rows[-1]["critic_loss"] is not None
    agent = load_agent(run_dir)
    assert agent.act(np.zeros(4, np.float32)) in (0, 1)
    assert agent.evaluate(episodes=2).shape == (2,)


@pytest.mark.parametrize("env_id, fragment", [
    ("gymnax:Pendulum-v2", "did you mean gymnax:Pendulum-v1"),
    ("gymnax:Breakout-MinAtar", "flat (1-D) Box observation space"),
    ("gymnax:Catch-bsuite", "flat (1-D) Box observation space"),
    ("brax:halfcheeta", "did you mean brax:halfcheetah"),
])
def test_bad_env_ids_and_spaces_are_one_sentence_and_status_2(env_id, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SoftacError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        make_jax_env(env_id)
    code = main(["train", "--env", env_id, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("softac: error:")] == \
           [line for line in err.splitlines() if fragment in line]
    assert not (tmp_path / "runs").exists()


def test_cli_trains_evaluates_and_resumes_a_gymnax_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    tiny = ["--total-steps", "300", "--learning-starts", "100", "--hidden-sizes", "32,32", "--batch-size", "32",
            "--buffer-size", "10000", "--eval-every", "150", "--eval-episodes", "2", "--log-every", "100",
            "--no-progress", "--no-tensorboard"]
    assert main(["train", "--env", PENDULUM, *tiny, "--run-root", "runs", "--run-name", "smoke"]) == 0
    run_dir = tmp_path / "runs" / "smoke"
    assert {"config.json", "metrics.csv", "checkpoint", "learning_curve.png"} <= {p.name for p in run_dir.iterdir()}
    assert "evaluation return mean" in capsys.readouterr().out
    assert main(["eval", str(run_dir), "--episodes", "3", "--seed", "5"]) == 0
    figures = dict(line.split() for line in capsys.readouterr().out.strip().splitlines())
    assert figures["episodes"] == "3" and float(figures["mean"]) < 0
    assert main(["train", "--resume", str(run_dir), "--total-steps", "400", "--no-progress"]) == 0
    assert [r["env_step"] for r in read_metrics(run_dir)] == [100, 150, 200, 300, 400]
    assert main(["plot", str(run_dir), "--out", "curve.png"]) == 0


@pytest.mark.slow
def test_gymnax_pendulum_reaches_minus_200_within_8000_steps(tmp_path):
    cfg = preset("pendulum-fast").replace(total_steps=8000, run_root=str(tmp_path), progress=False,
                                          tensorboard=False, stop_at_eval_return=-200.0)
    run_dir = train(cfg)[0]
    evals = [r["eval_return_mean"] for r in read_metrics(run_dir) if r["eval_return_mean"] is not None]
    assert max(evals) >= -200, evals


@pytest.mark.slow
def test_brax_trains_a_few_steps(tmp_path):
    cfg = tiny_config(tmp_path, env="brax:inverted_pendulum", total_steps=40, learning_starts=20, eval_every=0,
                      eval_episodes=1, log_every=20)
    run_dir = train(cfg)[0]
    assert read_metrics(run_dir)[-1]["env_step"] == 40


def test_a_callback_stops_training_with_a_checkpoint_that_resumes(tmp_path):
    from softac.callbacks import Callback

    class StopAt200(Callback):
        def on_log(self, step, rows):
            assert [row["env_step"] for row in rows] == [step]
            return step >= 200

    cfg = tiny_config(tmp_path, env=PENDULUM, total_steps=400, eval_every=0, log_every=100, run_name="stopped")
    run_dir = train(cfg, callbacks=[StopAt200()])[0]
    assert checkpoint_of(run_dir)[2]["step"] == 200
    resume([run_dir], total_steps=400)
    assert [r["env_step"] for r in read_metrics(run_dir)] == [100, 200, 300, 400]


def test_sigint_saves_a_checkpoint_at_the_end_of_the_chunk_and_resume_equals_the_straight_run(tmp_path):
    # Ctrl-C during a compiled run: the running chunk (at most log_every steps) finishes, every seed's
    # checkpoint is written, the process exits 130 with the resume command; resuming from there gives the
    # run that never stopped, bitwise.
    import signal

    from tests.test_safety import TINY_FLAGS, train_then_signal

    flags = [f if f != "Pendulum-v1" else PENDULUM for f in TINY_FLAGS]
    run_dir = tmp_path / "runs" / "sig"
    returncode, err = train_then_signal(flags, run_dir, signal.SIGINT)
    assert returncode == 130, err
    assert "Traceback" not in err and f"softac train --resume {run_dir}" in err
    step = int(checkpoint_of(run_dir)[2]["step"])
    assert step >= 200 and step % 50 == 0  # a chunk ends at a multiple of log_every
    resume([run_dir], total_steps=step + 50)
    straight = train(tiny_config(tmp_path, env=PENDULUM, eval_every=0, log_every=50, total_steps=step + 50,
                                 run_name="straight"))[0]
    assert_trees_equal(checkpoint_of(straight)[0], checkpoint_of(run_dir)[0])


def test_a_gymnax_run_refuses_videos_in_one_sentence(tmp_path, capsys):
    # "gymnax:Pendulum-v1" has the form of Gymnasium's module:id; it must not turn into Gymnasium's Pendulum-v1.
    run_dir = train(tiny_config(tmp_path, env=PENDULUM, total_steps=200, eval_every=0))[0]
    code = main(["eval", str(run_dir), "--episodes", "1", "--video", str(tmp_path / "videos")])
    err = capsys.readouterr().err
    assert code == 2 and "is a JAX-native environment" in err and len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "videos").glob("*.mp4"))


def test_a_non_finite_observation_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    # gymnax Pendulum with g = NaN returns NaN from its first step on; with g set to NaN only after a
    # checkpoint, that checkpoint stays the one on disk.
    cfg = tiny_config(tmp_path, env=PENDULUM, env_kwargs={"g": float("nan")}, total_steps=300, eval_every=0,
                      log_every=50)
    with pytest.raises(SoftacError, match="returned a non-finite observation or reward at env step 1; training "
                                          "stopped and no checkpoint had been written yet"):
        train(cfg)
    good = train(cfg.replace(env_kwargs=None, total_steps=100, run_name="good"))[0]
    config = json.loads((good / "config.json").read_text())
    config["env_kwargs"] = '{"g": NaN}'  # the environment turns bad after the checkpoint at step 100
    (good / "config.json").write_text(json.dumps(config))
    with pytest.raises(SoftacError, match=r"at env step 101; training stopped and the last good checkpoint "
                                          r"\(step 100\) is kept"):
        resume([good], total_steps=300)
    assert checkpoint_of(good)[2]["step"] == 100

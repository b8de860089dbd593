"""The DeepMind Control Suite (softac.dmc): plain `dm_control/` ids, observations flattened in the observation spec's
order, one-sentence errors, action repeat, exact resume, videos and export. Skipped where dm_control is not
installed (`pip install "softac[dmc]"`; `make test` installs it). Episodes are cut to 100 env steps with
dm_control's own time limit (env_kwargs task_kwargs.time_limit = 1 s of cartpole's 0.01 s control steps)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from softac import dmc  # noqa: E402

dmc.headless_rendering_default()  # before dm_control is imported (it picks its OpenGL backend then), as softac does
pytest.importorskip("dm_control")
pytest.importorskip("shimmy")

import jax  # noqa: E402

from softac import SoftacError, load_agent, resume, train  # noqa: E402
from softac.algos.registry import make_agent  # noqa: E402
from softac.checkpoint import load_checkpoint  # noqa: E402
from softac.cli import main  # noqa: E402
from softac.envs import ENV_STEPS_INFO, capture_env_state, make_config_env, make_env, restore_env_state, space_dims  # noqa: E402
from softac.evaluate import read_run_config  # noqa: E402
from softac.logger import read_metrics  # noqa: E402
from tests.conftest import tiny_config  # noqa: E402
from tests.helpers import assert_trees_equal  # noqa: E402

CARTPOLE = "dm_control/cartpole-balance-v0"
SHORT = {"task_kwargs": {"time_limit": 1.0}}  # 100 control steps per episode


def dmc_config(tmp_path, **changes):
    base = dict(env=CARTPOLE, env_kwargs=SHORT, action_repeat=2, total_steps=400, learning_starts=100,
                eval_every=0, eval_episodes=1, log_every=50)
    base.update(changes)
    return tiny_config(tmp_path, **base)


def checkpoint_state(run_dir):
    cfg = read_run_config(run_dir)
    agent = make_agent(cfg, *space_dims(make_config_env(cfg)))
    return load_checkpoint(run_dir, agent.init(jax.random.PRNGKey(0)))


# ------------------------------------------------------------------------------------ ids and observations
def test_observations_are_flattened_in_the_observation_spec_order():
    env = make_env("dm_control/walker-run-v0")
    keys = list(env.unwrapped._env.observation_spec().keys())
    assert keys == ["orientations", "height", "velocity"]  # not Gymnasium's sorted Dict order
    assert env.observation_space.shape == (24,) and env.observation_space.dtype == np.float64
    obs, _ = env.reset(seed=0)
    raw = env.unwrapped._env.task.get_observation(env.unwrapped._env.physics)
    np.testing.assert_array_equal(obs, np.concatenate([np.asarray(raw[k], np.float64).ravel() for k in keys]))
    assert obs[14] == pytest.approx(float(raw["height"]))  # the scalar sits between orientations and velocity
    # --flatten-obs on top changes nothing.
    flat = make_env("dm_control/walker-run-v0", flatten_obs=True)
    np.testing.assert_array_equal(flat.reset(seed=0)[0], obs)


@pytest.mark.parametrize("env_id, pattern", [
    ("dm_control/cheetah-runn-v0", r"domain 'cheetah' has no task 'runn' \(its tasks: run\); did you mean "
                                   r"dm_control/cheetah-run-v0\?"),
    ("dm_control/cheeta-run-v0", r"has no domain 'cheeta' .*did you mean dm_control/cheetah-run-v0\?"),
    ("dm_control/cheetah-run-v1", r"version v0 only; did you mean dm_control/cheetah-run-v0\?"),
])
def test_an_unknown_domain_or_task_is_one_sentence_with_close_matches(env_id, pattern):
    with pytest.raises(SoftacError, match=pattern) as info:
        make_env(env_id)
    assert str(info.value).count(". ") == 0


def test_a_missing_or_broken_dm_control_names_the_extra_or_the_module(monkeypatch):
    real = dmc.importlib.import_module

    def missing(name):
        if name == "dm_control":
            raise ModuleNotFoundError("No module named 'dm_control'", name="dm_control")
        return real(name)

    monkeypatch.setattr(dmc.importlib, "import_module", missing)
    with pytest.raises(SoftacError, match=r"not installed \(no module 'dm_control'\): pip install \"softac\[dmc\]\"\."):
        dmc.register(CARTPOLE)

    def broken(name):
        if name == "dm_control.suite":
            raise AttributeError("'MjModel' object has no attribute 'flex_vertedge'")
        return real(name)

    monkeypatch.setattr(dmc.importlib, "import_module", broken)
    with pytest.raises(SoftacError, match=r"Importing module 'dm_control.suite' .* failed \(AttributeError: .*flex_vertedge"):
        dmc.register(CARTPOLE)


def test_softac_train_takes_the_plain_id(tmp_path, capsys):
    root = tmp_path / "runs"
    code = main(["train", "--env", CARTPOLE, "--env-kwargs", json.dumps(SHORT), "--action-repeat", "2",
                 "--total-steps", "200", "--learning-starts", "100", "--hidden-sizes", "32,32", "--batch-size", "32",
                 "--eval-every", "0", "--eval-episodes", "1", "--checkpoint-every", "0", "--no-progress",
                 "--no-tensorboard", "--run-root", str(root)])
    assert code == 0, capsys.readouterr().err
    (run_dir,) = root.iterdir()
    assert run_dir.name.startswith("dm_control-cartpole-balance-v0__sac__seed0__")
    rows = read_metrics(run_dir)
    assert rows[-1]["env_step"] == 200 and rows[-1]["eval_return_mean"] is not None
    assert rows[-1]["episode_length"] == 100.0  # env steps: dm_control's 1 s time limit


# ------------------------------------------------------------------------------------ action repeat
@pytest.mark.parametrize("repeat, agent_steps, last_taken", [(2, 50, 2), (3, 34, 1)])
def test_action_repeat_sums_rewards_and_ends_at_the_time_limit_env_step(repeat, agent_steps, last_taken):
    repeated, plain = make_env(CARTPOLE, SHORT, action_repeat=repeat), make_env(CARTPOLE, SHORT)
    np.testing.assert_array_equal(repeated.reset(seed=1)[0], plain.reset(seed=1)[0])
    rng, steps, done = np.random.default_rng(0), 0, False
    while not done:
        action = rng.uniform(-1.0, 1.0, 1)
        obs, reward, terminated, truncated, info = repeated.step(action)
        steps += 1
        expected = 0.0
        for _ in range(info[ENV_STEPS_INFO]):
            obs_p, reward_p, terminated_p, truncated_p, _ = plain.step(action)
            expected += reward_p
        assert reward == pytest.approx(expected, rel=1e-12) and reward > 0
        np.testing.assert_array_equal(obs, obs_p)
        assert (terminated, truncated) == (terminated_p, truncated_p)
        done = terminated or truncated
    assert truncated and not terminated and steps == agent_steps and info[ENV_STEPS_INFO] == last_taken


# ------------------------------------------------------------------------------------ exact resume
@pytest.mark.parametrize("env_kwargs, cut_at", [(SHORT, 100), ({**SHORT, "max_episode_steps": 60}, 60)])
def test_env_state_restores_the_episode_in_progress_and_the_next_one(tmp_path, env_kwargs, cut_at):
    # dm_control's own time limit, or a Gymnasium TimeLimit (max_episode_steps) around it: both counters restored.
    cfg = dmc_config(tmp_path, action_repeat=1, env_kwargs=env_kwargs)
    env = make_config_env(cfg)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(37):
        env.step(rng.uniform(-1, 1, 1))
    state = capture_env_state(env)
    assert state["kind"] == "dm_control" and state["step_count"] == 37
    restored, fresh_obs = restore_env_state(cfg, state, reset_seed=999)
    assert fresh_obs is None
    cuts = []
    for t, action in enumerate(rng.uniform(-1, 1, (150, 1)), start=38):  # past the cut-off, into the next episode
        a, b = env.step(action), restored.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]
        if a[2] or a[3]:  # the next episode's initial state comes from the task's restored RandomState
            cuts.append(t)
            np.testing.assert_array_equal(env.reset()[0], restored.reset()[0])
    assert cuts[0] == cut_at


def test_resume_on_dmc_with_action_repeat_equals_the_straight_run(tmp_path):
    # Stop at k = 250 env steps (mid-episode: 50 env steps into the third, after updates started at 100),
    # resume to n = 400; everything equals the run that went straight to 400.
    cfg = dmc_config(tmp_path)
    straight = train(cfg.replace(run_name="straight"))[0]
    stopped = train(cfg.replace(run_name="stopped", total_steps=250))[0]
    stopped_loop = checkpoint_state(stopped)[2]
    assert stopped_loop["step"] == 250 and stopped_loop["episode_length"] == [50]
    assert stopped_loop["env"][0]["kind"] == "dm_control"
    resume([stopped], total_steps=400)
    a_state, a_buffer, a_loop = checkpoint_state(straight)
    b_state, b_buffer, b_loop = checkpoint_state(stopped)
    assert_trees_equal(a_state, b_state)
    assert a_buffer["size"] == b_buffer["size"] == 200  # one transition per agent step
    for field in a_buffer["data"]:
        np.testing.assert_array_equal(a_buffer["data"][field], b_buffer["data"][field])
    np.testing.assert_array_equal(a_loop["obs"], b_loop["obs"])
    for key in ("step", "episodes", "episode_return", "episode_length", "updates_done"):
        assert a_loop[key] == b_loop[key], key
    assert a_loop["env"][0]["step_count"] == b_loop["env"][0]["step_count"] == 0  # the 4th episode ended at 400: the 5th just began
    # The same rows, but for the evaluation that ended the stopped run's first session at 250.
    def comparable(rows):
        drop = ("wall_time", "steps_per_second")
        return [{k: v for k, v in r.items() if k not in drop + (("eval_return_mean", "eval_return_std")
                                                                if r["env_step"] == 250 else ())} for r in rows]
    assert comparable(read_metrics(straight)) == comparable(read_metrics(stopped))
    assert [r["env_step"] for r in read_metrics(stopped)] == list(range(50, 401, 50))


# ------------------------------------------------------------------------------------ videos and export
@pytest.fixture(scope="module")
def dmc_run(tmp_path_factory):
    return train(dmc_config(tmp_path_factory.mktemp("dmc"), total_steps=200, run_name="dmc"))[0]


@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")  # ffmpeg reads the video back
def test_eval_video_of_a_dmc_policy_is_not_blank(dmc_run, tmp_path, capsys):
    imageio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / "videos"
    assert main(["eval", str(dmc_run), "--episodes", "1", "--video", str(out)]) == 0, capsys.readouterr().err
    reader = imageio.get_reader(str(out / "episode-0.mp4"), "ffmpeg")
    try:
        frames = [frame.astype(np.float64) for frame in reader]
        fps = reader.get_meta_data()["fps"]
    finally:
        reader.close()
    assert len(frames) == 51  # the reset frame and one per agent step (100 env steps, action repeat 2)
    assert fps == 50  # real time: cartpole's 0.01 s control step, two per frame
    assert frames[0].var() > 0  # not one flat colour
    assert max(np.abs(f - frames[0]).mean() for f in frames) > 0.5  # the frames are not all equal


def test_npz_export_of_a_dmc_policy_acts_as_the_live_policy(dmc_run, tmp_path, capsys):
    from softac.export import NumpyPolicy

    out = tmp_path / "policy.npz"
    assert main(["export", str(dmc_run), "--format", "npz", "--out", str(out)]) == 0, capsys.readouterr().err
    agent, policy = load_agent(dmc_run), NumpyPolicy.load(out)
    env = make_config_env(agent.config)
    obs, _ = env.reset(seed=7)
    observations = []
    for _ in range(30):  # observations of a real episode, in the spec order the exported policy expects
        observations.append(np.asarray(obs, np.float32))
        obs, *_ = env.step(agent.act(observations[-1], deterministic=True))
    observations = np.stack(observations)
    np.testing.assert_allclose(policy(observations), agent.act(observations, deterministic=True), rtol=0, atol=1e-5)

"""Loading environments: a module that fails to import or construct is one sentence and nothing is created;
run-directory names are portable whatever the env id; --action-repeat (softac.envs.ActionRepeat) on Pendulum-v1.
The DeepMind Control Suite's own tests are in tests/test_dmc.py."""

from __future__ import annotations

import re

import numpy as np
import pytest

from softac import SACConfig, SoftacError, train
from softac.checkpoint import load_checkpoint
from softac.cli import main
from softac.envs import ENV_STEPS_INFO, make_config_env, make_env
from softac.logger import read_metrics
from softac.rundir import portable_name
from softac.rundir import run_dir_name
from tests.conftest import tiny_config

PORTABLE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


# ------------------------------------------------------------------------------------ failing modules
@pytest.mark.parametrize("env_id, module", [
    ("tests.fake_env_module_that_raises:FakeRaisesOnImport-v0", "tests.fake_env_module_that_raises"),
    ("tests.fake_env_module_that_fails_to_construct:FakeFailsToConstruct-v0",
     "tests.fake_env_module_that_fails_to_construct"),
])
def test_an_environment_module_that_fails_is_one_sentence_and_creates_nothing(tmp_path, capsys, env_id, module):
    root = tmp_path / "runs"
    code = main(["train", "--env", env_id, "--total-steps", "100", "--run-root", str(root), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("softac: error: ") and err.endswith(".")
    assert repr(module) in err and "AttributeError" in err and "flex_vertedge" in err
    assert err.count(". ") == 0  # one sentence
    assert not root.exists()


# ------------------------------------------------------------------------------------ run-directory names
@pytest.mark.parametrize("text, expected", [
    ("Pendulum-v1", "Pendulum-v1"),
    ("dm_control/cheetah-run-v0", "dm_control-cheetah-run-v0"),
    ("gymnax:Pendulum-v1", "gymnax-Pendulum-v1"),
    ("my_pkg.envs:Robot-v0", "my_pkg.envs-Robot-v0"),
    ("a b//c\\d*?é", "a-b-c-d-"),
    ("../../etc", "etc"),
    ("", "_"),
    ("///", "_"),
])
def test_portable_name_keeps_only_portable_characters(text, expected):
    assert portable_name(text) == expected
    assert PORTABLE.fullmatch(portable_name(text))


def test_default_run_directory_names_are_portable_for_every_kind_of_id():
    for env_id in ("dm_control/cheetah-run-v0", "gymnax:Pendulum-v1", "tests.conftest:Robot v0", "ALE/Pong-v5"):
        name = run_dir_name(SACConfig(env=env_id), seed=3, timestamp="20260101-000000")
        assert PORTABLE.fullmatch(name), name
        assert name.startswith(portable_name(env_id) + "__") and name.endswith("__seed3__20260101-000000")
        assert "/" not in name and ":" not in name and " " not in name


# ------------------------------------------------------------------------------------ action repeat
def test_action_repeat_sums_rewards_and_ends_the_episode_at_the_time_limit_env_step():
    repeated, plain = make_env("Pendulum-v1", action_repeat=3), make_env("Pendulum-v1")
    obs_r, _ = repeated.reset(seed=5)
    obs_p, _ = plain.reset(seed=5)
    np.testing.assert_array_equal(obs_r, obs_p)
    rng = np.random.default_rng(0)
    agent_steps, env_steps = 0, 0
    while True:
        action = rng.uniform(-2.0, 2.0, 1).astype(np.float32)
        obs_r, reward_r, term_r, trunc_r, info = repeated.step(action)
        agent_steps += 1
        expected, taken = 0.0, 0
        for _ in range(3):
            obs_p, reward_p, term_p, trunc_p, _ = plain.step(action)
            expected, taken = expected + float(reward_p), taken + 1
            if term_p or trunc_p:
                break
        env_steps += taken
        assert info[ENV_STEPS_INFO] == taken
        assert reward_r == pytest.approx(expected, rel=1e-12)
        np.testing.assert_array_equal(obs_r, obs_p)
        assert (term_r, trunc_r) == (term_p, trunc_p)
        if term_r or trunc_r:
            break
    # Pendulum's TimeLimit (200 env steps) cuts the 67th agent step after 2 of its 3 env steps.
    assert trunc_r and env_steps == 200 and agent_steps == 67 and info[ENV_STEPS_INFO] == 2


def test_action_repeat_counts_env_steps_in_the_schedule_and_the_metrics(tmp_path):
    cfg = tiny_config(tmp_path, action_repeat=2, total_steps=400, learning_starts=100, eval_every=200,
                      eval_episodes=1, log_every=100, run_name="repeat")
    assert make_config_env(cfg).repeat == 2
    run_dir = train(cfg)[0]
    rows = read_metrics(run_dir)
    assert [r["env_step"] for r in rows] == [100, 200, 300, 400]  # log_every and total_steps in env steps
    assert [r["eval_return_mean"] is not None for r in rows] == [False, True, False, True]
    assert [r["episodes"] for r in rows] == [0, 1, 1, 2]  # 200-env-step episodes: 2 in 400 env steps
    assert [r["episode_length"] for r in rows if r["episode_length"] is not None] == [200.0, 200.0]
    # The buffer holds one transition per agent step: 200; updates start at env step 100 (agent step 50),
    # one per agent step, before the actions of agent steps 50 .. 199.
    from softac.algos.registry import make_agent

    agent = make_agent(cfg.replace(algo="sac"), 3, 1)
    import jax

    state, buffer, loop = load_checkpoint(run_dir, agent.init(jax.random.PRNGKey(0)))
    assert loop["step"] == 400 and buffer["size"] == 200
    assert loop["updates_done"] == 150 and int(state.num_updates) == 150
    # Summed rewards: the buffer's rewards are sums of two Pendulum rewards (each in [-16.3, 0]).
    rewards = buffer["data"]["reward"][:200]
    assert rewards.min() >= -2 * 16.3 and rewards.min() < -16.3


def test_action_repeat_is_validated_with_one_sentence():
    with pytest.raises(SoftacError, match=r"action_repeat must be an integer >= 1"):
        SACConfig(action_repeat=0)
    with pytest.raises(SoftacError, match=r"multiple of num_envs x action_repeat \(3\)"):
        SACConfig(action_repeat=3, total_steps=1000)
    with pytest.raises(SoftacError, match="needs a Gymnasium environment"):
        SACConfig(env="gymnax:Pendulum-v1", action_repeat=2, total_steps=1000)
    assert SACConfig(action_repeat=2, num_envs=2, total_steps=1000).env_steps_per_iteration == 4

"""One contract for every registered algorithm (softac.algos.registry.REGISTRY): a new algorithm is
checked here the moment it is registered.

Each test is parametrised over the registry: determinism, exact resume, update_many == sequential
updates, save -> load -> act, the policy distribution's log-probabilities and entropy against an
independent float64 computation, the metrics it declares, and the CLI (smoke run and bad input).
Continuous algorithms run on Pendulum-v1, discrete ones on CartPole-v1, with tiny networks.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softac import load_agent, resume, train
from softac.callbacks import Callback
from softac.algos.base import Batch
from softac.algos.registry import REGISTRY, make_agent
from softac.checkpoint import load_checkpoint
from softac.envs import make_env, space_dims
from softac.evaluate import read_run_config
from softac.logger import read_metrics
from tests.conftest import SMALL_NETWORKS, tiny_config
from tests.helpers import assert_trees_equal, assert_update_many_equals_sequential_updates

ALGOS = sorted(REGISTRY)
TIMING_COLUMNS = ("wall_time", "steps_per_second")


def env_of(algo: str) -> str:
    return "CartPole-v1" if REGISTRY[algo].discrete else "Pendulum-v1"


def contract_config(tmp_path, algo: str, **changes):
    """A tiny run of `algo`: 300 steps, updates from step 100, one gradient step per env step whatever the
    algorithm's default (200 updates), small actor and critics."""
    base = dict(env=env_of(algo), algo=algo, total_steps=300, learning_starts=100, critic_hidden_sizes=(32, 32),
                gradient_steps=1, eval_every=150, checkpoint_every=150, log_every=50)
    base.update(changes)
    return tiny_config(tmp_path, **base)


def agent_and_dims(algo: str, **changes):
    env = make_env(env_of(algo))
    obs_dim, action_dim = space_dims(env)
    env.close()
    cfg = contract_config(Path("unused"), algo, **changes)
    return make_agent(cfg, obs_dim, action_dim), obs_dim, action_dim


def random_batches(algo: str, obs_dim: int, action_dim: int, leading: tuple, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    shape = leading + (32,)
    if REGISTRY[algo].discrete:
        action = rng.integers(0, action_dim, size=shape + (1,)).astype(np.float32)
    else:
        action = rng.uniform(-1, 1, size=shape + (action_dim,)).astype(np.float32)
    terminated = (rng.uniform(size=shape) < 0.2).astype(np.float32)
    return Batch(obs=jnp.asarray(rng.normal(size=shape + (obs_dim,)), jnp.float32), action=jnp.asarray(action),
                 reward=jnp.asarray(rng.normal(size=shape), jnp.float32),
                 next_obs=jnp.asarray(rng.normal(size=shape + (obs_dim,)), jnp.float32),
                 terminated=jnp.asarray(terminated))


def final_state(run_dir):
    cfg = read_run_config(run_dir)
    env = make_env(cfg.env)
    agent = make_agent(cfg, *space_dims(env))
    env.close()
    state, _, loop = load_checkpoint(run_dir, agent.init(jax.random.PRNGKey(0)), agent.policy_fields)
    return agent, state, loop


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """algo -> the run directory of `contract_config`'s 300-step run of it, trained once per module on first use:
    the determinism, resume and load tests compare against the same straight run instead of training it thrice."""
    root, runs = tmp_path_factory.mktemp("contract"), {}

    def run(algo: str) -> Path:
        if algo not in runs:
            runs[algo] = train(contract_config(root, algo, run_name=f"{algo}-straight"))[0]
        return runs[algo]

    return run


def metric_rows(run_dir):
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in read_metrics(run_dir)]


@pytest.mark.parametrize("algo", ALGOS)
def test_same_seed_gives_the_same_metrics_and_state(tmp_path, algo, straight_run):
    first = straight_run(algo)
    second = train(contract_config(tmp_path, algo, run_name="b"))[0]
    assert metric_rows(first) == metric_rows(second)
    assert_trees_equal(final_state(first)[1], final_state(second)[1])
    assert any(row["critic_loss"] is not None for row in metric_rows(first))  # it trained


class StopAtStep(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_log(self, step, rows):
        return step >= self.step


@pytest.mark.parametrize("algo", ALGOS)
def test_resume_from_a_checkpoint_equals_training_straight_through(tmp_path, algo, straight_run):
    """Stopped at step 150 of a 300-step run (by a callback, so the config, and with it any schedule over the
    training's length, is the same), then resumed."""
    straight = straight_run(algo)
    stopped = train(contract_config(tmp_path, algo, run_name="stopped"), callbacks=[StopAtStep(150)])[0]
    assert final_state(stopped)[2]["step"] == 150
    resumed = resume([stopped])[0]
    _, expected, expected_loop = final_state(straight)
    _, got, got_loop = final_state(resumed)
    assert_trees_equal(got, expected)
    assert got_loop["step"] == expected_loop["step"] == 300
    assert got_loop["updates_done"] == expected_loop["updates_done"] == 200 * read_run_config(straight).gradient_steps
    assert metric_rows(resumed) == metric_rows(straight)


@pytest.mark.parametrize("algo", ALGOS)
def test_update_many_equals_sequential_updates(algo):
    agent, obs_dim, action_dim = agent_and_dims(algo)
    state = agent.init(jax.random.PRNGKey(3))
    batches = random_batches(algo, obs_dim, action_dim, leading=(4,))
    assert_update_many_equals_sequential_updates(agent, jax.jit(agent.update), state, batches, num_steps=4)


@pytest.mark.parametrize("algo", ALGOS)
def test_update_returns_only_the_metrics_its_spec_declares(algo):
    agent, obs_dim, action_dim = agent_and_dims(algo)
    _, metrics = jax.jit(agent.update)(agent.init(jax.random.PRNGKey(0)),
                                       random_batches(algo, obs_dim, action_dim, leading=()))
    assert set(metrics) <= set(REGISTRY[algo].metrics)
    assert {"critic_loss", "actor_loss", "alpha"} <= set(metrics)
    assert all(np.isfinite(float(v)) for v in metrics.values())


@pytest.mark.parametrize("algo", ALGOS)
def test_a_loaded_agent_acts_as_the_live_one(algo, straight_run):
    run_dir = straight_run(algo)
    agent, state, _ = final_state(run_dir)
    loaded = load_agent(run_dir)
    obs = np.random.default_rng(0).normal(size=(16, agent.obs_dim)).astype(np.float32)
    policy = agent.policy_of(state)
    live = np.asarray(jax.jit(agent.deterministic_action)(policy, jnp.asarray(obs)))  # jitted, as load_agent
    expected = np.array([loaded.action_spec.to_env(a) for a in live])
    np.testing.assert_array_equal(loaded.act(obs, deterministic=True), expected)
    # Sampled: the loaded agent's first key is PRNGKey(seed) split once; the live agent given that key agrees.
    _, key = jax.random.split(jax.random.PRNGKey(loaded.config.seed))
    sampled, _ = jax.jit(agent.sample_action)(policy, jnp.asarray(obs), key)
    expected = np.array([loaded.action_spec.to_env(a) for a in np.asarray(sampled)])
    np.testing.assert_array_equal(loaded.act(obs, deterministic=False), expected)
    assert not np.array_equal(np.asarray(sampled), live)  # sampling is not the deterministic action


def _gauss_logpdf(u, mean, log_std):
    return -0.5 * ((u - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)


@pytest.mark.parametrize("algo", ALGOS)
def test_log_probabilities_and_entropy_of_the_policy(algo):
    """log pi(a|s) of sampled actions against float64 from the actor's own outputs, and the mean of -log pi over
    many samples against the entropy by quadrature (discrete: the exact sum -sum_a pi(a) log pi(a))."""
    agent, obs_dim, _ = agent_and_dims(algo)
    state = agent.init(jax.random.PRNGKey(1))
    policy = agent.policy_of(state)
    obs = jnp.asarray(np.random.default_rng(1).normal(size=(3, obs_dim)), jnp.float32)
    n = 40_000
    many_obs = jnp.repeat(obs, n, axis=0)
    actions, log_probs = jax.jit(agent.sample_action)(policy, many_obs, jax.random.PRNGKey(2))
    actions, log_probs = np.asarray(actions, np.float64), np.asarray(log_probs, np.float64).reshape(3, n)
    if REGISTRY[algo].discrete:
        logits = np.asarray(agent.actor.apply({"params": policy}, obs), np.float64)
        log_p = logits - np.log(np.sum(np.exp(logits - logits.max(-1, keepdims=True)), -1, keepdims=True)) \
            - logits.max(-1, keepdims=True)
        index = actions[..., 0].astype(int).reshape(3, n)
        np.testing.assert_allclose(log_probs, np.take_along_axis(log_p, index, axis=1), rtol=1e-5, atol=1e-5)
        entropy = -np.sum(np.exp(log_p) * log_p, axis=-1)
    else:
        mean, log_std = (np.asarray(x, np.float64) for x in agent.actor.apply(agent.actor_variables(policy), obs))
        a = np.clip(actions.reshape(3, n, -1), -1 + 1e-7, 1 - 1e-7)
        u = np.arctanh(a)
        expected = np.sum(_gauss_logpdf(u, mean[:, None], log_std[:, None]) - np.log(1 - a ** 2), axis=-1)
        saturated = np.any(np.abs(actions.reshape(3, n, -1)) > 1 - 1e-3, axis=-1)  # float32 a: atanh imprecise
        np.testing.assert_allclose(log_probs[~saturated], expected[~saturated], rtol=1e-3, atol=1e-3)
        # Entropy by quadrature over the pre-squash Gaussian (one action dimension on Pendulum).
        assert mean.shape[-1] == 1
        grid = np.linspace(-12, 12, 200_001)
        entropy = []
        for m, ls in zip(mean[:, 0], log_std[:, 0]):
            u = m + np.exp(ls) * grid
            density = np.exp(_gauss_logpdf(u, m, ls))
            log_pi = _gauss_logpdf(u, m, ls) - np.log(np.maximum(1 - np.tanh(u) ** 2, 1e-300))
            entropy.append(-np.trapezoid(density * log_pi, u))
        entropy = np.array(entropy)
    monte_carlo = -log_probs.mean(axis=1)
    stderr = log_probs.std(axis=1) / math.sqrt(n)
    assert np.all(np.abs(monte_carlo - entropy) < 5 * stderr + 1e-3), (monte_carlo, entropy, stderr)


def small_network_flags(algo: str) -> list[str]:
    """The flags of SMALL_NETWORKS (networks sized by an algorithm's own hyperparameters)."""
    return [arg for name, value in SMALL_NETWORKS.get(algo, {}).items() for arg in (f"--{name.replace('_', '-')}",
                                                                                    str(value))]


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "softac.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("algo", ALGOS)
def test_cli_trains_and_evaluates_it(tmp_path, algo):
    result = run_cli("train", "--algo", algo, "--env", env_of(algo), "--total-steps", "200", "--learning-starts",
                     "100", "--hidden-sizes", "16,16", "--critic-hidden-sizes", "16,16", "--batch-size", "16",
                     "--buffer-size", "1000", "--eval-every", "0", "--eval-episodes", "1", "--run-name", "r",
                     "--no-progress", "--no-tensorboard", *small_network_flags(algo), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "runs" / "r" / "config.json").read_text())
    assert config["algo"] == algo and config["learning_rate"] is not None  # the algorithm's defaults recorded
    result = run_cli("eval", str(tmp_path / "runs" / "r"), "--episodes", "1", cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("algo", ALGOS)
def test_cli_refuses_an_action_space_it_does_not_handle(tmp_path, algo):
    other = "Pendulum-v1" if REGISTRY[algo].discrete else "CartPole-v1"
    result = run_cli("train", "--algo", algo, "--env", other, "--total-steps", "10", cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.startswith("softac: error:")]
    assert result.returncode == 2 and "Traceback" not in result.stderr and len(lines) == 1
    assert f"--algo {algo} does not handle" in lines[0]
    assert not (tmp_path / "runs").exists()

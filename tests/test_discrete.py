"""Discrete-action SAC: its losses against hand computations, its update against an independent
recomputation, and the bridge to the exact tabular theory (softac.tabular)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softac import SACConfig, SoftacError, load_agent, train
from softac.algos.sac_discrete import losses as ld
from softac import tabular
from softac.algos.base import Batch
from softac.algos.sac_discrete.agent import SACDiscrete
from softac.logger import read_metrics
from tests.conftest import FiniteMDPEnv, tiny_config


def test_discrete_losses_on_a_hand_made_batch():
    probs = jnp.array([[0.5, 0.5], [0.25, 0.75]])
    log_probs = jnp.log(probs)
    q = jnp.array([[[1.0, 2.0], [0.0, 4.0]],   # critic 1
                   [[2.0, 1.0], [1.0, 3.0]]])  # critic 2 -> min: [[1, 1], [0, 3]]
    alpha = 0.5
    # V(s) = sum_a pi (min Q - alpha log pi)
    v0 = 0.5 * (1 - 0.5 * math.log(0.5)) * 2
    v1 = 0.25 * (0 - 0.5 * math.log(0.25)) + 0.75 * (3 - 0.5 * math.log(0.75))
    np.testing.assert_allclose(ld.soft_state_value(probs, log_probs, q, alpha), [v0, v1], rtol=1e-6)
    # y = r + gamma (1 - terminated) V(s'): the second transition is terminal, the first (say truncated) is not.
    y = ld.discrete_soft_q_target(jnp.array([1.0, -1.0]), jnp.array([0.0, 1.0]), probs, log_probs, q, alpha, 0.9)
    np.testing.assert_allclose(y, [1.0 + 0.9 * v0, -1.0], rtol=1e-6)
    # Q of the taken actions, per critic.
    np.testing.assert_array_equal(ld.taken_action_q(q, jnp.array([[1.0], [0.0]])), [[2.0, 0.0], [1.0, 1.0]])
    # J_pi = mean_s sum_a pi (alpha log pi - min Q); entropy -sum pi log pi.
    loss, info = ld.discrete_actor_loss(probs, log_probs, q, alpha)
    expected = np.mean([0.5 * (0.5 * math.log(0.5) - 1) * 2,
                        0.25 * (0.5 * math.log(0.25) - 0) + 0.75 * (0.5 * math.log(0.75) - 3)])
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    entropies = [math.log(2), -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]
    np.testing.assert_allclose(info["entropy"], np.mean(entropies), rtol=1e-6)
    # The actor loss sends no gradient into the critics.
    grad_q = jax.grad(lambda q_: ld.discrete_actor_loss(probs, log_probs, q_, alpha)[0])(q)
    assert np.all(np.asarray(grad_q) == 0)


def _agent_and_batch(**cfg_changes):
    cfg = SACConfig.build(algo="sac-discrete", hidden_sizes=(16, 16), batch_size=6, gamma=0.95, **cfg_changes)
    agent = SACDiscrete(cfg.with_algorithm_defaults(), obs_dim=3, action_dim=4)
    rng = np.random.default_rng(0)
    batch = Batch(obs=jnp.asarray(rng.standard_normal((6, 3)), jnp.float32),
                  action=jnp.asarray(rng.integers(0, 4, (6, 1)), jnp.float32),
                  reward=jnp.asarray(rng.standard_normal(6), jnp.float32),
                  next_obs=jnp.asarray(rng.standard_normal((6, 3)), jnp.float32),
                  terminated=jnp.asarray([0, 1, 0, 0, 1, 0], jnp.float32))
    return agent, agent.init(jax.random.PRNGKey(3)), batch


def test_update_critic_loss_matches_an_independent_float64_computation():
    agent, state, batch = _agent_and_batch()
    _, metrics = jax.jit(agent.update)(state, batch)
    f64 = lambda x: np.asarray(x, np.float64)
    logits = f64(agent.actor.apply({"params": state.actor_params}, batch.next_obs))
    log_pi = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    pi = np.exp(log_pi)
    target_q = f64(agent.critic.apply({"params": state.target_critic_params}, batch.next_obs)).min(0)
    alpha = math.exp(float(state.log_alpha))
    y = f64(batch.reward) + 0.95 * (1 - f64(batch.terminated)) * (pi * (target_q - alpha * log_pi)).sum(-1)
    q = f64(agent.critic.apply({"params": state.critic_params}, batch.obs))
    taken = q[:, np.arange(6), f64(batch.action)[:, 0].astype(int)]
    expected = 0.5 * np.mean(np.sum((taken - y[None]) ** 2, axis=0))
    np.testing.assert_allclose(float(metrics["critic_loss"]), expected, rtol=1e-4)


@pytest.mark.parametrize("target_entropy, rises", [(math.log(4), True), (0.01, False)])
def test_temperature_moves_towards_the_target_entropy(target_entropy, rises):
    agent, state, batch = _agent_and_batch(target_entropy=target_entropy)
    entropy_before = float(ld.policy_entropy(*agent.policy(state.actor_params, batch.obs)).mean())
    assert 0.01 < entropy_before < math.log(4)  # an untrained policy is near, but not at, uniform
    new_state, _ = jax.jit(agent.update)(state, batch)
    assert (float(new_state.log_alpha) > float(state.log_alpha)) == rises


def test_default_target_entropy_is_a_fraction_of_log_num_actions():
    agent, _, _ = _agent_and_batch(target_entropy_scale=0.3)
    assert agent.target_entropy == pytest.approx(0.3 * math.log(4))
    with pytest.raises(SoftacError, match="target_entropy_scale"):
        SACConfig.build(algo="sac-discrete", target_entropy_scale=1.0)


def test_cartpole_trains_evaluates_and_resumes_through_the_shared_loop(tmp_path):
    from softac import resume

    run_dir = train(tiny_config(tmp_path, env="CartPole-v1", total_steps=300, eval_every=150))[0]
    assert "sac-discrete" in run_dir.name
    agent = load_agent(run_dir)
    action = agent.act(np.zeros(4, np.float32))
    assert isinstance(action, int) and action in (0, 1)
    assert agent.evaluate(episodes=2).shape == (2,)
    resume([run_dir], total_steps=400)
    assert read_metrics(run_dir)[-1]["env_step"] == 400


def test_discrete_sac_learns_the_soft_q_and_the_soft_optimal_policy_of_a_finite_mdp(tmp_path):
    """The bridge between the tabular theory and the deep algorithm.

    A random 4-state, 3-action MDP with one-hot observations (tests.conftest.FiniteMDPEnv), gamma 0.9,
    fixed alpha 0.5. After 4000 steps discrete SAC's critics must match soft_policy_evaluation of its
    OWN policy (Lemma 1's fixed point) and its policy must match softmax(Q*/alpha) from
    soft_value_iteration (the optimum of soft policy iteration).

    Tolerances: Q^pi lies in [6.2, 8.6] here. Measured errors were 0.09 (Q) and 0.017 (policy), from
    minibatch noise with stochastic transitions. The bounds 0.3 and 0.05 leave a 3x margin, while the
    bugs they must catch are far larger: dropping the entropy bonus shifts Q by alpha*H/(1-gamma) ~ 3,
    a wrong gamma or a terminal-instead-of-truncated cut-off by > 1, and a temperature off by 2x moves
    the soft-optimal policy by > 0.1. tau = 0.05 (not 0.005) lets the target critics converge within
    the budget: the bias left after n updates is about (1 - tau (1 - gamma))^n of the value scale.
    """
    alpha, gamma = 0.5, 0.9
    cfg = SACConfig(env="softac-test/FiniteMDP-v0", alpha=alpha, gamma=gamma, tau=0.05, total_steps=4000,
                    learning_starts=500, hidden_sizes=(64, 64), batch_size=64, learning_rate=1e-3, eval_every=0,
                    eval_episodes=2, checkpoint_every=0, run_root=str(tmp_path), progress=False, tensorboard=False)
    agent = load_agent(train(cfg)[0])
    mdp = FiniteMDPEnv()
    P, R = mdp.P, mdp.R
    one_hot = np.eye(len(R), dtype=np.float32)
    sac = agent.algorithm
    pi = np.asarray(sac.policy(agent.state.actor_params, one_hot)[0], np.float64)
    pi /= pi.sum(axis=1, keepdims=True)
    q = np.asarray(sac.critic.apply({"params": agent.state.critic_params}, one_hot), np.float64)

    q_pi = tabular.soft_policy_evaluation_exact(P, R, pi, gamma, alpha)
    assert np.abs(q - q_pi[None]).max() < 0.3, (q, q_pi)
    pi_star = tabular.soft_policy_improvement(tabular.soft_value_iteration(P, R, gamma, alpha), alpha)
    assert np.abs(pi - pi_star).max() < 0.05, (pi, pi_star)

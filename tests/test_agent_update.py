"""Tests for softac.agent.SAC.update: one SAC v2 gradient step against an independent recomputation.

The recomputation reuses only the networks' forward passes (agent.actor / agent.critic / agent.sample_action)
and the key schedule of SAC.update; targets, losses, optimiser steps and the Polyak average are written out
here. Everything runs jitted, compiled once per agent: with these tiny networks compiling is the whole cost.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from softac.algos.sac.agent import SAC
from softac.config import SACConfig

from tests.helpers import assert_update_many_equals_sequential_updates, ACTION_DIM, BATCH, OBS_DIM, assert_trees_close, jitted, leaves64, make_batch
LR, GAMMA, TAU = 1e-2, 0.9, 0.3


def make_agent(**changes) -> SAC:
    cfg = SACConfig(hidden_sizes=(16, 16), batch_size=BATCH, buffer_size=64, **changes)
    return SAC(cfg.with_algorithm_defaults(), OBS_DIM, ACTION_DIM)


@pytest.fixture(scope="module")
def base():
    """A learned-alpha agent and its jitted init/update."""
    agent = make_agent(learning_rate=LR, gamma=GAMMA, tau=TAU, initial_alpha=0.5)
    return agent, jitted(agent, "init"), jitted(agent, "update")


@pytest.fixture(scope="module")
def stepped(base):
    """The base agent two updates in (so the targets differ from the online critics and Adam's moments
    are non-trivial), the state before a third update, that update's batch, its result, and the
    independent recomputation of that update."""
    agent, init, update = base
    state = init(jax.random.PRNGKey(0))
    for seed in (1, 2):
        state, _ = update(state, make_batch(seed))
    batch = make_batch(3)
    new_state, metrics = update(state, batch)
    return agent, state, batch, new_state, metrics, _manual_update(agent, state, batch)


def _manual_update(agent: SAC, state, batch) -> dict:
    """One SAC v2 step written out independently of softac.losses (networks and key schedule reused)."""

    @jax.jit
    def run(state, batch):
        _, next_key, actor_key = jax.random.split(state.key, 3)
        alpha = jnp.exp(state.log_alpha)
        next_action, next_log_prob = agent.sample_action(state.actor_params, batch.next_obs, next_key)
        next_q = agent.critic.apply({"params": state.target_critic_params}, batch.next_obs, next_action)
        next_q_online = agent.critic.apply({"params": state.critic_params}, batch.next_obs, next_action)
        q = agent.critic.apply({"params": state.critic_params}, batch.obs, batch.action)

        # Critic step on 1/2 mean_b sum_i (Q_i - y)^2 with y a constant.
        y = batch.reward + agent.cfg.gamma * (1.0 - batch.terminated) * (
            jnp.minimum(next_q[0], next_q[1]) - alpha * next_log_prob)

        def critic_objective(params):
            q_ = agent.critic.apply({"params": params}, batch.obs, batch.action)
            return 0.5 * jnp.mean(jnp.sum((q_ - y[None]) ** 2, axis=0))

        grads = jax.grad(critic_objective)(state.critic_params)
        updates, _ = optax.adam(LR).update(grads, state.critic_opt_state)
        critic_params = optax.apply_updates(state.critic_params, updates)

        # Actor step against the UPDATED critics, with the actor key.
        def actor_objective(actor_params):
            action, log_prob = agent.sample_action(actor_params, batch.obs, actor_key)
            q_ = agent.critic.apply({"params": critic_params}, batch.obs, action)
            return jnp.mean(alpha * log_prob - jnp.minimum(q_[0], q_[1])), log_prob

        (actor_loss, log_prob), grads = jax.value_and_grad(actor_objective, has_aux=True)(state.actor_params)
        updates, _ = optax.adam(LR).update(grads, state.actor_opt_state)
        actor_params = optax.apply_updates(state.actor_params, updates)

        # Temperature: d/dlog_alpha of -log_alpha * mean(log pi + Hbar) is -mean(log pi + Hbar), Hbar = -|A|.
        alpha_grad = -jnp.mean(log_prob - float(ACTION_DIM))
        updates, _ = optax.adam(LR).update(alpha_grad, state.alpha_opt_state)
        log_alpha = state.log_alpha + updates
        return dict(next_q=next_q, next_q_online=next_q_online, next_log_prob=next_log_prob, q=q,
                    critic_params=critic_params, actor_params=actor_params, actor_loss=actor_loss,
                    log_prob=log_prob, log_alpha=log_alpha)

    return run(state, batch)


def _target64(agent: SAC, state, batch, next_q, next_log_prob):
    """y = r + gamma (1 - terminated) (min_i Qbar_i(s', a') - alpha log pi(a'|s')), in float64 numpy."""
    next_q = np.asarray(next_q, np.float64)
    assert next_q.shape == (2, BATCH)
    alpha = math.exp(float(state.log_alpha))
    r = np.asarray(batch.reward, np.float64)
    d = np.asarray(batch.terminated, np.float64)
    soft_value = np.minimum(next_q[0], next_q[1]) - alpha * np.asarray(next_log_prob, np.float64)
    return r + agent.cfg.gamma * (1.0 - d) * soft_value


def _critic_loss64(q, y):
    q = np.asarray(q, np.float64)
    return 0.5 * np.mean(np.sum((q - y[None]) ** 2, axis=0))


# ----------------------------------------------------------------------------- critic loss
def test_reported_critic_loss_matches_independent_recomputation(stepped):
    agent, state, batch, _, metrics, manual = stepped
    y = _target64(agent, state, batch, manual["next_q"], manual["next_log_prob"])
    expected = _critic_loss64(manual["q"], y)
    assert float(metrics["critic_loss"]) == pytest.approx(expected, rel=1e-4)
    assert float(metrics["q_mean"]) == pytest.approx(np.mean(np.asarray(manual["q"], np.float64)), rel=1e-4, abs=1e-6)
    assert float(metrics["alpha"]) == pytest.approx(math.exp(float(state.log_alpha)), rel=1e-6)

    # The check has teeth: bootstrapping from the online critics instead of the targets, or ignoring
    # `terminated`, gives a visibly different loss.
    y_online = _target64(agent, state, batch, manual["next_q_online"], manual["next_log_prob"])
    assert abs(_critic_loss64(manual["q"], y_online) - expected) > 1e-3 * abs(expected)
    no_done = batch._replace(terminated=jnp.zeros_like(batch.terminated))
    y_no_done = _target64(agent, state, no_done, manual["next_q"], manual["next_log_prob"])
    assert abs(_critic_loss64(manual["q"], y_no_done) - expected) > 1e-3 * abs(expected)


def test_critic_params_are_one_adam_step_on_the_critic_loss(stepped):
    _, state, _, new_state, _, manual = stepped
    assert_trees_close(new_state.critic_params, manual["critic_params"])
    # ... and they did move.
    assert any(np.abs(x - y).max() > 1e-4 for x, y in zip(leaves64(new_state.critic_params),
                                                           leaves64(state.critic_params)))


def test_actor_and_temperature_steps_use_the_updated_critics_and_the_actor_key(stepped):
    _, state, _, new_state, metrics, manual = stepped
    assert_trees_close(new_state.actor_params, manual["actor_params"])
    assert float(metrics["actor_loss"]) == pytest.approx(float(manual["actor_loss"]), rel=1e-4, abs=1e-6)
    log_prob = np.asarray(manual["log_prob"], np.float64)
    assert float(metrics["entropy"]) == pytest.approx(-log_prob.mean(), rel=1e-4, abs=1e-6)
    np.testing.assert_allclose(float(new_state.log_alpha), float(manual["log_alpha"]), rtol=1e-5, atol=1e-6)
    expected_alpha_loss = -float(state.log_alpha) * np.mean(log_prob - float(ACTION_DIM))
    assert float(metrics["alpha_loss"]) == pytest.approx(expected_alpha_loss, rel=1e-4, abs=1e-6)


def test_target_critics_move_tau_towards_the_new_critics(stepped):
    agent, state, _, new_state, _, _ = stepped
    assert agent.cfg.tau == TAU
    for new_t, new_c, old_t in zip(leaves64(new_state.target_critic_params), leaves64(new_state.critic_params),
                                   leaves64(state.target_critic_params)):
        np.testing.assert_allclose(new_t, TAU * new_c + (1.0 - TAU) * old_t, rtol=1e-6, atol=1e-7)
    # Not a copy of either side.
    assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(leaves64(new_state.target_critic_params),
                                                          leaves64(new_state.critic_params)))
    assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(leaves64(new_state.target_critic_params),
                                                          leaves64(state.target_critic_params)))


def test_update_advances_key_and_counter(stepped):
    _, state, _, new_state, _, _ = stepped
    assert int(state.num_updates) == 2 and int(new_state.num_updates) == 3
    np.testing.assert_array_equal(np.asarray(new_state.key), np.asarray(jax.random.split(state.key, 3)[0]))


def test_init_target_is_a_separate_equal_copy(base):
    _, init, _ = base
    state = init(jax.random.PRNGKey(4))
    assert_trees_close(state.target_critic_params, state.critic_params, rtol=0, atol=0)
    assert float(state.log_alpha) == float(np.float32(math.log(0.5)))  # initial_alpha
    assert int(state.num_updates) == 0


# ------------------------------------------------------------------------------ temperature
@pytest.mark.parametrize("target_entropy, alpha_rises", [(10.0, True), (-100.0, False)])
def test_learned_temperature_moves_towards_the_target_entropy(base, target_entropy, alpha_rises):
    agent = make_agent(learning_rate=LR, gamma=GAMMA, tau=TAU, initial_alpha=0.5, target_entropy=target_entropy)
    assert agent.learn_alpha and agent.target_entropy == target_entropy
    # The base agent differs only in target_entropy, so its (already compiled) init gives this agent's state.
    state = base[1](jax.random.PRNGKey(1))
    new_state, metrics = jitted(agent, "update")(state, make_batch(7))
    entropy = float(metrics["entropy"])
    change = float(new_state.log_alpha) - float(state.log_alpha)
    # alpha rises when the entropy is below the target, falls when above.
    assert (entropy < target_entropy) == alpha_rises
    assert np.sign(change) == -np.sign(entropy - target_entropy)
    assert abs(change) == pytest.approx(LR, rel=1e-3)  # Adam's first step has the size of the learning rate
    expected_loss = math.log(0.5) * (entropy - target_entropy)  # -log_alpha * mean(log pi + Hbar)
    assert float(metrics["alpha_loss"]) == pytest.approx(expected_loss, rel=1e-4)


def test_fixed_temperature_stays_fixed(base):
    agent = make_agent(alpha=0.2, learning_rate=LR)
    assert not agent.learn_alpha
    # Only log_alpha of this agent's init is compiled (XLA drops the rest); the networks are the base agent's.
    init_log_alpha = jax.jit(lambda key: agent.init(key).log_alpha)(jax.random.PRNGKey(2))
    assert float(init_log_alpha) == float(np.float32(math.log(0.2)))
    state = base[1](jax.random.PRNGKey(2)).replace(log_alpha=init_log_alpha)
    update = jitted(agent, "update")
    for seed in (1, 2):
        new_state, metrics = update(state, make_batch(seed))
        assert float(new_state.log_alpha) == float(np.float32(math.log(0.2)))
        assert float(metrics["alpha"]) == pytest.approx(0.2, rel=1e-6)
        assert "alpha_loss" not in metrics
        for a, b in zip(leaves64(new_state.alpha_opt_state), leaves64(state.alpha_opt_state)):
            np.testing.assert_array_equal(a, b)
        # The rest of the agent does learn.
        assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(leaves64(new_state.actor_params),
                                                              leaves64(state.actor_params)))
        state = new_state


# ------------------------------------------------------------------------------ update_many
def test_update_many_equals_sequential_updates(base):
    agent, init, update = base
    assert_update_many_equals_sequential_updates(agent, update, init(jax.random.PRNGKey(5)),
                                                 make_batch(11, leading=(3,)), num_steps=3)
"""Tests for SAC v1 (softac.algos.sac_v1): hand-made loss batches, and one update against
an independent recomputation.

SAC v1 (Haarnoja et al. 2018a, Algorithm 1), one simultaneous step at the pre-update parameters:
    J_V  = E_s [ 1/2 (V_psi(s) - (min_i Q_i(s,a) - alpha log pi(a|s)))^2 ],  a ~ pi(.|s)
    J_Q  = sum_i E [ 1/2 (Q_i(s,a) - (r + gamma (1-terminated) V_psibar(s')))^2 ]
    J_pi = E_s [ alpha log pi(a|s) - min_i Q_i(s,a) ]   (reparameterised, the same sample a as J_V)
    psibar <- tau psi + (1 - tau) psibar, after the step.
The recomputation reuses only the networks' forward passes (agent.actor via agent.sample_action, agent.critic,
agent.value) and the key schedule of SACV1.update (`key, actor_key = split(state.key)`); targets, losses,
gradients' objectives, optimiser steps and the Polyak average are written out here. Everything runs jitted and
compiled once per agent: with these tiny networks compiling is the whole cost.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from softac.algos.sac_v1.agent import SACV1
from softac.config import SACConfig
from softac.errors import SoftacError
from softac.algos.sac_v1.losses import soft_value_target, value_based_q_target, value_loss

from tests.helpers import (ACTION_DIM, BATCH, OBS_DIM, assert_trees_close, assert_trees_equal,
                           assert_update_many_equals_sequential_updates, jitted, leaves64, make_batch)
GAMMA, TAU = 0.9, 0.3
# Distinct learning rates per network, so that a mix-up of optimisers shows. LR is the temperature's.
ACTOR_LR, CRITIC_LR, VALUE_LR, LR = 1e-3, 2e-3, 5e-3, 1e-2
DEFAULT_ALPHA = 0.2  # sac-v1 with neither alpha nor reward_scale: 1 / 5


def f32(x):
    return jnp.asarray(x, jnp.float32)


def make_agent(**changes) -> SACV1:
    base = dict(algo="sac-v1", hidden_sizes=(16, 16), batch_size=BATCH, buffer_size=64, gamma=GAMMA, tau=TAU,
                learning_rate=LR, actor_learning_rate=ACTOR_LR, critic_learning_rate=CRITIC_LR,
                value_learning_rate=VALUE_LR)
    base.update(changes)
    return SACV1(SACConfig.build(**base).with_algorithm_defaults(), OBS_DIM, ACTION_DIM)


def trees_differ(a, b, threshold=1e-4) -> bool:
    return any(np.abs(x - y).max() > threshold for x, y in zip(leaves64(a), leaves64(b)))


# ============================================================================ 1. the v1 losses
# -------------------------------------------------------------------------- soft_value_target
QA = [[1.0, -2.0, 0.5],   # critic 1
      [0.5, -1.0, 3.0]]   # critic 2
LOG_PROB = [-1.0, 0.5, 2.0]
ALPHA = 0.2


def test_soft_value_target_hand_batch():
    # min_i Q_i      = [0.5, -2.0, 0.5]   (critic 2, critic 1, critic 1)
    # alpha * log pi = [-0.2, 0.1, 0.4]
    # target         = [0.7, -2.1, 0.1]
    target = soft_value_target(f32(QA), f32(LOG_PROB), f32(ALPHA))
    assert target.shape == (3,)
    np.testing.assert_allclose(np.asarray(target), [0.7, -2.1, 0.1], rtol=1e-6, atol=1e-6)
    # The min is symmetric in the critics (not the mean, not a fixed critic).
    swapped = soft_value_target(f32(QA)[::-1], f32(LOG_PROB), f32(ALPHA))
    np.testing.assert_allclose(np.asarray(swapped), [0.7, -2.1, 0.1], rtol=1e-6, atol=1e-6)
    # alpha scales the entropy term: alpha = 1 gives [1.5, -2.5, -1.5].
    target_1 = soft_value_target(f32(QA), f32(LOG_PROB), f32(1.0))
    np.testing.assert_allclose(np.asarray(target_1), [1.5, -2.5, -1.5], rtol=1e-6, atol=1e-6)


def test_soft_value_target_is_a_constant():
    # No gradient reaches the Q networks, the policy's log-probabilities or alpha through the target.
    def total(q, lp, a):
        return jnp.sum(soft_value_target(q, lp, a))

    g_q, g_lp, g_a = jax.grad(total, argnums=(0, 1, 2))(f32(QA), f32(LOG_PROB), f32(ALPHA))
    np.testing.assert_array_equal(np.asarray(g_q), np.zeros((2, 3)))
    np.testing.assert_array_equal(np.asarray(g_lp), np.zeros(3))
    assert float(g_a) == 0.0


# ---------------------------------------------------------------------------------- value_loss
V = [1.0, 2.0, -1.0]
V_TARGET = [0.5, 2.5, 1.0]


def test_value_loss_hand_numbers():
    # errors [0.5, -0.5, -2.0] -> squared [0.25, 0.25, 4.0]; mean 1.5; times 1/2:
    loss, info = value_loss(f32(V), f32(V_TARGET))
    assert float(loss) == pytest.approx(0.75, rel=1e-6)
    assert float(info["value_loss"]) == pytest.approx(0.75, rel=1e-6)
    assert float(info["v_mean"]) == pytest.approx(2.0 / 3.0, rel=1e-6)


def test_value_loss_gradients():
    # d loss / d V_b = (V_b - target_b) / B
    g_v = jax.grad(lambda v: value_loss(v, f32(V_TARGET))[0])(f32(V))
    np.testing.assert_allclose(np.asarray(g_v), np.array([0.5, -0.5, -2.0]) / 3.0, rtol=1e-6, atol=1e-7)
    # No gradient into the target.
    g_t = jax.grad(lambda t: value_loss(f32(V), t)[0])(f32(V_TARGET))
    np.testing.assert_array_equal(np.asarray(g_t), np.zeros(3))


# ------------------------------------------------------------------------ value_based_q_target
def test_value_based_q_target_hand_batch():
    # Transition 0: ordinary.  Transition 1: terminated, no bootstrap (its V_psibar(s') = 3.8 is not used).
    # Transition 2: ordinary.  Transition 3: cut off by a time limit, stored with terminated = 0: bootstraps.
    reward = f32([1.0, -0.5, 2.0, 0.25])
    terminated = f32([0.0, 1.0, 0.0, 0.0])
    next_v = f32([1.5, 3.8, -0.5, -2.7])
    # gamma 0.9: [1 + 1.35, -0.5, 2 - 0.45, 0.25 - 2.43]
    y = value_based_q_target(reward, terminated, next_v, 0.9)
    assert y.shape == (4,)
    np.testing.assert_allclose(np.asarray(y), [2.35, -0.5, 1.55, -2.18], rtol=1e-6, atol=1e-6)
    # gamma 0.5: [1 + 0.75, -0.5, 2 - 0.25, 0.25 - 1.35]
    y = value_based_q_target(reward, terminated, next_v, 0.5)
    np.testing.assert_allclose(np.asarray(y), [1.75, -0.5, 1.75, -1.1], rtol=1e-6, atol=1e-6)
    # gamma 0: the reward alone.
    y = value_based_q_target(reward, terminated, next_v, 0.0)
    np.testing.assert_allclose(np.asarray(y), [1.0, -0.5, 2.0, 0.25], rtol=1e-6, atol=1e-6)


# ================================================================== 2.-4. one SACV1.update
@pytest.fixture(scope="module")
def base():
    """A default sac-v1 agent (fixed alpha 1/5, distinct learning rates) and its jitted init/update."""
    agent = make_agent()
    return agent, jitted(agent, "init"), jitted(agent, "update")


@pytest.fixture(scope="module")
def stepped(base):
    """Two updates in (target V differs from V, Adam's moments are non-trivial): the state before a third
    update, its batch, its result, and the independent recomputation of that update."""
    agent, init, update = base
    state = init(jax.random.PRNGKey(0))
    for seed in (1, 2):
        state, _ = update(state, make_batch(seed))
    batch = make_batch(3)
    new_state, metrics = update(state, batch)
    return agent, state, batch, new_state, metrics, _manual_update(agent, state, batch)


def _manual_update(agent: SACV1, state, batch) -> dict:
    """One SAC v1 step written out independently of softac.losses / losses_v1 (networks and key schedule reused)."""

    def v_apply(params, obs):
        return agent.value.apply({"params": params}, obs)[..., 0]

    @jax.jit
    def run(state, batch):
        _, actor_key = jax.random.split(state.key)
        alpha = jnp.exp(state.log_alpha)
        # One sample a ~ pi(.|s) per state, at the pre-update policy.
        action_pi, log_prob = agent.sample_action(state.actor_params, batch.obs, actor_key)
        q_pi = agent.critic.apply({"params": state.critic_params}, batch.obs, action_pi)
        q = agent.critic.apply({"params": state.critic_params}, batch.obs, batch.action)
        v = v_apply(state.value_params, batch.obs)
        next_v_target = v_apply(state.target_value_params, batch.next_obs)
        next_v_online = v_apply(state.value_params, batch.next_obs)

        # V step: 1/2 mean (V_psi(s) - y_V)^2, y_V = min_i Q_i(s, a) - alpha log pi(a|s), a constant here.
        y_v = jnp.minimum(q_pi[0], q_pi[1]) - alpha * log_prob

        def value_objective(params):
            return 0.5 * jnp.mean((v_apply(params, batch.obs) - y_v) ** 2)

        grads = jax.grad(value_objective)(state.value_params)
        updates, _ = optax.adam(VALUE_LR).update(grads, state.value_opt_state)
        value_params = optax.apply_updates(state.value_params, updates)

        # Q step: 1/2 mean_b sum_i (Q_i - y_Q)^2, y_Q = r + gamma (1 - d) V_psibar(s'), a constant here.
        y_q = batch.reward + GAMMA * (1.0 - batch.terminated) * next_v_target

        def critic_objective(params):
            q_ = agent.critic.apply({"params": params}, batch.obs, batch.action)
            return 0.5 * jnp.mean(jnp.sum((q_ - y_q[None]) ** 2, axis=0))

        grads = jax.grad(critic_objective)(state.critic_params)
        updates, _ = optax.adam(CRITIC_LR).update(grads, state.critic_opt_state)
        critic_params = optax.apply_updates(state.critic_params, updates)

        # pi step against the PRE-update critics, with the same key (so the same noise) as the V target.
        def actor_objective(params):
            a, lp = agent.sample_action(params, batch.obs, actor_key)
            q_ = agent.critic.apply({"params": state.critic_params}, batch.obs, a)
            return jnp.mean(alpha * lp - jnp.minimum(q_[0], q_[1]))

        grads = jax.grad(actor_objective)(state.actor_params)
        updates, _ = optax.adam(ACTOR_LR).update(grads, state.actor_opt_state)
        actor_params = optax.apply_updates(state.actor_params, updates)
        return dict(log_prob=log_prob, q_pi=q_pi, q=q, v=v, next_v_target=next_v_target,
                    next_v_online=next_v_online, value_params=value_params, critic_params=critic_params,
                    actor_params=actor_params)

    return run(state, batch)


def _np(x):
    return np.asarray(x, np.float64)


def _value_loss64(manual, alpha):
    y_v = np.minimum(_np(manual["q_pi"][0]), _np(manual["q_pi"][1])) - alpha * _np(manual["log_prob"])
    return 0.5 * np.mean((_np(manual["v"]) - y_v) ** 2)


def _critic_loss64(batch, manual, next_v, gamma=GAMMA):
    y_q = _np(batch.reward) + gamma * (1.0 - _np(batch.terminated)) * _np(next_v)
    return 0.5 * np.mean(np.sum((_np(manual["q"]) - y_q[None]) ** 2, axis=0))


def _actor_loss64(manual, alpha):
    return np.mean(alpha * _np(manual["log_prob"]) - np.minimum(_np(manual["q_pi"][0]), _np(manual["q_pi"][1])))


def test_reported_losses_match_independent_recomputation(stepped):
    agent, state, batch, _, metrics, manual = stepped
    alpha = math.exp(float(state.log_alpha))
    assert alpha == pytest.approx(DEFAULT_ALPHA, rel=1e-6)
    assert set(metrics) == {"value_loss", "v_mean", "critic_loss", "q_mean", "actor_loss", "entropy", "alpha"}

    expected_v = _value_loss64(manual, alpha)
    expected_q = _critic_loss64(batch, manual, manual["next_v_target"])
    expected_pi = _actor_loss64(manual, alpha)
    assert float(metrics["value_loss"]) == pytest.approx(expected_v, rel=1e-4)
    assert float(metrics["critic_loss"]) == pytest.approx(expected_q, rel=1e-4)
    assert float(metrics["actor_loss"]) == pytest.approx(expected_pi, rel=1e-4, abs=1e-6)
    assert float(metrics["v_mean"]) == pytest.approx(np.mean(_np(manual["v"])), rel=1e-4, abs=1e-6)
    assert float(metrics["q_mean"]) == pytest.approx(np.mean(_np(manual["q"])), rel=1e-4, abs=1e-6)
    assert float(metrics["entropy"]) == pytest.approx(-np.mean(_np(manual["log_prob"])), rel=1e-4, abs=1e-6)
    assert float(metrics["alpha"]) == pytest.approx(DEFAULT_ALPHA, rel=1e-6)

    # The checks have teeth. Bootstrapping the Q target from the ONLINE V, ignoring `terminated`, or a
    # different gamma gives a visibly different critic loss ...
    assert abs(_critic_loss64(batch, manual, manual["next_v_online"]) - expected_q) > 1e-3 * abs(expected_q)
    no_done = batch._replace(terminated=jnp.zeros_like(batch.terminated))
    assert abs(_critic_loss64(no_done, manual, manual["next_v_target"]) - expected_q) > 1e-3 * abs(expected_q)
    assert abs(_critic_loss64(batch, manual, manual["next_v_target"], gamma=0.99) - expected_q) > 1e-3 * expected_q
    # ... and dropping the entropy term (alpha = 0) visibly changes the value and policy losses.
    assert abs(_value_loss64(manual, 0.0) - expected_v) > 1e-3 * abs(expected_v)
    assert abs(_actor_loss64(manual, 0.0) - expected_pi) > 1e-3 * abs(expected_pi)


def test_value_target_and_policy_loss_share_one_sample_from_the_actor_key(stepped):
    # A fresh sample (another key) for the value target would give another value loss: the recomputation
    # above is sensitive to which noise is used.
    agent, state, batch, _, metrics, manual = stepped
    other_key = jax.random.split(state.key)[0]
    action, log_prob = agent.sample_action(state.actor_params, batch.obs, other_key)
    q_pi = agent.critic.apply({"params": state.critic_params}, batch.obs, action)
    other = dict(manual, q_pi=q_pi, log_prob=log_prob)
    alpha = math.exp(float(state.log_alpha))
    expected = _value_loss64(manual, alpha)
    assert abs(_value_loss64(other, alpha) - expected) > 1e-3 * expected
    assert float(metrics["value_loss"]) == pytest.approx(expected, rel=1e-4)


# ---------------------------------------------------------------- 4. gradients and optimisers
def test_value_params_are_one_adam_step_on_j_v_alone(stepped):
    _, state, _, new_state, _, manual = stepped
    assert_trees_close(new_state.value_params, manual["value_params"])
    assert trees_differ(new_state.value_params, state.value_params)


def test_critic_params_are_one_adam_step_on_j_q_alone(stepped):
    _, state, _, new_state, _, manual = stepped
    assert_trees_close(new_state.critic_params, manual["critic_params"])
    assert trees_differ(new_state.critic_params, state.critic_params)


def test_actor_params_are_one_adam_step_on_j_pi_against_pre_update_critics(stepped):
    _, state, _, new_state, _, manual = stepped
    assert_trees_close(new_state.actor_params, manual["actor_params"])
    assert trees_differ(new_state.actor_params, state.actor_params)


def test_optimiser_states_count_steps(stepped):
    _, state, _, new_state, _, _ = stepped
    for name in ("actor_opt_state", "critic_opt_state", "value_opt_state"):
        assert int(getattr(state, name)[0].count) == 2, name
        assert int(getattr(new_state, name)[0].count) == 3, name


def test_value_step_does_not_touch_actor_or_critics(base, stepped):
    # The new actor and critic parameters do not depend on psi: perturbing V's parameters before the update
    # leaves them bit-for-bit unchanged (J_V's gradient reaches neither, and the Q target uses psibar).
    _, _, update = base
    _, state, batch, new_state, metrics, _ = stepped
    rng = np.random.default_rng(0)
    perturbed = jax.tree_util.tree_map(lambda p: p + f32(0.3 * rng.normal(size=p.shape)), state.value_params)
    out, out_metrics = update(state.replace(value_params=perturbed), batch)
    assert_trees_equal(out.actor_params, new_state.actor_params)
    assert_trees_equal(out.critic_params, new_state.critic_params)
    assert float(out_metrics["critic_loss"]) == float(metrics["critic_loss"])
    assert float(out_metrics["actor_loss"]) == float(metrics["actor_loss"])
    # ... while V's own step did see it.
    assert trees_differ(out.value_params, new_state.value_params)
    assert float(out_metrics["value_loss"]) != pytest.approx(float(metrics["value_loss"]), rel=1e-3)


def test_target_value_params_reach_only_the_critic_step(base, stepped):
    _, _, update = base
    _, state, batch, new_state, metrics, _ = stepped
    rng = np.random.default_rng(1)
    perturbed = jax.tree_util.tree_map(lambda p: p + f32(0.3 * rng.normal(size=p.shape)), state.target_value_params)
    out, out_metrics = update(state.replace(target_value_params=perturbed), batch)
    assert_trees_equal(out.actor_params, new_state.actor_params)
    assert_trees_equal(out.value_params, new_state.value_params)
    assert float(out_metrics["value_loss"]) == float(metrics["value_loss"])
    assert float(out_metrics["actor_loss"]) == float(metrics["actor_loss"])
    assert trees_differ(out.critic_params, new_state.critic_params)
    assert float(out_metrics["critic_loss"]) != pytest.approx(float(metrics["critic_loss"]), rel=1e-3)


# ------------------------------------------------------------------------------ 3. target V
def test_target_value_moves_tau_towards_the_new_value(stepped):
    agent, state, _, new_state, _, _ = stepped
    assert agent.cfg.tau == TAU
    for new_t, new_v, old_t in zip(leaves64(new_state.target_value_params), leaves64(new_state.value_params),
                                   leaves64(state.target_value_params)):
        np.testing.assert_allclose(new_t, TAU * new_v + (1.0 - TAU) * old_t, rtol=1e-6, atol=1e-7)
    # Not a copy of either side.
    assert trees_differ(new_state.target_value_params, new_state.value_params)
    assert trees_differ(new_state.target_value_params, state.target_value_params)


def test_update_advances_key_and_counter(stepped):
    _, state, _, new_state, _, _ = stepped
    assert int(state.num_updates) == 2 and int(new_state.num_updates) == 3
    np.testing.assert_array_equal(np.asarray(new_state.key), np.asarray(jax.random.split(state.key)[0]))


def test_init_target_value_is_an_equal_copy(base):
    agent, init, _ = base
    state = init(jax.random.PRNGKey(4))
    assert_trees_equal(state.target_value_params, state.value_params)
    assert float(state.log_alpha) == float(np.float32(math.log(DEFAULT_ALPHA)))
    assert int(state.num_updates) == 0
    assert agent.state_value(state.value_params, make_batch(0).obs).shape == (BATCH,)


# ------------------------------------------------------------------------------ 5. temperature
def test_default_v1_temperature_stays_fixed_at_one_fifth(base, stepped):
    agent, _, update = base
    assert not agent.learn_alpha and agent.initial_alpha == pytest.approx(DEFAULT_ALPHA)
    _, state, batch, new_state, metrics, _ = stepped
    fixed = float(np.float32(math.log(DEFAULT_ALPHA)))
    assert float(state.log_alpha) == fixed and float(new_state.log_alpha) == fixed
    assert "alpha_loss" not in metrics
    assert_trees_equal(new_state.alpha_opt_state, state.alpha_opt_state)
    more, _ = update(new_state, make_batch(9))
    assert float(more.log_alpha) == fixed


def test_reward_scale_sets_the_fixed_temperature():
    agent = make_agent(reward_scale=20.0)
    assert agent.cfg.fixed_alpha == pytest.approx(0.05)
    assert not agent.learn_alpha and agent.initial_alpha == pytest.approx(0.05)
    # Only log_alpha of this agent's init is compiled (XLA drops the rest).
    log_alpha = jax.jit(lambda key: agent.init(key).log_alpha)(jax.random.PRNGKey(0))
    assert float(log_alpha) == float(np.float32(math.log(0.05)))
    explicit = make_agent(alpha=0.05)
    assert explicit.cfg.fixed_alpha == pytest.approx(0.05) and not explicit.learn_alpha


def test_learned_temperature_rises_towards_a_high_target_entropy(base, stepped):
    agent = make_agent(learn_alpha=True, target_entropy=10.0)
    assert agent.learn_alpha and agent.target_entropy == 10.0
    # The base agent's state fits (same networks; its temperature optimiser never stepped).
    _, state, batch, _, _, manual = stepped
    log_alpha0 = f32(math.log(0.5))
    new_state, metrics = jitted(agent, "update")(state.replace(log_alpha=log_alpha0), batch)
    entropy = float(metrics["entropy"])
    assert entropy < 10.0  # at most log 4 for a 2-D action in [-1, 1]^2
    change = float(new_state.log_alpha) - float(log_alpha0)
    assert change > 0 and change == pytest.approx(LR, rel=1e-3)  # Adam's first step has the size of lr
    assert float(metrics["alpha"]) == pytest.approx(0.5, rel=1e-6)  # the pre-update temperature is used
    # -log_alpha * mean(log pi + Hbar), with the log pi of the shared sample.
    expected = -math.log(0.5) * np.mean(_np(manual["log_prob"]) + 10.0)
    assert float(metrics["alpha_loss"]) == pytest.approx(expected, rel=1e-4)


# ---------------------------------------------------------------------------------- 6. config
def test_config_rejects_conflicting_temperatures():
    with pytest.raises(SoftacError):
        SACConfig(algo="sac-v1", alpha=0.1, reward_scale=5.0)
    with pytest.raises(SoftacError):
        SACConfig(algo="sac-v1", learn_alpha=True, reward_scale=5.0)
    with pytest.raises(SoftacError):
        SACConfig(algo="sac-v1", learn_alpha=True, alpha=0.1)


def test_config_v1_temperature_defaults():
    assert SACConfig(algo="sac-v1").fixed_alpha == pytest.approx(0.2)
    assert SACConfig(algo="sac-v1", learn_alpha=False).fixed_alpha == pytest.approx(0.2)
    assert SACConfig(algo="sac-v1", reward_scale=20.0).fixed_alpha == pytest.approx(0.05)
    assert SACConfig(algo="sac-v1", alpha=0.3).fixed_alpha == pytest.approx(0.3)
    assert SACConfig(algo="sac-v1", learn_alpha=True).fixed_alpha is None
    # v2 is unchanged: learned by default.
    assert SACConfig(algo="sac").fixed_alpha is None
    cfg = SACConfig.build(algo="sac-v1", learning_rate=1e-3, value_learning_rate=5e-3)
    assert cfg.algo_config.value_learning_rate == 5e-3 and cfg.actor_lr == 1e-3 and cfg.critic_lr == 1e-3


# ----------------------------------------------------------------------------- 7. update_many
def test_update_many_equals_sequential_updates(base):
    agent, init, update = base
    assert_update_many_equals_sequential_updates(agent, update, init(jax.random.PRNGKey(5)),
                                                 make_batch(11, leading=(2,)), num_steps=2)